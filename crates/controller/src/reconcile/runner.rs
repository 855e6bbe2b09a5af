//! Runs the reconcilers: campaigns for leadership through the store (lease + election), and while leading keeps the
//! [`Cache`] fed by one watch of the system's keys, queues the objects each change wakes, and reconciles them one at
//! a time in key order, committing each one's actions in a guarded transaction. An object whose commit conflicts or
//! fails is looked at again after a short delay; every object is looked at again every [`RESYNC`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use fos_store::{Election, LeaseKeeper, StoreError};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::cache::Cache;
use super::commit::commit;
use super::CommitError;
use super::Reconciler;
use crate::events::EventLog;
use crate::view::{ClusterView, Touched};
use crate::Context;

/// How often every object is looked at again even when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(10);

/// The election lease's time to live: how long a crashed leader holds the others back.
pub const LEASE_TTL: Duration = Duration::from_secs(6);

/// How long an object whose commit conflicted waits before it is looked at again (the change that won usually
/// wakes it sooner).
const CONFLICT_DELAY: Duration = Duration::from_millis(100);

/// How long an object whose commit failed on the store waits before it is looked at again.
const ERROR_DELAY: Duration = Duration::from_secs(1);

/// A reconciler with its work queue, as the runner drives it.
#[async_trait]
pub trait Registered: Send {
    /// The reconciler's name.
    fn name(&self) -> &'static str;
    /// Queues the objects a change wakes.
    fn woken(&mut self, touched: &Touched, view: &ClusterView);
    /// Queues every object.
    fn enqueue_all(&mut self, view: &ClusterView);
    /// When the next delayed object is due.
    fn next_due(&self) -> Option<Instant>;
    /// Reconciles and commits the next queued object that is due; false when there is none.
    async fn step(&mut self, ctx: &Context, cache: &mut Cache, events: &EventLog) -> bool;
}

/// Wraps a reconciler with its queue.
pub fn register<R: Reconciler>(reconciler: R) -> Box<dyn Registered> {
    Box::new(Queue { reconciler, ready: BTreeSet::new(), later: BTreeMap::new() })
}

struct Queue<R: Reconciler> {
    reconciler: R,
    /// Objects to look at now, in key order.
    ready: BTreeSet<R::Key>,
    /// Objects to look at from a given time.
    later: BTreeMap<R::Key, Instant>,
}

impl<R: Reconciler> Queue<R> {
    fn later(&mut self, key: R::Key, delay: Duration) {
        let at = Instant::now() + delay;
        let slot = self.later.entry(key).or_insert(at);
        *slot = (*slot).min(at);
    }
}

#[async_trait]
impl<R: Reconciler> Registered for Queue<R> {
    fn name(&self) -> &'static str {
        self.reconciler.name()
    }

    fn woken(&mut self, touched: &Touched, view: &ClusterView) {
        self.ready.extend(self.reconciler.wakes(touched, view));
    }

    fn enqueue_all(&mut self, view: &ClusterView) {
        self.ready.extend(self.reconciler.all(view));
    }

    fn next_due(&self) -> Option<Instant> {
        self.later.values().min().copied()
    }

    async fn step(&mut self, ctx: &Context, cache: &mut Cache, events: &EventLog) -> bool {
        let now = Instant::now();
        let due: Vec<R::Key> = self.later.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for key in due {
            self.later.remove(&key);
            self.ready.insert(key);
        }
        let Some(key) = self.ready.pop_first() else { return false };
        let started = std::time::Instant::now();
        let actions = self.reconciler.reconcile(&key, cache.view(), Utc::now());
        let result = commit(&ctx.records(), events, Some(cache), &actions).await;
        ctx.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.reconcile_duration.observe(started.elapsed());
        match result {
            Ok(_) => {
                if let Some(after) = actions.requeue_after {
                    self.later(key, after);
                }
            }
            Err(CommitError::Conflict) => {
                tracing::debug!(reconciler = self.name(), ?key, "changed while reconciling; looking again");
                self.later(key, CONFLICT_DELAY);
            }
            Err(CommitError::Store(e)) => {
                ctx.metrics.reconcile_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reconciler = self.name(), ?key, "reconcile failed: {e}");
                self.later(key, ERROR_DELAY);
            }
        }
        true
    }
}

