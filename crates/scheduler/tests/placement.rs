//! Whole-application placement: backtracking over an earlier choice, re-placing instances after a node loss or
//! for a migration, keeping existing placements, determinism and the seed.

mod common;

use common::violations;
use fos_api::manifest::{Accelerator, DeviceRequest, Proximity, Within};
use fos_api::node::AcceleratorDevice;
use fos_api::{ApplicationSpec, ByteSize, Component, EntitySpec, InstanceId, Metadata, Node, NodeInfo, NodeStatus};
use fos_scheduler::{place_application, place_instances, Allocation, ClusterSnapshot, Options, Relaxation};

fn node(name: &str, cpus: u32) -> Node {
    Node {
        metadata: Metadata::named(name),
        spec: NodeInfo {
            arch: fos_api::manifest::Arch::X86_64,
            os: "linux".into(),
            os_release: None,
            kernel: None,
            hostname: None,
            cpu: fos_api::node::CpuInfo { model: String::new(), count: cpus, frequency_mhz: None },
            memory: ByteSize::from("8Gi"),
            disk: ByteSize::from("100Gi"),
            disks: vec![],
            interfaces: vec![],
            io: vec![],
            accelerators: vec![],
            runtimes: fos_api::EntityKind::ALL.to_vec(),
            position: None,
        },
        status: NodeStatus::default(),
    }
}

