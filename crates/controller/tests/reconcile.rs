//! The application reconciler against a real embedded store: release in `need` order with the injected
//! environment, status aggregation, restart of only what changed, reverse-order teardown, unschedulable reasons.

mod common;

use common::{world, WORDPRESS};
use fos_api::wire::Phase;
use fos_api::{InstanceId, State};

async fn apply(w: &common::World, yaml: &str) {
    let body = serde_json::json!({ "objects": [serde_yaml_ng::from_str::<serde_json::Value>(yaml).unwrap()] });
    let app = fos_controller::api::router(w.ctx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let resp = common::http().post(format!("http://{addr}/v1/apply")).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    server.abort();
}

#[tokio::test]
async fn components_are_released_in_need_order_with_their_environment() {
    let w = world();
    w.add_node("n1").await;
    apply(&w, WORDPRESS).await;
    w.reconcile().await;
    let (db, web) = (InstanceId::new("default", "wp", "db", 0), InstanceId::new("default", "wp", "web", 0));
    let d_db = w.desired(&db).await.expect("db placed");
    let d_web = w.desired(&web).await.expect("web placed");
    assert_eq!(d_db.state, State::Running);
    assert_eq!(d_web.state, State::Configured, "web waits for db");
    assert_eq!(d_web.env.get("FOS_NEED_DB_HOST").map(String::as_str), Some("127.0.0.1"));
    assert_eq!(d_web.env.get("FOS_NEED_DB_PORT").map(String::as_str), Some("3306"));
    assert_eq!(d_web.env.get("FOS_NEED_DB_NODE").map(String::as_str), Some("n1"));
    let st = w.status("default", "wp").await.unwrap();
    assert_eq!(st.phase, Phase::Deploying);
    assert!(st.components["web"].message.as_deref().unwrap_or("").contains("waits for db"));

    w.report(&db, State::Running, false).await;
    w.reconcile().await;
    assert_eq!(w.desired(&web).await.unwrap().state, State::Configured, "running is not ready");
    w.report(&db, State::Running, true).await;
    w.reconcile().await;
    assert_eq!(w.desired(&web).await.unwrap().state, State::Running, "released once db is ready");
    w.report(&web, State::Running, true).await;
    w.reconcile().await;
    let st = w.status("default", "wp").await.unwrap();
    assert_eq!(st.phase, Phase::Running);
    assert_eq!(st.components["db"].ready, 1);

    let events = w.ctx.events().list(None, None, 100).await.unwrap();
    let text: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert!(text.contains(&"scheduled db-0 on n1"), "{text:?}");
    assert!(text.contains(&"web-0 waits for db"), "{text:?}");
    assert!(text.iter().any(|m| m.starts_with("released web-0")), "{text:?}");
}

#[tokio::test]
async fn a_second_pass_writes_nothing() {
    let w = world();
    w.add_node("n1").await;
    apply(&w, WORDPRESS).await;
    w.reconcile().await;
    let rev = w.ctx.store.revision().await.unwrap();
    w.reconcile().await;
    assert_eq!(w.ctx.store.revision().await.unwrap(), rev);
}

#[tokio::test]
async fn a_changed_component_alone_gets_a_new_generation() {
    let w = world();
    w.add_node("n1").await;
    apply(&w, WORDPRESS).await;
    w.reconcile().await;
    let (db, web) = (InstanceId::new("default", "wp", "db", 0), InstanceId::new("default", "wp", "web", 0));
    let before = (w.desired(&db).await.unwrap().generation, w.desired(&web).await.unwrap().generation);
    apply(&w, &WORDPRESS.replace(r#"[sleep, "100"], ports"#, r#"[sleep, "200"], ports"#)).await;
    assert_eq!(w.record("default", "wp").await.unwrap().generation, 2);
    w.reconcile().await;
    assert_eq!(w.desired(&db).await.unwrap().generation, before.0, "db untouched");
    assert_eq!(w.desired(&web).await.unwrap().generation, before.1 + 1, "web restarted");
}

#[tokio::test]
async fn delete_tears_down_in_reverse_order() {
    let w = world();
    w.add_node("n1").await;
    apply(&w, WORDPRESS).await;
    w.reconcile().await;
    let (db, web) = (InstanceId::new("default", "wp", "db", 0), InstanceId::new("default", "wp", "web", 0));
    w.report(&db, State::Running, true).await;
    w.reconcile().await;
    w.report(&web, State::Running, true).await;

    let mut rec = w.record("default", "wp").await.unwrap();
    rec.deleting = true;
    let key = w.ctx.keys.desired_app("default", "wp");
    w.ctx.store.put(&key, serde_json::to_vec(&rec).unwrap(), None).await.unwrap();
    w.reconcile().await;
    assert!(w.desired(&web).await.is_none(), "web goes first");
    assert!(w.desired(&db).await.is_some(), "db stays while web still runs");
    assert_eq!(w.status("default", "wp").await.unwrap().phase, Phase::Deleting);
    w.reconcile().await;
    assert!(w.desired(&db).await.is_some(), "db stays until web's actual record is gone");
    w.remove_actual("n1", &web).await;
    w.reconcile().await;
    assert!(w.desired(&db).await.is_none(), "then db");
    w.remove_actual("n1", &db).await;
    w.reconcile().await;
    assert!(w.record("default", "wp").await.is_none(), "the application is removed at the end");
    assert!(w.status("default", "wp").await.is_none());
}

#[tokio::test]
async fn an_unplaceable_component_is_pending_with_the_reason() {
    let w = world();
    apply(&w, WORDPRESS).await;
    w.reconcile().await;
    let st = w.status("default", "wp").await.unwrap();
    assert_eq!(st.phase, Phase::Pending);
    assert!(st.unschedulable);
    assert!(st.message.unwrap().contains("cannot place db: 0 of 0 nodes are ready"));
    let events = w.ctx.events().list(Some("default"), Some("wp"), 10).await.unwrap();
    assert!(events.iter().any(|e| e.reason == "Unschedulable"));
}

const ON_A_NETWORK: &str = r#"
apiVersion: fos/v1
kind: Application
metadata: {name: wp}
spec:
  networks:
    - {name: wp-net, type: vxlan, ipRange: 10.77.0.0/24}
  components:
    - name: web
      need: [db]
      entity: {kind: native, command: [sleep, "100"], networks: [{network: wp-net}], ports: [{port: 8080}]}
    - name: db
      entity: {kind: native, command: [sleep, "100"], networks: [{network: wp-net}], readiness: {tcp: 3306}}
"#;

/// The address allocations of `wp-net` in the store: (address, holder).
async fn allocations(w: &common::World) -> Vec<(String, fos_api::network::AddressHolder)> {
    let prefix = w.ctx.keys.ipam_network_prefix("default", "wp-net");
    let listed = w.ctx.store.list(&prefix).await.unwrap();
    listed
        .kvs
        .iter()
        .map(|kv| (kv.key.rsplit('/').next().unwrap().to_string(), serde_json::from_slice(&kv.value).unwrap()))
        .collect()
}

#[tokio::test]
async fn a_need_on_a_shared_network_is_reached_at_the_address_allocated_at_placement() {
    let w = world();
    w.add_node("n1").await;
    apply(&w, ON_A_NETWORK).await;
    w.reconcile().await;
    let (db, web) = (InstanceId::new("default", "wp", "db", 0), InstanceId::new("default", "wp", "web", 0));
    let d_db = w.desired(&db).await.expect("db placed");
    let net = d_db.networks.get("wp-net").expect("the network's spec travels in the desired record");
    assert_eq!(net.ip_range.as_deref(), Some("10.77.0.0/24"));
    // Both addresses are allocated with the placement, before any agent configures anything.
    let db_ip = d_db.addresses.get("wp-net").expect("db's address allocated at placement").clone();
    let d_web = w.desired(&web).await.expect("web placed");
    let web_ip = d_web.addresses.get("wp-net").expect("web's address allocated at placement").clone();
    assert_ne!(db_ip, web_ip);
    assert_eq!(d_web.env.get("FOS_NEED_DB_HOST"), Some(&db_ip), "web knows db's address from the start");
    assert_eq!(d_web.env.get("FOS_NEED_DB_NODE"), None, "nor where db runs: it may move, its address stays");
    let held = allocations(&w).await;
    assert_eq!(held.len(), 2, "{held:?}");
    for (ip, h) in &held {
        assert!(h.placed && h.node == "n1", "{ip}: {h:?}");
        let owner = if *ip == db_ip { &db } else { &web };
        assert_eq!(h.instance.as_deref(), Some(owner.to_string().as_str()));
    }

    // Play the agent: db is configured on the network and reports the address it was given.
    let mut a = fos_api::ActualInstance::new(db.clone(), "n1");
    a.lifecycle = fos_api::lifecycle::Lifecycle::at(Some(State::Running));
    a.ready = true;
    a.observed_generation = d_db.generation;
    a.networks.insert("wp-net".into(), db_ip.clone());
    w.ctx.store.put(&w.ctx.keys.actual_instance("n1", &db), serde_json::to_vec(&a).unwrap(), None).await.unwrap();
    w.reconcile().await;
    let after = w.desired(&web).await.unwrap();
    assert_eq!(after.env.get("FOS_NEED_DB_HOST"), Some(&db_ip));
    assert_eq!(after.state, State::Running);
    assert_eq!(after.generation, d_web.generation, "web is released, not restarted");
    assert_eq!(w.desired(&db).await.unwrap().generation, d_db.generation);

    // Deleted: each address goes once its instance has neither a desired nor an actual record.
    let mut rec = w.record("default", "wp").await.unwrap();
    rec.deleting = true;
    w.ctx.store.put(&w.ctx.keys.desired_app("default", "wp"), serde_json::to_vec(&rec).unwrap(), None).await.unwrap();
    w.reconcile().await;
    assert!(w.desired(&web).await.is_none());
    assert_eq!(allocations(&w).await.len(), 1, "web's address released; db's kept while db runs");
    w.reconcile().await;
    w.remove_actual("n1", &db).await;
    w.reconcile().await;
    w.reconcile().await;
    assert!(allocations(&w).await.is_empty(), "every address released at the end");
}

#[tokio::test]
async fn an_unverified_instance_counts_neither_running_nor_ready_and_releases_nothing() {
    let w = world();
    w.add_node("n1").await;
    apply(&w, WORDPRESS).await;
    w.reconcile().await;
    let (db, web) = (InstanceId::new("default", "wp", "db", 0), InstanceId::new("default", "wp", "web", 0));
    let d_db = w.desired(&db).await.unwrap();
    // What a restarted agent leaves until it has checked db again: the old record, marked unverified.
    let mut a = fos_api::ActualInstance::new(db.clone(), "n1");
    a.lifecycle = fos_api::lifecycle::Lifecycle::at(Some(State::Running));
    a.ready = true;
    a.unverified = true;
    a.observed_generation = d_db.generation;
    let key = w.ctx.keys.actual_instance("n1", &db);
    w.ctx.store.put(&key, serde_json::to_vec(&a).unwrap(), None).await.unwrap();
    w.reconcile().await;
    assert_eq!(w.desired(&web).await.unwrap().state, State::Configured, "web still waits for db");
    let st = w.status("default", "wp").await.unwrap();
    assert_eq!((st.components["db"].running, st.components["db"].ready), (0, 0), "{st:?}");
    assert_ne!(st.phase, Phase::Running);
    // Checked again by the agent: db counts, web is released.
    a.unverified = false;
    w.ctx.store.put(&key, serde_json::to_vec(&a).unwrap(), None).await.unwrap();
    w.reconcile().await;
    assert_eq!(w.desired(&web).await.unwrap().state, State::Running);
    assert_eq!(w.status("default", "wp").await.unwrap().components["db"].ready, 1);
}

#[tokio::test]
async fn applications_reconciled_in_one_batch_see_the_capacity_the_others_took() {
    // Three applications of 1.5 cpu each on three 2-cpu nodes: reconciled in one batch (their commits in flight
    // together), each must see the node the ones before it took, so every node gets exactly one.
    let w = common::world_with(std::sync::Arc::new(fos_controller::SchedulerPlacer::default()));
    for n in ["n1", "n2", "n3"] {
        w.add_node(n).await;
    }
    for a in ["a", "b", "c"] {
        apply(
            &w,
            &format!(
                "apiVersion: fos/v1\nkind: Application\nmetadata: {{name: {a}}}\nspec:\n  components:\n    - name: big\n      \
                 entity: {{kind: native, command: [sleep, '100'], resources: {{cpu: 1500m}}}}\n"
            ),
        )
        .await;
    }
    w.reconcile().await;
    let mut nodes = Vec::new();
    for a in ["a", "b", "c"] {
        nodes.push(w.desired(&InstanceId::new("default", a, "big", 0)).await.expect("placed").node);
    }
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"], "one application per node");
}
