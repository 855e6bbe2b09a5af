//! The cluster as the scheduler sees it: every node's platform, labels, position and capacity, what existing
//! instances already hold (cpu, memory, disk, named devices), the measured round-trip times, and indexes (by name,
//! arch and label) so that candidate nodes are found without scanning thousands of nodes.

use std::collections::{BTreeMap, HashMap};

use fos_api::manifest::{Accelerator, Arch, EntityKind, InterfaceType, IoType};
use fos_api::node::Position;
use fos_api::record::AssignedDevices;
use fos_api::{DesiredInstance, InstanceId, Node};
use serde::{Deserialize, Serialize};

use fos_api::plan::{Placement, Plan};

/// Index of a node in a snapshot (nodes are sorted by name, so indexes are stable for the same node set).
pub type NodeIdx = u32;

/// Number of I/O device types.
pub const IO_TYPES: usize = IoType::ALL.len();
/// Number of accelerator types.
pub const ACCELERATOR_TYPES: usize = Accelerator::ALL.len();
/// Number of network interface types.
pub const INTERFACE_TYPES: usize = InterfaceType::ALL.len();

/// Why a snapshot cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Two nodes have the same name.
    #[error("node `{0}` appears twice")]
    DuplicateNode(String),
    /// A node's capacity does not parse.
    #[error("node `{node}`: {field} `{text}` is not a size")]
    BadQuantity {
        /// The node.
        node: String,
        /// `memory` or `disk`.
        field: &'static str,
        /// The text as written.
        text: String,
    },
}

/// What a placed instance holds on its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// The instance.
    pub instance: InstanceId,
    /// The node it is placed on.
    pub node: String,
    /// Millicores reserved.
    #[serde(default)]
    pub cpu_millis: u64,
    /// Bytes of memory reserved.
    #[serde(default)]
    pub memory_bytes: u64,
    /// Bytes of disk reserved.
    #[serde(default)]
    pub disk_bytes: u64,
    /// Devices held.
    #[serde(default)]
    pub devices: AssignedDevices,
}

impl Allocation {
    /// What a desired instance record holds (its entity's reservations and its assigned devices).
    pub fn from_desired(d: &DesiredInstance) -> Self {
        Allocation {
            instance: d.id.clone(),
            node: d.node.clone(),
            cpu_millis: d.entity.cpu_millis(),
            memory_bytes: d.entity.memory_bytes(),
            disk_bytes: d.entity.disk_bytes(),
            devices: d.devices.clone(),
        }
    }
}

impl From<&Placement> for Allocation {
    /// What a new placement holds on its node.
    fn from(p: &Placement) -> Self {
        Allocation {
            instance: p.instance.clone(),
            node: p.node.clone(),
            cpu_millis: p.cpu_millis,
            memory_bytes: p.memory_bytes,
            disk_bytes: p.disk_bytes,
            devices: p.devices.clone(),
        }
    }
}

/// One node, reduced to what placement looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapNode {
    /// The node's name.
    pub name: String,
    /// CPU architecture.
    pub arch: Arch,
    /// Operating system.
    pub os: String,
    /// Labels (what `nodeSelector` and topology proximity match).
    pub labels: BTreeMap<String, String>,
    /// Geographic position, when known.
    pub position: Option<Position>,
    /// Entity kinds the node runs, one bit per `EntityKind` (declaration order).
    pub runtimes: u8,
    /// The agent is alive.
    pub ready: bool,
    /// Cordoned.
    pub cordoned: bool,
    /// Total millicores.
    pub cpu_millis: u64,
    /// Total memory bytes.
    pub memory_bytes: u64,
    /// Total disk bytes.
    pub disk_bytes: u64,
    /// Network interfaces by type.
    pub interfaces: [u16; INTERFACE_TYPES],
    /// I/O devices (type and name), in the node's order.
    pub io: Vec<(IoType, String)>,
    /// Accelerators (type and name), in the node's order.
    pub accelerators: Vec<(Accelerator, String)>,
    /// I/O devices by type.
    pub io_total: [u16; IO_TYPES],
    /// Accelerators by type.
    pub accelerators_total: [u16; ACCELERATOR_TYPES],
}

