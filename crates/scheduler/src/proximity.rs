//! The "near" relation between two nodes for each form of `within` (same node, same topology label value, round-
//! trip time, geographic distance), shared by the proximity filter, the proximity score and the plan checks.

use fos_api::manifest::Within;

use crate::snapshot::{ClusterSnapshot, NodeIdx};

/// Labels read as topology domains when a preference says only "near" (same node): most specific first.
pub const TOPOLOGY_KEYS: [&str; 3] = ["zone", "site", "region"];

/// True when nodes `a` and `b` are within `within` of each other. A node is near itself whatever the rule; an
/// unmeasured round-trip time or an unknown position is never near.
pub fn near(snapshot: &ClusterSnapshot, a: NodeIdx, b: NodeIdx, within: &Within) -> bool {
    if a == b {
        return true;
    }
    match within {
        Within::Node => false,
        Within::Topology(key) => same_label(snapshot, a, b, key),
        Within::LatencyMs(ms) => snapshot.rtt_ms(a, b).is_some_and(|rtt| rtt <= *ms),
        Within::DistanceM(m) => distance_m(snapshot, a, b).is_some_and(|d| d <= *m),
    }
}

/// True when both nodes carry label `key` with the same value.
pub fn same_label(snapshot: &ClusterSnapshot, a: NodeIdx, b: NodeIdx, key: &str) -> bool {
    match (snapshot.node(a).labels.get(key), snapshot.node(b).labels.get(key)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Geographic distance between two nodes, when both positions are known.
pub fn distance_m(snapshot: &ClusterSnapshot, a: NodeIdx, b: NodeIdx) -> Option<f64> {
    let (pa, pb) = (snapshot.node(a).position?, snapshot.node(b).position?);
    Some(pa.distance_m(&pb))
}

/// Why node `a` is not within `within` of node `b`, in words (`rtt 12.5ms`, `site a != b`, `rtt not measured`).
pub fn miss_detail(snapshot: &ClusterSnapshot, a: NodeIdx, b: NodeIdx, within: &Within) -> String {
    let target = &snapshot.node(b).name;
    match within {
        Within::Node => format!("on {target}"),
        Within::Topology(key) => {
            let (la, lb) = (snapshot.node(a).labels.get(key), snapshot.node(b).labels.get(key));
            match (la, lb) {
                (Some(x), Some(y)) => format!("on {target}: {key} {x} != {y}"),
                (None, _) => format!("this node has no label {key}"),
                (_, None) => format!("on {target}, which has no label {key}"),
            }
        }
        Within::LatencyMs(_) => match snapshot.rtt_ms(a, b) {
            Some(rtt) => format!("on {target}: rtt {}ms", round2(rtt)),
            None => format!("on {target}: rtt not measured"),
        },
        Within::DistanceM(_) => match distance_m(snapshot, a, b) {
            Some(d) if d >= 1000.0 => format!("on {target}: {}km away", round2(d / 1000.0)),
            Some(d) => format!("on {target}: {}m away", round2(d)),
            None => format!("on {target}: position unknown"),
        },
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
