//! Leader election through the store: a key bound to a lease, created only if absent (compare-and-swap); the
//! holder keeps the lease alive, the others watch the key and campaign again when it goes.

use std::sync::Arc;
use std::time::Duration;

use fos_store::{Compare, EventKind, LeaseId, Store, StoreError, Txn, TxnOp};
use futures::StreamExt;
use tokio::sync::oneshot;

/// The lease's time to live: how long a crashed leader blocks the others.
pub const LEASE_TTL: Duration = Duration::from_secs(6);

/// Leadership held: the lease is kept alive until [`Leadership::resign`] or until it cannot be refreshed.
pub struct Leadership {
    store: Arc<dyn Store>,
    lease: LeaseId,
    lost: Option<oneshot::Receiver<()>>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Resolves when the lease could not be refreshed (leadership is lost).
    pub async fn wait(&mut self) {
        if let Some(rx) = self.lost.as_mut() {
            let _ = rx.await;
            self.lost = None;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Gives leadership up now (revoking the lease deletes the election key).
    pub async fn resign(self) {
        self.keeper.abort();
        if let Err(e) = self.store.revoke(self.lease).await {
            tracing::debug!("revoking the election lease: {e}");
        }
    }
}

/// Campaigns until elected under `key` as `candidate`.
pub async fn campaign(store: &Arc<dyn Store>, key: &str, candidate: &str) -> Result<Leadership, StoreError> {
    loop {
        let lease = store.grant(LEASE_TTL).await?;
        let txn = Txn {
            compare: vec![Compare::absent(key)],
            success: vec![TxnOp::Put {
                key: key.to_string(),
                value: candidate.as_bytes().to_vec(),
                lease: Some(lease),
            }],
            failure: Vec::new(),
        };
        let result = store.txn(txn).await?;
        if result.succeeded {
            let (tx, rx) = oneshot::channel();
            let keeper_store = store.clone();
            let keeper = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_TTL / 3).await;
                    if let Err(e) = keeper_store.keep_alive(lease).await {
                        tracing::warn!("election lease lost: {e}");
                        let _ = tx.send(());
                        return;
                    }
                }
            });
            return Ok(Leadership { store: store.clone(), lease, lost: Some(rx), keeper });
        }
        store.revoke(lease).await?;
        let mut stream = store.watch(key, result.revision + 1).await?;
        let gone = async {
            while let Some(ev) = stream.next().await {
                if matches!(ev, Ok(e) if e.kind == EventKind::Delete && e.kv.key == key) {
                    return;
                }
            }
        };
        // Re-check now and then even without a delete event (the watch may have been cut).
        let _ = tokio::time::timeout(LEASE_TTL, gone).await;
    }
}
