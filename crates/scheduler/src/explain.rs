//! "Why not": for a component that found no node, every node's first refusal, grouped by reason (so 412 nodes
//! with the wrong arch read as one line), and the smallest relaxation that would make it placeable.

use std::collections::HashMap;

use fos_api::InstanceId;

use crate::plugins::filter::{all_rejections, first_rejection};
use crate::plugins::Context;
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;
use fos_api::plan::{NodeRequirement, ReasonGroup, Relaxation, Unschedulable};

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
    let firsts: Vec<Option<Rejection>> = (0..n as NodeIdx).map(|i| first_rejection(cx, i)).collect();
    let mut groups: Vec<ReasonGroup> = Vec::new();
    let mut by_key: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, r) in firsts.iter().enumerate() {
        let Some(r) = r else { continue };
        let name = &cx.snapshot.node(i as NodeIdx).name;
        let same = by_key.entry(group_key(r)).or_default();
        match same.iter().copied().find(|g| groups[*g].rejection == *r) {
            Some(g) => {
                groups[g].count += 1;
                if groups[g].examples.len() < MAX_EXAMPLES {
                    groups[g].examples.push(name.clone());
                }
            }
            None => {
                same.push(groups.len());
                groups.push(ReasonGroup {
                    count: 1,
                    examples: vec![name.clone()],
                    rejection: r.clone(),
                    merged: false,
                });
            }
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.examples.cmp(&b.examples)));
    if groups.len() > MAX_EXACT_GROUPS {
        // Too many different reasons: keep the repeated ones, merge the rest per filter.
        let repeated = groups.iter().take(MAX_EXACT_GROUPS - 1).take_while(|g| g.count > 1).count();
        let rest = groups.split_off(repeated);
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
        merged.sort_by_key(|g| std::cmp::Reverse(g.count));
        groups.extend(merged);
    }
    let relaxation = relax(cx, &failure, &firsts);
    Unschedulable {
        component: failure.component,
        unplaced: failure.unplaced,
        placed: failure.placed,
        replicas: failure.replicas,
        nodes: n,
        reasons: groups,
        relaxation,
        error: None,
    }
}

/// The smallest change that lets one more instance be placed: fewer replicas, a required proximity made a
/// preference, a selector label or the node list dropped, capacity freed on a node, or one more node.
fn relax(cx: &Context<'_>, failure: &Failure, firsts: &[Option<Rejection>]) -> Option<Relaxation> {
    if failure.placed > 0 && !failure.moving {
        return Some(Relaxation::FewerReplicas { replicas: failure.placed });
    }
    let mut proximity: Vec<((String, String), usize, Rejection)> = Vec::new();
    let mut selector: Vec<((String, String), usize)> = Vec::new();
    let mut listed = 0usize;
    let mut capacity: Option<(NodeIdx, Vec<Rejection>)> = None;
    for (i, first) in firsts.iter().enumerate() {
        let i = i as NodeIdx;
        // Only nodes refused for a reason a relaxation removes are worth looking at in full.
        let relaxable = first.as_ref().is_some_and(|r| {
            matches!(r, Rejection::Proximity { .. } | Rejection::Label { .. } | Rejection::NotListed) || r.is_capacity()
        });
        if !relaxable {
            continue;
        }
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
            _ if all.iter().all(Rejection::is_capacity)
                && capacity.as_ref().is_none_or(|(_, missing)| all.len() < missing.len()) =>
            {
                capacity = Some((i, all));
            }
            _ => {}
        }
    }
    if let Some(((from, to), nodes, Rejection::Proximity { within, .. })) =
        proximity.into_iter().max_by_key(|(_, c, _)| *c)
    {
        return Some(Relaxation::PreferProximity { from, to, within, nodes });
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

/// A hash of a rejection with its numbers, equal for equal rejections (to group nodes without formatting).
pub fn group_key(rejection: &Rejection) -> u64 {
    use crate::hash::{splitmix, stable_hash};
    let n = |x: u64| x.to_le_bytes();
    let tag = rejection.filter().as_bytes();
    match rejection {
        Rejection::NotReady => stable_hash(1, &[tag]),
        Rejection::Cordoned => stable_hash(2, &[tag]),
        Rejection::Excluded { because } => stable_hash(3, &[because.as_bytes()]),
        Rejection::Arch { wanted, has } => splitmix(4 << 16 | (*wanted as u64) << 8 | *has as u64),
        Rejection::Os { wanted, has } => stable_hash(5, &[wanted.as_bytes(), has.as_bytes()]),
        Rejection::Runtime { kind, has } => {
            splitmix(6 << 16 | (*kind as u64) << 8 | has.iter().fold(0, |m, k| m | 1 << (*k as u64)))
        }
        Rejection::NotListed => stable_hash(7, &[tag]),
        Rejection::Label { key, wanted, has } => {
            stable_hash(8, &[key.as_bytes(), wanted.as_bytes(), has.as_deref().map_or(&[0xff][..], str::as_bytes)])
        }
        Rejection::Cpu { needs, free, total } => stable_hash(9, &[&n(*needs), &n(*free), &n(*total)]),
        Rejection::Memory { needs, free, total } => stable_hash(10, &[&n(*needs), &n(*free), &n(*total)]),
        Rejection::Disk { needs, free, total } => stable_hash(11, &[&n(*needs), &n(*free), &n(*total)]),
        Rejection::Interfaces { kind, needs, has } => {
            stable_hash(12, &[&n(*kind as u64), &n(u64::from(*needs)), &n(u64::from(*has))])
        }
        Rejection::Io { kind, needs, free, total } => {
            stable_hash(13, &[&n(*kind as u64), &n(u64::from(*needs)), &n(u64::from(*free)), &n(u64::from(*total))])
        }
        Rejection::Accelerators { kind, needs, free, total } => {
            stable_hash(14, &[&n(*kind as u64), &n(u64::from(*needs)), &n(u64::from(*free)), &n(u64::from(*total))])
        }
        Rejection::Proximity { from, to, detail, .. } => {
            stable_hash(15, &[from.as_bytes(), to.as_bytes(), detail.as_bytes()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fos_api::manifest::{Arch, IoType};

    #[test]
    fn group_keys_follow_equality() {
        let a = Rejection::Io { kind: IoType::Gpio, needs: 2, free: 1, total: 3 };
        assert_eq!(group_key(&a), group_key(&a.clone()));
        assert_ne!(group_key(&a), group_key(&Rejection::Io { kind: IoType::Gpio, needs: 2, free: 0, total: 3 }));
        assert_ne!(group_key(&a), group_key(&Rejection::Io { kind: IoType::Usb, needs: 2, free: 1, total: 3 }));
        let l =
            |has: Option<&str>| Rejection::Label { key: "site".into(), wanted: "a".into(), has: has.map(Into::into) };
        assert_ne!(group_key(&l(None)), group_key(&l(Some("b"))));
        assert_ne!(
            group_key(&Rejection::Arch { wanted: Arch::X86_64, has: Arch::Aarch64 }),
            group_key(&Rejection::Arch { wanted: Arch::Aarch64, has: Arch::X86_64 })
        );
    }
}
