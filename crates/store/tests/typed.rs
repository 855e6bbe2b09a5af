//! Typed helpers over a real (embedded) store: JSON records, codec errors, CAS updates under contention, URI lists.

use std::sync::Arc;

use fos_api::{Keys, NodeStatus, StoreUri};
use fos_store::typed::{self, Update};
use fos_store::{EmbeddedConfig, EmbeddedStore, Store, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    n: u32,
}

fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn records_round_trip_and_bad_json_is_a_codec_error() {
    let (_dir, store) = open();
    let keys = Keys::default();
    let status: NodeStatus = serde_json::from_str(r#"{"ready": true, "address": "10.0.0.1:7070"}"#).unwrap();
    let key = keys.node_status("n1");
    let rev = typed::put(&*store, &key, &status, None).await.unwrap();
    let got = typed::get::<NodeStatus>(&*store, &key).await.unwrap().unwrap();
    assert_eq!((got.value, got.mod_revision), (status, rev));
    assert!(typed::get::<NodeStatus>(&*store, &keys.node_status("n2")).await.unwrap().is_none());

    store.put(&keys.node_status("n2"), b"{not json".to_vec(), None).await.unwrap();
    match typed::get::<NodeStatus>(&*store, &keys.node_status("n2")).await {
        Err(StoreError::Codec { key, .. }) => assert_eq!(key, keys.node_status("n2")),
        other => panic!("expected a codec error, got {other:?}"),
    }
    assert!(matches!(
        typed::list::<NodeStatus>(&*store, &keys.node_statuses_prefix()).await,
        Err(StoreError::Codec { .. })
    ));
}

#[tokio::test]
async fn create_only_writes_absent_keys() {
    let (_dir, store) = open();
    assert!(typed::create(&*store, "/c", &Counter { n: 1 }).await.unwrap());
    assert!(!typed::create(&*store, "/c", &Counter { n: 2 }).await.unwrap());
    assert_eq!(typed::get::<Counter>(&*store, "/c").await.unwrap().unwrap().value, Counter { n: 1 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_lose_nothing() {
    let (_dir, store) = open();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                typed::update(&*store, "/counter", |c: Option<Counter>| {
                    Ok(Update::Put(Counter { n: c.map_or(0, |c| c.n) + 1 }))
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(typed::get::<Counter>(&*store, "/counter").await.unwrap().unwrap().value, Counter { n: 100 });
    typed::update(&*store, "/counter", |_: Option<Counter>| Ok(Update::Delete)).await.unwrap();
    assert!(store.get("/counter").await.unwrap().is_none());
}

#[tokio::test]
async fn list_by_uri_matches_one_segment_and_subtrees() {
    let (_dir, store) = open();
    for key in [
        "/fos/0/actual/nodes/n1/info",
        "/fos/0/actual/heartbeats/n1",
        "/fos/0/actual/nodes/n2/info",
        "/fos/0/actual/nodes/n2/instances/web-0.wp.default",
        "/fos/0/desired/nodes/n1/info",
        "/fos/1/actual/nodes/n1/info",
    ] {
        store.put(key, b"{}".to_vec(), None).await.unwrap();
    }
    let keys = |uri: &str| {
        let store = store.clone();
        let uri = StoreUri::parse(uri).unwrap();
        async move { typed::list_uri(&*store, &uri).await.unwrap().kvs.into_iter().map(|kv| kv.key).collect::<Vec<_>>() }
    };
    assert_eq!(keys("afos://0/nodes/*/info").await, ["/fos/0/actual/nodes/n1/info", "/fos/0/actual/nodes/n2/info"]);
    assert_eq!(
        keys("afos://0/nodes/n2/**").await,
        ["/fos/0/actual/nodes/n2/info", "/fos/0/actual/nodes/n2/instances/web-0.wp.default"]
    );
    assert_eq!(keys("afos://0/heartbeats/n1").await, ["/fos/0/actual/heartbeats/n1"]);
    assert_eq!(keys("dfos://0/**").await, ["/fos/0/desired/nodes/n1/info"]);
}
