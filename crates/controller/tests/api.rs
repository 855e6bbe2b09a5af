//! The HTTP API against a real embedded store: apply is atomic and idempotent, errors name the object and field,
//! dry runs store nothing, the store view matches URIs.

mod common;

use common::{world, WORDPRESS};
use fos_api::wire::{AppView, ApplyResponse, Change, ErrorBody, StoreEntry, STATE_ANNOTATION};

struct Server {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(w: &common::World) -> Server {
    let app = fos_controller::api::router(w.ctx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { base: format!("http://{addr}"), task }
}

fn objects(yamls: &[&str]) -> Vec<serde_json::Value> {
    yamls.iter().map(|y| serde_yaml_ng::from_str(y).unwrap()).collect()
}

async fn post(s: &Server, body: serde_json::Value) -> reqwest::Response {
    common::http().post(format!("{}/v1/apply", s.base)).json(&body).send().await.unwrap()
}

const ENTITY: &str =
    "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: tick}\nspec: {kind: native, command: [sleep, '9']}\n";

#[tokio::test]
async fn applying_twice_is_a_no_op() {
    let w = world();
    let s = serve(&w).await;
    let body = serde_json::json!({ "objects": objects(&[WORDPRESS, ENTITY]) });
    let first: ApplyResponse = post(&s, body.clone()).await.json().await.unwrap();
    assert_eq!(first.changes.iter().map(|c| c.change).collect::<Vec<_>>(), [Change::Created, Change::Created]);
    let rev = w.ctx.store.revision().await.unwrap();
    let second: ApplyResponse = post(&s, body).await.json().await.unwrap();
    assert_eq!(second.changes.iter().map(|c| c.change).collect::<Vec<_>>(), [Change::Unchanged, Change::Unchanged]);
    assert_eq!(w.ctx.store.revision().await.unwrap(), rev, "nothing rewritten");
}

#[tokio::test]
async fn one_bad_object_stores_nothing_and_is_named() {
    let w = world();
    let s = serve(&w).await;
    let bad = WORDPRESS.replace("need: [db]", "need: [dbb]");
    let resp = post(&s, serde_json::json!({ "objects": objects(&[ENTITY, &bad]) })).await;
    assert_eq!(resp.status().as_u16(), 422);
    let err: ErrorBody = resp.json().await.unwrap();
    assert_eq!(err.index, Some(1));
    assert_eq!(err.name.as_deref(), Some("wp"));
    assert_eq!(err.path.as_deref(), Some("spec.components[0].need[0]"));
    assert!(err.message.contains("dbb"), "{}", err.message);
    assert!(w.ctx.store.list(&w.ctx.keys.desired_apps_prefix()).await.unwrap().kvs.is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_dry_run_plans_and_stores_nothing() {
    let w = world();
    w.add_node("n1").await;
    let s = serve(&w).await;
    let resp: ApplyResponse =
        post(&s, serde_json::json!({ "objects": objects(&[WORDPRESS]), "dryRun": true })).await.json().await.unwrap();
    assert!(resp.dry_run);
    assert_eq!(resp.plans[0].start_order, vec![vec!["db".to_string()], vec!["web".to_string()]]);
    assert_eq!(resp.plans[0].placements.len(), 2);
    assert!(w.ctx.store.list(&w.ctx.keys.desired_apps_prefix()).await.unwrap().kvs.is_empty());
}

#[tokio::test]
async fn the_store_view_matches_wildcards() {
    let w = world();
    w.add_node("n1").await;
    w.add_node("n2").await;
    let s = serve(&w).await;
    let url = format!("{}/v1/store?uri=afos://0/nodes/*/info", s.base);
    let list: Vec<StoreEntry> = common::http().get(url).send().await.unwrap().json().await.unwrap();
    let keys: Vec<&str> = list.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["/fos/0/actual/nodes/n1/info", "/fos/0/actual/nodes/n2/info"]);
    let resp = common::http().get(format!("{}/v1/store?uri=http://x", s.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
}

async fn verb(s: &Server, path: &str) -> reqwest::Response {
    common::http().post(format!("{}{path}", s.base)).send().await.unwrap()
}

#[tokio::test]
async fn entity_verbs_follow_the_lifecycle_and_act_only_on_standalone_entities() {
    let w = world();
    let s = serve(&w).await;
    let created: ApplyResponse =
        post(&s, serde_json::json!({ "objects": objects(&[WORDPRESS, ENTITY]) })).await.json().await.unwrap();
    assert_eq!(created.changes.len(), 2);

    // Nothing runs yet: `run` is refused by the lifecycle, with its own words, and nothing is written.
    let rev = w.ctx.store.revision().await.unwrap();
    let resp = verb(&s, "/v1/entities/default/tick/run").await;
    assert_eq!(resp.status().as_u16(), 409);
    let err: ErrorBody = resp.json().await.unwrap();
    assert!(err.message.contains("cannot run an instance that is not defined"), "{}", err.message);
    assert_eq!(w.ctx.store.revision().await.unwrap(), rev, "a refused verb writes nothing");

    // `define` is allowed from nothing: the record asks for Defined and its generation moves on.
    let view: AppView = verb(&s, "/v1/entities/default/tick/define").await.json().await.unwrap();
    assert_eq!(view.record.generation, 2);
    assert_eq!(view.record.object.metadata().annotations.get(STATE_ANNOTATION).map(String::as_str), Some("Defined"));

    // Verbs act on standalone entities only, and on ones that exist.
    assert_eq!(verb(&s, "/v1/entities/default/wp/define").await.status().as_u16(), 409);
    assert_eq!(verb(&s, "/v1/entities/default/nope/define").await.status().as_u16(), 404);
    assert_eq!(verb(&s, "/v1/entities/default/tick/fly").await.status().as_u16(), 422);
}

#[tokio::test]
async fn delete_marks_the_application_once() {
    let w = world();
    let s = serve(&w).await;
    let _: ApplyResponse =
        post(&s, serde_json::json!({ "objects": objects(&[WORDPRESS]) })).await.json().await.unwrap();
    let delete = || common::http().delete(format!("{}/v1/apps/default/wp", s.base)).send();
    let first: AppView = delete().await.unwrap().json().await.unwrap();
    assert!(first.record.deleting);
    let rev = w.ctx.store.revision().await.unwrap();
    let again: AppView = delete().await.unwrap().json().await.unwrap();
    assert!(again.record.deleting);
    assert_eq!(w.ctx.store.revision().await.unwrap(), rev, "deleting twice writes once");
    let missing = common::http().delete(format!("{}/v1/apps/default/nope", s.base)).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
