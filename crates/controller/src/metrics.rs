//! Prometheus metrics of the control plane: reconcile counts and durations, instances by state, API requests, and
//! store latency (measured by [`MeteredStore`], a [`Store`] wrapper). Rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fos_store::{KeyValue, LeaseId, ListResult, Revision, Store, StoreError, Txn, TxnResult, WatchStream};

const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A latency histogram with fixed buckets (seconds).
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    total: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ =
                writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}", self.counts[i].load(Ordering::Relaxed));
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {total}");
    }
}

/// Every metric of one `fosd`.
#[derive(Default)]
pub struct Metrics {
    /// Objects reconciled (one reconcile and its commit each).
    pub reconciles: AtomicU64,
    /// Reconciles whose commit failed on the store.
    pub reconcile_errors: AtomicU64,
    /// Duration of one object's reconcile and commit.
    pub reconcile_duration: Histogram,
    /// API requests served.
    pub api_requests: AtomicU64,
    /// Store operation latency.
    pub store_latency: Histogram,
    /// Store operations that failed.
    pub store_errors: AtomicU64,
    /// Instances by lifecycle state, as last counted by the controller.
    pub instances_by_state: Mutex<BTreeMap<String, u64>>,
    /// Whether this process is the controller leader (0 or 1).
    pub leader: AtomicU64,
}

impl Metrics {
    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(&mut out, "fos_reconcile_total", "Objects reconciled.", self.reconciles.load(Ordering::Relaxed));
        counter(
            &mut out,
            "fos_reconcile_errors_total",
            "Reconciles whose commit failed on the store.",
            self.reconcile_errors.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP fos_reconcile_duration_seconds Duration of one object's reconcile and commit.");
        let _ = writeln!(out, "# TYPE fos_reconcile_duration_seconds histogram");
        self.reconcile_duration.render(&mut out, "fos_reconcile_duration_seconds", "");
        counter(&mut out, "fos_api_requests_total", "API requests served.", self.api_requests.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP fos_store_request_duration_seconds Store operation latency.");
        let _ = writeln!(out, "# TYPE fos_store_request_duration_seconds histogram");
        self.store_latency.render(&mut out, "fos_store_request_duration_seconds", "");
        counter(
            &mut out,
            "fos_store_errors_total",
            "Store operations that failed.",
            self.store_errors.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP fos_instances Instances by lifecycle state.\n# TYPE fos_instances gauge");
        if let Ok(states) = self.instances_by_state.lock() {
            for (state, n) in states.iter() {
                let _ = writeln!(out, "fos_instances{{state=\"{state}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP fos_controller_leader Whether this process leads the controllers.\n# TYPE fos_controller_leader gauge\nfos_controller_leader {}",
            self.leader.load(Ordering::Relaxed)
        );
        out
    }
}

/// A [`Store`] that records the latency and failures of every operation in [`Metrics`].
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }

    fn record<T>(&self, start: Instant, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.metrics.store_latency.observe(start.elapsed());
        if r.is_err() {
            self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.record(t, r)
    }
    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        let t = Instant::now();
        let r = self.inner.list(prefix).await;
        self.record(t, r)
    }
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision, StoreError> {
        let t = Instant::now();
        let r = self.inner.put(key, value, lease).await;
        self.record(t, r)
    }
    async fn delete(&self, key: &str) -> Result<(Revision, bool), StoreError> {
        let t = Instant::now();
        let r = self.inner.delete(key).await;
        self.record(t, r)
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<(Revision, u64), StoreError> {
        let t = Instant::now();
        let r = self.inner.delete_prefix(prefix).await;
        self.record(t, r)
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResult, StoreError> {
        let t = Instant::now();
        let r = self.inner.txn(txn).await;
        self.record(t, r)
    }
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, from).await
    }
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let t = Instant::now();
        let r = self.inner.grant(ttl).await;
        self.record(t, r)
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.keep_alive(lease).await;
        self.record(t, r)
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
