//! Shared by the integration tests: reading the scenario files under `manifests/scenarios/` and checking a plan
//! against every hard constraint independently of the scheduler's own filters.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use fos_api::manifest::Within;
use fos_api::{Application, InstanceId, Node, Object};
use fos_scheduler::{Allocation, Plan, Rejection};
use serde::Deserialize;

/// The objects of a multi-document YAML file.
pub fn load(path: &std::path::Path) -> Vec<Object> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let v = serde_json::Value::deserialize(doc).unwrap();
            Object::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// `manifests/scenarios/<name>.nodes.yaml` and `<name>.app.yaml`.
pub fn scenario(name: &str) -> (Vec<Node>, Application) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/scenarios");
    let nodes = load(&dir.join(format!("{name}.nodes.yaml")))
        .into_iter()
        .map(|o| match o {
            Object::Node(n) => *n,
            other => panic!("not a node: {}", other.name()),
        })
        .collect();
    let app = load(&dir.join(format!("{name}.app.yaml")))
        .into_iter()
        .find_map(|o| o.as_application().map(std::borrow::Cow::into_owned))
        .expect("an application");
    (nodes, app)
}

/// Where every instance of the plan (and the kept ones, from `existing`) is.
pub fn where_is(plan: &Plan, existing: &[Allocation]) -> HashMap<InstanceId, String> {
    let mut m: HashMap<InstanceId, String> = existing
        .iter()
        .filter(|a| plan.kept.contains(&a.instance))
        .map(|a| (a.instance.clone(), a.node.clone()))
        .collect();
    for p in &plan.placements {
        m.insert(p.instance.clone(), p.node.clone());
    }
    m
}

fn near(nodes: &HashMap<&str, &Node>, a: &str, b: &str, within: &Within) -> bool {
    if a == b {
        return true;
    }
    let (na, nb) = (nodes[a], nodes[b]);
    match within {
        Within::Node => false,
        Within::Topology(k) => {
            matches!((na.metadata.labels.get(k), nb.metadata.labels.get(k)), (Some(x), Some(y)) if x == y)
        }
        Within::LatencyMs(ms) => {
            let ab = na.status.rtt_ms.get(b).copied();
            let ba = nb.status.rtt_ms.get(a).copied();
            let rtt = match (ab, ba) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
            rtt.is_some_and(|r| r <= *ms)
        }
        Within::DistanceM(m) => match (na.spec.position, nb.spec.position) {
            (Some(p), Some(q)) => p.distance_m(&q) <= *m,
            _ => false,
        },
    }
}

