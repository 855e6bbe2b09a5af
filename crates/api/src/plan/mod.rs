//! The result of a scheduling run: a node and devices for every instance placed, the start order as layers, and
//! for every component that could not be (fully) placed an explanation: per node the first reason, grouped, and
//! the smallest relaxation that would make it placeable. Serializable (the API's dry run returns it) and
//! printable (`fosctl plan` and the API print the same text).

use std::fmt;

use crate::manifest::{Accelerator, Arch, EntityKind, InterfaceType, IoType, Within};
use crate::quantity::format_bytes;
use crate::record::AssignedDevices;
use crate::record::InstanceId;
use serde::{Deserialize, Serialize};

mod rejection;

pub use rejection::{format_cpu, Rejection};

/// A scheduling plan for one application (or one set of instances).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// New placements, in placement order.
    pub placements: Vec<Placement>,
    /// Instances already placed and kept where they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<InstanceId>,
    /// Instances placed earlier that the application no longer has (fewer replicas, removed component).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surplus: Vec<InstanceId>,
    /// Start order: component names per layer; a layer starts once the previous one is Ready.
    pub start_order: Vec<Vec<String>>,
    /// Components not (fully) placed, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unschedulable: Vec<Unschedulable>,
}

impl Plan {
    /// True when every instance asked for has a node.
    pub fn is_complete(&self) -> bool {
        self.unschedulable.is_empty()
    }

    /// The placement of `instance` in this plan.
    pub fn placement(&self, instance: &InstanceId) -> Option<&Placement> {
        self.placements.iter().find(|p| &p.instance == instance)
    }
}

/// One instance placed on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The instance.
    pub instance: InstanceId,
    /// The node chosen.
    pub node: String,
    /// Devices assigned to it on that node.
    #[serde(default)]
    pub devices: AssignedDevices,
    /// Millicores reserved.
    pub cpu_millis: u64,
    /// Memory bytes reserved.
    pub memory_bytes: u64,
    /// Disk bytes reserved.
    pub disk_bytes: u64,
    /// The weighted score the node won with.
    pub score: u64,
}

/// A component some of whose instances found no node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unschedulable {
    /// The component.
    pub component: String,
    /// Instances without a node.
    pub unplaced: Vec<InstanceId>,
    /// Instances of the component that do have a node (kept or placed).
    pub placed: u32,
    /// Replicas asked for.
    pub replicas: u32,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Why each node refused the first unplaced instance, grouped by reason, most frequent first.
    pub reasons: Vec<ReasonGroup>,
    /// The smallest change that would make it placeable, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relaxation: Option<Relaxation>,
    /// Placement could not run at all for this reason (the nodes or the application are inconsistent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Unschedulable {
    /// Every instance of `component` (of `tenant`/`app`) is left unplaced because placement failed with `error`.
    pub fn failed(tenant: &str, app: &str, component: &str, replicas: u32, nodes: usize, error: String) -> Self {
        Unschedulable {
            component: component.to_string(),
            unplaced: (0..replicas).map(|r| InstanceId::new(tenant, app, component, r)).collect(),
            placed: 0,
            replicas,
            nodes,
            reasons: Vec::new(),
            relaxation: None,
            error: Some(error),
        }
    }

    /// Why it cannot be placed, without the component's name in front (the `Display` form is
    /// `<component>: <explanation>`): how many replicas are placed, each group of refusing nodes on its own line,
    /// and the relaxation that would help.
    pub fn explanation(&self) -> String {
        use fmt::Write;
        let mut f = String::new();
        if let Some(e) = &self.error {
            f.push_str(e);
            return f;
        }
        let unplaced: Vec<String> = self.unplaced.iter().map(InstanceId::short).collect();
        let _ = write!(f, "{} of {} replicas placed; no node for {}", self.placed, self.replicas, unplaced.join(", "));
        if self.nodes == 0 {
            f.push_str("\n  the cluster has no nodes");
        } else {
            let _ = write!(f, " ({} nodes considered)", self.nodes);
        }
        for g in &self.reasons {
            let _ = write!(f, "\n  {g}");
        }
        if let Some(r) = &self.relaxation {
            let _ = write!(f, "\n  to place it: {r}");
        }
        f
    }
}

/// Nodes refused for the same reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasonGroup {
    /// How many nodes.
    pub count: usize,
    /// Up to a few of their names.
    pub examples: Vec<String>,
    /// The reason (of the first node, when reasons with different numbers were merged).
    pub rejection: Rejection,
    /// True when this group merges reasons of one filter with different numbers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merged: bool,
}

/// A change that would let a component be placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum Relaxation {
    /// Ask for fewer replicas: this many fit.
    FewerReplicas {
        /// Replicas that fit.
        replicas: u32,
    },
    /// Make a required proximity rule a preference (`required: false`).
    PreferProximity {
        /// The component declaring the rule.
        from: String,
        /// Its target.
        to: String,
        /// How near it asks.
        #[serde(with = "within_text")]
        within: Within,
        /// Nodes that would then fit.
        nodes: usize,
    },
    /// Drop a `nodeSelector` label.
    DropSelector {
        /// The label key.
        key: String,
        /// The value required.
        value: String,
        /// Nodes that would then fit.
        nodes: usize,
    },
    /// Drop the `nodes` list.
    DropNodeList {
        /// Nodes that would then fit.
        nodes: usize,
    },
    /// Free capacity on an existing node (stop or move what holds it).
    FreeCapacity {
        /// The node.
        node: String,
        /// What is missing there.
        missing: Vec<Rejection>,
    },
    /// Add one more node with what the component needs.
    AddNode(NodeRequirement),
}

