//! Choosing one node for one instance: narrow the candidates with the snapshot's indexes (required proximity,
//! node list, selector label, architecture), scan them from a seeded starting point running every filter, score
//! the feasible ones, keep the best. On big clusters the scan stops after enough feasible nodes were scored
//! (filters are never skipped: only fewer feasible nodes are compared).

use fos_api::manifest::Within;

use crate::hash::{splitmix, stable_hash};
use crate::plugins::filter::feasible;
use crate::plugins::score;
use crate::plugins::Context;
use crate::snapshot::NodeIdx;

/// The node chosen for an instance and its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The node.
    pub node: NodeIdx,
    /// Its weighted score.
    pub score: u64,
}

enum Candidates<'a> {
    All(usize),
    List(&'a [NodeIdx]),
    Owned(Vec<NodeIdx>),
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        match self {
            Candidates::All(n) => *n,
            Candidates::List(l) => l.len(),
            Candidates::Owned(l) => l.len(),
        }
    }

    fn get(&self, i: usize) -> NodeIdx {
        match self {
            Candidates::All(_) => i as NodeIdx,
            Candidates::List(l) => l[i],
            Candidates::Owned(l) => l[i],
        }
    }
}

/// The smallest candidate list the indexes give; every node that can pass the filters is in it.
fn candidates<'a>(cx: &Context<'a>) -> Candidates<'a> {
    let snap = cx.snapshot;
    let needs = cx.request.needs;
    let mut best = Candidates::All(snap.len());
    let mut consider = |c: Candidates<'a>| {
        if c.len() < best.len() {
            best = c;
        }
    };
    for t in cx.request.required.iter().filter(|t| !t.nodes.is_empty()) {
        // For "any", the union of every target's neighbourhood; for "all", the first target's neighbourhood.
        let targets = if t.all { &t.nodes[..1] } else { &t.nodes[..] };
        let mut around: Vec<NodeIdx> = Vec::new();
        let mut bounded = true;
        for &m in targets {
            match &t.within {
                Within::Node => around.push(m),
                Within::Topology(key) => match snap.node(m).labels.get(key) {
                    Some(v) => around.extend_from_slice(snap.nodes_with_label(key, v)),
                    None => around.push(m),
                },
                Within::LatencyMs(ms) => {
                    around.push(m);
                    around.extend(snap.rtt_row(m).iter().filter(|(_, rtt)| rtt <= ms).map(|(n, _)| *n));
                }
                Within::DistanceM(_) => bounded = false,
            }
        }
        if bounded {
            around.sort_unstable();
            around.dedup();
            consider(Candidates::Owned(around));
        }
    }
    if let Some(list) = &needs.nodes {
        consider(Candidates::List(list));
    }
    for (k, v) in &needs.selector {
        consider(Candidates::List(snap.nodes_with_label(k, v)));
    }
    if let Some(arch) = needs.arch {
        consider(Candidates::List(snap.nodes_with_arch(arch)));
    }
    best
}

/// Nodes most likely to score best on preferred proximity: the targets' nodes, their measured neighbours and
/// some nodes of their topology domain. Sorted, without repeats.
fn preferred_neighbourhood(cx: &Context<'_>) -> Vec<NodeIdx> {
    const PER_DOMAIN: usize = 32;
    let snap = cx.snapshot;
    let mut out: Vec<NodeIdx> = Vec::new();
    for t in &cx.request.preferred {
        for &m in t.nodes.iter().take(8) {
            out.push(m);
            out.extend(snap.rtt_row(m).iter().map(|(n, _)| *n));
            let keys: &[u32] = match (&t.within, t.label_key) {
                (Within::Topology(_), Some(k)) => &[k][..],
                (Within::Topology(_), None) => &[],
                _ => snap.topology_keys(),
            };
            for &k in keys.iter().take(1) {
                let v = snap.label_at(k, m);
                if v != crate::snapshot::NO_LABEL {
                    let domain = snap.nodes_with_label_id(k, v);
                    let start = (m as usize) % domain.len().max(1);
                    out.extend(domain.iter().cycle().skip(start).take(PER_DOMAIN.min(domain.len())));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Picks the best feasible node for the request in `cx`, or `None` when no node passes every filter.
pub fn select(cx: &Context<'_>) -> Option<Choice> {
    let cands = candidates(cx);
    let len = cands.len();
    if len == 0 {
        return None;
    }
    let limit = cx.options.scored_nodes(cx.snapshot.len());
    let seed = cx.options.seed;
    let instance = cx.request.instance.as_bytes();
    let instance_hash = stable_hash(seed, &[instance]);
    let tie = |n: NodeIdx| splitmix(instance_hash ^ cx.snapshot.name_hash(n));
    let mut best: Option<(Choice, u64)> = None;
    let mut found = 0usize;
    let consider = |n: NodeIdx, best: &mut Option<(Choice, u64)>| {
        if !feasible(cx, n) {
            return false;
        }
        let s = score::total(cx, n);
        match best {
            Some((b, _)) if b.score > s => {}
            Some((b, bh)) if b.score == s => {
                let h = tie(n);
                if h > *bh || (h == *bh && n < b.node) {
                    *best = Some((Choice { node: n, score: s }, h));
                }
            }
            _ => *best = Some((Choice { node: n, score: s }, tie(n))),
        }
        true
    };
    // Nodes near preferred proximity targets first: with sampling they would otherwise be missed.
    let seen = preferred_neighbourhood(cx);
    for &m in &seen {
        if consider(m, &mut best) {
            found += 1;
        }
    }
    let start = (instance_hash % len as u64) as usize;
    for i in 0..len {
        if found >= limit {
            break;
        }
        let n = cands.get((start + i) % len);
        if !seen.is_empty() && seen.binary_search(&n).is_ok() {
            continue;
        }
        if consider(n, &mut best) {
            found += 1;
        }
    }
    best.map(|(c, _)| c)
}
