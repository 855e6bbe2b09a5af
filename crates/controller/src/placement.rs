//! The seam between the controller and the scheduler: given the scheduler's snapshot of the cluster (nodes and what
//! every placed instance holds) and an application, the scheduler's [`Plan`] for it (new placements, instances kept
//! where they are, start order, and a structured explanation of what cannot be placed).

use fos_api::plan::Plan;
use fos_api::ApplicationSpec;
use fos_scheduler::{Allocation, ClusterSnapshot};

/// Places the instances of an application on nodes.
pub trait Placer: Send + Sync + 'static {
    /// Plans `app` (of `tenant`/`name`) over `snapshot`: every instance of it that `existing` (its instances placed
    /// already, which the snapshot counts) does not hold gets a node when one fits; those in `existing` stay where
    /// they are (the plan's `kept`).
    fn place(
        &self,
        snapshot: &ClusterSnapshot,
        existing: &[Allocation],
        tenant: &str,
        name: &str,
        app: &ApplicationSpec,
    ) -> Plan;
}
