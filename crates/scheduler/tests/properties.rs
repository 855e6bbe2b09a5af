//! Property tests over random clusters and applications: no plan violates a hard constraint or over-allocates a
//! counted resource (checked from the manifests, not through the scheduler's filters), every refusal names a
//! reason that is true of the node, every instance is accounted for, and the same input gives the same plan.

mod common;

use std::collections::BTreeMap;

use common::{reason_holds, violations};
use fos_api::manifest::{Accelerator, Arch, DeviceRequest, InterfaceType, IoType, Proximity, Within};
use fos_api::node::{AcceleratorDevice, CpuInfo, InterfaceInfo, IoDevice, Position};
use fos_api::record::AssignedDevices;
use fos_api::{
    Application, ApplicationSpec, ByteSize, Component, EntityKind, EntitySpec, InstanceId, Metadata, Node, NodeInfo,
    NodeStatus,
};
use fos_scheduler::{place_application, place_instances, Allocation, ClusterSnapshot, Options, Plan};
use proptest::prelude::*;

/// A small deterministic generator driven by the proptest-chosen seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn gen_nodes(g: &mut Gen, count: usize) -> Vec<Node> {
    let names: Vec<String> = (0..count).map(|i| format!("n{i:02}")).collect();
    names
        .iter()
        .map(|name| {
            let mut labels = BTreeMap::new();
            if g.chance(80) {
                labels.insert("site".to_string(), g.pick(&["a", "b", "c"]).to_string());
            }
            labels.insert("role".to_string(), g.pick(&["edge", "cloud"]).to_string());
            let mut runtimes: Vec<EntityKind> = EntityKind::ALL.iter().copied().filter(|_| g.chance(70)).collect();
            if runtimes.is_empty() {
                runtimes.push(EntityKind::Native);
            }
            let mut io = Vec::new();
            for i in 0..g.below(4) {
                io.push(IoDevice { kind: IoType::Gpio, name: format!("gpiochip{i}"), path: None, lines: Some(32) });
            }
            for i in 0..g.below(3) {
                io.push(IoDevice { kind: IoType::Usb, name: format!("usb{i}"), path: None, lines: None });
            }
            let accelerators = (0..g.below(3))
                .map(|i| AcceleratorDevice {
                    kind: Accelerator::Cuda,
                    name: format!("gpu{i}"),
                    model: None,
                    path: None,
                })
                .collect();
            let mut interfaces = vec![InterfaceInfo {
                name: "eth0".into(),
                kind: InterfaceType::Eth,
                mac: None,
                speed_mbps: None,
                addresses: vec![],
            }];
            if g.chance(25) {
                interfaces.push(InterfaceInfo {
                    name: "fb0".into(),
                    kind: InterfaceType::Fieldbus,
                    mac: None,
                    speed_mbps: None,
                    addresses: vec![],
                });
            }
            let mut rtt_ms = BTreeMap::new();
            for peer in &names {
                if peer != name && g.chance(30) {
                    rtt_ms.insert(peer.clone(), 0.5 + g.below(300) as f64 / 10.0);
                }
            }
            Node {
                metadata: Metadata { name: name.clone(), labels, ..Default::default() },
                spec: NodeInfo {
                    arch: *g.pick(&[Arch::X86_64, Arch::X86_64, Arch::Aarch64, Arch::Armv7]),
                    os: "linux".into(),
                    os_release: None,
                    kernel: None,
                    hostname: None,
                    cpu: CpuInfo { model: String::new(), count: 1 + g.below(8) as u32, frequency_mhz: None },
                    memory: ByteSize::from_bytes((1 + g.below(16)) << 30),
                    disk: ByteSize::from_bytes((10 + g.below(90)) << 30),
                    disks: vec![],
                    interfaces,
                    io,
                    accelerators,
                    runtimes,
                    position: g.chance(70).then(|| Position {
                        lat: 45.0 + g.below(100) as f64 / 100.0,
                        lon: 7.0 + g.below(100) as f64 / 100.0,
                    }),
                },
                status: NodeStatus { ready: g.chance(92), unschedulable: g.chance(5), rtt_ms, ..NodeStatus::default() },
            }
        })
        .collect()
}

