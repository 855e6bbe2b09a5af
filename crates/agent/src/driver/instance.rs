//! One instance's task: drives its runtime one lifecycle step at a time toward the desired state, writes the actual
//! record after each step, retries failures with exponential backoff (a step the runtime does not support, or a
//! record it cannot run, is held instead until the desired record changes), applies the restart policy when the
//! process exits, restarts the instance on a generation bump, follows its readiness probe, and tears it down when
//! its desired record is deleted. Calling the runtime for one step is [`step`]'s.

mod migrate;
mod step;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fos_api::lifecycle::{Action, Lifecycle, State};
use fos_api::manifest::RestartPolicy;
use fos_api::record::{ActualInstance, DesiredInstance, InstanceId};
use fos_store::records::ActualInstances;
use tokio::sync::watch;
use tokio::time::Instant;

use self::step::StepError;
use super::Shared;
use crate::runtime::{ErrorClass, InstanceContext, Recovered, RunState, Runtime};

/// Where an instance task starts from.
pub struct Start {
    /// The instance.
    pub id: InstanceId,
    /// What the runtime found of it after a restart.
    pub recovered: Option<(Recovered, Arc<dyn Runtime>)>,
    /// The actual record a previous agent left, if any.
    pub previous: Option<ActualInstance>,
}

struct Task {
    shared: Arc<Shared>,
    id: InstanceId,
    actual: ActualInstance,
    runtime: Option<Arc<dyn Runtime>>,
    /// The context last handed to the runtime's define, configure or run (the one teardown steps get).
    cx: Option<InstanceContext>,
    run_rx: Option<watch::Receiver<RunState>>,
    /// The generation the runtime was last configured or run with.
    applied: Option<u64>,
    /// The (generation, state) last seen in the desired record.
    seen: Option<(u64, State)>,
    /// Consecutive step failures.
    failures: u32,
    /// Consecutive crashes (reset once a run lasted `stable_after`).
    crashes: u32,
    retry_at: Instant,
    /// Do not retry from Error until the desired record changes (restart policy said no, or the step cannot work).
    no_retry: bool,
    /// Do not run again until the desired record changes (the process completed and the policy says no restart).
    hold: bool,
    /// The actual record changed since it was last written (steps that follow each other at once are written
    /// together, when the instance rests or a step may take long).
    dirty: bool,
    /// The next successful run is a restart by the policy.
    restarting: bool,
    running_since: Option<Instant>,
    /// The desired record a runtime recovered the instance with (for re-attaching its networks).
    recovered_desired: Option<DesiredInstance>,
    /// The last actual record could not be written (the store was unreachable): written again at the next chance.
    unpublished: bool,
}

/// How long one write of the actual record may take: an unreachable store must not hold the instance's steps (a
/// fence, a restart) back; what could not be written is written once the store answers again.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs an instance task until the instance is gone and undesired, or the driver stops (channel closed).
pub async fn drive(shared: Arc<Shared>, start: Start, mut desired_rx: watch::Receiver<Option<DesiredInstance>>) {
    let mut t = Task::new(shared, start);
    if t.runtime.is_some() {
        // Recovered: publish what is really there before moving anything.
        t.write().await;
        t.reattach().await;
    }
    loop {
        let desired = desired_rx.borrow_and_update().clone();
        t.observe(desired.as_ref());
        if let (Some(d), Some(source)) = (desired.as_ref(), migrate::source_of(desired.as_ref())) {
            // This node sends the instance away: take it off and send its volumes, then hold until the controller
            // moves the record (or gives the migration up).
            if !t.sent(&source.1) {
                t.migrate_out(d, source, &mut desired_rx).await;
            } else if desired_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        if t.actual.migration.is_some() || t.actual.state() == Some(State::TakingOff) {
            match desired.as_ref() {
                None if t.actual.state() == Some(State::TakingOff) => t.depart().await,
                Some(d) if t.actual.state() == Some(State::TakingOff) => t.resume_after_abort(d).await,
                _ => {
                    t.actual.migration = None;
                    t.dirty = true;
                }
            }
            continue;
        }
        let target = t.target(desired.as_ref());
        match t.actual.lifecycle.next_toward(target) {
            None => {
                if t.actual.state().is_none() && desired.is_none() {
                    t.remove().await;
                    return;
                }
                if !t.rest(&mut desired_rx, desired.as_ref()).await {
                    return;
                }
            }
            // After a failure (in Error, or a teardown step that failed where it was), the next step waits for the
            // backoff to pass or the desired record to change: never a hot loop.
            Some(_) if t.waits_for_retry() => {
                let wait = if t.no_retry { None } else { Some(t.retry_at) };
                tokio::select! {
                    changed = desired_rx.changed() => if changed.is_err() { return },
                    _ = sleep_until(wait) => {}
                }
            }
            Some(Action::Retry) => {
                if t.actual.lifecycle.apply(Action::Retry).is_ok() {
                    t.write().await;
                }
            }
            Some(Action::Configure) => {
                // Setup commands may take long: a change of the desired record (e.g. its deletion) cancels them.
                tokio::select! {
                    _ = t.step(Action::Configure, desired.as_ref()) => {}
                    changed = desired_rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        tracing::info!(instance = %t.id, "configure cancelled by a change of the desired record");
                    }
                }
            }
            Some(action) => t.step(action, desired.as_ref()).await,
        }
    }
}

