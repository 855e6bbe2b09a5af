//! The controller's seams on real stores: operations refuse what the caller's tenants do not allow, a commit whose
//! guard no longer holds writes nothing, the cache never goes back to an older copy of its own write, a burst of
//! events is recorded as a few, and an application bigger than one etcd transaction is placed on a real etcd.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{world, WORDPRESS};
use fos_api::auth::Role;
use fos_api::wire::{ApplyRequest, ListQuery};
use fos_api::InstanceId;
use fos_controller::ops::{self, Caller, OpError};
use fos_controller::reconcile::cache::Cache;
use fos_controller::reconcile::commit::commit;
use fos_controller::reconcile::{Actions, CommitError, Event, Guard, Write};
use fos_controller::view::ClusterView;
use fos_store::records::{Apps, DesiredInstances};
use fos_store::{EventKind, Store};

fn object(yaml: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn tenant(t: &str, yaml: &str) -> serde_json::Value {
    let mut v = object(yaml);
    v["metadata"]["tenant"] = serde_json::Value::String(t.into());
    v
}

fn only(tenant: &str) -> Caller {
    Caller::of_tenant(format!("{tenant}-user"), tenant, Role::Edit)
}

#[tokio::test]
async fn operations_keep_a_caller_to_its_tenants() {
    let w = world();
    let admin = Caller::local_admin();
    let req = |objects| ApplyRequest { objects, dry_run: false, prune_source: None };
    ops::apply::apply(&w.ctx, &admin, req(vec![tenant("alpha", WORDPRESS), tenant("beta", WORDPRESS)])).await.unwrap();

    let alpha = only("alpha");
    // Writing into another tenant is refused, and nothing of the set is stored.
    let err = ops::apply::apply(&w.ctx, &alpha, req(vec![tenant("alpha", ENTITY), tenant("beta", ENTITY)])).await;
    assert!(matches!(err, Err(OpError::Forbidden(ref m)) if m.contains("beta")), "{err:?}");
    let stored = w.ctx.records().get::<Apps>(&("alpha".into(), "tick".into())).await.unwrap();
    assert!(stored.is_none(), "all or nothing");
    // Images are shared by every tenant: only a caller acting on all of them applies one.
    let image = object("apiVersion: fos/v1\nkind: Image\nmetadata: {name: cirros}\nspec: {uri: 'http://x/c.img', checksum: 7d6355852aeb6dbcd191bcda7cd74f1536cfe5cbf8a10495a7283a8396e4b75b, format: qcow2}\n");
    let err = ops::apply::apply(&w.ctx, &alpha, req(vec![image])).await;
    assert!(matches!(err, Err(OpError::Forbidden(_))), "{err:?}");

    // Reads show only the caller's tenants; another tenant's application is not found, to read, delete or step.
    let apps = ops::read::apps(&w.ctx, &alpha, &ListQuery::default()).await.unwrap();
    let tenants: BTreeSet<String> = apps.iter().map(|a| a.record.object.metadata().tenant().to_string()).collect();
    assert_eq!(tenants, BTreeSet::from(["alpha".to_string()]));
    assert!(matches!(ops::read::app(&w.ctx, &alpha, "beta", "wp").await, Err(OpError::NotFound(_))));
    assert!(matches!(ops::delete::delete(&w.ctx, &alpha, "beta", "wp").await, Err(OpError::NotFound(_))));
    assert!(matches!(
        ops::set_state::set_state(&w.ctx, &alpha, "beta", "wp", fos_api::Action::Stop).await,
        Err(OpError::NotFound(_))
    ));
    let keys = ops::read::store(&w.ctx, &alpha, "dfos://0/**").await.unwrap();
    assert!(!keys.is_empty(), "alpha's own keys are shown");
    assert!(keys.iter().all(|e| !e.key.contains("beta")), "no key of beta: {keys:?}");
    let beta = w.ctx.records().get::<Apps>(&("beta".into(), "wp".into())).await.unwrap().unwrap();
    assert!(!beta.value.deleting, "beta's application untouched");
    ops::delete::delete(&w.ctx, &alpha, "alpha", "wp").await.expect("its own tenant");
}

const ENTITY: &str =
    "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: tick}\nspec: {kind: native, command: [sleep, '9']}\n";

#[tokio::test]
async fn a_commit_whose_guard_moved_writes_nothing_and_the_cache_keeps_its_own_write() {
    let w = world();
    w.add_node("n1").await;
    let admin = Caller::local_admin();
    let req = ApplyRequest { objects: vec![object(WORDPRESS)], dry_run: false, prune_source: None };
    ops::apply::apply(&w.ctx, &admin, req).await.unwrap();
    let records = w.ctx.records();
    let key = ("default".to_string(), "wp".to_string());
    let app = records.get::<Apps>(&key).await.unwrap().unwrap();
    let id = InstanceId::new("default", "wp", "db", 0);
    let desired = |generation| fos_api::DesiredInstance {
        generation,
        ..fos_api::DesiredInstance::new(id.clone(), "n1", fos_api::EntitySpec::native(["sleep", "9"]))
    };

    let events = w.ctx.events();

    // The application moved on since it was read: nothing is written, the caller hears of the conflict.
    let stale = Actions {
        guards: vec![Guard::App(key.clone(), app.mod_revision - 1)],
        writes: vec![Write::PutDesired(Box::new(desired(1)))],
        ..Default::default()
    };
    let (view, revision) = ClusterView::read(&records).await.unwrap();
    let mut cache = Cache::new(records.clone(), view);
    let mut watch = records.store().watch(records.keys().root(), revision + 1).await.unwrap();
    cache.apply_ahead(&stale.writes);
    assert_eq!(cache.view().desired[&id].generation, 1, "the cache holds a write ahead of its commit");
    assert!(matches!(commit(&records, &events, &stale).await, Err(CommitError::Conflict)));
    assert!(records.get::<DesiredInstances>(&("n1".into(), id.clone())).await.unwrap().is_none());
    cache.reload(&stale.writes).await.unwrap();
    assert!(!cache.view().desired.contains_key(&id), "a write that did not go in is undone in the cache");

    // Guarded by the revision read, it goes in; the cache holds it at once, and the watch's later copy of an
    // older write of the same record does not take the cache back.
    let first = Actions {
        guards: vec![Guard::App(key.clone(), app.mod_revision)],
        writes: vec![Write::PutDesired(Box::new(desired(1)))],
        ..Default::default()
    };
    cache.apply_ahead(&first.writes);
    let at = commit(&records, &events, &first).await.unwrap().expect("written");
    cache.confirm(&first.writes, at);
    let second = Actions {
        guards: vec![Guard::App(key.clone(), app.mod_revision)],
        writes: vec![Write::PutDesired(Box::new(desired(2)))],
        ..Default::default()
    };
    cache.apply_ahead(&second.writes);
    let at = commit(&records, &events, &second).await.unwrap().expect("written");
    cache.confirm(&second.writes, at);
    assert_eq!(cache.view().desired[&id].generation, 2);
    use futures::StreamExt;
    let late = loop {
        let ev = watch.next().await.unwrap().unwrap();
        if ev.kind == EventKind::Put && ev.kv.key.ends_with("/instances/db-0.wp.default") {
            break ev;
        }
    };
    let touched = cache.on_event(&late);
    assert_eq!(touched, fos_controller::view::Touched::Nothing, "its own older write is skipped");
    assert_eq!(cache.view().desired[&id].generation, 2, "the cache did not go back");
}

#[tokio::test]
async fn a_burst_of_alike_events_is_recorded_as_a_few() {
    let w = world();
    let key = ("default".to_string(), "big".to_string());
    let burst: Vec<Event> =
        (0..500).map(|i| Event::new(&key, "Scheduled", format!("scheduled c{i}-0 on n1"))).collect();
    w.ctx.events().emit_all(&burst).await.unwrap();
    let list = w.ctx.events().list(None, None, 1000).await.unwrap();
    let messages: Vec<&str> = list.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), fos_controller::events::BURST + 1, "{messages:?}");
    assert_eq!(messages[0], "scheduled c0-0 on n1");
    assert_eq!(messages.last().copied(), Some("490 more Scheduled events like the above"));
}

#[tokio::test]
async fn an_application_bigger_than_one_etcd_transaction_is_placed() {
    let etcd = fos_store::testing::EtcdServer::start().await.expect("etcd");
    let store: Arc<dyn Store> = etcd.store().await.expect("connect");
    let w = common::world_on(store);
    w.add_node("n1").await;
    let app =
        "apiVersion: fos/v1\nkind: Application\nmetadata: {name: wide}\nspec:\n  components:\n    - name: c\n      \
               replicas: 300\n      entity: {kind: native, command: [sleep, '9']}\n";
    let req = ApplyRequest { objects: vec![object(app)], dry_run: false, prune_source: None };
    ops::apply::apply(&w.ctx, &Caller::local_admin(), req).await.unwrap();
    w.reconcile().await;
    let (desired, _) = w.ctx.records().list::<DesiredInstances>().await.unwrap();
    assert_eq!(desired.len(), 300, "300 records, more than etcd takes in one transaction, all written");
    let status = w.status("default", "wide").await.unwrap();
    assert_eq!(status.components["c"].placed, 300);
}