/// What a node must offer to take one instance of a component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRequirement {
    /// Architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Runtime.
    pub runtime: Option<EntityKind>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
    /// Free millicores.
    pub cpu_millis: u64,
    /// Free memory bytes.
    pub memory_bytes: u64,
    /// Free disk bytes.
    pub disk_bytes: u64,
    /// Free I/O devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io: Vec<(IoType, u32)>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<(InterfaceType, u32)>,
    /// Free accelerators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<(Accelerator, u32)>,
    /// Proximity it must satisfy (`within 5ms of db`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near: Vec<String>,
}

mod within_text {
    use crate::manifest::Within;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(w: &Within, s: S) -> Result<S::Ok, S::Error> {
        w.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Within, D::Error> {
        Within::deserialize(d)
    }
}

impl fmt::Display for NodeRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(a) = self.arch {
            parts.push(format!("arch {a}"));
        }
        if let Some(os) = &self.os {
            parts.push(format!("os {os}"));
        }
        if let Some(r) = self.runtime {
            parts.push(format!("a {r} runtime"));
        }
        for (k, v) in &self.labels {
            parts.push(format!("label {k}={v}"));
        }
        if self.cpu_millis > 0 {
            parts.push(format!("{} cpu free", format_cpu(self.cpu_millis)));
        }
        if self.memory_bytes > 0 {
            parts.push(format!("{} memory free", format_bytes(self.memory_bytes)));
        }
        if self.disk_bytes > 0 {
            parts.push(format!("{} disk free", format_bytes(self.disk_bytes)));
        }
        for (k, n) in &self.io {
            parts.push(format!("{n} free {k}"));
        }
        for (k, n) in &self.interfaces {
            parts.push(format!("{n} {k} interface{}", if *n == 1 { "" } else { "s" }));
        }
        for (k, n) in &self.accelerators {
            parts.push(format!("{n} free {k}"));
        }
        for near in &self.near {
            parts.push(near.clone());
        }
        f.write_str(&parts.join(", "))
    }
}

impl fmt::Display for Relaxation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = |n: &usize| format!("{n} node{}", if *n == 1 { "" } else { "s" });
        match self {
            Relaxation::FewerReplicas { replicas } => {
                write!(f, "ask for {replicas} replica{}: that many fit", if *replicas == 1 { "" } else { "s" })
            }
            Relaxation::PreferProximity { from, to, within, nodes: n } => write!(
                f,
                "make {from}'s proximity to {to} (within {within}) a preference (required: false): {} would fit",
                nodes(n)
            ),
            Relaxation::DropSelector { key, value, nodes: n } => {
                write!(f, "drop nodeSelector {key}={value}: {} would fit", nodes(n))
            }
            Relaxation::DropNodeList { nodes: n } => write!(f, "drop the nodes list: {} would fit", nodes(n)),
            Relaxation::FreeCapacity { node, missing } => write!(
                f,
                "free capacity on {node} ({})",
                missing.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("; ")
            ),
            Relaxation::AddNode(req) => write!(f, "add one more node with {req}"),
        }
    }
}

impl fmt::Display for ReasonGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 1 && !self.merged {
            return write!(f, "{}: {}", self.examples.first().map(String::as_str).unwrap_or("?"), self.rejection);
        }
        let more = if self.count > self.examples.len() { ", …" } else { "" };
        write!(f, "{} nodes ({}{more}): ", self.count, self.examples.join(", "))?;
        if self.merged {
            write!(f, "{} (e.g. {})", self.rejection.filter(), self.rejection)
        } else {
            write!(f, "{}", self.rejection)
        }
    }
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.component, self.explanation())
    }
}

impl fmt::Display for Plan {
    /// The plan as a table of placements, the start order and the explanations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.placements.iter().map(|p| p.instance.short().len()).max().unwrap_or(8).max(8);
        let node_width = self.placements.iter().map(|p| p.node.len()).max().unwrap_or(4).max(4);
        writeln!(f, "{:width$}  {:node_width$}  DEVICES", "INSTANCE", "NODE")?;
        for p in &self.placements {
            let devices: Vec<&str> =
                p.devices.io.iter().chain(p.devices.accelerators.iter()).map(String::as_str).collect();
            writeln!(f, "{:width$}  {:node_width$}  {}", p.instance.short(), p.node, devices.join(","))?;
        }
        if !self.kept.is_empty() {
            let kept: Vec<String> = self.kept.iter().map(InstanceId::short).collect();
            writeln!(f, "kept where they are: {}", kept.join(", "))?;
        }
        if !self.surplus.is_empty() {
            let s: Vec<String> = self.surplus.iter().map(InstanceId::short).collect();
            writeln!(f, "no longer wanted: {}", s.join(", "))?;
        }
        writeln!(f, "start order:")?;
        for (i, layer) in self.start_order.iter().enumerate() {
            writeln!(f, "  {}. {}", i + 1, layer.join(", "))?;
        }
        if !self.unschedulable.is_empty() {
            writeln!(f, "unschedulable:")?;
            for u in &self.unschedulable {
                writeln!(f, "{u}")?;
            }
        }
        Ok(())
    }
}
