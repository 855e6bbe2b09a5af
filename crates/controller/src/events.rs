//! The bounded event log under `system/events/`: every decision of the controller is recorded as an
//! [`EventRecord`] (scheduled, waiting, released, cannot place, deleted) and the oldest are trimmed beyond
//! [`MAX_EVENTS`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;
use fos_api::wire::EventRecord;
use fos_api::Keys;
use fos_store::{Store, StoreError};

/// How many events are kept.
pub const MAX_EVENTS: usize = 1000;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Writes and reads the event log.
#[derive(Clone)]
pub struct EventLog {
    store: Arc<dyn Store>,
    keys: Keys,
}

impl EventLog {
    /// The event log of `keys`' system in `store`.
    pub fn new(store: Arc<dyn Store>, keys: Keys) -> Self {
        EventLog { store, keys }
    }

    /// Records an event about `tenant`/`app`.
    pub async fn emit(&self, tenant: &str, app: &str, reason: &str, message: String) -> Result<(), StoreError> {
        tracing::info!(tenant, app, reason, "{message}");
        let now = Utc::now();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}{:020}-{:06}", self.keys.events_prefix(), now.timestamp_micros(), seq % 1_000_000);
        let rec = EventRecord {
            time: now,
            tenant: Some(tenant.to_string()),
            app: Some(app.to_string()),
            reason: reason.to_string(),
            message,
        };
        let value =
            serde_json::to_vec(&rec).map_err(|e| StoreError::Codec { key: key.clone(), message: e.to_string() })?;
        self.store.put(&key, value, None).await?;
        if seq % 64 == 63 {
            self.trim().await?;
        }
        Ok(())
    }

    /// Deletes the oldest events beyond [`MAX_EVENTS`].
    pub async fn trim(&self) -> Result<(), StoreError> {
        let list = self.store.list(&self.keys.events_prefix()).await?;
        let excess = list.kvs.len().saturating_sub(MAX_EVENTS);
        for kv in list.kvs.iter().take(excess) {
            self.store.delete(&kv.key).await?;
        }
        Ok(())
    }

    /// The last `limit` events, oldest first, of `app` (of `tenant`) when given.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        app: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let list = self.store.list(&self.keys.events_prefix()).await?;
        let mut out: Vec<EventRecord> = list
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice::<EventRecord>(&kv.value).ok())
            .filter(|e| tenant.is_none() || e.tenant.as_deref() == tenant)
            .filter(|e| app.is_none() || e.app.as_deref() == app)
            .collect();
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
        Ok(out)
    }
}
