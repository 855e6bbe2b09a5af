//! A lease kept alive by a background task: refreshed every third of its TTL, reporting when it is lost (expired,
//! revoked, or not refreshed in time because the store was unreachable).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{LeaseId, Store, StoreError};

/// A lease refreshed in the background until dropped or revoked.
pub struct LeaseKeeper {
    store: Arc<dyn Store>,
    lease: LeaseId,
    lost: watch::Receiver<Option<String>>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Grants a lease of `ttl` and keeps it alive.
    pub async fn grant(store: Arc<dyn Store>, ttl: Duration) -> Result<LeaseKeeper, StoreError> {
        let lease = store.grant(ttl).await?;
        Ok(LeaseKeeper::spawn(store, lease, ttl))
    }

    /// Keeps the existing `lease` (granted with `ttl`) alive.
    pub fn spawn(store: Arc<dyn Store>, lease: LeaseId, ttl: Duration) -> LeaseKeeper {
        let (report, lost) = watch::channel(None);
        let task = tokio::spawn(keep(store.clone(), lease, ttl, report));
        LeaseKeeper { store, lease, lost, task }
    }

    /// The lease.
    pub fn id(&self) -> LeaseId {
        self.lease
    }

    /// Why the lease was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Waits until the lease is lost; returns why.
    pub async fn lost(&mut self) -> String {
        match self.lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the keep-alive task ended".to_string(),
        }
    }

    /// Stops refreshing and revokes the lease (its keys are deleted now).
    pub async fn revoke(self) -> Result<(), StoreError> {
        self.task.abort();
        match self.store.revoke(self.lease).await {
            Ok(()) | Err(StoreError::LeaseNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep(store: Arc<dyn Store>, lease: LeaseId, ttl: Duration, report: watch::Sender<Option<String>>) {
    let period = (ttl / 3).max(Duration::from_millis(50));
    let mut last_refresh = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        match store.keep_alive(lease).await {
            Ok(()) => last_refresh = Instant::now(),
            Err(StoreError::LeaseNotFound(_)) => {
                report.send_replace(Some(format!("lease {lease} expired or was revoked")));
                return;
            }
            Err(e) => {
                tracing::warn!(lease, error = %e, "lease keep-alive failed, retrying");
                if last_refresh.elapsed() >= ttl {
                    report.send_replace(Some(format!("lease {lease} not refreshed within its TTL: {e}")));
                    return;
                }
            }
        }
    }
}
