//! Where a set of applications would go: the plans the apply answer and the dry run show, computed by the one
//! [`Planner`] exactly as the reconciler will place them (the applications an apply writes, one after the other in
//! `(tenant, name)` order, each holding what it takes for the next).

use std::borrow::Cow;
use std::collections::BTreeMap;

use fos_api::wire::{AppPlan, Change, ObjectChange};
use fos_api::{Application, Object};

use crate::plan::Planner;
use crate::view::{AppKey, ClusterView};
use crate::Context;

/// The plans of the applications in `objects` whose change is in `changes` (same order): for every application
/// created or updated, and on a dry run for the unchanged ones too (planned after the others, holding nothing).
pub fn plan_changes(
    ctx: &Context,
    view: &ClusterView,
    objects: &[Object],
    changes: &[ObjectChange],
    dry_run: bool,
) -> Vec<AppPlan> {
    let mut written: BTreeMap<AppKey, Cow<'_, Application>> = BTreeMap::new();
    let mut unchanged: BTreeMap<AppKey, Cow<'_, Application>> = BTreeMap::new();
    for (obj, change) in objects.iter().zip(changes) {
        let Some(app) = obj.as_application() else { continue };
        let key = (app.metadata.tenant().to_string(), app.metadata.name.clone());
        match change.change {
            Change::Created | Change::Updated => written.insert(key, app),
            _ if dry_run => unchanged.insert(key, app),
            _ => None,
        };
    }
    let mut planner = Planner::accumulating(ctx.placer.as_ref(), view);
    let mut plans: BTreeMap<AppKey, AppPlan> =
        written.iter().map(|(k, app)| (k.clone(), planner.plan(&k.0, &k.1, &app.spec))).collect();
    for (k, app) in &unchanged {
        let mut alone = Planner::one(ctx.placer.as_ref(), view);
        plans.insert(k.clone(), alone.plan(&k.0, &k.1, &app.spec));
    }
    // In the order the objects were given.
    objects
        .iter()
        .filter_map(|o| o.as_application())
        .filter_map(|a| plans.remove(&(a.metadata.tenant().to_string(), a.metadata.name.clone())))
        .collect()
}
