//! Knobs of one scheduling run: the tie-breaking seed, the allocation strategy, score weights, how far to
//! backtrack and how many feasible nodes to score on big clusters.

use serde::{Deserialize, Serialize};

/// How the resource score prefers nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AllocationStrategy {
    /// Prefer the node with the most free cpu and memory left (spreads load; the default).
    #[default]
    LeastAllocated,
    /// Prefer the node with the least free cpu and memory left (bin packing: keeps whole nodes free).
    MostAllocated,
}

/// Weights of the score plugins in the weighted sum (each plugin scores 0..=100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreWeights {
    /// Preferred proximity.
    pub proximity: u32,
    /// Spreading replicas of one component across nodes.
    pub spread: u32,
    /// Least- or most-allocated resources.
    pub resources: u32,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights { proximity: 4, spread: 2, resources: 1 }
    }
}

/// Options of one scheduling run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// Seed of the stable hash that breaks ties; the same seed and input give the same plan.
    pub seed: u64,
    /// Least-allocated (default) or most-allocated (bin packing).
    pub strategy: AllocationStrategy,
    /// Score weights.
    pub weights: ScoreWeights,
    /// How many alternative placements are tried when a later component cannot fit because of an earlier choice.
    pub max_backtracks: u32,
    /// Stop scanning once this many feasible nodes were found for one instance (`None`: 5% of the nodes, at least
    /// 100, as Kubernetes' percentageOfNodesToScore; `Some(0)`: score every feasible node). Nodes near preferred
    /// proximity targets are always scored first. Filters are never skipped: only fewer feasible nodes compared.
    pub max_scored_nodes: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 0,
            strategy: AllocationStrategy::default(),
            weights: ScoreWeights::default(),
            max_backtracks: 8,
            max_scored_nodes: None,
        }
    }
}

impl Options {
    /// How many feasible nodes to score in a cluster of `nodes` nodes.
    pub fn scored_nodes(&self, nodes: usize) -> usize {
        match self.max_scored_nodes {
            Some(0) => usize::MAX,
            Some(n) => n,
            // At least 100 nodes (kube-scheduler's floor) or 5% of the cluster, whichever is more.
            None => (nodes / 20).max(100),
        }
    }
}