impl SnapNode {
    /// True when the node runs entities of `kind`.
    pub fn runs(&self, kind: EntityKind) -> bool {
        self.runtimes & runtime_bit(kind) != 0
    }

    /// The kinds the node runs.
    pub fn runtime_list(&self) -> Vec<EntityKind> {
        EntityKind::ALL.iter().copied().filter(|k| self.runs(*k)).collect()
    }
}

/// The bit of `kind` in [`SnapNode::runtimes`].
pub fn runtime_bit(kind: EntityKind) -> u8 {
    1 << (kind as u8)
}

/// What is free on a node: capacity minus allocations, and which devices are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFree {
    /// Free millicores.
    pub cpu_millis: u64,
    /// Free memory bytes.
    pub memory_bytes: u64,
    /// Free disk bytes.
    pub disk_bytes: u64,
    /// Free I/O devices by type.
    pub io: [u16; IO_TYPES],
    /// Free accelerators by type.
    pub accelerators: [u16; ACCELERATOR_TYPES],
    /// Taken flags, parallel to [`SnapNode::io`].
    pub io_taken: Vec<bool>,
    /// Taken flags, parallel to [`SnapNode::accelerators`].
    pub accelerators_taken: Vec<bool>,
}

impl NodeFree {
    fn of(node: &SnapNode) -> Self {
        NodeFree {
            cpu_millis: node.cpu_millis,
            memory_bytes: node.memory_bytes,
            disk_bytes: node.disk_bytes,
            io: node.io_total,
            accelerators: node.accelerators_total,
            io_taken: vec![false; node.io.len()],
            accelerators_taken: vec![false; node.accelerators.len()],
        }
    }

    /// Takes what `alloc` holds (devices by name; names the node does not have, or already taken, are ignored).
    pub fn take(&mut self, node: &SnapNode, cpu: u64, memory: u64, disk: u64, devices: &AssignedDevices) {
        self.cpu_millis = self.cpu_millis.saturating_sub(cpu);
        self.memory_bytes = self.memory_bytes.saturating_sub(memory);
        self.disk_bytes = self.disk_bytes.saturating_sub(disk);
        for name in &devices.io {
            if let Some(i) = node.io.iter().position(|(_, n)| n == name) {
                if !self.io_taken[i] {
                    self.io_taken[i] = true;
                    self.io[node.io[i].0 as usize] -= 1;
                }
            }
        }
        for name in &devices.accelerators {
            if let Some(i) = node.accelerators.iter().position(|(_, n)| n == name) {
                if !self.accelerators_taken[i] {
                    self.accelerators_taken[i] = true;
                    self.accelerators[node.accelerators[i].0 as usize] -= 1;
                }
            }
        }
    }

    /// Gives back what `take` took (capped at the node's capacity).
    pub fn give_back(&mut self, node: &SnapNode, cpu: u64, memory: u64, disk: u64, devices: &AssignedDevices) {
        self.cpu_millis = (self.cpu_millis + cpu).min(node.cpu_millis);
        self.memory_bytes = (self.memory_bytes + memory).min(node.memory_bytes);
        self.disk_bytes = (self.disk_bytes + disk).min(node.disk_bytes);
        for name in &devices.io {
            if let Some(i) = node.io.iter().position(|(_, n)| n == name) {
                if self.io_taken[i] {
                    self.io_taken[i] = false;
                    self.io[node.io[i].0 as usize] += 1;
                }
            }
        }
        for name in &devices.accelerators {
            if let Some(i) = node.accelerators.iter().position(|(_, n)| n == name) {
                if self.accelerators_taken[i] {
                    self.accelerators_taken[i] = false;
                    self.accelerators[node.accelerators[i].0 as usize] += 1;
                }
            }
        }
    }
}

