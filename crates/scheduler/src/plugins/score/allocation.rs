//! Resource score: least-allocated (default; keeps load even) or most-allocated (bin packing; keeps whole nodes
//! free), from the share of cpu and memory left after placing the instance.

use super::{Context, ScorePlugin, MAX_SCORE};
use crate::options::{AllocationStrategy, Options};
use crate::snapshot::NodeIdx;

/// Scores by free cpu and memory left after placement.
#[derive(Debug, Clone, Copy)]
pub struct Allocation;

/// Percent of `total` left after taking `needs` from `free` (100 when the node has none of it).
fn left_percent(free: u64, needs: u64, total: u64) -> u64 {
    if total == 0 {
        100
    } else {
        (u128::from(free.saturating_sub(needs)) * 100 / u128::from(total)) as u64
    }
}

impl ScorePlugin for Allocation {
    fn name(&self) -> &'static str {
        "allocation"
    }

    fn weight(&self, options: &Options) -> u32 {
        options.weights.resources
    }

    fn score(&self, cx: &Context<'_>, n: NodeIdx) -> u32 {
        let (free, node, needs) = (cx.state.free(n), cx.snapshot.node(n), cx.request.needs);
        let cpu = left_percent(free.cpu_millis, needs.cpu_millis, node.cpu_millis);
        let mem = left_percent(free.memory_bytes, needs.memory_bytes, node.memory_bytes);
        let least = ((cpu + mem) / 2).min(u64::from(MAX_SCORE)) as u32;
        match cx.options.strategy {
            AllocationStrategy::LeastAllocated => least,
            AllocationStrategy::MostAllocated => MAX_SCORE - least.min(MAX_SCORE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use fos_api::ByteSize;

    #[test]
    fn least_allocated_prefers_emptier_nodes_and_bin_packing_the_fuller() {
        let mut c = component("c");
        c.entity.resources.cpu = Some("1".into());
        c.entity.resources.memory = Some(ByteSize::from("1Gi"));
        let mut t = Fixture::new(vec![sized("empty", 4, "4Gi"), sized("busy", 4, "4Gi")], c);
        t.allocate("busy", 2000, 2 << 30);
        assert_eq!(t.score(&Allocation, "empty"), 75);
        assert_eq!(t.score(&Allocation, "busy"), 25);
        t.options.strategy = AllocationStrategy::MostAllocated;
        assert_eq!(t.score(&Allocation, "empty"), 25);
        assert_eq!(t.score(&Allocation, "busy"), 75);
    }
}
