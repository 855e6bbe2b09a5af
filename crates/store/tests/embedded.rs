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
