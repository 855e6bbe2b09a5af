//! The seam between the controller and the scheduler: given the cluster's nodes, every instance already placed, and
//! an application, where do its instances go, and why can some not be placed.

use std::collections::BTreeMap;

use fos_api::record::AssignedDevices;
use fos_api::{ApplicationSpec, DesiredInstance, InstanceId, Node};

/// The outcome of placing one application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Every instance placed (existing placements included), with its node.
    pub assigned: BTreeMap<InstanceId, String>,
    /// Devices assigned to newly placed instances.
    pub devices: BTreeMap<InstanceId, AssignedDevices>,
    /// Start order: component names per wave.
    pub start_order: Vec<Vec<String>>,
    /// Components that cannot be placed, with the scheduler's explanation.
    pub unplaced: Vec<(String, String)>,
}

/// Places the instances of an application on nodes.
pub trait Placer: Send + Sync + 'static {
    /// Places every instance of `app` (of `tenant`/`name`) that `placed` does not hold yet, over `nodes`, keeping
    /// `placed` (every desired instance of the cluster, which also holds node capacity) where it is.
    fn place(
        &self,
        nodes: &[Node],
        placed: &[DesiredInstance],
        tenant: &str,
        name: &str,
        app: &ApplicationSpec,
    ) -> Placement;
}
