//! The bounded event log under `system/events/`: every decision of the controller is recorded as an
//! [`EventRecord`] (scheduled, waiting, released, cannot place, deleted) and the oldest are trimmed beyond
//! [`MAX_EVENTS`]. The events of one reconcile go in one write, and a burst of alike events (5,000 instances
//! scheduled at once) is kept as its first few plus one line counting the rest.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use fos_api::wire::EventRecord;
use fos_store::records::Events;
use fos_store::{Records, StoreError, Txn, TxnOp, MAX_TXN_OPS};

use crate::reconcile::Event;

/// How many events are kept.
pub const MAX_EVENTS: usize = 1000;

/// How many events of one reason about one application one batch records before counting the rest.
pub const BURST: usize = 10;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Writes and reads the event log.
#[derive(Clone)]
pub struct EventLog {
    records: Records,
}

impl EventLog {
    /// The event log of `records`' system.
    pub fn new(records: Records) -> Self {
        EventLog { records }
    }

    /// Records an event about `tenant`/`app`.
    pub async fn emit(&self, tenant: &str, app: &str, reason: &'static str, message: String) -> Result<(), StoreError> {
        self.emit_all(&[Event::new(&(tenant.to_string(), app.to_string()), reason, message)]).await
    }

    /// Records `events` in one write: per application and reason, the first [`BURST`] and one event counting the
    /// others.
    pub async fn emit_all(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut seen: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
        let mut ops = Vec::new();
        let mut push = |tenant: &str, app: &str, reason: &str, message: String| -> Result<(), StoreError> {
            let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let id = format!("{:020}-{:06}", now.timestamp_micros(), seq % 1_000_000);
            let rec = EventRecord {
                time: now,
                tenant: Some(tenant.to_string()),
                app: Some(app.to_string()),
                reason: reason.to_string(),
                message,
            };
            ops.push(self.records.put_op::<Events>(&id, &rec)?);
            Ok(())
        };
        for e in events {
            let n = seen.entry((&e.app.0, &e.app.1, e.reason)).or_default();
            *n += 1;
            if *n <= BURST {
                tracing::info!(tenant = e.app.0, app = e.app.1, reason = e.reason, "{}", e.message);
                push(&e.app.0, &e.app.1, e.reason, e.message.clone())?;
            }
        }
        for ((tenant, app, reason), n) in seen {
            if n > BURST {
                let message = format!("{} more {reason} events like the above", n - BURST);
                tracing::info!(tenant, app, reason, "{message}");
                push(tenant, app, reason, message)?;
            }
        }
        let written = ops.len() as u64;
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let success: Vec<TxnOp> = ops.by_ref().take(MAX_TXN_OPS).collect();
            self.records.store().txn(Txn { compare: Vec::new(), success, failure: Vec::new() }).await?;
        }
        let before = SEQUENCE.load(Ordering::Relaxed).saturating_sub(written);
        if before / 64 != (before + written) / 64 {
            self.trim().await?;
        }
        Ok(())
    }

    /// Deletes the oldest events beyond [`MAX_EVENTS`].
    pub async fn trim(&self) -> Result<(), StoreError> {
        let list = self.records.store().list(&self.records.keys().events_prefix()).await?;
        let excess = list.kvs.len().saturating_sub(MAX_EVENTS);
        if excess == 0 {
            return Ok(());
        }
        for old in list.kvs[..excess].chunks(MAX_TXN_OPS) {
            let success = old.iter().map(|kv| TxnOp::Delete { key: kv.key.clone() }).collect();
            self.records.store().txn(Txn { compare: Vec::new(), success, failure: Vec::new() }).await?;
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
        let (list, _) = self.records.list::<Events>().await?;
        let mut out: Vec<EventRecord> = list
            .into_iter()
            .map(|(_, v)| v.value)
            .filter(|e| tenant.is_none() || e.tenant.as_deref() == tenant)
            .filter(|e| app.is_none() || e.app.as_deref() == app)
            .collect();
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
        Ok(out)
    }
}