fn comp(name: &str, cpu: &str) -> Component {
    let mut entity = EntitySpec::native(["true"]);
    entity.resources.cpu = Some(cpu.into());
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

fn spec(components: Vec<Component>) -> ApplicationSpec {
    ApplicationSpec { description: None, networks: vec![], components }
}

fn id(c: &str, r: u32) -> InstanceId {
    InstanceId::new("default", "app", c, r)
}

#[test]
fn backtracks_when_the_group_root_took_the_wrong_node() {
    // db alone would go to the big node; web must share db's node and needs the GPU only the small node has.
    let mut small = node("small", 4);
    small.spec.accelerators =
        vec![AcceleratorDevice { kind: Accelerator::Cuda, name: "gpu0".into(), model: None, path: None }];
    let nodes = vec![node("big", 64), small];
    let mut web = comp("web", "1");
    web.proximity = vec![Proximity { to: "db".into(), within: Within::Node, required: true }];
    web.constraints.accelerators = vec![DeviceRequest { kind: Accelerator::Cuda, number: 1 }];
    let app = spec(vec![comp("db", "1"), web]);
    let snap = ClusterSnapshot::new(nodes, []).unwrap();
    let plan = place_application(&snap, "default", "app", &app, &[], &Options::default()).unwrap();
    assert!(plan.is_complete(), "{plan}");
    assert_eq!(plan.placement(&id("db", 0)).unwrap().node, "small");
    assert_eq!(plan.placement(&id("web", 0)).unwrap().devices.accelerators, vec!["gpu0".to_string()]);
    // Without backtracking the same application does not fit.
    let no_backtracking = Options { max_backtracks: 0, ..Options::default() };
    let plan = place_application(&snap, "default", "app", &app, &[], &no_backtracking).unwrap();
    assert_eq!(plan.unschedulable.len(), 1);
}

#[test]
fn backtracks_by_placing_a_later_group_first() {
    // `any` (placed first) prefers the emptier big node; `pinned` may only use the big node and needs 4 cpus.
    let nodes = vec![node("big", 6), node("other", 4)];
    let mut pinned = comp("pinned", "4");
    pinned.constraints.nodes = vec!["big".into()];
    let app = spec(vec![comp("any", "3"), pinned]);
    let snap = ClusterSnapshot::new(nodes.clone(), []).unwrap();
    let plan = place_application(&snap, "default", "app", &app, &[], &Options::default()).unwrap();
    assert!(plan.is_complete(), "{plan}");
    assert_eq!(plan.placement(&id("pinned", 0)).unwrap().node, "big");
    assert_eq!(plan.placement(&id("any", 0)).unwrap().node, "other");
    let app_obj = fos_api::Application { metadata: Metadata::named("app"), spec: app };
    assert!(violations(&nodes, &[], &app_obj, &[], &plan).is_empty());
}

#[test]
fn keeps_existing_placements_and_places_only_the_rest() {
    let nodes = vec![node("a", 4), node("b", 4)];
    let mut web = comp("web", "1");
    web.replicas = 3;
    let app = spec(vec![web]);
    let existing = vec![Allocation {
        instance: id("web", 1),
        node: "a".into(),
        cpu_millis: 1000,
        memory_bytes: 0,
        disk_bytes: 0,
        devices: Default::default(),
    }];
    let stale = Allocation { instance: id("web", 7), ..existing[0].clone() };
    let all = [existing.clone(), vec![stale]].concat();
    let snap = ClusterSnapshot::new(nodes, all.clone()).unwrap();
    let plan = place_application(&snap, "default", "app", &app, &all, &Options::default()).unwrap();
    assert_eq!(plan.kept, vec![id("web", 1)]);
    assert_eq!(plan.surplus, vec![id("web", 7)]);
    let placed: Vec<InstanceId> = plan.placements.iter().map(|p| p.instance.clone()).collect();
    assert_eq!(placed, vec![id("web", 0), id("web", 2)]);
    // Spread: with web-1 on `a`, the first new replica goes to `b`.
    assert_eq!(plan.placement(&id("web", 0)).unwrap().node, "b");
}

#[test]
fn migration_excludes_the_source_and_node_loss_moves_work_away() {
    let nodes = vec![node("n1", 1), node("n2", 1)];
    let mut web = comp("web", "1");
    web.replicas = 2;
    let app = spec(vec![web]);
    let alloc = |r: u32, n: &str| Allocation {
        instance: id("web", r),
        node: n.into(),
        cpu_millis: 1000,
        memory_bytes: 0,
        disk_bytes: 0,
        devices: Default::default(),
    };
    let existing = vec![alloc(0, "n1"), alloc(1, "n2")];
    let snap = ClusterSnapshot::new(nodes.clone(), existing.clone()).unwrap();
    let opts = Options::default();
    let plan =
        place_instances(&snap, "default", "app", &app, &[id("web", 0)], &existing, &["n1".into()], &opts).unwrap();
    assert_eq!(plan.kept, vec![id("web", 1)]);
    let u = &plan.unschedulable[0];
    let text = u.to_string();
    assert!(text.contains("n1: excluded"), "{text}");
    assert!(text.contains("n2: needs 1 cpu, has 0 free of 1"), "{text}");
    assert!(matches!(&u.relaxation, Some(Relaxation::FreeCapacity { node, .. }) if node == "n2"), "{text}");

    let mut more = nodes.clone();
    more.push(node("n3", 1));
    let snap = ClusterSnapshot::new(more.clone(), existing.clone()).unwrap();
    let plan =
        place_instances(&snap, "default", "app", &app, &[id("web", 0)], &existing, &["n1".into()], &opts).unwrap();
    assert_eq!(plan.placement(&id("web", 0)).unwrap().node, "n3");

    // n2 is lost: its instance goes to the free n3 (the lost node is refused as not ready).
    more[1].status.ready = false;
    let snap = ClusterSnapshot::new(more, existing.clone()).unwrap();
    let plan = place_instances(&snap, "default", "app", &app, &[id("web", 1)], &existing, &[], &opts).unwrap();
    assert_eq!(plan.placement(&id("web", 1)).unwrap().node, "n3");
}

#[test]
fn same_input_same_plan_and_the_seed_changes_ties() {
    let nodes: Vec<Node> = (0..20).map(|i| node(&format!("n{i:02}"), 4)).collect();
    let mut web = comp("web", "1");
    web.replicas = 5;
    let app = spec(vec![web]);
    let mut reversed = nodes.clone();
    reversed.reverse();
    let a = ClusterSnapshot::new(nodes, []).unwrap();
    let b = ClusterSnapshot::new(reversed, []).unwrap();
    let opts = Options::default();
    let p1 = place_application(&a, "default", "app", &app, &[], &opts).unwrap();
    let p2 = place_application(&b, "default", "app", &app, &[], &opts).unwrap();
    assert_eq!(p1, p2);
    let differs = (1..10).any(|seed| {
        let o = Options { seed, ..Options::default() };
        place_application(&a, "default", "app", &app, &[], &o).unwrap() != p1
    });
    assert!(differs, "the seed breaks ties between equal nodes");
}

#[test]
fn bin_packing_fills_one_node_before_the_next() {
    let nodes = vec![node("a", 4), node("b", 4), node("c", 4)];
    let mut w = comp("w", "1");
    w.replicas = 4;
    let app = spec(vec![w]);
    let snap = ClusterSnapshot::new(nodes, []).unwrap();
    let opts = Options {
        strategy: fos_scheduler::AllocationStrategy::MostAllocated,
        weights: fos_scheduler::ScoreWeights { proximity: 4, spread: 0, resources: 1 },
        ..Options::default()
    };
    let plan = place_application(&snap, "default", "app", &app, &[], &opts).unwrap();
    let first = &plan.placements[0].node;
    assert!(plan.placements.iter().all(|p| &p.node == first), "{plan}");
}

#[test]
fn an_empty_cluster_says_so() {
    let snap = ClusterSnapshot::new(vec![], []).unwrap();
    let plan =
        place_application(&snap, "default", "app", &spec(vec![comp("c", "1")]), &[], &Options::default()).unwrap();
    assert!(plan.unschedulable[0].to_string().contains("the cluster has no nodes"));
    let _ = ByteSize::from("1");
}

#[test]
fn refusals_on_a_big_cluster_are_grouped() {
    let mut nodes: Vec<Node> = (0..412)
        .map(|i| {
            let mut n = node(&format!("arm-{i:03}"), 8);
            n.spec.arch = fos_api::manifest::Arch::Aarch64;
            n
        })
        .collect();
    // 88 x86 nodes, each with a different amount of memory: too little for the component on every one.
    for i in 0..88u64 {
        let mut n = node(&format!("x86-{i:02}"), 8);
        n.spec.memory = ByteSize::from_bytes((1 + i) << 28);
        nodes.push(n);
    }
    let mut big = comp("big", "1");
    big.constraints.arch = Some(fos_api::manifest::Arch::X86_64);
    big.entity.resources.memory = Some(ByteSize::from("64Gi"));
    let snap = ClusterSnapshot::new(nodes, []).unwrap();
    let plan = place_application(&snap, "default", "app", &spec(vec![big]), &[], &Options::default()).unwrap();
    let u = &plan.unschedulable[0];
    let text = u.to_string();
    assert!(text.contains("412 nodes (arm-000, arm-001, arm-002, …): arch aarch64 != x86_64"), "{text}");
    assert!(u.reasons.len() <= fos_scheduler::explain::MAX_EXACT_GROUPS + 1, "{text}");
    assert_eq!(u.reasons.iter().map(|g| g.count).sum::<usize>(), 500);
    let merged = u.reasons.iter().find(|g| g.merged).expect("memory reasons merged");
    assert!(
        merged.to_string().starts_with("88 nodes (x86-00, x86-01, x86-02, …): resources (e.g. needs 64Gi memory"),
        "{text}"
    );
    assert_eq!(u.reasons.len(), 2, "{text}");
    assert!(
        matches!(&u.relaxation, Some(Relaxation::AddNode(req)) if req.to_string().contains("arch x86_64")),
        "{text}"
    );
}

#[test]
fn requests_below_the_kernels_granularity_are_accounted_rounded_up() {
    // `cpu: 1m` is enforced as 10m (the smallest CFS quota): one cpu holds 100 such replicas, not 1000.
    let nodes = vec![node("a", 1)];
    let snap = ClusterSnapshot::new(nodes, vec![]).unwrap();
    let mut tiny = comp("tiny", "1m");
    tiny.replicas = 100;
    let plan = place_application(&snap, "default", "app", &spec(vec![tiny.clone()]), &[], &Options::default()).unwrap();
    assert_eq!(plan.placements.len(), 100);
    assert!(plan.placements.iter().all(|p| p.node == "a"));
    tiny.replicas = 101;
    let fits = match place_application(&snap, "default", "app", &spec(vec![tiny]), &[], &Options::default()) {
        Ok(plan) => plan.unschedulable.is_empty(),
        Err(_) => false,
    };
    assert!(!fits, "101 replicas of 10m do not fit in 1000m");
}
