//! Score plugins: each ranks a feasible node 0..=100; the scheduler picks the highest weighted sum, ties broken
//! by the seeded stable hash.

mod allocation;
mod proximity;
mod spread;

pub use allocation::Allocation;
pub use proximity::PreferredProximity;
pub use spread::Spread;

use super::Context;
use crate::options::Options;
use crate::snapshot::NodeIdx;

/// The highest score a plugin gives.
pub const MAX_SCORE: u32 = 100;

/// A score: how good is this feasible node for this instance?
pub trait ScorePlugin: Sync {
    /// The plugin's name.
    fn name(&self) -> &'static str;
    /// The plugin's weight under `options`.
    fn weight(&self, options: &Options) -> u32;
    /// The node's score, 0..=[`MAX_SCORE`].
    fn score(&self, cx: &Context<'_>, node: NodeIdx) -> u32;
}

/// Every score plugin.
pub static SCORES: &[&dyn ScorePlugin] = &[&PreferredProximity, &Spread, &Allocation];

/// The weighted sum of every plugin's score for node `n`.
#[inline]
pub fn total(cx: &Context<'_>, n: NodeIdx) -> u64 {
    SCORES
        .iter()
        .map(|s| {
            let w = s.weight(cx.options);
            if w == 0 {
                0
            } else {
                u64::from(w) * u64::from(s.score(cx, n).min(MAX_SCORE))
            }
        })
        .sum()
}
