//! An instance task's part in a migration. On the source (its desired record names this node `Source`): the
//! runtime takes the instance off (cold: stops it; live: checkpoints it into its volumes directory, the ticket going
//! into the progress for the destination to restore; TakingOff), its volumes are packed into one archive and sent to
//! the destination through the [`crate::migration::VolumeSender`] (resuming after what arrived; a runtime that moves
//! the running instance itself, a VM, has the destination prepare it first and sends nothing), and the progress
//! goes into the actual record (`migration`) until everything is there (`Sent`). Then the controller moves the
//! desired record to the destination under a new epoch: the record gone, the source removes what is left
//! ([`Task::depart`]); or it gives up (the role cleared): the source runs the instance again
//! ([`Task::resume_after_abort`]). The destination needs no step of its own: its desired record arrives once the
//! volumes are in place, and it starts the instance on them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fos_api::lifecycle::{Action, Lifecycle, State};
use fos_api::migration::{moved_by_runtime, MigrationMode, MigrationProgress, SendPhase};
use fos_api::record::DesiredInstance;
use tokio::sync::watch;

use super::{backoff, Task};
use crate::migration::{inbox, Outgoing, Part};
use crate::runtime::Destination;

/// How often the progress of a transfer is written to the actual record.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The migration this node sends, when `desired` names it the source.
pub(super) fn source_of(desired: Option<&DesiredInstance>) -> Option<(String, String, MigrationMode)> {
    match desired?.migration.as_ref()? {
        fos_api::record::MigrationRole::Source { destination, id, mode } => {
            Some((destination.clone(), id.clone(), *mode))
        }
        _ => None,
    }
}

impl Task {
    /// Whether migration `id` has been sent in full.
    pub(super) fn sent(&self, id: &str) -> bool {
        self.actual.migration.as_ref().is_some_and(|p| p.id == id && p.phase == SendPhase::Sent)
    }

