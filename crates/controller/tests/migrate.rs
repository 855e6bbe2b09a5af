//! Migrations in the control plane against a real embedded store: `ops::migrate` checks the instance and the
//! destination, and the application reconciler moves the migration through its phases from what the agents report
//! (played here): the source's role, the move of the desired record under the new epoch in one transaction, the
//! completion; a destination that is not ready, and an abort, give the instance back to the source. A standalone
//! entity pinned to its node goes only where it is sent, and its pin follows it there.

mod common;

use std::sync::Arc;

use common::World;
use fos_api::migration::{MigrateRequest, MigrationMode, MigrationPhase, MigrationProgress, SendPhase};
use fos_api::plan::{Placement, Plan};
use fos_api::record::MigrationRole;
use fos_api::{ActualInstance, ApplicationSpec, InstanceId, Lifecycle, State};
use fos_controller::ops::{migrate, Caller, OpError};
use fos_controller::Placer;
use fos_scheduler::{Allocation, ClusterSnapshot};
use fos_store::records::{ActualPlugins, DesiredInstances, Migrations};

/// Places on the first ready node that is not cordoned (what the scheduler does with a cordoned node).
struct FirstSchedulable;

impl Placer for FirstSchedulable {
    fn place(&self, snap: &ClusterSnapshot, held: &[Allocation], t: &str, a: &str, app: &ApplicationSpec) -> Plan {
        let mut plan = Plan::default();
        let node = snap.nodes().iter().find(|n| n.ready && !n.cordoned).map(|n| n.name.clone());
        for c in &app.components {
            let id = InstanceId::new(t, a, &c.name, 0);
            if held.iter().any(|h| h.instance == id) {
                continue;
            }
            if let Some(n) = &node {
                let p = Placement {
                    instance: id,
                    node: n.clone(),
                    devices: Default::default(),
                    cpu_millis: 0,
                    memory_bytes: 0,
                    disk_bytes: 0,
                    score: 0,
                };
                plan.placements.push(p);
            }
        }
        plan
    }
}

const APP: &str = "apiVersion: fos/v1\nkind: Application\nmetadata: {name: wp}\nspec:\n  components:\n    - name: db\n      entity: {kind: native, command: [sleep, '100'], volumes: [{name: data}]}\n";

const PINNED: &str = "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: pinned, annotations: {fos/node: n1}}\nspec: {kind: native, command: [sleep, '100']}\n";

async fn started() -> (World, InstanceId) {
    started_with(APP, InstanceId::new("default", "wp", "db", 0)).await
}

/// A world of two nodes where `manifest` was applied and `id` runs.
async fn started_with(manifest: &str, id: InstanceId) -> (World, InstanceId) {
    let w = common::world_with(Arc::new(FirstSchedulable));
    w.add_node("n1").await;
    w.add_node("n2").await;
    let object: fos_api::Object = serde_yaml_ng::from_str(manifest).unwrap();
    let req: fos_api::wire::ApplyRequest =
        serde_json::from_value(serde_json::json!({ "objects": [serde_json::to_value(&object).unwrap()] })).unwrap();
    fos_controller::ops::apply::apply(&w.ctx, &Caller::local_admin(), req).await.unwrap();
    w.reconcile().await;
    w.report(&id, State::Running, true).await;
    w.reconcile().await;
    (w, id)
}

/// Plays the source agent: `id` on `node` in `state` with this progress of migration `mid`.
async fn report_progress(w: &World, node: &str, id: &InstanceId, mid: &str, phase: SendPhase) {
    report_ticket(w, node, id, mid, phase, None).await
}

