//! Calling the runtime for one lifecycle step: picking the instance's runtime, building its [`InstanceContext`]
//! (define, configure and run get the context of the current desired record; the other steps the one the instance
//! was last set up with), making its volumes before it is set up and removing them after undefine, attaching its
//! networks before configure and releasing them after clean, running an instance landing from a live migration by
//! restoring its checkpoint ([`Runtime::migrate_in`]), and turning a
//! failure into a [`StepError`] whose class tells the driver whether to retry.

use std::sync::Arc;

use fos_api::lifecycle::{Action, State};
use fos_api::record::{DesiredInstance, MigrationRole};

use super::Task;
use crate::runtime::{ErrorClass, InstanceContext, MigrationTicket, Runtime, RuntimeError};

/// A failed step: what went wrong and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// How the driver treats it.
    pub class: ErrorClass,
    /// What went wrong, for the actual record.
    pub message: String,
}

impl StepError {
    /// A failure that may pass.
    fn retryable(message: impl Into<String>) -> Self {
        StepError { class: ErrorClass::Retryable, message: message.into() }
    }

    /// Something this node cannot do.
    fn unsupported(message: impl Into<String>) -> Self {
        StepError { class: ErrorClass::Unsupported, message: message.into() }
    }
}

impl From<RuntimeError> for StepError {
    fn from(e: RuntimeError) -> Self {
        StepError { class: e.class(), message: e.to_string() }
    }
}

/// Whether `action` brings the instance up with its desired record (and so gets that record's context).
fn sets_up(action: Action) -> bool {
    matches!(action, Action::Define | Action::Configure | Action::Run)
}

/// The checkpoint to restore when `desired` lands here from a live migration.
fn landing_ticket(desired: &DesiredInstance) -> Option<MigrationTicket> {
    match desired.migration.as_ref()? {
        MigrationRole::Destination { ticket: Some(location), .. } => {
            Some(MigrationTicket { location: location.clone() })
        }
        _ => None,
    }
}

/// Whether `action` takes the instance down (done already when no runtime holds it).
fn tears_down(action: Action) -> bool {
    matches!(action, Action::Stop | Action::Clean | Action::Undefine)
}

impl Task {
    /// The runtime holding the instance, else the node's runtime of the desired record's kind (`None`: nothing to
    /// run it with, and no desired record to say which).
    fn runtime_for(&mut self, desired: Option<&DesiredInstance>) -> Result<Option<Arc<dyn Runtime>>, StepError> {
        if let Some(rt) = &self.runtime {
            return Ok(Some(rt.clone()));
        }
        let Some(kind) = desired.map(|d| d.entity.kind) else { return Ok(None) };
        let rt = self
            .shared
            .runtimes
            .get(&kind)
            .cloned()
            .ok_or_else(|| StepError::unsupported(format!("no {kind} runtime on this node")))?;
        self.runtime = Some(rt.clone());
        Ok(Some(rt))
    }

    /// The context `action` is handed: the current desired record's for define, configure and run (remembered for
    /// the steps after), else the one the instance was last set up with.
    fn context_for(&mut self, action: Action, desired: Option<&DesiredInstance>) -> Option<InstanceContext> {
        match desired {
            Some(d) if sets_up(action) || self.cx.is_none() => {
                let cx = self.shared.layout.context(d);
                self.cx = Some(cx.clone());
                Some(cx)
            }
            _ => self.cx.clone(),
        }
    }