    /// Takes the instance off and sends its volumes for migration `id` to `destination`; on a failure, writes why
    /// and waits for the backoff (or a change of the desired record) before returning.
    pub(super) async fn migrate_out(
        &mut self,
        desired: &DesiredInstance,
        (destination, id, mode): (String, String, MigrationMode),
        desired_rx: &mut watch::Receiver<Option<DesiredInstance>>,
    ) {
        let mut progress = self.actual.migration.clone().filter(|p| p.id == id).unwrap_or(MigrationProgress {
            id: id.clone(),
            phase: SendPhase::Stopping,
            bytes_moved: 0,
            bytes_total: 0,
            stopped_at: None,
            error: None,
            ticket: None,
        });
        let result = self.send(desired, &destination, &id, mode, &mut progress, desired_rx).await;
        match result {
            Ok(true) => {
                progress.phase = SendPhase::Sent;
                progress.bytes_moved = progress.bytes_total;
                progress.error = None;
                self.failures = 0;
                tracing::info!(instance = %self.id, migration = %id, %destination, bytes = progress.bytes_total, "volumes sent");
                self.actual.migration = Some(progress);
                self.write().await;
            }
            Ok(false) => {} // the desired record changed: looked at again
            Err(message) => {
                self.failures += 1;
                let delay = backoff(&self.shared, self.failures);
                tracing::warn!(instance = %self.id, migration = %id, error = %message, "migration step failed");
                progress.phase = SendPhase::Retrying;
                progress.error = Some(format!("{message} (retry in {:.1}s)", delay.as_secs_f64()));
                self.actual.migration = Some(progress);
                self.write().await;
                tokio::select! {
                    _ = desired_rx.changed() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }

    /// The steps of [`Task::migrate_out`]: `Ok(false)` when the desired record changed meanwhile.
    async fn send(
        &mut self,
        desired: &DesiredInstance,
        destination: &str,
        id: &str,
        mode: MigrationMode,
        progress: &mut MigrationProgress,
        desired_rx: &mut watch::Receiver<Option<DesiredInstance>>,
    ) -> Result<bool, String> {
        if matches!(self.actual.state(), Some(State::Running | State::Paused)) {
            progress.phase = SendPhase::Stopping;
            self.actual.migration = Some(progress.clone());
            let (Some(rt), Some(cx)) = (self.runtime.clone(), self.cx.clone()) else {
                return Err("no runtime holds the instance".into());
            };
            let mut to = Destination::from(destination);
            if mode == MigrationMode::Live && rt.prepares_destination() {
                let sender = self.shared.volume_sender.clone().ok_or("this node has no client to reach others")?;
                let prepared = sender.prepare(destination, id, desired).await;
                to.prepared = Some(prepared.map_err(|e| format!("preparing {destination}: {e}"))?);
            }
            // Live, the instance stops serving when the checkpoint freezes it, at the start of the step.
            let began = Utc::now();
            let ticket = rt.migrate_out(&cx, &to, mode).await.map_err(|e| format!("taking the instance off: {e}"))?;
            self.actual.lifecycle = Lifecycle::at(Some(State::TakingOff));
            self.actual.pid = None;
            self.actual.ready = false;
            self.run_rx = None;
            progress.stopped_at = Some(if mode == MigrationMode::Live { began } else { Utc::now() });
            progress.ticket = (!ticket.location.is_empty()).then_some(ticket.location);
        }
        if moved_by_runtime(progress.ticket.as_deref()) {
            // The runtime moved the running instance, its disks with it: nothing is left to send.
            return Ok(true);
        }
        progress.phase = SendPhase::Sending;
        progress.error = None;
        self.actual.migration = Some(progress.clone());
        self.write().await;

        let volumes = self.shared.layout.volumes_dir(&desired.id);
        let sender = self.shared.volume_sender.clone().ok_or("this node has no client to send volumes with")?;
        let moved = Arc::new((AtomicU64::new(progress.bytes_moved), AtomicU64::new(progress.bytes_total)));
        let outgoing = Outgoing {
            destination: destination.to_string(),
            instance: self.id.clone(),
            migration: id.to_string(),
            parts: vec![Part { name: inbox::VOLUMES.into(), dir: volumes }],
        };
        let transfer = {
            let moved = moved.clone();
            async move {
                let report = move |n: u64, total: u64| {
                    moved.0.store(n, Ordering::Relaxed);
                    moved.1.store(total, Ordering::Relaxed);
                };
                sender.send(&outgoing, Arc::new(report)).await
            }
        };
        tokio::pin!(transfer);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sent = loop {
            tokio::select! {
                done = &mut transfer => break done,
                changed = desired_rx.changed() => {
                    if changed.is_err() || source_of(desired_rx.borrow().as_ref()).is_none_or(|s| s.1 != id) {
                        return Ok(false);
                    }
                }
                _ = tick.tick() => {
                    let (now, total) = (moved.0.load(Ordering::Relaxed), moved.1.load(Ordering::Relaxed));
                    if (now, total) != (progress.bytes_moved, progress.bytes_total) {
                        (progress.bytes_moved, progress.bytes_total) = (now, total.max(now));
                        self.actual.migration = Some(progress.clone());
                        self.write().await;
                    }
                }
            }
        };
        sent.map_err(|e| format!("sending the volumes to {destination}: {e}"))?;
        progress.bytes_total = moved.1.load(Ordering::Relaxed);
        Ok(true)
    }

    /// The destination owns the instance now (this node's desired record is gone): what is left here (stopped
    /// already) is removed, but its volumes stay until the migration is over ([`inbox::keep`]): a destination lost
    /// before it ran the instance loses no data.
    pub(super) async fn depart(&mut self) {
        if let Some(p) = &self.actual.migration {
            if let Err(e) = inbox::keep(&self.shared.layout, &self.id, &p.id) {
                self.failures += 1;
                let delay = backoff(&self.shared, self.failures);
                self.actual.error = Some(format!("keeping the volumes of the departed instance: {e}"));
                self.write().await;
                tokio::time::sleep(delay).await;
                return;
            }
        }
        for action in [Action::Clean, Action::Undefine] {
            if let Err(e) = self.call(action, None).await {
                self.failures += 1;
                let delay = backoff(&self.shared, self.failures);
                self.actual.error = Some(format!("removing the departed instance: {} (retry in {delay:?})", e.message));
                self.write().await;
                tokio::time::sleep(delay).await;
                return;
            }
        }
        self.failures = 0;
        self.actual.lifecycle = Lifecycle::new();
        self.actual.migration = None;
        self.actual.error = None;
        self.shared.local.remove(&self.id);
        self.runtime = None;
        self.cx = None;
        self.applied = None;
        tracing::info!(instance = %self.id, "departed: the instance runs on its destination");
    }

    /// The migration was given up before the destination took the instance: it runs here again.
    pub(super) async fn resume_after_abort(&mut self, desired: &DesiredInstance) {
        let (Some(rt), Some(cx)) = (self.runtime.clone(), self.cx.clone()) else {
            self.actual.lifecycle = Lifecycle::at(Some(State::Configured));
            self.actual.migration = None;
            return;
        };
        match rt.migrate_abort(&cx, desired).await {
            Ok(()) => {
                let _ = self.actual.lifecycle.apply(Action::Abort);
                self.failures = 0;
                self.actual.migration = None;
                self.actual.error = None;
                self.after(Action::Run, Some(desired)).await;
                tracing::info!(instance = %self.id, "migration given up: running here again");
                self.write().await;
            }
            Err(e) => {
                self.failures += 1;
                let delay = backoff(&self.shared, self.failures);
                self.actual.error = Some(format!("resuming after the migration was given up: {e}"));
                self.write().await;
                tokio::time::sleep(delay).await;
            }
        }
    }
}
