//! Filter plugins, one per concern, run in a fixed order so that a refused node reports the first (most basic)
//! reason: readiness, exclusion, platform, runtime, selection, interfaces, resources, I/O, accelerators,
//! proximity.

mod accelerators;
mod exclusion;
mod interfaces;
mod io;
mod platform;
mod proximity;
mod readiness;
mod resources;
mod runtime;
mod selection;

pub use accelerators::Accelerators;
pub use exclusion::Exclusion;
pub use interfaces::Interfaces;
pub use io::Io;
pub use platform::Platform;
pub use proximity::RequiredProximity;
pub use readiness::Readiness;
pub use resources::Resources;
pub use runtime::Runtime;
pub use selection::Selection;

use super::Context;
use crate::snapshot::NodeIdx;
use fos_api::plan::Rejection;

/// A filter: can this node take this instance?
pub trait FilterPlugin: Sync {
    /// The plugin's name (as in [`Rejection::filter`]).
    fn name(&self) -> &'static str;
    /// The fast check used while placing.
    fn passes(&self, cx: &Context<'_>, node: NodeIdx) -> bool;
    /// The same check, explained: `None` when the node passes, else the reason with its numbers.
    fn explain(&self, cx: &Context<'_>, node: NodeIdx) -> Option<Rejection>;
}

/// Every filter, in the order they run.
pub static FILTERS: &[&dyn FilterPlugin] = &[
    &Readiness,
    &Exclusion,
    &Platform,
    &Runtime,
    &Selection,
    &Interfaces,
    &Resources,
    &Io,
    &Accelerators,
    &RequiredProximity,
];

/// True when every filter passes node `n`.
#[inline]
pub fn feasible(cx: &Context<'_>, n: NodeIdx) -> bool {
    FILTERS.iter().all(|f| f.passes(cx, n))
}

/// The first filter's reason for refusing node `n`, if any refuses it.
pub fn first_rejection(cx: &Context<'_>, n: NodeIdx) -> Option<Rejection> {
    FILTERS.iter().find_map(|f| f.explain(cx, n))
}

/// Every filter's reason for refusing node `n` (empty when it is feasible).
pub fn all_rejections(cx: &Context<'_>, n: NodeIdx) -> Vec<Rejection> {
    FILTERS.iter().filter_map(|f| f.explain(cx, n)).collect()
}