/// A delay in seconds with one decimal (`1.3s`), for messages.
fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The jittered delay before retrying after `n` consecutive failures.
fn backoff(shared: &Shared, n: u32) -> Duration {
    shared.settings.backoff().delay(n)
}

impl Task {
    /// Whether the last step failed and its backoff has not passed yet (or it is held until the record changes).
    fn waits_for_retry(&self) -> bool {
        let failed = self.actual.state() == Some(State::Error) || self.failures > 0;
        failed && (self.no_retry || Instant::now() < self.retry_at)
    }

    fn new(shared: Arc<Shared>, start: Start) -> Self {
        let mut actual = start.previous.unwrap_or_else(|| ActualInstance::new(start.id.clone(), &shared.node));
        actual.node = shared.node.clone();
        let (mut runtime, mut applied, mut run_rx, mut cx) = (None, None, None, None);
        let mut running_since = None;
        let recovered_desired = start.recovered.as_ref().map(|(rec, _)| rec.desired.clone());
        match start.recovered {
            Some((rec, rt)) => {
                let context = shared.layout.context(&rec.desired);
                shared.local.insert(rt.clone(), context.clone());
                cx = Some(context);
                actual.lifecycle = Lifecycle::at(Some(rec.state));
                actual.pid = rec.pid;
                actual.started_at = rec.started_at.or(actual.started_at);
                actual.observed_generation = rec.desired.generation;
                applied = Some(rec.desired.generation);
                if rec.pid.is_some() {
                    run_rx = rt.subscribe(&start.id);
                    running_since = Some(Instant::now());
                    // Alive (same pid and start time); ready only once its probe passes again, if it has one.
                    actual.ready = rec.desired.entity.readiness.is_none();
                } else {
                    actual.pid = None;
                    actual.ready = false;
                }
                runtime = Some(rt);
            }
            None => {
                // Nothing of it survives in any runtime: whatever the store said, it does not exist here.
                actual.lifecycle = Lifecycle::new();
                actual.pid = None;
                actual.ready = false;
            }
        }
        Task {
            shared,
            id: start.id,
            actual,
            runtime,
            cx,
            run_rx,
            applied,
            seen: None,
            failures: 0,
            crashes: 0,
            retry_at: Instant::now(),
            no_retry: false,
            hold: false,
            dirty: false,
            restarting: false,
            running_since,
            recovered_desired,
            unpublished: false,
        }
    }

    /// A changed desired generation or state lifts the holds the restart policy placed.
    fn observe(&mut self, desired: Option<&DesiredInstance>) {
        let now = desired.map(|d| (d.generation, d.state));
        if now != self.seen {
            self.seen = now;
            self.no_retry = false;
            self.hold = false;
            self.crashes = 0;
            self.failures = 0;
            self.retry_at = Instant::now();
        }
    }

    /// The state to drive toward now.
    fn target(&self, desired: Option<&DesiredInstance>) -> Option<State> {
        let d = desired?;
        if migrate::source_of(desired).is_some() {
            // The source of a migration is driven by its own steps; hold where we are.
            return self.actual.state();
        }
        let current = self.actual.state();
        let configured = matches!(current, Some(State::Configured | State::Running | State::Paused | State::Error));
        if configured && self.applied.is_some_and(|g| g != d.generation) {
            // A new generation: back down to Defined, then up again with the new spec.
            return Some(State::Defined);
        }
        let want = if d.state.is_desirable() { d.state } else { State::Running };
        if self.hold && matches!(want, State::Running | State::Paused) && current == Some(State::Configured) {
            return current;
        }
        Some(want)
    }

