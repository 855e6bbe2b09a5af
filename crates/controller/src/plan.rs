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

use std::collections::{BTreeMap, BTreeSet};

use fos_api::graph::NeedGraph;
use fos_api::wire::{AppPlan, PlannedInstance};
use fos_api::{ApplicationSpec, InstanceId, Node};
use fos_scheduler::Allocation;

use crate::placement::Placer;
use crate::view::ClusterView;

/// The instance ids an application wants, component by component.
pub fn wanted_instances(tenant: &str, name: &str, spec: &ApplicationSpec) -> Vec<InstanceId> {
    spec.components
        .iter()
        .flat_map(|c| (0..c.replicas).map(move |r| InstanceId::new(tenant, name, &c.name, r)))
        .collect()
}

/// Plans applications one after the other over one cluster, each plan holding its placements for the next.
pub struct Planner<'a> {
    placer: &'a dyn Placer,
    nodes: Vec<Node>,
    /// What every placed instance holds, by instance.
    held: BTreeMap<InstanceId, Allocation>,
}

impl<'a> Planner<'a> {
    /// A planner over the nodes and desired instances of `view`.
    pub fn new(placer: &'a dyn Placer, view: &ClusterView) -> Self {
        Planner {
            placer,
            nodes: view.nodes.values().cloned().collect(),
            held: view.desired.iter().map(|(id, d)| (id.clone(), Allocation::from_desired(d))).collect(),
        }
    }

    /// Whether every instance `spec` wants is placed already (nothing for the scheduler to do).
    pub fn all_placed(&self, tenant: &str, name: &str, spec: &ApplicationSpec) -> bool {
        wanted_instances(tenant, name, spec).iter().all(|id| self.held.contains_key(id))
    }

    /// Plans `tenant`/`name`: its instances no longer wanted are released, those placed are kept, the others get
    /// a node when one fits (and then hold it for the applications planned after this one).
    pub fn plan(&mut self, tenant: &str, name: &str, spec: &ApplicationSpec) -> AppPlan {
        let wanted: BTreeSet<InstanceId> = wanted_instances(tenant, name, spec).into_iter().collect();
        let from = InstanceId::new(tenant, name, "", 0);
        let surplus: Vec<InstanceId> = self
            .held
            .range(&from..)
            .map(|(id, _)| id)
            .take_while(|id| id.tenant == tenant && id.app == name)
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        for id in &surplus {
            self.held.remove(id);
        }
        let mut placements: Vec<PlannedInstance> = wanted
            .iter()
            .filter_map(|id| self.held.get(id))
            .map(|a| PlannedInstance {
                instance: a.instance.clone(),
                node: a.node.clone(),
                existing: true,
                devices: Default::default(),
            })
            .collect();
        if placements.len() == wanted.len() {
            return AppPlan {
                tenant: tenant.to_string(),
                app: name.to_string(),
                start_order: NeedGraph::build(spec).start_order(spec),
                placements,
                unschedulable: Vec::new(),
            };
        }
        let held: Vec<Allocation> = self.held.values().cloned().collect();
        let plan = self.placer.place(&self.nodes, &held, tenant, name, spec);
        for p in &plan.placements {
            self.held.insert(p.instance.clone(), Allocation::from(p));
            placements.push(PlannedInstance {
                instance: p.instance.clone(),
                node: p.node.clone(),
                existing: false,
                devices: p.devices.clone(),
            });
        }
        AppPlan {
            tenant: tenant.to_string(),
            app: name.to_string(),
            start_order: if plan.start_order.is_empty() {
                NeedGraph::build(spec).start_order(spec)
            } else {
                plan.start_order
            },
            placements,
            unschedulable: plan.unschedulable,
        }
    }
}
