//! The plan a dry run shows is the placement the controller makes: a set of applications applied over two real
//! nodes of limited capacity, with instances already placed, capacity held by another application, an application
//! shrinking and a component that does not fit, is planned with a dry run, then applied with the controller running
//! (watch-driven, on a real embedded store, with the fos scheduler); the plan and the outcome must agree instance by
//! instance, including what could not be placed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::world_with;
use fos_api::wire::{AppPlan, ApplyRequest};
use fos_api::InstanceId;
use fos_controller::view::ClusterView;
use fos_controller::{ops, Caller, SchedulerPlacer};

fn app(name: &str, replicas: u32, cpu: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(&format!(
        "apiVersion: fos/v1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  components:\n    - name: c\n      \
         replicas: {replicas}\n      entity: {{kind: native, command: [sleep, '100'], resources: {{cpu: {cpu}}}}}\n"
    ))
    .unwrap()
}

fn request(objects: Vec<serde_json::Value>, dry_run: bool) -> ApplyRequest {
    ApplyRequest { objects, dry_run, prune_source: None }
}

/// Waits until the controller has looked at every application of `names` at its current generation, and returns
/// where each of their instances is.
async fn settled(w: &common::World, names: &[&str]) -> (BTreeMap<InstanceId, String>, BTreeMap<String, bool>) {
    for _ in 0..200 {
        let (view, _) = ClusterView::read(&w.ctx.records()).await.unwrap();
        let done = names.iter().all(|n| {
            let key = ("default".to_string(), n.to_string());
            let (Some(app), Some(status)) = (view.apps.get(&key), view.statuses.get(&key)) else { return false };
            let spec = app.record.object.as_application().unwrap().spec.clone();
            let wanted: u32 = spec.components.iter().map(|c| c.replicas).sum();
            let placed = view.desired_of("default", n).count() as u32;
            status.observed_generation == app.record.generation
                && (placed == wanted || status.unschedulable)
                && view.desired_of("default", n).all(|d| d.id.replica < wanted)
        });
        if done {
            let placed = view
                .desired
                .iter()
                .filter(|(id, _)| names.contains(&id.app.as_str()))
                .map(|(id, d)| (id.clone(), d.node.clone()))
                .collect();
            let unschedulable =
                names.iter().map(|n| (n.to_string(), view.statuses[&("default".into(), n.to_string())].unschedulable));
            return (placed, unschedulable.collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the controller did not settle");
}

fn planned(plans: &[AppPlan]) -> (BTreeMap<InstanceId, String>, BTreeMap<String, bool>) {
    let placed = plans.iter().flat_map(|p| p.placements.iter().map(|i| (i.instance.clone(), i.node.clone()))).collect();
    let unschedulable = plans.iter().map(|p| (p.app.clone(), !p.unschedulable.is_empty())).collect();
    (placed, unschedulable)
}

#[tokio::test]
async fn a_dry_run_and_the_real_placement_agree() {
    let w = world_with(Arc::new(SchedulerPlacer::default()));
    w.add_node("n1").await; // 2 cpus each
    w.add_node("n2").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let controller = tokio::spawn(fos_controller::reconcile::run(w.ctx.clone(), stopped));
    let admin = Caller::local_admin();

    // Capacity held by another application: base takes 3 × 500m.
    ops::apply::apply(&w.ctx, &admin, request(vec![app("base", 3, "500m")], false)).await.unwrap();
    let (before, _) = settled(&w, &["base"]).await;
    assert_eq!(before.len(), 3);

    // The set: base shrinks to 2 (its third instance is released), alpha and gamma want 1 cpu per instance, beta
    // 500m; 4 cpus cannot hold all of it, so some of it is planned unplaceable.
    let set = || vec![app("gamma", 2, "1"), app("base", 2, "500m"), app("alpha", 2, "1"), app("beta", 3, "500m")];
    let dry = ops::apply::apply(&w.ctx, &admin, request(set(), true)).await.unwrap();
    assert_eq!(dry.plans.len(), 4);
    let (plan, plan_unschedulable) = planned(&dry.plans);
    assert!(plan_unschedulable.values().any(|u| *u), "the set does not fit: {plan_unschedulable:?}");
    for (id, node) in &before {
        if id.replica < 2 {
            assert_eq!(plan.get(id), Some(node), "{id} stays where it is");
        }
    }

    let real = ops::apply::apply(&w.ctx, &admin, request(set(), false)).await.unwrap();
    assert_eq!(
        planned(&real.plans),
        (plan.clone(), plan_unschedulable.clone()),
        "the apply answers the dry run's plan"
    );
    let outcome = settled(&w, &["alpha", "base", "beta", "gamma"]).await;
    assert_eq!(outcome, (plan, plan_unschedulable), "the controller placed what the dry run planned");

    stop.send(true).unwrap();
    controller.await.unwrap();
}
