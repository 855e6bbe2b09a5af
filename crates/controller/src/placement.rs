//! The seam between the controller and the scheduler: given the cluster's nodes, what every placed instance holds,
//! and an application, the scheduler's [`Plan`] for it (new placements, instances kept where they are, start order,
//! and a structured explanation of what cannot be placed).

use fos_api::plan::Plan;
use fos_api::{ApplicationSpec, Node};
use fos_scheduler::Allocation;

/// Places the instances of an application on nodes.
pub trait Placer: Send + Sync + 'static {
    /// Plans `app` (of `tenant`/`name`) over `nodes`: every instance of it that `held` does not hold yet gets a node,
    /// the ones `held` holds stay where they are (they are the plan's `kept`). `held` is what every placed instance
    /// of the cluster reserves, this application's included.
    fn place(&self, nodes: &[Node], held: &[Allocation], tenant: &str, name: &str, app: &ApplicationSpec) -> Plan;
}