/// Runs the controller until `shutdown` turns true: campaigns for leadership (the store's election), and
/// reconciles while leading.
pub async fn run(ctx: Context, mut shutdown: watch::Receiver<bool>) {
    let election = Election::new(ctx.store.clone(), ctx.keys.election("controller"));
    while !*shutdown.borrow() {
        let mut keeper = match LeaseKeeper::grant(ctx.store.clone(), LEASE_TTL).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("cannot grant the election lease: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        let campaign = election.campaign(keeper.id(), ctx.node_name.as_bytes().to_vec());
        let leadership = tokio::select! {
            l = campaign => l,
            reason = keeper.lost() => {
                tracing::warn!("election lease lost while campaigning: {reason}");
                continue;
            }
            _ = shutdown.changed() => {
                let _ = keeper.revoke().await;
                return;
            }
        };
        let leadership = match leadership {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("leader election failed: {e}");
                let _ = keeper.revoke().await;
                continue;
            }
        };
        tracing::info!(node = ctx.node_name, "leading the controllers");
        ctx.metrics.leader.store(1, Ordering::Relaxed);
        tokio::select! {
            r = lead(&ctx) => if let Err(e) = r { tracing::warn!("controller stopped: {e}") },
            reason = keeper.lost() => tracing::warn!("lost leadership: {reason}"),
            _ = shutdown.changed() => {}
        }
        ctx.metrics.leader.store(0, Ordering::Relaxed);
        if let Err(e) = leadership.resign().await {
            tracing::debug!("resigning: {e}");
        }
        let _ = keeper.revoke().await;
    }
}

/// Reconciles while leading. A broken watch (compaction, store failure) reads the cluster again and carries on.
async fn lead(ctx: &Context) -> Result<(), StoreError> {
    let mut reconcilers = super::reconcilers(ctx);
    loop {
        if let Err(e) = follow(ctx, &mut reconcilers).await {
            tracing::warn!("controller watch ended: {e}; reading the cluster again");
            tokio::time::sleep(ERROR_DELAY).await;
        }
    }
}

/// One read of the cluster, then the watch from there on, until the watch fails.
async fn follow(ctx: &Context, reconcilers: &mut [Box<dyn Registered>]) -> Result<(), StoreError> {
    let records = ctx.records();
    let events = EventLog::new(records.clone());
    let (view, revision) = ClusterView::read(&records).await?;
    let mut stream = ctx.store.watch(ctx.keys.root(), revision + 1).await?;
    let mut cache = Cache::new(records, view);
    for r in reconcilers.iter_mut() {
        r.enqueue_all(cache.view());
    }
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        // Everything queued, taking in every change already delivered before each object.
        loop {
            while let Some(next) = stream.next().now_or_never() {
                take(&mut cache, reconcilers, next)?;
            }
            let mut worked = false;
            for r in reconcilers.iter_mut() {
                if r.step(ctx, &mut cache, &events).await {
                    worked = true;
                    break;
                }
            }
            if !worked {
                break;
            }
        }
        let due = reconcilers.iter().filter_map(|r| r.next_due()).min();
        tokio::select! {
            next = stream.next() => take(&mut cache, reconcilers, next)?,
            _ = resync.tick() => {
                count_states(ctx, cache.view());
                for r in reconcilers.iter_mut() {
                    r.enqueue_all(cache.view());
                }
            }
            _ = sleep_until(due) => {}
        }
    }
}

/// Takes one watch item into the cache and wakes the reconcilers it concerns.
fn take(
    cache: &mut Cache,
    reconcilers: &mut [Box<dyn Registered>],
    next: Option<Result<fos_store::Event, StoreError>>,
) -> Result<(), StoreError> {
    let event = match next {
        Some(Ok(event)) => event,
        Some(Err(e)) => return Err(e),
        None => return Err(StoreError::Unavailable("the controller's watch ended".into())),
    };
    if !cache.is_relevant(&event.kv.key) {
        return Ok(());
    }
    let touched = cache.on_event(&event);
    if touched != Touched::Nothing {
        for r in reconcilers.iter_mut() {
            r.woken(&touched, cache.view());
        }
    }
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One pass over every object of every reconciler, from a fresh read of the store (tests and tools; the running
/// controller is watch-driven).
pub async fn reconcile_all(ctx: &Context) -> Result<(), StoreError> {
    let records = ctx.records();
    let events = EventLog::new(records.clone());
    let (view, _) = ClusterView::read(&records).await?;
    count_states(ctx, &view);
    let mut cache = Cache::new(records.clone(), view);
    for mut r in super::reconcilers(ctx) {
        r.enqueue_all(cache.view());
        while r.step(ctx, &mut cache, &events).await {}
    }
    Ok(())
}

/// Updates the instances-by-state gauge.
fn count_states(ctx: &Context, view: &ClusterView) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for a in view.actual.values() {
        let state = a.state().map(|s| s.as_str()).unwrap_or("None");
        *counts.entry(state.to_string()).or_default() += 1;
    }
    if let Ok(mut m) = ctx.metrics.instances_by_state.lock() {
        *m = counts;
    }
}