    async fn step(&mut self, action: Action, desired: Option<&DesiredInstance>) {
        match self.call(action, desired).await {
            Ok(()) => {
                if self.actual.lifecycle.apply(action).is_err() {
                    return;
                }
                self.failures = 0;
                self.actual.attempts = 0;
                self.actual.error = None;
                if let (Some(d), Action::Define | Action::Configure | Action::Run) = (desired, action) {
                    self.applied = Some(d.generation);
                    self.actual.observed_generation = d.generation;
                }
                self.after(action, desired).await;
                self.dirty = true;
                if !self.next_step_may_take_long(desired) {
                    return;
                }
            }
            Err(StepError { class, message }) => {
                self.failures += 1;
                self.actual.attempts = self.failures;
                let _ = self.actual.lifecycle.apply(Action::Fail);
                self.actual.ready = false;
                let n = self.failures;
                if class == ErrorClass::Retryable {
                    let delay = backoff(&self.shared, n);
                    self.retry_at = Instant::now() + delay;
                    self.actual.error =
                        Some(format!("{action} failed (attempt {n}): {message} (retry in {})", seconds(delay)));
                    tracing::warn!(instance = %self.id, %action, attempt = n, retry_in = %seconds(delay), error = %message, "step failed");
                } else {
                    self.no_retry = true;
                    self.actual.error = Some(format!(
                        "{action} failed (attempt {n}): {message} (held until the desired record changes)"
                    ));
                    tracing::warn!(instance = %self.id, %action, attempt = n, error = %message, ?class, "step failed; held");
                }
            }
        }
        self.write().await;
    }

    /// Bookkeeping after a successful step.
    async fn after(&mut self, action: Action, desired: Option<&DesiredInstance>) {
        match action {
            Action::Run => {
                if let (Some(rt), Some(cx)) = (self.runtime.clone(), self.cx.clone()) {
                    self.run_rx = rt.subscribe(&self.id);
                    if let Ok(RunState::Running { pid, started_at }) = rt.status(&self.id).await {
                        self.actual.pid = (pid > 0).then_some(pid);
                        self.actual.started_at = Some(started_at);
                    }
                    self.actual.addresses = if self.actual.networks.is_empty() {
                        rt.addresses(&self.id)
                    } else {
                        self.actual.networks.values().cloned().collect()
                    };
                    if let Some(d) = desired {
                        self.actual.ready = d.entity.readiness.is_none() && rt.ready(&cx, d).await;
                    }
                }
                if std::mem::take(&mut self.restarting) {
                    self.actual.restarts += 1;
                }
                self.running_since = Some(Instant::now());
            }
            Action::Stop => {
                self.actual.pid = None;
                self.actual.ready = false;
                self.run_rx = None;
            }
            Action::Pause => self.actual.ready = false,
            Action::Resume => {
                if let (Some(rt), Some(cx), Some(d)) = (self.runtime.clone(), self.cx.clone(), desired) {
                    self.actual.ready = rt.ready(&cx, d).await;
                }
            }
            Action::Undefine => {
                self.shared.local.remove(&self.id);
                self.runtime = None;
                self.cx = None;
                self.applied = None;
                self.actual.addresses.clear();
            }
            _ => {}
        }
    }

