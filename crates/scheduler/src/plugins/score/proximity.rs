//! Preferred proximity score: same node > same topology domain > lower round-trip time > shorter geographic
//! distance, towards the placed instances of each preferred rule (in either direction).

use super::{Context, ScorePlugin, MAX_SCORE};
use crate::options::Options;
use crate::proximity::same_label_id;
use crate::snapshot::{ClusterSnapshot, NodeIdx};
use fos_api::manifest::Within;

/// Scores nodes by how near they are to preferred proximity targets.
#[derive(Debug, Clone, Copy)]
pub struct PreferredProximity;

/// How near node `a` is to node `b`, in tiers: 100 same node; 75 same topology domain (the rule's label key id
/// `key`, else the well-known ones); (25, 50] by round-trip time; (0, 25] by distance; 0 when nothing is known.
pub fn nearness(snapshot: &ClusterSnapshot, a: NodeIdx, b: NodeIdx, within: &Within, key: Option<u32>) -> u32 {
    if a == b {
        return MAX_SCORE;
    }
    let same_domain = match (within, key) {
        (Within::Topology(_), Some(k)) => same_label_id(snapshot, a, b, k),
        (Within::Topology(_), None) => false,
        _ => snapshot.topology_keys().iter().any(|k| same_label_id(snapshot, a, b, *k)),
    };
    if same_domain {
        return 75;
    }
    if let Some(rtt) = snapshot.rtt_ms(a, b) {
        return 25 + (25.0 / (1.0 + rtt / 10.0)).ceil() as u32;
    }
    if let Some(d) = snapshot.approx_distance_m(a, b) {
        return (25.0 / (1.0 + d / 50_000.0)).ceil() as u32;
    }
    0
}

impl ScorePlugin for PreferredProximity {
    fn name(&self) -> &'static str {
        "proximity"
    }

    fn weight(&self, options: &Options) -> u32 {
        options.weights.proximity
    }

    fn score(&self, cx: &Context<'_>, n: NodeIdx) -> u32 {
        let targets = &cx.request.preferred;
        if targets.is_empty() {
            return 0;
        }
        let sum: u32 = targets
            .iter()
            .map(|t| {
                let key = match &t.within {
                    Within::Topology(_) => t.label_key,
                    _ => None,
                };
                t.nodes.iter().map(|m| nearness(cx.snapshot, n, *m, &t.within, key)).max().unwrap_or(0)
            })
            .sum();
        sum / targets.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::ProximityTarget;
    use crate::testkit::*;

    #[test]
    fn same_node_then_domain_then_rtt_then_distance() {
        let mut t = Fixture::new(
            vec![
                labelled_at("db", &[("site", "a")], 45.0, 7.0),
                labelled("same-site", &[("site", "a")]),
                rtt("fast", &[("db", 1.0)]),
                rtt("slow", &[("db", 80.0)]),
                labelled_at("close", &[], 45.01, 7.0),
                labelled_at("distant", &[], 48.0, 2.0),
                node("unknown"),
            ],
            component("web"),
        );
        let db = t.idx("db");
        t.prefer(ProximityTarget {
            from: "web".into(),
            to: "db".into(),
            within: Within::Node,
            label_key: None,
            nodes: vec![db],
            all: false,
            reverse: false,
        });
        let s: Vec<u32> = ["db", "same-site", "fast", "slow", "close", "distant", "unknown"]
            .iter()
            .map(|n| t.score(&PreferredProximity, n))
            .collect();
        assert_eq!(s[0], 100);
        assert_eq!(s[1], 75);
        for w in s.windows(2) {
            assert!(w[0] > w[1], "{s:?}");
        }
        assert!(s[3] > 25 && s[4] <= 25, "{s:?}");
        assert_eq!(s[6], 0);
    }
}
