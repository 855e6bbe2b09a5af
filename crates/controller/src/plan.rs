//! The one plan: where an application's instances go, in which order its components start, and why what cannot be
//! placed cannot. The reconciler, the apply answer and the dry run (`fosctl apply --dry-run`, `fosctl diff`) all
//! plan through [`Planner::plan`], over the same inputs, in the same order, so a dry run and the real placement
//! cannot disagree:
//!
//! - what holds capacity is every desired instance of the cluster; an application's instances that it no longer
//!   wants (fewer replicas, a removed component) are released before it is planned;
//! - instances already placed stay where they are;
//! - applications are planned one after the other in `(tenant, name)` order, each seeing what the ones before it
//!   took (the reconciler handles the applications a change woke in that order too).

use std::borrow::Cow;
use std::collections::BTreeSet;

use fos_api::graph::NeedGraph;
use fos_api::wire::{AppPlan, PlannedInstance};
use fos_api::{ApplicationSpec, DesiredInstance, InstanceId};
use fos_scheduler::{Allocation, ClusterSnapshot};

use crate::placement::Placer;
use crate::scheduler::failed;
use crate::view::ClusterView;

/// The instance ids an application wants, component by component.
pub fn wanted_instances(tenant: &str, name: &str, spec: &ApplicationSpec) -> Vec<InstanceId> {
    spec.components
        .iter()
        .flat_map(|c| (0..c.replicas).map(move |r| InstanceId::new(tenant, name, &c.name, r)))
        .collect()
}

/// Plans applications over one cluster. A planner made with [`Planner::one`] plans a single application over the
/// view's snapshot as it is; one made with [`Planner::accumulating`] works on its own copy and holds each plan's
/// placements for the applications planned after it.
pub struct Planner<'a> {
    placer: &'a dyn Placer,
    view: &'a ClusterView,
    snapshot: Result<Cow<'a, ClusterSnapshot>, String>,
    accumulate: bool,
}

impl<'a> Planner<'a> {
    /// A planner for one application over `view`.
    pub fn one(placer: &'a dyn Placer, view: &'a ClusterView) -> Self {
        let snapshot = view.snapshot().map(Cow::Borrowed).map_err(ToString::to_string);
        Planner { placer, view, snapshot, accumulate: false }
    }

    /// A planner for several applications over `view`, each seeing what the ones before it took.
    pub fn accumulating(placer: &'a dyn Placer, view: &'a ClusterView) -> Self {
        let snapshot = view.snapshot().map(|s| Cow::Owned(s.clone())).map_err(ToString::to_string);
        Planner { placer, view, snapshot, accumulate: true }
    }

    /// Plans `tenant`/`name`: its instances no longer wanted are released, those placed are kept, the others get
    /// a node when one fits.
    pub fn plan(&mut self, tenant: &str, name: &str, spec: &ApplicationSpec) -> AppPlan {
        let wanted: BTreeSet<InstanceId> = wanted_instances(tenant, name, spec).into_iter().collect();
        let (kept, surplus): (Vec<&DesiredInstance>, Vec<&DesiredInstance>) =
            self.view.desired_of(tenant, name).partition(|d| wanted.contains(&d.id));
        let mut placements: Vec<PlannedInstance> = kept
            .iter()
            .map(|d| PlannedInstance {
                instance: d.id.clone(),
                node: d.node.clone(),
                existing: true,
                devices: Default::default(),
            })
            .collect();
        let start_order = || NeedGraph::build(spec).start_order(spec);
        if let Ok(snapshot) = &mut self.snapshot {
            for d in &surplus {
                snapshot.to_mut().release(&d.id);
            }
        }
        if placements.len() == wanted.len() {
            return AppPlan {
                tenant: tenant.to_string(),
                app: name.to_string(),
                start_order: start_order(),
                placements,
                unschedulable: Vec::new(),
            };
        }
        let plan = match &mut self.snapshot {
            Err(e) => failed(0, tenant, name, spec, e.clone()),
            Ok(snapshot) => {
                let existing: Vec<Allocation> = kept.iter().map(|d| Allocation::from_desired(d)).collect();
                let plan = self.placer.place(snapshot, &existing, tenant, name, spec);
                if self.accumulate {
                    snapshot.to_mut().commit(&plan);
                }
                plan
            }
        };
        placements.extend(plan.placements.iter().map(|p| PlannedInstance {
            instance: p.instance.clone(),
            node: p.node.clone(),
            existing: false,
            devices: p.devices.clone(),
        }));
        AppPlan {
            tenant: tenant.to_string(),
            app: name.to_string(),
            start_order: if plan.start_order.is_empty() { start_order() } else { plan.start_order },
            placements,
            unschedulable: plan.unschedulable,
        }
    }
}