/// The cluster at one moment: nodes, their free capacity after existing allocations, and indexes.
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    nodes: Vec<SnapNode>,
    free: Vec<NodeFree>,
    by_name: HashMap<String, NodeIdx>,
    by_arch: Vec<Vec<NodeIdx>>,
    by_label: HashMap<String, HashMap<String, Vec<NodeIdx>>>,
    label_keys: HashMap<String, u32>,
    label_values: HashMap<String, u32>,
    label_table: Vec<Vec<u32>>,
    label_nodes: HashMap<(u32, u32), Vec<NodeIdx>>,
    topology_keys: Vec<u32>,
    name_hash: Vec<u64>,
    geo: Vec<Option<[f64; 3]>>,
    rtt: Vec<Vec<(NodeIdx, f64)>>,
    allocations: HashMap<InstanceId, Allocation>,
}

/// The value id of an absent label in [`ClusterSnapshot::label_at`].
pub const NO_LABEL: u32 = u32::MAX;

impl ClusterSnapshot {
    /// Builds a snapshot from nodes and the instances already placed on them. Allocations on nodes that are not in
    /// `nodes` are kept (they name their instance) but hold nothing.
    pub fn new(
        nodes: impl IntoIterator<Item = Node>,
        allocations: impl IntoIterator<Item = Allocation>,
    ) -> Result<Self, SnapshotError> {
        let mut nodes: Vec<Node> = nodes.into_iter().collect();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        if let Some(w) = nodes.windows(2).find(|w| w[0].metadata.name == w[1].metadata.name) {
            return Err(SnapshotError::DuplicateNode(w[0].metadata.name.clone()));
        }
        let mut snap = ClusterSnapshot {
            nodes: Vec::with_capacity(nodes.len()),
            free: Vec::with_capacity(nodes.len()),
            by_name: HashMap::with_capacity(nodes.len()),
            by_arch: vec![Vec::new(); Arch::ALL.len()],
            by_label: HashMap::new(),
            label_keys: HashMap::new(),
            label_values: HashMap::new(),
            label_table: Vec::new(),
            label_nodes: HashMap::new(),
            topology_keys: Vec::new(),
            name_hash: Vec::with_capacity(nodes.len()),
            geo: Vec::with_capacity(nodes.len()),
            rtt: Vec::with_capacity(nodes.len()),
            allocations: HashMap::new(),
        };
        for (i, node) in nodes.iter().enumerate() {
            let idx = i as NodeIdx;
            let sn = reduce(node)?;
            snap.by_name.insert(sn.name.clone(), idx);
            snap.by_arch[sn.arch as usize].push(idx);
            for (k, v) in &sn.labels {
                snap.by_label.entry(k.clone()).or_default().entry(v.clone()).or_default().push(idx);
                let next = snap.label_keys.len() as u32;
                let key = *snap.label_keys.entry(k.clone()).or_insert(next);
                let next = snap.label_values.len() as u32;
                let value = *snap.label_values.entry(v.clone()).or_insert(next);
                if key as usize == snap.label_table.len() {
                    snap.label_table.push(vec![NO_LABEL; nodes.len()]);
                }
                snap.label_table[key as usize][i] = value;
                snap.label_nodes.entry((key, value)).or_default().push(idx);
            }
            snap.free.push(NodeFree::of(&sn));
            snap.name_hash.push(crate::hash::stable_hash(0, &[sn.name.as_bytes()]));
            snap.geo.push(sn.position.map(|p| {
                let lat = p.lat.to_radians();
                [lat, p.lon.to_radians(), lat.cos()]
            }));
            snap.nodes.push(sn);
        }
        // Round-trip times, made symmetric: the larger of the two measured directions (the conservative one).
        let mut rtt: Vec<BTreeMap<NodeIdx, f64>> = vec![BTreeMap::new(); nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            for (peer, ms) in &node.status.rtt_ms {
                let Some(&j) = snap.by_name.get(peer) else { continue };
                if j as usize == i || !ms.is_finite() || *ms < 0.0 {
                    continue;
                }
                for (a, b) in [(i, j as usize), (j as usize, i)] {
                    let e = rtt[a].entry(b as NodeIdx).or_insert(*ms);
                    *e = e.max(*ms);
                }
            }
        }
        snap.rtt = rtt.into_iter().map(|m| m.into_iter().collect()).collect();
        snap.topology_keys = crate::proximity::TOPOLOGY_KEYS.iter().filter_map(|k| snap.label_key(k)).collect();
        for a in allocations {
            snap.add_allocation(a);
        }
        Ok(snap)
    }

