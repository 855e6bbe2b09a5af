//! Runs the reconcilers: campaigns for leadership through the store (lease + election), and while leading keeps the
//! [`Cache`] fed by one watch of the system's keys, queues the objects each change wakes, and reconciles them one at
//! a time in key order, committing each one's actions in a guarded transaction. Up to [`BATCH`] objects are
//! reconciled ahead of their commits (each sees the writes of those before it in the cache at once), and their
//! transactions are in flight together: the store's round trips overlap instead of adding up. An object whose
//! commit conflicts or fails is undone in the cache and looked at again after a short delay; every object is looked
//! at again every [`RESYNC`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use fos_store::{Election, Event, LeaseKeeper, Revision, StoreError, WatchStream};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::cache::Cache;
use super::commit::commit;
use super::CommitError;
use super::{Actions, Reconciler};
use crate::events::EventLog;
use crate::view::{ClusterView, Touched};
use crate::Context;

/// How many objects are reconciled ahead of their commits, whose transactions are then in flight together (the
/// environment's `FOS_CONTROLLER_BATCH` sets another, for measurements; 1 commits each object before the next).
pub const BATCH: usize = 64;

/// The batch size: [`BATCH`], or `FOS_CONTROLLER_BATCH` when set to a positive number.
fn batch_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var("FOS_CONTROLLER_BATCH").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(BATCH)
    })
}

/// How often every object is looked at again even when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(10);

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
    /// Reconciles the next queued object that is due and applies its writes to `cache` ahead of their commit;
    /// None when no object is due.
    fn prepare(&mut self, ctx: &Context, cache: &mut Cache) -> Option<Prepared>;
    /// Takes how the commit of a prepared object ended (a conflict or a failure looks at it again later).
    fn finish(&mut self, ctx: &Context, ticket: u64, result: &Result<Option<Revision>, CommitError>);
}

/// One object reconciled, its writes in the cache, its commit still to go.
pub struct Prepared {
    /// Names the object for [`Registered::finish`].
    pub ticket: u64,
    /// What the reconcile decided.
    pub actions: Actions,
}

/// Wraps a reconciler with its queue.
pub fn register<R: Reconciler>(reconciler: R) -> Box<dyn Registered> {
    Box::new(Queue {
        reconciler,
        ready: BTreeSet::new(),
        later: BTreeMap::new(),
        in_flight: BTreeMap::new(),
        tickets: 0,
    })
}

struct Queue<R: Reconciler> {
    reconciler: R,
    /// Objects to look at now, in key order.
    ready: BTreeSet<R::Key>,
    /// Objects to look at from a given time.
    later: BTreeMap<R::Key, Instant>,
    /// Objects reconciled whose commit is in flight, by ticket, with when to look at them again.
    in_flight: BTreeMap<u64, (R::Key, Option<Duration>)>,
    /// The last ticket handed out.
    tickets: u64,
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

    fn prepare(&mut self, ctx: &Context, cache: &mut Cache) -> Option<Prepared> {
        let now = Instant::now();
        let due: Vec<R::Key> = self.later.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for key in due {
            self.later.remove(&key);
            self.ready.insert(key);
        }
        let key = self.ready.pop_first()?;
        let started = std::time::Instant::now();
        cache.prepare(false);
        let actions = self.reconciler.reconcile(&key, cache.view(), Utc::now());
        cache.apply_ahead(&actions.writes);
        ctx.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.reconcile_duration.observe(started.elapsed());
        self.tickets += 1;
        self.in_flight.insert(self.tickets, (key, actions.requeue_after));
        Some(Prepared { ticket: self.tickets, actions })
    }