/// Allocations of another application (at most one per node, within capacity), some holding devices.
fn gen_others(g: &mut Gen, nodes: &[Node]) -> Vec<Allocation> {
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if !g.chance(30) {
            continue;
        }
        let mut devices = AssignedDevices::default();
        if let Some(d) = n.spec.io.first().filter(|_| g.chance(50)) {
            devices.io.push(d.name.clone());
        }
        if let Some(d) = n.spec.accelerators.first().filter(|_| g.chance(50)) {
            devices.accelerators.push(d.name.clone());
        }
        let cpu = u64::from(n.spec.cpu.count) * 1000;
        let memory = n.spec.memory.bytes().unwrap_or(0);
        out.push(Allocation {
            instance: InstanceId::new("default", "other", "x", i as u32),
            node: n.metadata.name.clone(),
            cpu_millis: g.below(cpu + 1),
            memory_bytes: g.below(memory + 1),
            disk_bytes: 0,
            devices,
        });
    }
    out
}

fn gen_app(g: &mut Gen, nodes: &[Node]) -> Application {
    let count = 1 + g.below(5) as usize;
    let names: Vec<String> = (0..count).map(|i| format!("c{i}")).collect();
    let components = (0..count)
        .map(|i| {
            let mut entity = EntitySpec::native(["true"]);
            entity.kind = *g.pick(EntityKind::ALL);
            entity.resources.cpu = Some(format!("{}m", 100 + g.below(2900)).as_str().into());
            entity.resources.memory = Some(ByteSize::from_bytes((64 + g.below(4000)) << 20));
            if g.chance(30) {
                entity.resources.disk = Some(ByteSize::from_bytes(g.below(20) << 30));
            }
            let mut c = Component {
                name: names[i].clone(),
                replicas: 1 + g.below(3) as u32,
                need: names[..i].iter().filter(|_| g.chance(30)).cloned().collect(),
                proximity: vec![],
                constraints: Default::default(),
                entity,
                on_node_loss: Default::default(),
                max_unavailable: 1,
            };
            for _ in 0..g.below(3) {
                let within = match g.below(4) {
                    0 => Within::Node,
                    1 => Within::Topology("site".into()),
                    2 => Within::LatencyMs(1.0 + g.below(20) as f64),
                    _ => Within::DistanceM(1000.0 + g.below(50_000) as f64),
                };
                c.proximity.push(Proximity { to: g.pick(&names).clone(), within, required: g.chance(40) });
            }
            let k = &mut c.constraints;
            if g.chance(30) {
                k.arch = Some(*g.pick(&[Arch::X86_64, Arch::Aarch64]));
            }
            if g.chance(20) {
                k.node_selector.insert("site".into(), g.pick(&["a", "b"]).to_string());
            }
            if g.chance(10) && !nodes.is_empty() {
                k.nodes = (0..1 + g.below(3)).map(|_| g.pick(nodes).metadata.name.clone()).collect();
            }
            if g.chance(30) {
                k.io.push(DeviceRequest { kind: IoType::Gpio, number: 1 + g.below(2) as u32 });
            }
            if g.chance(15) {
                k.io.push(DeviceRequest { kind: IoType::Usb, number: 1 });
            }
            if g.chance(15) {
                k.accelerators.push(DeviceRequest { kind: Accelerator::Cuda, number: 1 });
            }
            if g.chance(10) {
                k.networks.push(DeviceRequest { kind: InterfaceType::Fieldbus, number: 1 });
            }
            c
        })
        .collect();
    Application {
        metadata: Metadata::named("app"),
        spec: ApplicationSpec { description: None, networks: vec![], components },
    }
}

/// Checks a plan: hard constraints, accounting of every instance, and refusals that are true.
fn check(
    nodes: &[Node],
    others: &[Allocation],
    app: &Application,
    existing: &[Allocation],
    plan: &Plan,
    wanted: &[InstanceId],
) {
    let v = violations(nodes, others, app, existing, plan);
    assert!(v.is_empty(), "violations {v:?}\n{plan}");
    let mut accounted: Vec<InstanceId> = plan.placements.iter().map(|p| p.instance.clone()).collect();
    accounted.extend(plan.kept.iter().cloned());
    accounted.extend(plan.unschedulable.iter().flat_map(|u| u.unplaced.iter().cloned()));
    accounted.sort();
    let mut wanted = wanted.to_vec();
    wanted.sort();
    assert_eq!(accounted, wanted, "{plan}");
    for u in &plan.unschedulable {
        assert!(!u.unplaced.is_empty());
        if nodes.is_empty() {
            continue;
        }
        assert!(!u.reasons.is_empty(), "no reason given:\n{u}");
        assert_eq!(u.reasons.iter().map(|g| g.count).sum::<usize>(), nodes.len(), "every node has a reason:\n{u}");
        for group in &u.reasons {
            for name in &group.examples {
                let n = nodes.iter().find(|n| &n.metadata.name == name).expect("a real node");
                if !group.merged {
                    assert!(
                        reason_holds(n, app, &u.component, &group.rejection),
                        "{name}: `{}` is not true\n{u}",
                        group.rejection
                    );
                }
            }
        }
    }
}