/// Every hard-constraint violation of `plan` (placing `app` on `nodes` with `others` already allocated), checked
/// from the manifests directly, not through the scheduler's filters.
pub fn violations(
    nodes: &[Node],
    others: &[Allocation],
    app: &Application,
    existing: &[Allocation],
    plan: &Plan,
) -> Vec<String> {
    let mut out = Vec::new();
    let by_name: HashMap<&str, &Node> = nodes.iter().map(|n| (n.metadata.name.as_str(), n)).collect();
    let mut used: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut devices: HashSet<(String, String)> = HashSet::new();
    let kept: Vec<&Allocation> = existing.iter().filter(|a| plan.kept.contains(&a.instance)).collect();
    let all: Vec<Allocation> = others
        .iter()
        .cloned()
        .chain(kept.iter().map(|a| (*a).clone()))
        .chain(plan.placements.iter().map(Allocation::from))
        .collect();
    for a in &all {
        let Some(_) = by_name.get(a.node.as_str()) else { continue };
        let u = used.entry(a.node.as_str()).or_default();
        u.0 += a.cpu_millis;
        u.1 += a.memory_bytes;
        u.2 += a.disk_bytes;
        for d in a.devices.io.iter().chain(&a.devices.accelerators) {
            if !devices.insert((a.node.clone(), d.clone())) {
                out.push(format!("device {d} on {} given twice", a.node));
            }
        }
    }
    for (node, (cpu, mem, disk)) in &used {
        let n = by_name[node];
        if *cpu > u64::from(n.spec.cpu.count) * 1000 {
            out.push(format!("{node}: cpu over-allocated ({cpu}m)"));
        }
        if *mem > n.spec.memory.bytes().unwrap() {
            out.push(format!("{node}: memory over-allocated"));
        }
        if *disk > n.spec.disk.bytes().unwrap() {
            out.push(format!("{node}: disk over-allocated"));
        }
    }
    for p in &plan.placements {
        let Some(n) = by_name.get(p.node.as_str()) else {
            out.push(format!("{} on unknown node {}", p.instance, p.node));
            continue;
        };
        let Some(c) = app.spec.component(&p.instance.component) else {
            out.push(format!("{}: unknown component", p.instance));
            continue;
        };
        let k = &c.constraints;
        let who = format!("{} on {}", p.instance.short(), p.node);
        if !n.status.ready || n.status.unschedulable {
            out.push(format!("{who}: node not ready or cordoned"));
        }
        if k.arch.is_some_and(|a| a != n.spec.arch) {
            out.push(format!("{who}: arch"));
        }
        if k.os.as_ref().is_some_and(|os| *os != n.spec.os) {
            out.push(format!("{who}: os"));
        }
        if !n.spec.runtimes.contains(&c.entity.kind) {
            out.push(format!("{who}: runtime"));
        }
        if !k.nodes.is_empty() && !k.nodes.contains(&p.node) {
            out.push(format!("{who}: not in nodes list"));
        }
        for (key, v) in &k.node_selector {
            if n.metadata.labels.get(key) != Some(v) {
                out.push(format!("{who}: label {key}"));
            }
        }
        for r in &k.networks {
            let has = n.spec.interfaces.iter().filter(|i| i.kind == r.kind).count() as u32;
            if has < r.number {
                out.push(format!("{who}: interfaces {}", r.kind));
            }
        }
        for r in &k.io {
            let got =
                p.devices.io.iter().filter(|d| n.spec.io.iter().any(|x| &x.name == *d && x.kind == r.kind)).count();
            let want: u32 = k.io.iter().filter(|x| x.kind == r.kind).map(|x| x.number).sum();
            if (got as u32) < want {
                out.push(format!("{who}: {} {} assigned, {want} wanted", got, r.kind));
            }
        }
        for r in &k.accelerators {
            let got = p
                .devices
                .accelerators
                .iter()
                .filter(|d| n.spec.accelerators.iter().any(|x| &x.name == *d && x.kind == r.kind))
                .count();
            let want: u32 = k.accelerators.iter().filter(|x| x.kind == r.kind).map(|x| x.number).sum();
            if (got as u32) < want {
                out.push(format!("{who}: {} {} assigned, {want} wanted", got, r.kind));
            }
        }
    }
    // Required proximity: every placed instance of `a` near at least one placed instance of `b`.
    let placed = where_is(plan, existing);
    for c in &app.spec.components {
        for rule in c.proximity.iter().filter(|r| r.required) {
            let targets: Vec<(&InstanceId, &String)> =
                placed.iter().filter(|(id, _)| id.component == rule.to).collect();
            for (id, node) in placed.iter().filter(|(id, _)| id.component == c.name) {
                let others: Vec<&String> = targets.iter().filter(|(t, _)| *t != id).map(|(_, n)| *n).collect();
                if others.is_empty() {
                    continue;
                }
                if !others.iter().any(|t| by_name.contains_key(t.as_str()) && near(&by_name, node, t, &rule.within)) {
                    out.push(format!("{} on {node}: not within {} of any {}", id.short(), rule.within, rule.to));
                }
            }
        }
    }
    out
}

/// True when `r` is a true statement about node `n` (checked from the manifests).
pub fn reason_holds(n: &Node, app: &Application, component: &str, r: &Rejection) -> bool {
    let Some(c) = app.spec.component(component) else { return false };
    let k = &c.constraints;
    match r {
        Rejection::NotReady => !n.status.ready,
        Rejection::Cordoned => n.status.unschedulable,
        Rejection::Excluded { .. } => true,
        Rejection::Arch { wanted, has } => k.arch == Some(*wanted) && n.spec.arch == *has && has != wanted,
        Rejection::Os { wanted, has } => k.os.as_ref() == Some(wanted) && n.spec.os == *has && has != wanted,
        Rejection::Runtime { kind, .. } => c.entity.kind == *kind && !n.spec.runtimes.contains(kind),
        Rejection::NotListed => !k.nodes.is_empty() && !k.nodes.contains(&n.metadata.name),
        Rejection::Label { key, wanted, has } => {
            k.node_selector.get(key) == Some(wanted)
                && n.metadata.labels.get(key) == has.as_ref()
                && has.as_ref() != Some(wanted)
        }
        Rejection::Cpu { needs, free, total } => {
            *needs == c.entity.cpu_millis() && free < needs && *total == u64::from(n.spec.cpu.count) * 1000
        }
        Rejection::Memory { needs, free, total } => {
            *needs == c.entity.memory_bytes() && free < needs && *total == n.spec.memory.bytes().unwrap()
        }
        Rejection::Disk { needs, free, total } => {
            *needs == c.entity.disk_bytes() && free < needs && *total == n.spec.disk.bytes().unwrap()
        }
        Rejection::Interfaces { kind, needs, has } => {
            *has == n.spec.interfaces.iter().filter(|i| i.kind == *kind).count() as u32 && has < needs
        }
        Rejection::Io { kind, needs, free, total } => {
            *total == n.spec.io.iter().filter(|d| d.kind == *kind).count() as u32 && free < needs && free <= total
        }
        Rejection::Accelerators { kind, needs, free, total } => {
            *total == n.spec.accelerators.iter().filter(|d| d.kind == *kind).count() as u32
                && free < needs
                && free <= total
        }
        Rejection::Proximity { from, to, within, .. } => app
            .spec
            .component(from)
            .is_some_and(|f| f.proximity.iter().any(|p| p.required && &p.to == to && &p.within == within)),
    }
}
