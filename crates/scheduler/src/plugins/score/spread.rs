//! Spread score: replicas of one component prefer nodes that do not already run one of them, so a node loss takes
//! as few replicas as possible.

use super::{Context, ScorePlugin, MAX_SCORE};
use crate::options::Options;
use crate::snapshot::NodeIdx;

/// Scores down nodes already running replicas of the same component.
#[derive(Debug, Clone, Copy)]
pub struct Spread;

impl ScorePlugin for Spread {
    fn name(&self) -> &'static str {
        "spread"
    }

    fn weight(&self, options: &Options) -> u32 {
        options.weights.spread
    }

    fn score(&self, cx: &Context<'_>, n: NodeIdx) -> u32 {
        let same = cx.request.same_component.iter().filter(|m| **m == n).count() as u32;
        MAX_SCORE / (1 + same)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn fewer_replicas_on_the_node_scores_higher() {
        let mut t = Fixture::new(vec![node("a"), node("b"), node("c")], component("web"));
        t.place("web", 0, "a");
        t.place("web", 1, "a");
        t.place("web", 2, "b");
        assert_eq!(t.score(&Spread, "c"), 100);
        assert_eq!(t.score(&Spread, "b"), 50);
        assert_eq!(t.score(&Spread, "a"), 33);
    }
}
