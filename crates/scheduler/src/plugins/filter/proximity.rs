//! Required proximity filter: the node is within the rule's reach (same node, same topology label value, round-
//! trip time, distance) of the instances the rule points at that are already placed.

use super::{Context, FilterPlugin};
use crate::proximity::{miss_detail, near};
use crate::request::ProximityTarget;
use crate::snapshot::{ClusterSnapshot, NodeIdx};
use fos_api::plan::Rejection;

/// Refuses nodes too far from a required proximity target.
#[derive(Debug, Clone, Copy)]
pub struct RequiredProximity;

fn satisfied(snapshot: &ClusterSnapshot, t: &ProximityTarget, n: NodeIdx) -> bool {
    if t.all {
        t.nodes.iter().all(|m| near(snapshot, n, *m, &t.within))
    } else {
        t.nodes.is_empty() || t.nodes.iter().any(|m| near(snapshot, n, *m, &t.within))
    }
}

impl FilterPlugin for RequiredProximity {
    fn name(&self) -> &'static str {
        "proximity"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        cx.request.required.iter().all(|t| satisfied(cx.snapshot, t, n))
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let t = cx.request.required.iter().find(|t| !satisfied(cx.snapshot, t, n))?;
        // Report the target that is missed (for "all", the first missed; for "any", the first listed).
        let m = t.nodes.iter().copied().find(|m| !near(cx.snapshot, n, *m, &t.within)).unwrap_or(t.nodes[0]);
        Some(Rejection::Proximity {
            from: t.from.clone(),
            to: t.to.clone(),
            within: t.within.clone(),
            detail: format!(
                "{} is {}",
                if t.reverse { &t.from } else { &t.to },
                miss_detail(cx.snapshot, n, m, &t.within)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use fos_api::manifest::Within;

    fn target(within: Within, on: &[NodeIdx], all: bool) -> ProximityTarget {
        ProximityTarget {
            from: "web".into(),
            to: "db".into(),
            within,
            label_key: None,
            nodes: on.to_vec(),
            all,
            reverse: false,
        }
    }

    #[test]
    fn latency_within_reach_of_a_placed_target() {
        let mut t = Fixture::new(
            vec![rtt("db-node", &[("near", 2.0), ("far", 12.5)]), node("near"), node("far"), node("unmeasured")],
            component("web"),
        );
        let db = t.idx("db-node");
        t.require(target(Within::LatencyMs(5.0), &[db], false));
        assert_eq!(t.explain(&RequiredProximity, "near"), None);
        assert_eq!(t.explain(&RequiredProximity, "db-node"), None);
        assert_eq!(
            t.explain(&RequiredProximity, "far").unwrap().to_string(),
            "web must be within 5ms of db; db is on db-node: rtt 12.5ms"
        );
        assert!(t.explain(&RequiredProximity, "unmeasured").unwrap().to_string().contains("rtt not measured"));
        t.assert_consistent(&RequiredProximity);
    }

    #[test]
    fn topology_and_all_targets() {
        let mut t = Fixture::new(
            vec![labelled("a1", &[("site", "a")]), labelled("a2", &[("site", "a")]), labelled("b1", &[("site", "b")])],
            component("web"),
        );
        let (a1, b1) = (t.idx("a1"), t.idx("b1"));
        t.require(target(Within::Topology("site".into()), &[a1], false));
        assert_eq!(t.explain(&RequiredProximity, "a2"), None);
        assert!(t.explain(&RequiredProximity, "b1").unwrap().to_string().contains("site b != a"));
        t.assert_consistent(&RequiredProximity);
        t.clear_required();
        t.require(target(Within::Topology("site".into()), &[a1, b1], true));
        for n in ["a1", "a2", "b1"] {
            assert!(t.explain(&RequiredProximity, n).is_some(), "{n} cannot be in both sites");
        }
        t.assert_consistent(&RequiredProximity);
    }

    #[test]
    fn nothing_placed_yet_is_no_constraint() {
        let mut t = Fixture::new(vec![node("a")], component("web"));
        t.require(target(Within::Node, &[], false));
        assert_eq!(t.explain(&RequiredProximity, "a"), None);
    }
}