/// [`report_progress`] with a live migration's checkpoint ticket.
async fn report_ticket(w: &World, node: &str, id: &InstanceId, mid: &str, phase: SendPhase, ticket: Option<&str>) {
    let d = w.desired(id).await.unwrap();
    let mut a = ActualInstance::new(id.clone(), node);
    a.lifecycle = Lifecycle::at(Some(State::TakingOff));
    a.observed_generation = d.generation;
    a.migration = Some(MigrationProgress {
        id: mid.to_string(),
        phase,
        bytes_moved: 10,
        bytes_total: 10,
        stopped_at: None,
        error: None,
        ticket: ticket.map(String::from),
    });
    w.ctx.store.put(&w.ctx.keys.actual_instance(node, id), serde_json::to_vec(&a).unwrap(), None).await.unwrap();
}

async fn record(w: &World, id: &InstanceId) -> fos_api::migration::Migration {
    w.ctx.records().get::<Migrations>(id).await.unwrap().unwrap().value
}

#[tokio::test]
async fn a_cold_migration_moves_the_record_to_the_destination_under_a_new_epoch() {
    let (w, id) = started().await;
    let admin = Caller::local_admin();
    let to = |node: &str| MigrateRequest { to: Some(node.into()), ..Default::default() };
    let err = migrate::migrate(&w.ctx, &admin, &id.to_string(), &to("n1")).await.unwrap_err();
    assert!(err.to_string().contains("runs there already"), "{err}");
    let err = migrate::migrate(&w.ctx, &admin, &id.to_string(), &to("nx")).await.unwrap_err();
    assert!(matches!(err, OpError::NotFound(_)), "{err}");
    let viewer = Caller::of_tenant("v", "default", fos_api::auth::Role::View);
    assert!(matches!(migrate::migrate(&w.ctx, &viewer, &id.to_string(), &to("n2")).await, Err(OpError::Forbidden(_))));

    let old_epoch = w.desired(&id).await.unwrap().epoch;
    let m = migrate::migrate(&w.ctx, &admin, &id.to_string(), &to("n2")).await.unwrap();
    assert_eq!((m.source.as_str(), m.destination.as_str(), m.phase), ("n1", "n2", MigrationPhase::Preparing));
    assert_ne!(m.epoch, old_epoch);
    let again = migrate::migrate(&w.ctx, &admin, &id.to_string(), &to("n2")).await.unwrap_err();
    assert!(again.to_string().contains("migrating already"), "{again}");

    // The source is told.
    w.reconcile().await;
    let d = w.desired(&id).await.unwrap();
    assert_eq!(d.node, "n1");
    assert!(matches!(&d.migration, Some(MigrationRole::Source { destination, .. }) if destination == "n2"));
    assert_eq!(record(&w, &id).await.phase, MigrationPhase::TakingOff);
    report_progress(&w, "n1", &id, &m.id, SendPhase::Sending).await;
    w.reconcile().await;
    assert_eq!(record(&w, &id).await.phase, MigrationPhase::Transferring);
    assert_eq!(w.desired(&id).await.unwrap().node, "n1", "the source owns it until everything is sent");

    // Everything sent: one record, on the destination, under the new epoch.
    report_progress(&w, "n1", &id, &m.id, SendPhase::Sent).await;
    w.reconcile().await;
    let records = w.ctx.records().list::<DesiredInstances>().await.unwrap().0;
    let nodes: Vec<&str> = records.iter().map(|(k, _)| k.0.as_str()).collect();
    assert_eq!(nodes, ["n2"], "the source's record went in the same transaction");
    let d = w.desired(&id).await.unwrap();
    assert_eq!(d.epoch, m.epoch);
    assert!(matches!(&d.migration, Some(MigrationRole::Destination { source, .. }) if source == "n1"));
    assert_eq!(record(&w, &id).await.phase, MigrationPhase::Landing);

    // The destination runs it; the source's record is gone.
    w.remove_actual("n1", &id).await;
    w.report(&id, State::Running, true).await;
    w.reconcile().await;
    let done = record(&w, &id).await;
    assert_eq!(done.phase, MigrationPhase::Completed);
    assert!(done.finished.is_some());
    let d = w.desired(&id).await.unwrap();
    assert_eq!((d.node.as_str(), d.migration.as_ref()), ("n2", None));
    assert_eq!(d.epoch, m.epoch);
}