fn all_instances(app: &Application) -> Vec<InstanceId> {
    app.spec
        .components
        .iter()
        .flat_map(|c| (0..c.replicas).map(move |r| InstanceId::new("default", "app", &c.name, r)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn plans_respect_every_hard_constraint_and_explain_every_refusal(seed in any::<u64>(), count in 0usize..24) {
        let mut g = Gen(seed);
        let nodes = gen_nodes(&mut g, count);
        let others = if nodes.is_empty() { vec![] } else { gen_others(&mut g, &nodes) };
        let app = gen_app(&mut g, &nodes);
        // Sometimes score only a few feasible nodes, as on a big cluster: hard constraints must hold all the same.
        let sampled = g.chance(30).then(|| 1 + g.below(4) as usize);
        let options = Options { seed: g.below(4), max_scored_nodes: sampled, ..Options::default() };
        let snap = ClusterSnapshot::new(nodes.clone(), others.clone()).unwrap();
        let plan = place_application(&snap, "default", "app", &app.spec, &[], &options).unwrap();
        check(&nodes, &others, &app, &[], &plan, &all_instances(&app));

        // Same input, same plan; the order nodes are given in does not matter.
        let again = place_application(&snap, "default", "app", &app.spec, &[], &options).unwrap();
        prop_assert_eq!(&again, &plan);
        let mut reversed = nodes.clone();
        reversed.reverse();
        let snap_r = ClusterSnapshot::new(reversed, others.clone()).unwrap();
        prop_assert_eq!(&place_application(&snap_r, "default", "app", &app.spec, &[], &options).unwrap(), &plan);

        // Scale up one component: existing placements stay, the new replica is placed with them counted.
        let existing: Vec<Allocation> = plan.placements.iter().map(Allocation::from).collect();
        let mut snap2 = snap.clone();
        snap2.commit(&plan);
        let mut bigger = app.clone();
        bigger.spec.components[0].replicas += 1;
        let plan2 = place_application(&snap2, "default", "app", &bigger.spec, &existing, &options).unwrap();
        let mut kept = existing.iter().map(|a| a.instance.clone()).collect::<Vec<_>>();
        kept.sort();
        prop_assert_eq!(&plan2.kept, &kept);
        let wanted2: Vec<InstanceId> = all_instances(&bigger)
            .into_iter()
            .filter(|i| kept.contains(i) || !plan.placements.iter().any(|p| &p.instance == i))
            .collect();
        check(&nodes, &others, &bigger, &existing, &plan2, &wanted2);

        // Move one placed instance off its node.
        if let Some(moved) = plan.placements.first() {
            let plan3 = place_instances(
                &snap2, "default", "app", &app.spec, std::slice::from_ref(&moved.instance), &existing,
                std::slice::from_ref(&moved.node), &options,
            ).unwrap();
            if let Some(p) = plan3.placement(&moved.instance) {
                prop_assert_ne!(&p.node, &moved.node);
            }
            // A move that finds no node leaves the instance where it was.
            let mut checked = plan3.clone();
            let rest: Vec<Allocation> = if plan3.placement(&moved.instance).is_some() {
                existing.iter().filter(|a| a.instance != moved.instance).cloned().collect()
            } else {
                checked.unschedulable.clear();
                checked.kept.push(moved.instance.clone());
                existing.clone()
            };
            check(&nodes, &others, &app, &rest, &checked, &all_instances(&app)
                .into_iter()
                .filter(|i| i == &moved.instance || rest.iter().any(|a| &a.instance == i))
                .collect::<Vec<_>>());
            for u in &plan3.unschedulable {
                prop_assert_eq!(&u.unplaced, &vec![moved.instance.clone()]);
            }
        }
    }
}
