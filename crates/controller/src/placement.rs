//! The seam between the controller and the scheduler: given the cluster's nodes, an application and what is
//! already placed, where do the remaining instances go, and why can some not be placed.

use std::collections::BTreeMap;

use fos_api::{ApplicationSpec, InstanceId, Node};

/// The outcome of placing one application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Every instance placed (existing placements included), with its node.
    pub assigned: BTreeMap<InstanceId, String>,
    /// Components that cannot be placed, with the scheduler's explanation.
    pub unplaced: Vec<(String, String)>,
}

/// Places the instances of an application on nodes.
pub trait Placer: Send + Sync + 'static {
    /// Places every instance of `app` (of `tenant`/`name`) not in `existing`, over `nodes` (ready and schedulable
    /// ones only are candidates), keeping `existing` where it is.
    fn place(
        &self,
        nodes: &[Node],
        tenant: &str,
        name: &str,
        app: &ApplicationSpec,
        existing: &BTreeMap<InstanceId, String>,
    ) -> Placement;
}