#[tokio::test]
async fn an_abort_or_a_lost_destination_gives_the_instance_back_to_the_source() {
    let (w, id) = started().await;
    let admin = Caller::local_admin();
    let req = MigrateRequest { to: Some("n2".into()), ..Default::default() };
    let m = migrate::migrate(&w.ctx, &admin, &id.to_string(), &req).await.unwrap();
    w.reconcile().await;
    report_progress(&w, "n1", &id, &m.id, SendPhase::Sending).await;
    let abort = MigrateRequest { abort: true, ..Default::default() };
    migrate::migrate(&w.ctx, &admin, &id.to_string(), &abort).await.unwrap();
    w.reconcile().await;
    assert_eq!(record(&w, &id).await.phase, MigrationPhase::Aborted);
    let d = w.desired(&id).await.unwrap();
    assert_eq!((d.node.as_str(), d.migration.as_ref()), ("n1", None), "the source keeps it, without a role");
    let err = migrate::migrate(&w.ctx, &admin, &id.to_string(), &abort).await.unwrap_err();
    assert!(err.to_string().contains("not migrating"), "{err}");

    // Again; the destination's heartbeat goes.
    w.report(&id, State::Running, true).await;
    w.reconcile().await;
    let m = migrate::migrate(&w.ctx, &admin, &id.to_string(), &req).await.unwrap();
    w.reconcile().await;
    w.ctx.store.delete(&w.ctx.keys.node_status("n2")).await.unwrap();
    report_progress(&w, "n1", &id, &m.id, SendPhase::Retrying).await;
    w.reconcile().await;
    let failed = record(&w, &id).await;
    assert_eq!(failed.phase, MigrationPhase::Failed);
    assert!(failed.message.as_deref().unwrap_or("").contains("n2 is not ready"), "{failed:?}");
    let d = w.desired(&id).await.unwrap();
    assert_eq!((d.node.as_str(), d.migration.as_ref()), ("n1", None));
}

#[tokio::test]
async fn the_checkpoint_ticket_the_source_reports_goes_to_the_destination_with_the_record() {
    let (w, id) = started().await;
    let admin = Caller::local_admin();
    let req = MigrateRequest { to: Some("n2".into()), ..Default::default() };
    let m = migrate::migrate(&w.ctx, &admin, &id.to_string(), &req).await.unwrap();
    w.reconcile().await;
    report_ticket(&w, "n1", &id, &m.id, SendPhase::Sent, Some(".checkpoint")).await;
    w.reconcile().await;
    let d = w.desired(&id).await.unwrap();
    assert_eq!(d.node, "n2");
    let ticket = |d: &fos_api::DesiredInstance| match &d.migration {
        Some(MigrationRole::Destination { ticket, .. }) => ticket.clone(),
        other => panic!("not the destination: {other:?}"),
    };
    assert_eq!(ticket(&d).as_deref(), Some(".checkpoint"));
    assert_eq!(record(&w, &id).await.ticket.as_deref(), Some(".checkpoint"), "kept in the migration record");
    // Landing and not running yet: the role keeps the ticket (the source's progress is gone with its record).
    w.remove_actual("n1", &id).await;
    w.reconcile().await;
    assert_eq!(ticket(&w.desired(&id).await.unwrap()).as_deref(), Some(".checkpoint"));
}

