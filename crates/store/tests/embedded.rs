//! The conformance suite and the embedded-only behaviour (ownership, restart, background compaction) against the
//! embedded SQLite backend.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use fos_store::{EmbeddedConfig, EmbeddedStore, Store, StoreError};
use tempfile::TempDir;

fn config(dir: &TempDir) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::new(dir.path());
    config.lease_sweep_interval = Duration::from_millis(100);
    config
}

async fn embedded() -> (TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(config(&dir)).unwrap();
    (dir, Arc::new(store))
}

conformance_tests!(embedded);

#[tokio::test]
async fn one_owner_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(config(&dir)).unwrap();
    assert!(matches!(EmbeddedStore::open(config(&dir)), Err(StoreError::Locked(_))));
    drop(store);
    EmbeddedStore::open(config(&dir)).expect("the lock is released when the owner closes");
}

#[tokio::test]
async fn state_history_and_leases_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, lease) = {
        let store = EmbeddedStore::open(config(&dir)).unwrap();
        let r1 = store.put("/a", b"1".to_vec(), None).await.unwrap();
        store.put("/a", b"2".to_vec(), None).await.unwrap();
        let lease = store.grant(Duration::from_secs(60)).await.unwrap();
        store.put("/l", b"x".to_vec(), Some(lease)).await.unwrap();
        (r1, lease)
    };
    let store = EmbeddedStore::open(config(&dir)).unwrap();
    assert_eq!(store.get("/a").await.unwrap().unwrap().value, b"2");
    let mut watch = store.watch("/a", r1).await.unwrap();
    assert_eq!(conformance::next_event(&mut watch).await.kv.value, b"1");
    assert_eq!(conformance::next_event(&mut watch).await.kv.value, b"2");
    store.keep_alive(lease).await.expect("leases survive a restart");
    let fresh = store.grant(Duration::from_secs(60)).await.unwrap();
    assert_ne!(fresh, lease, "lease ids are never reused");
    store.revoke(lease).await.unwrap();
    assert_eq!(store.get("/l").await.unwrap(), None);
}

#[tokio::test]
async fn background_compaction_keeps_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.compaction_window = 10;
    config.compaction_interval = Duration::from_millis(100);
    let store = EmbeddedStore::open(config).unwrap();
    store.put("/untouched", b"u".to_vec(), None).await.unwrap();
    let mut last = 0;
    for i in 0..50 {
        last = store.put("/k", i.to_string().into_bytes(), None).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + conformance::PATIENCE;
    loop {
        match store.watch("/", last - 30).await {
            Err(StoreError::Compacted { compacted, .. }) => {
                assert!(compacted >= last - 10 && compacted <= last, "compacted at {compacted}, last {last}");
                break;
            }
            Err(e) => panic!("{e}"),
            Ok(_) => assert!(tokio::time::Instant::now() < deadline, "no background compaction"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut recent = store.watch("/k", last).await.expect("the window is retained");
    assert_eq!(conformance::next_event(&mut recent).await.kv.value, b"49");
    assert_eq!(store.get("/untouched").await.unwrap().unwrap().value, b"u", "live keys survive compaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_far_behind_catches_up_from_the_log() {
    let (_dir, store) = embedded().await;
    let mut watch = store.watch("/slow/", 0).await.unwrap();
    // More changes than the in-memory publication buffer holds, while the watcher reads nothing.
    let n = 6000;
    for i in 0..n {
        store.put(&format!("/slow/{i:05}"), b"x".to_vec(), None).await.unwrap();
    }
    for i in 0..n {
        let e = conformance::next_event(&mut watch).await;
        assert_eq!(e.kv.key, format!("/slow/{i:05}"), "events in order, none lost or repeated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_each_get_their_prefix_only() {
    let (_dir, store) = embedded().await;
    let nodes = 200;
    let mut watches = Vec::new();
    for n in 0..nodes {
        watches.push(store.watch(&format!("/nodes/n{n:03}/"), 0).await.unwrap());
    }
    let mut everything = store.watch("", 0).await.unwrap();
    let mut shared = store.watch("/nodes/n00", 0).await.unwrap();
    // One transaction touching several nodes, then one put per node.
    let txn = fos_store::Txn {
        compare: vec![],
        success: (0..3)
            .map(|n| fos_store::TxnOp::Put { key: format!("/nodes/n{n:03}/a"), value: b"t".to_vec(), lease: None })
            .collect(),
        failure: vec![],
    };
    assert!(store.txn(txn).await.unwrap().succeeded);
    for n in 0..nodes {
        store.put(&format!("/nodes/n{n:03}/b"), b"x".to_vec(), None).await.unwrap();
    }
    for (n, watch) in watches.iter_mut().enumerate() {
        if n < 3 {
            assert_eq!(conformance::next_event(watch).await.kv.key, format!("/nodes/n{n:03}/a"));
        }
        assert_eq!(conformance::next_event(watch).await.kv.key, format!("/nodes/n{n:03}/b"), "node {n}'s own put");
    }
    for key in ["/nodes/n000/a", "/nodes/n001/a", "/nodes/n002/a"] {
        assert_eq!(conformance::next_event(&mut everything).await.kv.key, key);
    }
    for n in 0..nodes {
        assert_eq!(conformance::next_event(&mut everything).await.kv.key, format!("/nodes/n{n:03}/b"));
    }
    let expected = ["/nodes/n000/a", "/nodes/n001/a", "/nodes/n002/a"]
        .into_iter()
        .map(String::from)
        .chain((0..10).map(|n| format!("/nodes/n{n:03}/b")));
    for key in expected {
        assert_eq!(conformance::next_event(&mut shared).await.kv.key, key, "a prefix shared by ten nodes");
    }
    // Nothing more arrives for a node than its own changes.
    let extra = tokio::time::timeout(Duration::from_millis(200), futures::StreamExt::next(&mut watches[5])).await;
    assert!(extra.is_err(), "node 5 got another node's change: {extra:?}");
}
