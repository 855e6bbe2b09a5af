//! The controller's [`Placer`]: the fos scheduler (`fos_scheduler::place_application`) over a snapshot built from
//! the node records and every desired instance (which hold node capacity), keeping existing placements.

use fos_api::{ApplicationSpec, DesiredInstance, Node};
use fos_scheduler::{place_application, Allocation, ClusterSnapshot, Options};

use crate::placement::{Placement, Placer};

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

fn all_unplaced(app: &ApplicationSpec, why: &str) -> Vec<(String, String)> {
    app.components.iter().map(|c| (c.name.clone(), why.to_string())).collect()
}

impl Placer for SchedulerPlacer {
    fn place(
        &self,
        nodes: &[Node],
        placed: &[DesiredInstance],
        tenant: &str,
        name: &str,
        app: &ApplicationSpec,
    ) -> Placement {
        let mine: Vec<&DesiredInstance> = placed.iter().filter(|d| d.id.tenant == tenant && d.id.app == name).collect();
        let mut out =
            Placement { assigned: mine.iter().map(|d| (d.id.clone(), d.node.clone())).collect(), ..Default::default() };
        let snapshot = match ClusterSnapshot::new(nodes.iter().cloned(), placed.iter().map(Allocation::from_desired)) {
            Ok(s) => s,
            Err(e) => {
                out.unplaced = all_unplaced(app, &e.to_string());
                return out;
            }
        };
        let existing: Vec<Allocation> = mine.iter().map(|d| Allocation::from_desired(d)).collect();
        match place_application(&snapshot, tenant, name, app, &existing, &self.options) {
            Ok(plan) => {
                for p in &plan.placements {
                    out.assigned.insert(p.instance.clone(), p.node.clone());
                    out.devices.insert(p.instance.clone(), p.devices.clone());
                }
                out.start_order = plan.start_order.clone();
                out.unplaced = plan
                    .unschedulable
                    .iter()
                    .map(|u| {
                        let text = u.to_string();
                        let prefix = format!("{}: ", u.component);
                        let reason = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
                        (u.component.clone(), reason)
                    })
                    .collect();
            }
            Err(e) => out.unplaced = all_unplaced(app, &e.to_string()),
        }
        out
    }
}