    fn finish(&mut self, ctx: &Context, ticket: u64, result: &Result<Option<Revision>, CommitError>) {
        let Some((key, requeue_after)) = self.in_flight.remove(&ticket) else { return };
        match result {
            Ok(_) => {
                if let Some(after) = requeue_after {
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
    }
}

/// The election lease's time to live (how long a crashed leader holds the others back): the node heartbeat TTL,
/// derived from `--node-lost-after`, at least one second.
fn election_ttl(ctx: &Context) -> Duration {
    ctx.timing.ttl.max(Duration::from_secs(1))
}

/// Runs the controller until `shutdown` turns true: campaigns for leadership (the store's election), and
/// reconciles while leading.
pub async fn run(ctx: Context, mut shutdown: watch::Receiver<bool>) {
    let election = Election::new(ctx.store.clone(), ctx.keys.election("controller"));
    while !*shutdown.borrow() {
        let mut keeper = match LeaseKeeper::grant(ctx.store.clone(), election_ttl(&ctx)).await {
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
    loop {
        if let Err(e) = follow(ctx).await {
            tracing::warn!("controller watch ended: {e}; reading the cluster again");
            tokio::time::sleep(ERROR_DELAY).await;
        }
    }
}

/// One read of the cluster, then the watch from there on, until the watch fails.
async fn follow(ctx: &Context) -> Result<(), StoreError> {
    let (mut controller, revision) = Controller::start(ctx).await?;
    let mut stream = ctx.store.watch(ctx.keys.root(), revision + 1).await?;
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    loop {
        controller.run_queued(Some(&mut stream)).await?;
        tokio::select! {
            next = stream.next() => controller.take(watched(next)?),
            _ = resync.tick() => controller.resync(),
            _ = sleep_until(controller.next_due()) => {}
        }
    }
}

/// The event of a watch item, or why the watch ended.
fn watched(next: Option<Result<Event, StoreError>>) -> Result<Event, StoreError> {
    match next {
        Some(item) => item,
        None => Err(StoreError::Unavailable("the controller's watch ended".into())),
    }
}

/// The controller while leading: the cache of the cluster and the reconcilers with their queues.
pub struct Controller {
    ctx: Context,
    events: EventLog,
    cache: Cache,
    reconcilers: Vec<Box<dyn Registered>>,
}

impl Controller {
    /// Reads the cluster and queues every object of every reconciler; returns the controller and the revision the
    /// cluster was read at (watch from the next one).
    pub async fn start(ctx: &Context) -> Result<(Controller, Revision), StoreError> {
        let records = ctx.records();
        let (view, revision) = ClusterView::read(&records).await?;
        count_states(ctx, &view);
        let mut controller = Controller {
            ctx: ctx.clone(),
            events: EventLog::new(records.clone()),
            cache: Cache::new(records, view),
            reconcilers: super::reconcilers(ctx),
        };
        for r in controller.reconcilers.iter_mut() {
            r.enqueue_all(controller.cache.view());
        }
        Ok((controller, revision))
    }

    /// The cached view of the cluster.
    pub fn view(&self) -> &ClusterView {
        self.cache.view()
    }

    /// Takes one watch event into the cache and queues the objects it wakes.
    pub fn take(&mut self, event: Event) {
        if !self.cache.is_relevant(&event.kv.key) {
            return;
        }
        let touched = self.cache.on_event(&event);
        if touched != Touched::Nothing {
            for r in self.reconcilers.iter_mut() {
                r.woken(&touched, self.cache.view());
            }
        }
    }

    /// Queues every object again (and refreshes the instances-by-state gauge).
    pub fn resync(&mut self) {
        self.cache.prepare(true);
        count_states(&self.ctx, self.cache.view());
        for r in self.reconcilers.iter_mut() {
            r.enqueue_all(self.cache.view());
        }
    }

    /// When the next delayed object is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.reconcilers.iter().filter_map(|r| r.next_due()).min()
    }

    /// Reconciles every queued object that is due, taking in what `stream` has already delivered before each
    /// batch: up to [`BATCH`] objects one after the other on the cache, then their commits together. Returns how
    /// many objects were reconciled.
    pub async fn run_queued(&mut self, mut stream: Option<&mut WatchStream>) -> Result<usize, StoreError> {
        let mut done = 0;
        loop {
            if let Some(stream) = stream.as_deref_mut() {
                while let Some(next) = stream.next().now_or_never() {
                    self.take(watched(next)?);
                }
            }
            let batch = self.prepare_batch();
            if batch.is_empty() {
                return Ok(done);
            }
            let records = self.ctx.records();
            let results =
                futures::future::join_all(batch.iter().map(|(_, p)| commit(&records, &self.events, &p.actions))).await;
            for ((r, prepared), result) in batch.into_iter().zip(results) {
                match &result {
                    Ok(Some(revision)) => self.cache.confirm(&prepared.actions.writes, *revision),
                    Ok(None) => {}
                    Err(_) => self.cache.reload(&prepared.actions.writes).await?,
                }
                self.reconcilers[r].finish(&self.ctx, prepared.ticket, &result);
                done += 1;
            }
            for touched in self.cache.take_touched() {
                for r in self.reconcilers.iter_mut() {
                    r.woken(&touched, self.cache.view());
                }
            }
        }
    }

    /// Reconciles up to [`BATCH`] due objects, offering the reconcilers in their order each time; each object's
    /// writes are in the cache before the next is reconciled.
    fn prepare_batch(&mut self) -> Vec<(usize, Prepared)> {
        let mut batch = Vec::new();
        while batch.len() < batch_size() {
            let next = self
                .reconcilers
                .iter_mut()
                .enumerate()
                .find_map(|(i, r)| r.prepare(&self.ctx, &mut self.cache).map(|p| (i, p)));
            match next {
                Some(prepared) => batch.push(prepared),
                None => break,
            }
        }
        batch
    }
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
    let (mut controller, _) = Controller::start(ctx).await?;
    controller.run_queued(None).await?;
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
