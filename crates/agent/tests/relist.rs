//! The driver re-lists when its watch reports a compaction (so records put meanwhile are not missed), and removes
//! actual records of instances this node does not have. The store is the real embedded store; only its first watch
//! is replaced by one that stays silent and then fails with `Compacted`, to put the driver in that situation.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::Env;
use fos_api::lifecycle::State;
use fos_api::record::{ActualInstance, InstanceId};
use fos_store::records::ActualInstances;
use fos_store::{
    EmbeddedConfig, EmbeddedStore, KeyValue, LeaseId, ListResult, Records, Revision, Store, StoreError, Txn, TxnResult,
    WatchStream,
};
use tokio::sync::oneshot;

/// The embedded store, except that the first watch under `desired/` never delivers and fails with `Compacted`
/// when `compact_now` fires.
struct CompactingWatch {
    inner: EmbeddedStore,
    trigger: Mutex<Option<oneshot::Receiver<()>>>,
}

#[async_trait]
impl Store for CompactingWatch {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        self.inner.list(prefix).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision, StoreError> {
        self.inner.put(key, value, lease).await
    }
    async fn delete(&self, key: &str) -> Result<(Revision, bool), StoreError> {
        self.inner.delete(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<(Revision, u64), StoreError> {
        self.inner.delete_prefix(prefix).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError> {
        self.inner.txn(txn).await
    }
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        if prefix.contains("/desired/") {
            let trigger = self.trigger.lock().unwrap().take();
            if let Some(rx) = trigger {
                return Ok(Box::pin(futures::stream::once(async move {
                    let _ = rx.await;
                    Err(StoreError::Compacted { requested: from, compacted: from + 1 })
                })));
            }
        }
        self.inner.watch(prefix, from).await
    }
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.inner.grant(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.keep_alive(lease).await
    }
    async fn revoke(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.inner.revoke(lease).await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }
    async fn revision(&self) -> Result<Revision, StoreError> {
        self.inner.revision().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_watch_is_followed_by_a_relist_that_misses_nothing() {
    let store_dir = tempfile::tempdir().unwrap();
    let (compact_now, trigger) = oneshot::channel();
    let store = Arc::new(CompactingWatch {
        inner: EmbeddedStore::open(EmbeddedConfig::new(store_dir.path())).unwrap(),
        trigger: Mutex::new(Some(trigger)),
    });
    // A stale actual record of an instance this node never had, and an unreadable one.
    let records = Records::new(store.clone(), fos_api::Keys::default());
    let ghost = ("n1".to_string(), InstanceId::new("default", "old", "ghost", 0));
    records.put::<ActualInstances>(&ghost, &ActualInstance::new(ghost.1.clone(), "n1"), None).await.unwrap();
    let garbled = ("n1".to_string(), InstanceId::new("default", "old", "garbled", 0));
    store.put(&records.key::<ActualInstances>(&garbled), b"{".to_vec(), None).await.unwrap();

    let mut env = Env::start_on("n1", store.clone(), store_dir).await;
    let stale = [records.key::<ActualInstances>(&ghost), records.key::<ActualInstances>(&garbled)];
    for _ in 0..100 {
        if store.get(&stale[0]).await.unwrap().is_none() && store.get(&stale[1]).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.get(&stale[0]).await.unwrap().is_none(), "stale actual record removed");
    assert!(store.get(&stale[1]).await.unwrap().is_none(), "unreadable stale actual record removed");

    // Put while the driver's watch is silent: only a re-list can find it.
    let d = env.desired("late", &["sleep", "300"]);
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.actual(&d.id).await.is_none(), "not seen through the silent watch");
    compact_now.send(()).unwrap();
    let a = w.state(State::Running).await;
    assert!(a.pid.is_some());
    env.delete(&d.id).await;
    w.deleted().await;
    env.shutdown().await;
}