#[tokio::test]
async fn a_pinned_entity_goes_only_where_it_is_sent_and_its_pin_follows_it_once_the_migration_completed() {
    let (w, id) = started_with(PINNED, InstanceId::new("default", "pinned", "pinned", 0)).await;
    let admin = Caller::local_admin();
    let pin = |r: Option<fos_api::wire::AppRecord>| {
        let r = r.expect("the entity's record");
        (r.object.metadata().annotations.get(fos_api::wire::NODE_ANNOTATION).cloned(), r.generation)
    };
    let (before, generation) = pin(w.record("default", "pinned").await);
    assert_eq!(before.as_deref(), Some("n1"));
    let anywhere = migrate::migrate(&w.ctx, &admin, "pinned", &MigrateRequest::default()).await.unwrap_err();
    assert!(anywhere.to_string().contains("pinned to node n1: name its destination"), "{anywhere}");

    let req = MigrateRequest { to: Some("n2".into()), ..Default::default() };
    let m = migrate::migrate(&w.ctx, &admin, "pinned", &req).await.unwrap();
    w.reconcile().await;
    report_progress(&w, "n1", &id, &m.id, SendPhase::Sent).await;
    w.reconcile().await;
    assert_eq!(record(&w, &id).await.phase, MigrationPhase::Landing);
    assert_eq!(pin(w.record("default", "pinned").await).0.as_deref(), Some("n1"), "until it runs there");
    w.remove_actual("n1", &id).await;
    w.report(&id, State::Running, true).await;
    w.reconcile().await;
    assert_eq!(record(&w, &id).await.phase, MigrationPhase::Completed);
    assert_eq!(pin(w.record("default", "pinned").await), (Some("n2".into()), generation), "the pin follows");
    w.reconcile().await;
    assert_eq!(w.desired(&id).await.unwrap().node, "n2", "and it stays there");
}

const LIVE: &str = "apiVersion: fos/v1\nkind: Application\nmetadata: {name: wp}\nspec:\n  components:\n    - name: db\n      entity: {kind: native, command: [sleep, '100'], migration: live, volumes: [{name: data}]}\n";

/// Publishes node `node`'s CRIU plugin record, working or not.
async fn criu(w: &World, node: &str, ready: bool) {
    let plugin = fos_api::PluginRecord {
        plugin_type: "migration".into(),
        entity_kind: fos_api::manifest::EntityKind::Native,
        ready,
        error: (!ready).then(|| "criu check failed".into()),
        detail: None,
    };
    let id = (node.to_string(), fos_api::node::CRIU_PLUGIN.to_string());
    w.ctx.records().put::<ActualPlugins>(&id, &plugin, None).await.unwrap();
}

/// Drains n1 and lets the reconcilers choose where its instance goes; the migration they wrote.
async fn drained(w: &World, id: &InstanceId) -> fos_api::migration::Migration {
    fos_controller::ops::drain::drain(&w.ctx, &Caller::local_admin(), "n1").await.unwrap();
    w.reconcile().await;
    w.reconcile().await;
    record(w, id).await
}

#[tokio::test]
async fn a_drain_migrates_a_live_entity_live_between_nodes_whose_criu_works_and_cold_otherwise() {
    let id = InstanceId::new("default", "wp", "db", 0);
    let (w, _) = started_with(LIVE, id.clone()).await;
    criu(&w, "n1", true).await;
    criu(&w, "n2", true).await;
    let m = drained(&w, &id).await;
    assert_eq!((m.source.as_str(), m.destination.as_str()), ("n1", "n2"));
    assert_eq!(m.mode, MigrationMode::Live, "{m:?}");
    assert!(matches!(
        &w.desired(&id).await.unwrap().migration,
        Some(MigrationRole::Source { mode: MigrationMode::Live, .. })
    ));

    // The destination's CRIU fails its check: the drain's migration is cold, and says why.
    let (w, _) = started_with(LIVE, id.clone()).await;
    criu(&w, "n1", true).await;
    criu(&w, "n2", false).await;
    let m = drained(&w, &id).await;
    assert_eq!((m.destination.as_str(), m.mode), ("n2", MigrationMode::Cold), "{m:?}");
    assert!(m.message.as_deref().is_some_and(|s| s.contains("no working CRIU")), "{m:?}");

    // An entity that migrates cold is drained cold wherever CRIU works.
    let (w, _) = started_with(APP.replace("volumes", "migration: cold, volumes").as_str(), id.clone()).await;
    criu(&w, "n1", true).await;
    criu(&w, "n2", true).await;
    assert_eq!(drained(&w, &id).await.mode, MigrationMode::Cold);
}
