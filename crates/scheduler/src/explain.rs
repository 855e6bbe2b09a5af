//! "Why not": for a component that found no node, every node's first refusal, grouped by reason (so 412 nodes
//! with the wrong arch read as one line), and the smallest relaxation that would make it placeable.

use std::collections::HashMap;

use fos_api::InstanceId;

use crate::plan::{NodeRequirement, ReasonGroup, Relaxation, Unschedulable};
use crate::plugins::filter::{all_rejections, first_rejection};
use crate::plugins::Context;
use crate::rejection::Rejection;
use crate::snapshot::NodeIdx;

/// Reason groups shown before the rest are merged per filter.
pub const MAX_EXACT_GROUPS: usize = 8;
/// Node names shown per group.
pub const MAX_EXAMPLES: usize = 3;

/// What is known about the component when its instance found no node.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The component.
    pub component: String,
    /// Instances left without a node.
    pub unplaced: Vec<InstanceId>,
    /// Instances of the component with a node.
    pub placed: u32,
    /// Replicas asked for.
    pub replicas: u32,
    /// The instances are being moved (node loss, migration), so asking for fewer replicas is no answer.
    pub moving: bool,
}

/// Explains why the request in `cx` fits no node.
pub fn explain(cx: &Context<'_>, failure: Failure) -> Unschedulable {
    let n = cx.snapshot.len();
    let mut groups: Vec<ReasonGroup> = Vec::new();
    let mut by_text: HashMap<String, usize> = HashMap::new();
    for i in 0..n as NodeIdx {
        let Some(r) = first_rejection(cx, i) else { continue };
        let name = &cx.snapshot.node(i).name;
        let text = r.to_string();
        match by_text.get(&text) {
            Some(&g) => {
                groups[g].count += 1;
                if groups[g].examples.len() < MAX_EXAMPLES {
                    groups[g].examples.push(name.clone());
                }
            }
            None => {
                by_text.insert(text, groups.len());
                groups.push(ReasonGroup { count: 1, examples: vec![name.clone()], rejection: r, merged: false });
            }
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.examples.cmp(&b.examples)));
    if groups.len() > MAX_EXACT_GROUPS {
        let rest = groups.split_off(MAX_EXACT_GROUPS - 1);
        let mut merged: Vec<ReasonGroup> = Vec::new();
        for g in rest {
            match merged.iter_mut().find(|m| m.rejection.filter() == g.rejection.filter()) {
                Some(m) => {
                    m.count += g.count;
                    m.merged = true;
                    for e in g.examples {
                        if m.examples.len() < MAX_EXAMPLES {
                            m.examples.push(e);
                        }
                    }
                }
                None => merged.push(g),
            }
        }
        merged.sort_by(|a, b| b.count.cmp(&a.count));
        groups.extend(merged);
    }
    let relaxation = relax(cx, &failure);
    Unschedulable {
        component: failure.component,
        unplaced: failure.unplaced,
        placed: failure.placed,
        replicas: failure.replicas,
        nodes: n,
        reasons: groups,
        relaxation,
    }
}

/// The smallest change that lets one more instance be placed: fewer replicas, a required proximity made a
/// preference, a selector label or the node list dropped, capacity freed on a node, or one more node.
fn relax(cx: &Context<'_>, failure: &Failure) -> Option<Relaxation> {
    if failure.placed > 0 && !failure.moving {
        return Some(Relaxation::FewerReplicas { replicas: failure.placed });
    }
    let mut proximity: Vec<((String, String), usize, Rejection)> = Vec::new();
    let mut selector: Vec<((String, String), usize)> = Vec::new();
    let mut listed = 0usize;
    let mut capacity: Option<(NodeIdx, Vec<Rejection>)> = None;
    for i in 0..cx.snapshot.len() as NodeIdx {
        let all = all_rejections(cx, i);
        let Some(first) = all.first() else { continue };
        let only = |f: &str| all.iter().all(|r| r.filter() == f);
        match first {
            Rejection::Proximity { from, to, .. } if only("proximity") => {
                let key = (from.clone(), to.clone());
                match proximity.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, c, _)) => *c += 1,
                    None => proximity.push((key, 1, first.clone())),
                }
            }
            Rejection::Label { key, wanted, .. } if all.len() == 1 => {
                let k = (key.clone(), wanted.clone());
                match selector.iter_mut().find(|(s, _)| *s == k) {
                    Some((_, c)) => *c += 1,
                    None => selector.push((k, 1)),
                }
            }
            Rejection::NotListed if all.len() == 1 => listed += 1,
            _ if all.iter().all(Rejection::is_capacity) => {
                if capacity.as_ref().is_none_or(|(_, missing)| all.len() < missing.len()) {
                    capacity = Some((i, all));
                }
            }
            _ => {}
        }
    }
    if let Some(((from, to), nodes, r)) = proximity.into_iter().max_by_key(|(_, c, _)| *c) {
        if let Rejection::Proximity { within, .. } = r {
            return Some(Relaxation::PreferProximity { from, to, within, nodes });
        }
    }
    if let Some(((key, value), nodes)) = selector.into_iter().max_by_key(|(_, c)| *c) {
        return Some(Relaxation::DropSelector { key, value, nodes });
    }
    if listed > 0 {
        return Some(Relaxation::DropNodeList { nodes: listed });
    }
    if let Some((i, missing)) = capacity {
        return Some(Relaxation::FreeCapacity { node: cx.snapshot.node(i).name.clone(), missing });
    }
    let req = cx.request;
    let needs = req.needs;
    // A new node cannot be "the same node" as a placed target.
    if req.required.iter().any(|t| !t.nodes.is_empty() && t.within == fos_api::manifest::Within::Node) {
        return None;
    }
    Some(Relaxation::AddNode(NodeRequirement {
        arch: needs.arch,
        os: needs.os.clone(),
        runtime: Some(needs.kind),
        labels: needs.selector.clone(),
        cpu_millis: needs.cpu_millis,
        memory_bytes: needs.memory_bytes,
        disk_bytes: needs.disk_bytes,
        io: needs.io.clone(),
        interfaces: needs.interfaces.clone(),
        accelerators: needs.accelerators.clone(),
        near: req
            .required
            .iter()
            .filter(|t| !t.nodes.is_empty())
            .map(|t| {
                let other = if t.reverse { &t.from } else { &t.to };
                format!("within {} of {other}", t.within)
            })
            .collect(),
    }))
}
