//! Fuzz target: the API's request decoding, end to end in one process: the real router (authentication, path and
//! query extraction, JSON bodies, limits, the operations behind them) over a real embedded store, sent requests with
//! fuzzed methods, paths, tokens, content types and bodies (bytes, or the seed corpus's objects with fields
//! replaced, removed, added and repeated). Every request is answered within a bound, never with a 5xx, and one
//! refused writes nothing to the store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use fos_api::auth::{Role, TokenRequest};
use fos_api::Keys;
use fos_controller::auth::Security;
use fos_controller::{Caller, Context, Metrics, SchedulerPlacer};
use fos_fuzz::{apply_json_edits, config, json_edit, object_seeds, JsonEdit};
use fos_store::seal::SealKey;
use fos_store::{EmbeddedConfig, EmbeddedStore, Store};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tower::ServiceExt;

/// A path segment: names, wildcards, traversal, percent escapes, long ones.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["default", "alpha", "wp", "web", "db-0.wp.default", "stop", "start", "restart",
            "pause", "resume", "e2e", "..", ".", "*", "**", "%2e%2e", "%00", "%ff", "a%2Fb", "root"])
            .prop_map(String::from),
        2 => "[a-z0-9.-]{0,12}",
        1 => "[a-zA-Z0-9%._~*-]{0,300}",
    ]
}

/// A method and a path (with query) of the API: mostly a route with its own method, sometimes another method or a
/// path near the API's.
fn route() -> impl Strategy<Value = (Method, String)> {
    let s = segment;
    let path = prop_oneof![
        8 => Just((Method::POST, "/v1/apply".to_string())),
        2 => Just((Method::POST, "/v1/apply?dryRun=true".to_string())),
        1 => Just((Method::GET, "/v1/apps".to_string())),
        1 => s().prop_map(|q| (Method::GET, format!("/v1/apps?tenant={q}"))),
        2 => (s(), s()).prop_map(|(t, n)| (Method::GET, format!("/v1/apps/{t}/{n}"))),
        2 => (s(), s()).prop_map(|(t, n)| (Method::DELETE, format!("/v1/apps/{t}/{n}"))),
        1 => Just((Method::GET, "/v1/entities".to_string())),
        1 => s().prop_map(|i| (Method::GET, format!("/v1/entities/{i}"))),
        2 => (s(), s(), s()).prop_map(|(t, n, a)| (Method::POST, format!("/v1/entities/{t}/{n}/{a}"))),
        1 => s().prop_map(|n| (Method::GET, format!("/v1/nodes/{n}"))),
        3 => "[a-z*/:.%0-9]{0,200}".prop_map(|u| (Method::GET, format!("/v1/store?uri={u}"))),
        1 => s().prop_map(|l| (Method::GET, format!("/v1/events?limit={l}"))),
        1 => s().prop_map(|i| (Method::GET, format!("/v1/logs/{i}?tail={i}"))),
        2 => Just((Method::POST, "/v1/tokens".to_string())),
        1 => Just((Method::GET, "/v1/tokens".to_string())),
        1 => s().prop_map(|i| (Method::DELETE, format!("/v1/tokens/{i}"))),
        2 => s().prop_map(|t| (Method::PUT, format!("/v1/tenants/{t}"))),
        1 => Just((Method::GET, "/v1/secrets".to_string())),
        1 => Just((Method::GET, "/metrics".to_string())),
        1 => "/[a-z0-9/._%-]{0,40}".prop_map(|p| (Method::GET, p)),
    ];
    let other = prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH]);
    (path, prop::option::weighted(0.1, other)).prop_map(|((m, p), o)| (o.unwrap_or(m), p))
}

/// A body: nothing, bytes, or an apply request of seed objects with edits.
#[derive(Debug, Clone)]
enum BodyCase {
    Empty,
    Bytes(Vec<u8>),
    Objects { picks: Vec<usize>, edits: Vec<JsonEdit>, dry_run: bool, wrap: bool },
    Json(serde_json::Value),
}

fn body() -> impl Strategy<Value = BodyCase> {
    prop_oneof![
        1 => Just(BodyCase::Empty),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(BodyCase::Bytes),
        6 => (prop::collection::vec(any::<usize>(), 1..4), prop::collection::vec(json_edit(), 0..5), any::<bool>(),
            prop::bool::weighted(0.9))
            .prop_map(|(picks, edits, dry_run, wrap)| BodyCase::Objects { picks, edits, dry_run, wrap }),
        1 => fos_fuzz::json_value().prop_map(BodyCase::Json),
    ]
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Admin,
    View,
    Garbage(String),
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        1 => Just(Auth::None),
        6 => Just(Auth::Admin),
        1 => Just(Auth::View),
        1 => "(Bearer |Basic |bearer )?(fos\\.)?[a-zA-Z0-9._=-]{0,80}".prop_map(Auth::Garbage),
    ]
}

