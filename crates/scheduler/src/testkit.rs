//! Builders for unit tests: nodes with one feature each, a component, and a fixture that runs one plugin against
//! one node with a chosen working state.

use std::collections::BTreeMap;

use fos_api::manifest::{Accelerator, Arch, Component, Constraints, EntityKind, InterfaceType, IoType};
use fos_api::node::{AcceleratorDevice, CpuInfo, InterfaceInfo, IoDevice, Position};
use fos_api::record::AssignedDevices;
use fos_api::{ByteSize, EntitySpec, InstanceId, Metadata, Node, NodeInfo, NodeStatus};

use crate::options::Options;
use crate::plugins::filter::FilterPlugin;
use crate::plugins::score::ScorePlugin;
use crate::plugins::Context;
use crate::request::{Needs, ProximityTarget, Request};
use crate::snapshot::{Allocation, ClusterSnapshot, NodeIdx};
use crate::state::Working;
use fos_api::plan::Rejection;

/// An x86_64 linux node with 4 cpus, 8Gi memory, 100Gi disk and every runtime.
pub fn node(name: &str) -> Node {
    Node {
        metadata: Metadata::named(name),
        spec: NodeInfo {
            arch: Arch::X86_64,
            os: "linux".into(),
            os_release: None,
            kernel: None,
            hostname: None,
            cpu: CpuInfo { model: String::new(), count: 4, frequency_mhz: None },
            memory: ByteSize::from("8Gi"),
            disk: ByteSize::from("100Gi"),
            disks: Vec::new(),
            interfaces: Vec::new(),
            io: Vec::new(),
            accelerators: Vec::new(),
            runtimes: EntityKind::ALL.to_vec(),
            position: None,
        },
        status: NodeStatus::default(),
    }
}

/// A node with labels.
pub fn labelled(name: &str, labels: &[(&str, &str)]) -> Node {
    let mut n = node(name);
    n.metadata.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    n
}

/// A node with labels and a position.
pub fn labelled_at(name: &str, labels: &[(&str, &str)], lat: f64, lon: f64) -> Node {
    let mut n = labelled(name, labels);
    n.spec.position = Some(Position { lat, lon });
    n
}

/// A node with measured round-trip times to peers.
pub fn rtt(name: &str, peers: &[(&str, f64)]) -> Node {
    let mut n = node(name);
    n.status.rtt_ms = peers.iter().map(|(p, ms)| (p.to_string(), *ms)).collect();
    n
}

/// A node with `cpus` cpus and `memory` memory.
pub fn sized(name: &str, cpus: u32, memory: &str) -> Node {
    let mut n = node(name);
    n.spec.cpu.count = cpus;
    n.spec.memory = ByteSize::from(memory);
    n
}

/// A node with I/O devices.
pub fn with_io(name: &str, devices: &[(IoType, &str)]) -> Node {
    let mut n = node(name);
    n.spec.io = devices
        .iter()
        .map(|(kind, dev)| IoDevice { kind: *kind, name: dev.to_string(), path: None, lines: None })
        .collect();
    n
}

/// A node with accelerators.
pub fn with_accelerators(name: &str, devices: &[(Accelerator, &str)]) -> Node {
    let mut n = node(name);
    n.spec.accelerators = devices
        .iter()
        .map(|(kind, dev)| AcceleratorDevice { kind: *kind, name: dev.to_string(), model: None, path: None })
        .collect();
    n
}

/// A node with network interfaces.
pub fn with_interfaces(name: &str, kinds: &[InterfaceType]) -> Node {
    let mut n = node(name);
    n.spec.interfaces = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| InterfaceInfo {
            name: format!("if{i}"),
            kind: *kind,
            mac: None,
            speed_mbps: None,
            addresses: vec![],
        })
        .collect();
    n
}

/// A one-replica native component with no constraints.
pub fn component(name: &str) -> Component {
    Component {
        name: name.into(),
        replicas: 1,
        need: Vec::new(),
        proximity: Vec::new(),
        constraints: Constraints::default(),
        entity: EntitySpec::native(["true"]),
        on_node_loss: Default::default(),
        max_unavailable: 1,
    }
}

/// A snapshot, a component and a working state to run one plugin against.
pub struct Fixture {
    /// The cluster.
    pub snapshot: ClusterSnapshot,
    /// The component's needs.
    pub needs: Needs,
    /// Options.
    pub options: Options,
    excluded: Vec<NodeIdx>,
    required: Vec<ProximityTarget>,
    preferred: Vec<ProximityTarget>,
    placed: Vec<(InstanceId, NodeIdx)>,
    allocations: u32,
}