    /// Runs one lifecycle step on the instance's runtime.
    pub(super) async fn call(&mut self, action: Action, desired: Option<&DesiredInstance>) -> Result<(), StepError> {
        let Some(rt) = self.runtime_for(desired)? else {
            // No runtime ever held it (its define could not even start): there is nothing to tear down.
            if tears_down(action) {
                return Ok(());
            }
            return Err(StepError::retryable(format!("cannot {action}: no runtime holds this instance")));
        };
        let need = || desired.ok_or_else(|| StepError::retryable(format!("cannot {action} without a desired record")));
        let cx = self
            .context_for(action, desired)
            .ok_or_else(|| StepError::retryable(format!("cannot {action} without a desired record")))?;
        if sets_up(action) {
            for dir in cx.volumes.values() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StepError::retryable(format!("volume {}: {e}", dir.display())))?;
            }
        }
        if action == Action::Configure {
            self.attach_networks(need()?).await?;
        }
        let starts = || async {
            let mut with_secrets = cx.clone();
            let key = self.shared.secrets.as_deref();
            with_secrets.secret_env = crate::driver::secrets::resolve(&self.shared.records, key, need()?)
                .await
                .map_err(StepError::retryable)?;
            with_secrets.pull_secret = crate::driver::secrets::pull_secret(&self.shared.records, key, need()?)
                .await
                .map_err(StepError::retryable)?;
            Ok::<_, StepError>(with_secrets)
        };
        let cx_networks = cx.networks.clone();
        let result = match action {
            Action::Define => rt.define(&cx, need()?).await,
            Action::Configure => rt.configure(&starts().await?, need()?).await,
            Action::Run => match landing_ticket(need()?) {
                // The destination of a live migration restores the checkpoint that arrived with the volumes.
                Some(ticket) => rt.migrate_in(&starts().await?, need()?, &ticket).await,
                None => rt.run(&starts().await?, need()?).await,
            },
            Action::Stop => rt.stop(&cx).await,
            Action::Pause => rt.pause(&cx).await,
            Action::Resume => rt.resume(&cx).await,
            Action::Clean => rt.clean(&cx).await,
            Action::Undefine => rt.undefine(&cx).await,
            _ => Err(RuntimeError::Unsupported("migration")),
        };
        let result = match result {
            // Tearing down something the runtime does not hold (its define failed) is done already.
            Err(RuntimeError::NotDefined(_)) if tears_down(action) => Ok(()),
            other => other.map_err(StepError::from),
        };
        if result.is_ok() && sets_up(action) {
            self.shared.local.insert(rt.clone(), cx);
        }
        if result.is_ok() && matches!(action, Action::Clean | Action::Undefine) {
            if let Some(networking) = &self.shared.networking {
                networking
                    .release(&self.id, &cx_networks)
                    .await
                    .map_err(|e| StepError::retryable(format!("detaching from networks: {e}")))?;
            }
            self.actual.networks.clear();
        }
        let kept = || crate::migration::inbox::kept_marker(&self.shared.layout, &self.id).exists();
        if result.is_ok() && action == Action::Undefine && !kept() {
            // Volumes outlive everything but the instance itself (and, kept after a migration away, until the
            // migration is over).
            let dir = self.shared.layout.volumes_dir(&self.id);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StepError::retryable(format!("removing volumes {}: {e}", dir.display())))
                }
                _ => {}
            }
        }
        result
    }

    /// Brings up the instance's networks and attaches it (nothing for an entity without `networks`), recording its
    /// addresses.
    async fn attach_networks(&mut self, desired: &DesiredInstance) -> Result<(), StepError> {
        if desired.entity.networks.is_empty() {
            return Ok(());
        }
        let networking = self
            .shared
            .networking
            .as_ref()
            .ok_or_else(|| StepError::unsupported("this node has no network manager"))?;
        let addresses = networking
            .attach(desired)
            .await
            .map_err(|e| StepError::retryable(format!("attaching to networks: {e}")))?;
        self.actual.addresses = addresses.values().cloned().collect();
        self.actual.networks = addresses;
        Ok(())
    }

    /// After a restart, re-attaches an adopted instance that was configured with networks (idempotent: it finds
    /// its namespace and addresses, and restarts its exposed ports).
    pub(super) async fn reattach(&mut self) {
        let configured = matches!(self.actual.state(), Some(State::Configured | State::Running | State::Paused));
        let Some(desired) = self.recovered_desired.take() else { return };
        if !configured || desired.entity.networks.is_empty() {
            return;
        }
        if let Err(e) = self.attach_networks(&desired).await {
            tracing::warn!(instance = %self.id, error = %e.message, "re-attaching an adopted instance");
            self.actual.error = Some(e.message);
        }
        self.write().await;
    }
}
