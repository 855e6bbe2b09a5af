//! The controller's [`Placer`]: the fos scheduler (`fos_scheduler::place_application`) over the controller's
//! snapshot of the cluster, keeping existing placements.

use fos_api::graph::NeedGraph;
use fos_api::plan::{Plan, Unschedulable};
use fos_api::ApplicationSpec;
use fos_scheduler::{place_application, Allocation, ClusterSnapshot, Options};

use crate::placement::Placer;

/// Places with the fos scheduler.
#[derive(Debug, Default)]
pub struct SchedulerPlacer {
    options: Options,
}

impl SchedulerPlacer {
    /// A placer with the scheduler's `options`.
    pub fn new(options: Options) -> Self {
        SchedulerPlacer { options }
    }
}

/// A plan where nothing could be placed because placement itself failed with `error`.
pub fn failed(nodes: usize, tenant: &str, name: &str, app: &ApplicationSpec, error: String) -> Plan {
    Plan {
        start_order: NeedGraph::build(app).start_order(app),
        unschedulable: app
            .components
            .iter()
            .map(|c| Unschedulable::failed(tenant, name, &c.name, c.replicas, nodes, error.clone()))
            .collect(),
        ..Default::default()
    }
}

impl Placer for SchedulerPlacer {
    fn place(
        &self,
        snapshot: &ClusterSnapshot,
        existing: &[Allocation],
        tenant: &str,
        name: &str,
        app: &ApplicationSpec,
    ) -> Plan {
        place_application(snapshot, tenant, name, app, existing, &self.options)
            .unwrap_or_else(|e| failed(snapshot.len(), tenant, name, app, e.to_string()))
    }
}