impl Fixture {
    /// A fixture over `nodes` for `component`.
    pub fn new(nodes: Vec<Node>, component: Component) -> Self {
        let snapshot = ClusterSnapshot::new(nodes, []).unwrap();
        let needs = Needs::of(&component, &snapshot);
        Fixture {
            snapshot,
            needs,
            options: Options::default(),
            excluded: Vec::new(),
            required: Vec::new(),
            preferred: Vec::new(),
            placed: Vec::new(),
            allocations: 0,
        }
    }

    /// The index of node `name`.
    pub fn idx(&self, name: &str) -> NodeIdx {
        self.snapshot.index_of(name).unwrap()
    }

    fn with_cx<R>(&self, f: impl FnOnce(&Context<'_>) -> R) -> R {
        let mut state = Working::new(&self.snapshot);
        for (id, n) in &self.placed {
            state.record(id, *n);
        }
        let request = Request {
            needs: &self.needs,
            instance: "c-0.app.default".into(),
            required: self.required.clone(),
            preferred: self.preferred.clone(),
            excluded: self.excluded.clone(),
            same_component: state.placed(&self.needs.component).iter().map(|(_, n)| *n).collect(),
        };
        let cx = Context { snapshot: &self.snapshot, state: &state, request: &request, options: &self.options };
        f(&cx)
    }

    /// What filter `p` says of node `name`.
    pub fn explain(&self, p: &dyn FilterPlugin, name: &str) -> Option<Rejection> {
        let n = self.idx(name);
        self.with_cx(|cx| p.explain(cx, n))
    }

    /// What score `p` gives node `name`.
    pub fn score(&self, p: &dyn ScorePlugin, name: &str) -> u32 {
        let n = self.idx(name);
        self.with_cx(|cx| p.score(cx, n))
    }

    /// Checks that the fast check and the explanation agree on every node.
    pub fn assert_consistent(&self, p: &dyn FilterPlugin) {
        self.with_cx(|cx| {
            for n in 0..self.snapshot.len() as NodeIdx {
                let name = &self.snapshot.node(n).name;
                assert_eq!(p.passes(cx, n), p.explain(cx, n).is_none(), "{} on {name}", p.name());
                if let Some(r) = p.explain(cx, n) {
                    assert_eq!(r.filter(), p.name(), "{r}");
                }
            }
        });
    }

    /// Excludes node `name`.
    pub fn exclude(&mut self, name: &str) {
        let n = self.idx(name);
        self.excluded.push(n);
        self.excluded.sort_unstable();
    }

    /// Records another instance holding cpu and memory on node `name`.
    pub fn allocate(&mut self, name: &str, cpu_millis: u64, memory_bytes: u64) {
        self.allocations += 1;
        self.snapshot.add_allocation(Allocation {
            instance: InstanceId::new("default", "other", "x", self.allocations),
            node: name.into(),
            cpu_millis,
            memory_bytes,
            disk_bytes: 0,
            devices: AssignedDevices::default(),
        });
    }

    /// Records another instance holding devices on node `name`.
    pub fn allocate_devices(&mut self, name: &str, io: &[&str], accelerators: &[&str]) {
        self.allocations += 1;
        self.snapshot.add_allocation(Allocation {
            instance: InstanceId::new("default", "other", "x", self.allocations),
            node: name.into(),
            cpu_millis: 0,
            memory_bytes: 0,
            disk_bytes: 0,
            devices: AssignedDevices {
                io: io.iter().map(|s| s.to_string()).collect(),
                accelerators: accelerators.iter().map(|s| s.to_string()).collect(),
            },
        });
    }

    /// Records replica `replica` of `component` (of the same application) on node `name`.
    pub fn place(&mut self, component: &str, replica: u32, name: &str) {
        let n = self.idx(name);
        self.placed.push((InstanceId::new("default", "app", component, replica), n));
    }

    /// Adds a required proximity target.
    pub fn require(&mut self, t: ProximityTarget) {
        self.required.push(t);
    }

    /// Drops the required proximity targets.
    pub fn clear_required(&mut self) {
        self.required.clear();
    }

    /// Adds a preferred proximity target.
    pub fn prefer(&mut self, t: ProximityTarget) {
        self.preferred.push(t);
    }
}