    /// Waits at the target for something to change: the desired record, the process (exit), readiness. Returns
    /// false when the driver stops.
    async fn rest(
        &mut self,
        desired_rx: &mut watch::Receiver<Option<DesiredInstance>>,
        desired: Option<&DesiredInstance>,
    ) -> bool {
        if let Some(d) = desired {
            if self.applied == Some(d.generation) && self.actual.observed_generation != d.generation {
                self.actual.observed_generation = d.generation;
                self.dirty = true;
            }
        }
        // At its target: checked by this agent now, unless it runs and its probe has not passed yet.
        if self.actual.unverified && (self.actual.state() != Some(State::Running) || self.actual.ready) {
            self.actual.unverified = false;
            self.dirty = true;
        }
        if self.dirty {
            self.write().await;
        }
        let running = self.actual.state() == Some(State::Running);
        let probing = running && desired.is_some_and(|d| d.entity.readiness.is_some());
        let mut tick = tokio::time::interval(self.shared.settings.probe_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut run_rx = self.run_rx.take();
        let exit = loop {
            let exited = async {
                match run_rx.as_mut() {
                    Some(rx) => rx.wait_for(|s| matches!(s, RunState::Exited { .. })).await.map(|s| s.clone()).ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = desired_rx.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                    break None;
                }
                Some(state) = exited => break Some(state),
                _ = tick.tick(), if probing || self.unpublished => {
                    if self.unpublished {
                        self.write().await;
                    }
                    if !probing {
                        continue;
                    }
                    if let (Some(rt), Some(cx), Some(d)) = (self.runtime.clone(), self.cx.as_ref(), desired) {
                        let ready = rt.ready(cx, d).await;
                        if ready != self.actual.ready || (ready && self.actual.unverified) {
                            self.actual.ready = ready;
                            self.actual.unverified &= !ready;
                            self.write().await;
                        }
                    }
                }
            }
        };
        self.run_rx = run_rx;
        if let Some(state) = exit {
            self.exited(state, desired).await;
        }
        true
    }

    /// The process exited by itself: restart per policy (through Error and a backoff), or stay down.
    async fn exited(&mut self, state: RunState, desired: Option<&DesiredInstance>) {
        let RunState::Exited { status, signal, .. } = state.clone() else { return };
        self.run_rx = None;
        self.actual.exit_status = status;
        self.actual.exit_reason = state.exit_reason().map(str::to_string);
        self.actual.pid = None;
        self.actual.ready = false;
        if self.running_since.take().is_some_and(|t| t.elapsed() >= self.shared.settings.stable_after) {
            self.crashes = 0;
        }
        let success = status == Some(0) && signal.is_none();
        let policy = desired.map(|d| d.entity.restart).unwrap_or_default();
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
        let what = state.describe_exit().unwrap_or_default();
        if restart {
            self.crashes += 1;
            let delay = backoff(&self.shared, self.crashes);
            self.retry_at = Instant::now() + delay;
            self.restarting = true;
            let _ = self.actual.lifecycle.apply(Action::Fail);
            self.actual.attempts = self.crashes;
            let n = self.actual.restarts + 1;
            self.actual.error = Some(format!("{what}; restart {n} in {}", seconds(delay)));
        } else if success {
            // Completed: stop cleanly (the group may hold leftovers) and stay Configured until the record changes.
            self.hold = true;
            if let (Some(rt), Some(cx)) = (self.runtime.clone(), self.cx.as_ref()) {
                let _ = rt.stop(cx).await;
            }
            let _ = self.actual.lifecycle.apply(Action::Stop);
            self.actual.error = None;
        } else {
            self.no_retry = true;
            let _ = self.actual.lifecycle.apply(Action::Fail);
            self.actual.error = Some(format!("{what} (restart policy {policy})"));
        }
        tracing::info!(instance = %self.id, exit = %what, restart, "process exited");
        self.write().await;
    }

    /// Whether the step the instance goes through next may take long (setup commands), so that what was done so
    /// far is written first.
    fn next_step_may_take_long(&self, desired: Option<&DesiredInstance>) -> bool {
        let next = self.actual.lifecycle.next_toward(self.target(desired));
        next == Some(Action::Configure) && desired.is_some_and(|d| !d.entity.setup.is_empty())
    }

    async fn write(&mut self) {
        self.dirty = false;
        self.actual.updated_at = Utc::now();
        let id = (self.shared.node.clone(), self.id.clone());
        let put = self.shared.records.put::<ActualInstances>(&id, &self.actual, None);
        match tokio::time::timeout(WRITE_TIMEOUT, put).await {
            Ok(Ok(_)) => self.unpublished = false,
            Ok(Err(e)) => {
                self.unpublished = true;
                tracing::warn!(instance = %self.id, error = %e, "cannot write actual record");
            }
            Err(_) => {
                self.unpublished = true;
                tracing::warn!(instance = %self.id, "writing the actual record timed out; written again later");
            }
        }
    }

    async fn remove(&mut self) {
        let id = (self.shared.node.clone(), self.id.clone());
        let delete = self.shared.records.delete::<ActualInstances>(&id);
        match tokio::time::timeout(WRITE_TIMEOUT, delete).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(instance = %self.id, error = %e, "cannot delete actual record"),
            Err(_) => tracing::warn!(instance = %self.id, "deleting the actual record timed out"),
        }
    }
}
