//! Readiness filter: a node whose agent is not alive, or that is cordoned, takes no new instance.

use super::{Context, FilterPlugin};
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// Refuses not-ready and cordoned nodes.
#[derive(Debug, Clone, Copy)]
pub struct Readiness;

impl FilterPlugin for Readiness {
    fn name(&self) -> &'static str {
        "readiness"
    }

    fn passes(&self, cx: &Context<'_>, n: NodeIdx) -> bool {
        let node = cx.snapshot.node(n);
        node.ready && !node.cordoned
    }

    fn explain(&self, cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
        let node = cx.snapshot.node(n);
        if !node.ready {
            Some(Rejection::NotReady)
        } else if node.cordoned {
            Some(Rejection::Cordoned)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn refuses_not_ready_then_cordoned() {
        let mut down = node("down");
        down.status.ready = false;
        let mut cordoned = node("cordoned");
        cordoned.status.unschedulable = true;
        let t = Fixture::new(vec![node("ok"), down, cordoned], component("c"));
        assert_eq!(t.explain(&Readiness, "ok"), None);
        assert_eq!(t.explain(&Readiness, "down"), Some(Rejection::NotReady));
        assert_eq!(t.explain(&Readiness, "cordoned"), Some(Rejection::Cordoned));
        t.assert_consistent(&Readiness);
    }
}
