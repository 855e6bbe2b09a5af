//! Placement throughput: 10,000 entities (2,000 applications of mixed shape: a db with a web tier within 5 ms
//! and a cache near it, GPIO readers on Arm gateways with an aggregator on their site, GPU inference with
//! preprocessing near it, spread replicated services) placed one application after the other on 1,000 and on
//! 5,000 heterogeneous nodes, every placement committed before the next application.
//!
//! Run: `cargo bench -p fos-scheduler --bench placement`

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fos_api::manifest::{Accelerator, Arch, DeviceRequest, IoType, Proximity, Within};
use fos_api::node::{AcceleratorDevice, CpuInfo, IoDevice, Position};
use fos_api::{ApplicationSpec, ByteSize, Component, EntityKind, EntitySpec, Metadata, Node, NodeInfo, NodeStatus};
use fos_scheduler::{place_application, ClusterSnapshot, Options};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const SITES: usize = 20;

fn cluster(count: usize) -> Vec<Node> {
    let mut rng = Rng(count as u64);
    let names: Vec<String> = (0..count).map(|i| format!("node-{i:05}")).collect();
    let site_of = |i: usize| i % SITES;
    (0..count)
        .map(|i| {
            let arch = match rng.below(100) {
                0..=69 => Arch::X86_64,
                70..=94 => Arch::Aarch64,
                _ => Arch::Armv7,
            };
            let gateway = arch != Arch::X86_64 && rng.chance(60);
            let mut labels = BTreeMap::new();
            labels.insert("site".to_string(), format!("site-{:02}", site_of(i)));
            labels.insert("zone".to_string(), format!("zone-{}", site_of(i) / 5));
            labels.insert("role".to_string(), if gateway { "gateway" } else { "server" }.to_string());
            if arch == Arch::X86_64 && rng.chance(30) {
                labels.insert("storage".to_string(), "ssd".to_string());
            }
            let io = if gateway {
                (0..1 + rng.below(4))
                    .map(|g| IoDevice { kind: IoType::Gpio, name: format!("gpiochip{g}"), path: None, lines: Some(32) })
                    .collect()
            } else {
                Vec::new()
            };
            let accelerators = if arch == Arch::X86_64 && rng.chance(8) {
                (0..1 + rng.below(4))
                    .map(|g| AcceleratorDevice {
                        kind: Accelerator::Cuda,
                        name: format!("gpu{g}"),
                        model: None,
                        path: None,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let runtimes =
                if gateway { vec![EntityKind::Native, EntityKind::Container] } else { EntityKind::ALL.to_vec() };
            // Round-trip times to a few nodes of the same site (fast) and of other sites (slow).
            let mut rtt_ms = BTreeMap::new();
            for _ in 0..8 {
                let j = (rng.below((count / SITES).max(1) as u64) as usize) * SITES + site_of(i);
                if j < count && j != i {
                    rtt_ms.insert(names[j].clone(), 0.3 + rng.below(40) as f64 / 10.0);
                }
            }
            for _ in 0..4 {
                let j = rng.below(count as u64) as usize;
                if j != i {
                    rtt_ms.entry(names[j].clone()).or_insert(10.0 + rng.below(400) as f64 / 10.0);
                }
            }
            let (cpus, memory_gi) = if gateway { (4, 4) } else { (8 << rng.below(4), 32 << rng.below(3)) };
            Node {
                metadata: Metadata { name: names[i].clone(), labels, ..Default::default() },
                spec: NodeInfo {
                    arch,
                    os: "linux".into(),
                    os_release: None,
                    kernel: None,
                    hostname: None,
                    cpu: CpuInfo { model: String::new(), count: cpus, frequency_mhz: None },
                    memory: ByteSize::from_bytes(memory_gi << 30),
                    disk: ByteSize::from_bytes(500 << 30),
                    disks: vec![],
                    interfaces: vec![],
                    io,
                    accelerators,
                    runtimes,
                    position: Some(Position {
                        lat: 40.0 + site_of(i) as f64 * 0.3 + rng.below(100) as f64 / 1000.0,
                        lon: 5.0 + site_of(i) as f64 * 0.2,
                    }),
                },
                status: NodeStatus {
                    ready: !rng.chance(2),
                    unschedulable: rng.chance(1),
                    rtt_ms,
                    ..NodeStatus::default()
                },
            }
        })
        .collect()
}

fn component(name: &str, kind: EntityKind, cpu: &str, memory: &str) -> Component {
    let mut entity = EntitySpec::native(["/bin/service"]);
    entity.kind = kind;
    entity.resources.cpu = Some(cpu.into());
    entity.resources.memory = Some(ByteSize::from(memory));
    Component {
        name: name.into(),
        replicas: 1,
        need: vec![],
        proximity: vec![],
        constraints: Default::default(),
        entity,
        on_node_loss: Default::default(),
        max_unavailable: 1,
    }
}

fn near(to: &str, within: Within, required: bool) -> Proximity {
    Proximity { to: to.into(), within, required }
}

/// Five instances per application, in four shapes.
fn application(i: usize) -> ApplicationSpec {
    let components = match i % 20 {
        // A db on an SSD node, two web replicas within 5 ms of it, a cache preferably on a web node.
        0..=7 => {
            let mut db = component("db", EntityKind::Container, "1", "2Gi");
            db.constraints.node_selector.insert("storage".into(), "ssd".into());
            let mut web = component("web", EntityKind::Container, "500m", "512Mi");
            web.replicas = 2;
            web.need = vec!["db".into()];
            web.proximity = vec![near("db", Within::LatencyMs(5.0), true)];
            let mut cache = component("cache", EntityKind::Container, "250m", "256Mi");
            cache.proximity = vec![near("web", Within::Node, false)];
            let mut metrics = component("metrics", EntityKind::Native, "100m", "64Mi");
            metrics.proximity = vec![near("db", Within::Topology("site".into()), false)];
            vec![db, web, cache, metrics]
        }
        // A GPIO reader on an Arm gateway, an aggregator in the same site, two dashboards spread.
        8..=15 => {
            let mut reader = component("reader", EntityKind::Native, "200m", "64Mi");
            reader.constraints.arch = Some(Arch::Aarch64);
            reader.constraints.io = vec![DeviceRequest { kind: IoType::Gpio, number: 1 }];
            let mut aggregator = component("aggregator", EntityKind::Container, "500m", "512Mi");
            aggregator.need = vec!["reader".into()];
            aggregator.proximity = vec![near("reader", Within::Topology("site".into()), true)];
            let mut store = component("store", EntityKind::Container, "500m", "1Gi");
            store.proximity = vec![near("aggregator", Within::DistanceM(50_000.0), false)];
            let mut dashboard = component("dashboard", EntityKind::Container, "250m", "256Mi");
            dashboard.replicas = 2;
            dashboard.need = vec!["aggregator".into(), "store".into()];
            vec![reader, aggregator, store, dashboard]
        }
        // GPU inference with preprocessing on the same node (required) and a collector near it.
        16 => {
            let mut inference = component("inference", EntityKind::Container, "2", "8Gi");
            inference.constraints.accelerators = vec![DeviceRequest { kind: Accelerator::Cuda, number: 1 }];
            let mut pre = component("preprocess", EntityKind::Container, "1", "2Gi");
            pre.proximity = vec![near("inference", Within::Node, true)];
            let mut collector = component("collector", EntityKind::Container, "250m", "256Mi");
            collector.replicas = 3;
            collector.proximity = vec![near("preprocess", Within::LatencyMs(10.0), false)];
            vec![inference, pre, collector]
        }
        // A replicated service spread over x86 servers.
        _ => {
            let mut svc = component("svc", EntityKind::Vm, "1", "1Gi");
            svc.replicas = 5;
            svc.constraints.arch = Some(Arch::X86_64);
            vec![svc]
        }
    };
    ApplicationSpec { description: None, networks: vec![], components }
}

/// Places every application in turn, committing each plan; returns (placed, unplaced).
fn place_all(snapshot: &mut ClusterSnapshot, apps: &[ApplicationSpec], options: &Options) -> (usize, usize) {
    let (mut placed, mut unplaced) = (0, 0);
    for (i, app) in apps.iter().enumerate() {
        let name = format!("app-{i:05}");
        let plan = place_application(snapshot, "default", &name, app, &[], options).expect("valid application");
        placed += plan.placements.len();
        unplaced += plan.unschedulable.iter().map(|u| u.unplaced.len()).sum::<usize>();
        snapshot.commit(&plan);
    }
    (placed, unplaced)
}

fn bench(c: &mut Criterion) {
    let apps: Vec<ApplicationSpec> = (0..2000).map(application).collect();
    let entities: usize = apps.iter().flat_map(|a| &a.components).map(|c| c.replicas as usize).sum();
    assert_eq!(entities, 10_000);
    let options = Options::default();
    let mut group = c.benchmark_group("place_10k_entities");
    group.sample_size(10);
    group.throughput(Throughput::Elements(entities as u64));
    for nodes in [1_000usize, 5_000] {
        let snapshot = ClusterSnapshot::new(cluster(nodes), []).expect("valid cluster");
        let (placed, unplaced) = place_all(&mut snapshot.clone(), &apps, &options);
        eprintln!("{nodes} nodes: {placed} placed, {unplaced} unschedulable");
        group.bench_function(format!("{nodes}_nodes"), |b| {
            b.iter_batched(|| snapshot.clone(), |mut s| place_all(&mut s, &apps, &options), BatchSize::LargeInput)
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