    /// Records an allocation (replacing an earlier one of the same instance).
    pub fn add_allocation(&mut self, a: Allocation) {
        self.release(&a.instance);
        if let Some(&n) = self.by_name.get(&a.node) {
            let node = &self.nodes[n as usize];
            self.free[n as usize].take(node, a.cpu_millis, a.memory_bytes, a.disk_bytes, &a.devices);
        }
        self.allocations.insert(a.instance.clone(), a);
    }

    /// Forgets an instance's allocation, freeing what it held. Returns it, if there was one.
    pub fn release(&mut self, instance: &InstanceId) -> Option<Allocation> {
        let a = self.allocations.remove(instance)?;
        if let Some(&n) = self.by_name.get(&a.node) {
            let node = &self.nodes[n as usize];
            self.free[n as usize].give_back(node, a.cpu_millis, a.memory_bytes, a.disk_bytes, &a.devices);
        }
        Some(a)
    }

    /// Records every placement of `plan` (what the controller does once it wrote the desired records).
    pub fn commit(&mut self, plan: &Plan) {
        for p in &plan.placements {
            self.add_allocation(Allocation::from(p));
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node at `idx`.
    pub fn node(&self, idx: NodeIdx) -> &SnapNode {
        &self.nodes[idx as usize]
    }

    /// All nodes, sorted by name.
    pub fn nodes(&self) -> &[SnapNode] {
        &self.nodes
    }

    /// What is free on node `idx` after the recorded allocations.
    pub fn free(&self, idx: NodeIdx) -> &NodeFree {
        &self.free[idx as usize]
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<NodeIdx> {
        self.by_name.get(name).copied()
    }

    /// Nodes of one architecture.
    pub fn nodes_with_arch(&self, arch: Arch) -> &[NodeIdx] {
        &self.by_arch[arch as usize]
    }

    /// Nodes whose label `key` has value `value`.
    pub fn nodes_with_label(&self, key: &str, value: &str) -> &[NodeIdx] {
        self.by_label.get(key).and_then(|m| m.get(value)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The id of label key `key`, when some node has it.
    pub fn label_key(&self, key: &str) -> Option<u32> {
        self.label_keys.get(key).copied()
    }

    /// The id of label value `value`, when some node has it.
    pub fn label_value(&self, value: &str) -> Option<u32> {
        self.label_values.get(value).copied()
    }

    /// Nodes whose label with key id `key` has value id `value`.
    pub fn nodes_with_label_id(&self, key: u32, value: u32) -> &[NodeIdx] {
        self.label_nodes.get(&(key, value)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The value id of label `key` on node `n` ([`NO_LABEL`] when absent).
    #[inline]
    pub fn label_at(&self, key: u32, n: NodeIdx) -> u32 {
        self.label_table[key as usize][n as usize]
    }

    /// A stable hash of node `n`'s name (for tie-breaking).
    #[inline]
    pub fn name_hash(&self, n: NodeIdx) -> u64 {
        self.name_hash[n as usize]
    }

    /// Approximate distance in metres between two nodes' positions (equirectangular: fast, good to a fraction of a
    /// percent at the distances proximity is about), when both are known. For scoring only.
    #[inline]
    pub fn approx_distance_m(&self, a: NodeIdx, b: NodeIdx) -> Option<f64> {
        let (pa, pb) = (self.geo[a as usize]?, self.geo[b as usize]?);
        let mut dl = (pb[1] - pa[1]).abs();
        if dl > std::f64::consts::PI {
            dl = 2.0 * std::f64::consts::PI - dl;
        }
        let x = dl * (pa[2] + pb[2]) / 2.0;
        let y = pb[0] - pa[0];
        Some(6_371_000.0 * (x * x + y * y).sqrt())
    }

    /// Ids of the well-known topology keys (`zone`, `site`, `region`) some node has.
    pub fn topology_keys(&self) -> &[u32] {
        &self.topology_keys
    }

    /// Measured round-trip time between two nodes (0 for a node and itself), when measured.
    pub fn rtt_ms(&self, a: NodeIdx, b: NodeIdx) -> Option<f64> {
        if a == b {
            return Some(0.0);
        }
        let row = &self.rtt[a as usize];
        row.binary_search_by_key(&b, |(n, _)| *n).ok().map(|i| row[i].1)
    }

    /// The nodes with a measured round-trip time to `a`, with the time.
    pub fn rtt_row(&self, a: NodeIdx) -> &[(NodeIdx, f64)] {
        &self.rtt[a as usize]
    }

    /// The allocation of an instance, when it is placed.
    pub fn allocation(&self, instance: &InstanceId) -> Option<&Allocation> {
        self.allocations.get(instance)
    }

    /// Every allocation, in no particular order.
    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.allocations.values()
    }
}

fn reduce(node: &Node) -> Result<SnapNode, SnapshotError> {
    let name = node.metadata.name.clone();
    let spec = &node.spec;
    let memory = spec.memory.bytes().map_err(|_| SnapshotError::BadQuantity {
        node: name.clone(),
        field: "memory",
        text: spec.memory.to_string(),
    })?;
    let disk = spec.disk.bytes().map_err(|_| SnapshotError::BadQuantity {
        node: name.clone(),
        field: "disk",
        text: spec.disk.to_string(),
    })?;
    let mut interfaces = [0u16; INTERFACE_TYPES];
    for i in &spec.interfaces {
        interfaces[i.kind as usize] = interfaces[i.kind as usize].saturating_add(1);
    }
    let mut io_total = [0u16; IO_TYPES];
    let mut io = Vec::with_capacity(spec.io.len());
    for d in &spec.io {
        if io.iter().any(|(_, n)| n == &d.name) {
            continue; // names are unique on a node; a repeated name is one device
        }
        io_total[d.kind as usize] = io_total[d.kind as usize].saturating_add(1);
        io.push((d.kind, d.name.clone()));
    }
    let mut accelerators_total = [0u16; ACCELERATOR_TYPES];
    let mut accelerators = Vec::with_capacity(spec.accelerators.len());
    for d in &spec.accelerators {
        if accelerators.iter().any(|(_, n)| n == &d.name) {
            continue;
        }
        accelerators_total[d.kind as usize] = accelerators_total[d.kind as usize].saturating_add(1);
        accelerators.push((d.kind, d.name.clone()));
    }
    Ok(SnapNode {
        name,
        arch: spec.arch,
        os: spec.os.clone(),
        labels: node.metadata.labels.clone(),
        position: spec.position,
        runtimes: spec.runtimes.iter().fold(0, |m, k| m | runtime_bit(*k)),
        ready: node.status.ready,
        cordoned: node.status.unschedulable,
        cpu_millis: u64::from(spec.cpu.count) * 1000,
        memory_bytes: memory,
        disk_bytes: disk,
        interfaces,
        io,
        accelerators,
        io_total,
        accelerators_total,
    })
}
