//! The "near" relation between two nodes for each form of `within` (same node, same topology label value, round-
//! trip time, geographic distance), shared by the proximity filter, the proximity score and the plan checks.

use fos_api::manifest::Within;

use crate::snapshot::{ClusterSnapshot, NodeIdx, NO_LABEL};

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

/// The label key id a `within` names, for topology rules whose key some node has.
pub fn label_key_of(snapshot: &ClusterSnapshot, within: &Within) -> Option<u32> {
    match within {
        Within::Topology(key) => snapshot.label_key(key),
        _ => None,
    }
}

/// True when both nodes carry label `key` with the same value.
pub fn same_label(snapshot: &ClusterSnapshot, a: NodeIdx, b: NodeIdx, key: &str) -> bool {
    snapshot.label_key(key).is_some_and(|k| same_label_id(snapshot, a, b, k))
}

/// True when both nodes carry the label with key id `key` with the same value.
#[inline]
pub fn same_label_id(snapshot: &ClusterSnapshot, a: NodeIdx, b: NodeIdx, key: u32) -> bool {
    let v = snapshot.label_at(key, a);
    v != NO_LABEL && v == snapshot.label_at(key, b)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{labelled_at, rtt};

    #[test]
    fn near_for_each_form_of_within() {
        let snap = ClusterSnapshot::new(
            vec![
                labelled_at("milan", &[("site", "a")], 45.4642, 9.19),
                labelled_at("milan-2", &[("site", "a")], 45.4700, 9.20),
                labelled_at("turin", &[("site", "b")], 45.0703, 7.6869),
                rtt("lab", &[("milan", 3.0)]),
            ],
            [],
        )
        .unwrap();
        let i = |n: &str| snap.index_of(n).unwrap();
        assert!(near(&snap, i("milan"), i("milan"), &Within::Node));
        assert!(!near(&snap, i("milan"), i("milan-2"), &Within::Node));
        assert!(near(&snap, i("milan"), i("milan-2"), &Within::Topology("site".into())));
        assert!(!near(&snap, i("milan"), i("turin"), &Within::Topology("site".into())));
        assert!(near(&snap, i("lab"), i("milan"), &Within::LatencyMs(5.0)));
        assert!(near(&snap, i("milan"), i("lab"), &Within::LatencyMs(5.0)), "round-trip times are symmetric");
        assert!(!near(&snap, i("lab"), i("turin"), &Within::LatencyMs(500.0)), "unmeasured is never near");
        assert!(near(&snap, i("milan"), i("turin"), &Within::DistanceM(130_000.0)));
        assert!(!near(&snap, i("milan"), i("turin"), &Within::DistanceM(120_000.0)));
    }

    #[test]
    fn the_fast_distance_is_close_to_the_great_circle() {
        let snap = ClusterSnapshot::new(
            vec![labelled_at("milan", &[], 45.4642, 9.19), labelled_at("turin", &[], 45.0703, 7.6869)],
            [],
        )
        .unwrap();
        let exact = distance_m(&snap, 0, 1).unwrap();
        let fast = snap.approx_distance_m(0, 1).unwrap();
        assert!((fast - exact).abs() / exact < 0.005, "{fast} vs {exact}");
    }
}