#[test]
fn fuzz_api_request_decoding() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _inside = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("store"))).unwrap());
    let security = Security {
        require_tokens: true,
        secrets: Some(Arc::new(SealKey::generate().unwrap())),
        data_dir: Some(dir.path().to_path_buf()),
        free_margin: 0,
        ..Security::default()
    };
    let ctx = Context {
        store: store.clone(),
        keys: Keys::default(),
        placer: Arc::new(SchedulerPlacer::default()),
        metrics: Arc::new(Metrics::default()),
        node_name: "n1".into(),
        logs: Arc::new(fos_controller::api::logs::NoLogs),
        inbox: Arc::new(fos_controller::ops::transfer::NoInbox),
        security,
        timing: Default::default(),
    };
    let admin = Caller::local_admin();
    let token = |role, tenant: Option<&str>| {
        let req =
            TokenRequest { role, tenant: tenant.map(String::from), description: "fuzz".into(), ttl_seconds: None };
        rt.block_on(fos_controller::ops::tokens::create(&ctx, &admin, req)).unwrap().token
    };
    let admin_token = token(Role::Admin, None);
    let view_token = token(Role::View, Some("default"));
    let router = fos_controller::api::router(ctx.clone());
    let mut seeds = object_seeds();
    // The kinds of the access-control work, beside the corpus: a Secret and an entity reading it, as root.
    seeds.push(serde_json::json!({"apiVersion": "fos/v1", "kind": "Secret", "metadata": {"name": "db"},
        "spec": {"data": {"password": "pw"}}}));
    seeds.push(serde_json::json!({"apiVersion": "fos/v1", "kind": "Entity", "metadata": {"name": "reader"},
        "spec": {"kind": "native", "command": ["sleep", "9"], "runAs": "root",
            "env": {"PLAIN": "x", "PW": {"secretRef": "db/password"}}}}));

    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let mut runner = TestRunner::new(config());
    runner
        .run(&(route(), auth(), body(), prop::bool::weighted(0.9)), |((method, path), auth, body, json_type)| {
            let bytes: Vec<u8> = match &body {
                BodyCase::Empty => Vec::new(),
                BodyCase::Bytes(b) => b.clone(),
                BodyCase::Json(v) => serde_json::to_vec(v).unwrap(),
                BodyCase::Objects { picks, edits, dry_run, wrap } => {
                    let objects: Vec<serde_json::Value> =
                        picks.iter().map(|p| seeds[p % seeds.len()].clone()).collect();
                    let mut value = serde_json::json!({ "objects": objects, "dryRun": dry_run });
                    apply_json_edits(&mut value, edits);
                    if !wrap {
                        value = value["objects"].clone();
                    }
                    serde_json::to_vec(&value).unwrap()
                }
            };
            let mut req = Request::builder().method(method.clone()).uri(&path);
            if json_type {
                req = req.header("content-type", "application/json");
            }
            req = match &auth {
                Auth::None => req,
                Auth::Admin => req.header("authorization", format!("Bearer {admin_token}")),
                Auth::View => req.header("authorization", format!("Bearer {view_token}")),
                Auth::Garbage(g) => req.header("authorization", g.as_str()),
            };
            let Ok(req) = req.body(Body::from(bytes)) else {
                // Not an HTTP request at all (the client side refuses it): nothing to send.
                return Ok(());
            };
            if std::env::var_os("FOS_FUZZ_TRACE").is_some() {
                eprintln!("{method} {path} {auth:?} {body:?}");
            }
            let (status, before, after, text) = rt.block_on(async {
                let before = store.revision().await.unwrap();
                let answer = tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(req)).await;
                let resp = answer.expect("an answer within 10 s (a hang)").expect("infallible");
                let status = resp.status().as_u16();
                let text = if path.starts_with("/v1/watch") {
                    String::new()
                } else {
                    let body = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap_or_default();
                    String::from_utf8_lossy(&body).into_owned()
                };
                let after = store.revision().await.unwrap();
                (status, before, after, text)
            });
            *statuses.lock().unwrap().entry(status).or_default() += 1;
            prop_assert!(status < 500, "{method} {path} answered {status}: {text}");
            if status >= 400 {
                prop_assert_eq!(
                    before,
                    after,
                    "{} {} was refused ({}) but wrote to the store: {}",
                    method,
                    path,
                    status,
                    text
                );
            }
            Ok(())
        })
        .unwrap();
    eprintln!("API request decoding: {} requests, statuses {:?}", runner.config().cases, statuses.lock().unwrap());
}
