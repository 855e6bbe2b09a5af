//! What one component asks of a node, compiled once per run from its manifest (`Needs`), and what one instance
//! asks on top given where the rest of the application already is (`Request`: proximity targets, excluded nodes).

use std::collections::BTreeMap;

use fos_api::manifest::{Accelerator, Arch, Component, EntityKind, InterfaceType, IoType, Within};

use crate::snapshot::{ClusterSnapshot, NodeIdx};

/// A component's requirements, with quantities parsed and device requests summed per type.
#[derive(Debug, Clone, PartialEq)]
pub struct Needs {
    /// The component's name.
    pub component: String,
    /// The entity kind (the runtime the node must have).
    pub kind: EntityKind,
    /// Required architecture.
    pub arch: Option<Arch>,
    /// Required operating system.
    pub os: Option<String>,
    /// Millicores per instance.
    pub cpu_millis: u64,
    /// Memory bytes per instance.
    pub memory_bytes: u64,
    /// Disk bytes per instance.
    pub disk_bytes: u64,
    /// I/O devices per instance, by type.
    pub io: Vec<(IoType, u32)>,
    /// Network interfaces the node must have, by type.
    pub interfaces: Vec<(InterfaceType, u32)>,
    /// Accelerators per instance, by type.
    pub accelerators: Vec<(Accelerator, u32)>,
    /// The explicit node subset (sorted indexes of the listed nodes that exist), if any.
    pub nodes: Option<Vec<NodeIdx>>,
    /// Listed nodes that are not in the cluster.
    pub unknown_nodes: Vec<String>,
    /// Labels the node must carry.
    pub selector: Vec<(String, String)>,
    /// The same labels as snapshot ids, `None` when some key or value is on no node (then no node matches).
    pub selector_ids: Option<Vec<(u32, u32)>>,
}

fn merge<T: Copy + PartialEq>(items: impl Iterator<Item = (T, u32)>) -> Vec<(T, u32)> {
    let mut out: Vec<(T, u32)> = Vec::new();
    for (k, n) in items {
        match out.iter_mut().find(|(o, _)| *o == k) {
            Some((_, m)) => *m = m.saturating_add(n),
            None => out.push((k, n)),
        }
    }
    out.retain(|(_, n)| *n > 0);
    out
}

impl Needs {
    /// Compiles a component's requirements against the snapshot's node names.
    pub fn of(component: &Component, snapshot: &ClusterSnapshot) -> Self {
        let c = &component.constraints;
        let e = &component.entity;
        let (nodes, unknown_nodes) = if c.nodes.is_empty() {
            (None, Vec::new())
        } else {
            let mut known = Vec::new();
            let mut unknown = Vec::new();
            for name in &c.nodes {
                match snapshot.index_of(name) {
                    Some(i) => known.push(i),
                    None => unknown.push(name.clone()),
                }
            }
            known.sort_unstable();
            known.dedup();
            (Some(known), unknown)
        };
        let selector: Vec<(String, String)> = c
            .node_selector
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let selector_ids =
            selector.iter().map(|(k, v)| Some((snapshot.label_key(k)?, snapshot.label_value(v)?))).collect();
        Needs {
            component: component.name.clone(),
            kind: e.kind,
            arch: c.arch,
            os: c.os.clone(),
            cpu_millis: e.cpu_millis(),
            memory_bytes: e.memory_bytes(),
            disk_bytes: e.disk_bytes(),
            io: merge(c.io.iter().map(|r| (r.kind, r.number))),
            interfaces: merge(c.networks.iter().map(|r| (r.kind, r.number))),
            accelerators: merge(c.accelerators.iter().map(|r| (r.kind, r.number))),
            nodes,
            unknown_nodes,
            selector,
            selector_ids,
        }
    }
}

/// One proximity rule as it applies to the instance being placed: the nodes it must (or would like to) be near.
#[derive(Debug, Clone, PartialEq)]
pub struct ProximityTarget {
    /// The component that declared the rule.
    pub from: String,
    /// The component it wants to be near.
    pub to: String,
    /// How near.
    pub within: Within,
    /// For a topology rule, the id of its label key in the snapshot (none when no node has the key).
    pub label_key: Option<u32>,
    /// The nodes to be near (where the other side's instances are).
    pub nodes: Vec<NodeIdx>,
    /// `true`: near every one of `nodes`; `false`: near at least one.
    pub all: bool,
    /// `true` when the rule is declared by `from` about the component being placed (`to`), so `nodes` are where
    /// `from` runs; `false` when the component being placed declared it.
    pub reverse: bool,
}

/// What one instance asks: its component's needs plus the proximity targets and excluded nodes of this moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    /// The component's needs.
    pub needs: &'a Needs,
    /// The instance being placed (`<component>-<replica>.<app>.<tenant>`), for tie-breaking and messages.
    pub instance: String,
    /// Required proximity: every target must be satisfied.
    pub required: Vec<ProximityTarget>,
    /// Preferred proximity: scored only.
    pub preferred: Vec<ProximityTarget>,
    /// Nodes this instance must not use (the source of a migration, choices undone by backtracking), sorted.
    pub excluded: Vec<NodeIdx>,
    /// The nodes of the component's placed replicas (one entry per replica).
    pub same_component: Vec<NodeIdx>,
}
