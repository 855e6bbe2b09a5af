//! Placement: filter → score → select over a snapshot of the cluster, Kubernetes-scheduler style, with the
//! application's `need`/`proximity` graph. Pure: no I/O, no async, no clock, no randomness (ties are broken by a
//! seeded stable hash), so it can be tested and benchmarked alone.
//!
//! Entry points: [`place_application`] (the controller, `fosctl plan`, the API's dry run) and
//! [`place_instances`] (re-placing after a node loss or for a migration). Both return a [`Plan`]; a component
//! that does not fit is explained in [`Plan::unschedulable`], printable with `Display`.
//!
//! Proximity between replicated components: a rule `a → b` (required) holds when every instance of `a` is near at
//! least one instance of `b`, whichever is placed first.

pub mod error;
pub mod explain;
pub mod graph;
pub mod hash;
pub mod options;
pub mod place;
pub mod plugins;
pub mod proximity;
pub mod request;
pub mod select;
pub mod snapshot;
pub mod state;

#[cfg(test)]
pub(crate) mod testkit;

pub use error::ScheduleError;
pub use fos_api::plan::{NodeRequirement, Placement, Plan, ReasonGroup, Rejection, Relaxation, Unschedulable};
pub use options::{AllocationStrategy, Options, ScoreWeights};
pub use place::{place_application, place_instances};
pub use snapshot::{Allocation, ClusterSnapshot, NodeIdx, SnapshotError};
