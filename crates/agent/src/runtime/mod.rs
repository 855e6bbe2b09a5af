//! Runtime plugins: the [`Runtime`] trait every entity kind's runtime implements (native processes, OCI containers run by runc;
//! libvirt VMs later), the [`InstanceContext`] each step is handed, the run state a runtime reports, the
//! errors it fails with and how the driver treats them ([`ErrorClass`]), and the [`registry`] that builds the
//! node's runtimes.

pub mod container;
pub mod context;
pub mod group;
pub mod native;
pub mod output;
pub mod probe;
pub mod registry;
pub mod vm;

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fos_api::lifecycle::State;
use fos_api::manifest::EntityKind;
use fos_api::migration::MigrationMode;
use fos_api::record::{DesiredInstance, InstanceId};
use thiserror::Error;
use tokio::sync::watch;

pub use self::context::{InstanceContext, LogPaths, NodeLayout, Reservations, SecretEnv};
pub use self::output::{OutputOptions, OutputStream};
pub use self::registry::{RuntimeEnv, RuntimeFactory, RuntimeRegistry};

/// How an instance's main process (or VM, or container) is doing, as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Not started (or stopped on request).
    Idle,
    /// Running with this process id since `started_at`.
    Running {
        /// Main process id (0 when the runtime has no process, e.g. a VM).
        pid: u32,
        /// When it started.
        started_at: DateTime<Utc>,
    },
    /// It exited by itself (not through `stop`).
    Exited {
        /// Exit code, or 128 + signal number; `None` when unknown (an adopted process is not our child).
        status: Option<i32>,
        /// The signal that ended it, if any.
        signal: Option<i32>,
        /// Whether the kernel's OOM killer ended it (its memory limit was reached).
        oom_killed: bool,
        /// When the exit was seen.
        at: DateTime<Utc>,
    },
}

impl RunState {
    /// A human-readable description of an exit, for the actual record's error.
    pub fn describe_exit(&self) -> Option<String> {
        match self {
            RunState::Exited { oom_killed: true, .. } => {
                Some("killed by the kernel's OOM killer (memory limit reached)".to_string())
            }
            RunState::Exited { signal: Some(sig), .. } => Some(format!("killed by signal {sig}")),
            RunState::Exited { status: Some(code), .. } => Some(format!("exited with status {code}")),
            RunState::Exited { .. } => Some("exited (status unknown: process was adopted)".to_string()),
            _ => None,
        }
    }

    /// Why an exit happened, in one word (the actual record's `exitReason`).
    pub fn exit_reason(&self) -> Option<&'static str> {
        match self {
            RunState::Exited { oom_killed: true, .. } => Some("OOMKilled"),
            RunState::Exited { signal: Some(_), .. } => Some("Killed"),
            RunState::Exited { status: Some(0), .. } => Some("Completed"),
            RunState::Exited { status: Some(_), .. } => Some("Error"),
            RunState::Exited { .. } => Some("Unknown"),
            _ => None,
        }
    }
}

/// An instance a runtime found on start (from its own records), with the lifecycle state it is really in.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The desired record the instance was last driven with.
    pub desired: DesiredInstance,
    /// The state it is in now (a process that died while the agent was down is back to Configured).
    pub state: State,
    /// The adopted process id, when it is still running.
    pub pid: Option<u32>,
    /// When the adopted process started.
    pub started_at: Option<DateTime<Utc>>,
}

/// Where a migrating instance's state was saved, handed from the source runtime to the destination runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationTicket {
    /// A runtime-specific location (a libvirt URI, a checkpoint directory).
    pub location: String,
}

/// Where a migrating instance goes, as the source runtime is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The node.
    pub node: String,
    /// What the destination's runtime answered when asked to prepare ([`Runtime::migrate_prepare`]), when the
    /// runtime asks for that ([`Runtime::prepares_destination`]).
    pub prepared: Option<String>,
}

impl From<&str> for Destination {
    fn from(node: &str) -> Self {
        Destination { node: node.to_string(), prepared: None }
    }
}

/// What can go wrong in a runtime.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The instance is not known to this runtime (never defined, or undefined).
    #[error("instance {0} is not defined in this runtime")]
    NotDefined(InstanceId),
    /// The desired record is not for this runtime or cannot be run as it is (not retried until it changes).
    #[error("invalid entity: {0}")]
    Invalid(String),
    /// A setup command failed.
    #[error("setup command `{command}` failed: {reason}")]
    Setup {
        /// The command, space-joined.
        command: String,
        /// Exit status or spawn error.
        reason: String,
    },
    /// Starting the process failed.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A signal could not be delivered.
    #[error("cannot signal process group {pgid}: {source}")]
    Signal {
        /// The process group.
        pgid: i32,
        /// The OS error.
        source: std::io::Error,
    },
    /// The operation is not supported by this runtime (e.g. live migration of a native process).
    #[error("{0} is not supported by this runtime")]
    Unsupported(&'static str),
    /// A step failed for a reason that may pass (retried).
    #[error("{0}")]
    Failed(String),
    /// The instance has written no output yet.
    #[error("no output of {0} yet")]
    NoOutput(InstanceId),
}

/// How the driver treats a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// It may pass: the step is retried with exponential backoff.
    Retryable,
    /// The runtime cannot do it (on this node): the error is recorded and the instance held until its desired
    /// record changes.
    Unsupported,
    /// The desired record cannot be run as it is: the error is recorded and the instance held until its desired
    /// record changes.
    Invalid,
}

impl RuntimeError {
    /// An [`RuntimeError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io { path: path.into(), source }
    }

    /// How the driver treats this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            RuntimeError::Unsupported(_) => ErrorClass::Unsupported,
            RuntimeError::Invalid(_) => ErrorClass::Invalid,
            _ => ErrorClass::Retryable,
        }
    }
}

/// A runtime plugin: runs one kind of entity through the lifecycle steps. Every step is called by the driver only
/// when the lifecycle allows it, one step at a time per instance, and must be safe to call again after it failed
/// half-way (the driver retries [`ErrorClass::Retryable`] errors). Each step is handed the instance's
/// [`InstanceContext`]: its paths, namespace, cgroup, volumes and reservations are the node's decision, never the
/// runtime's. Add a runtime by implementing this trait in one file and registering its factory in
/// [`RuntimeRegistry::builtin`].
/// A cold departure: the instance stopped, its volumes then sent by the driver (no ticket to carry).
pub async fn depart_cold<R: Runtime + ?Sized>(
    runtime: &R,
    cx: &InstanceContext,
) -> Result<MigrationTicket, RuntimeError> {
    runtime.stop(cx).await?;
    Ok(MigrationTicket { location: String::new() })
}

#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The entity kind this runtime runs.
    fn kind(&self) -> EntityKind;

    /// What the runtime found on this node (e.g. cgroup support), for its plugin record.
    fn detail(&self) -> Option<String> {
        None
    }

    /// Checks that the runtime works on this node (binaries present, daemon reachable).
    async fn probe(&self) -> Result<(), RuntimeError>;

    /// Instances this runtime left behind before the agent restarted, with their real state (live processes are
    /// adopted, not restarted). Their contexts are [`NodeLayout::context`] of their desired records.
    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError>;

    /// (none) → Defined: registers the instance.
    async fn define(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError>;

    /// Defined → Configured: prepares resources (directories, cgroup, setup commands, disks).
    async fn configure(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError>;

    /// Configured → Running: starts the instance with `desired`'s spec and environment.
    async fn run(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError>;

    /// Running or Paused → Configured: stops the instance and everything it started.
    async fn stop(&self, cx: &InstanceContext) -> Result<(), RuntimeError>;

    /// Running → Paused.
    async fn pause(&self, cx: &InstanceContext) -> Result<(), RuntimeError>;

    /// Paused → Running.
    async fn resume(&self, cx: &InstanceContext) -> Result<(), RuntimeError>;

    /// Configured (or Error) → Defined: releases what configure prepared.
    async fn clean(&self, cx: &InstanceContext) -> Result<(), RuntimeError>;

    /// Defined → (none): forgets the instance and removes its directory.
    async fn undefine(&self, cx: &InstanceContext) -> Result<(), RuntimeError>;

    /// The instance's run state now.
    async fn status(&self, id: &InstanceId) -> Result<RunState, RuntimeError>;

    /// A receiver that changes whenever the instance's run state changes (e.g. its process exits).
    fn subscribe(&self, id: &InstanceId) -> Option<watch::Receiver<RunState>>;

    /// Whether the instance's readiness probe passes (without a probe: whether it runs).
    async fn ready(&self, cx: &InstanceContext, desired: &DesiredInstance) -> bool;

    /// Addresses the instance can be reached at.
    fn addresses(&self, id: &InstanceId) -> Vec<String>;

    /// The files holding the instance's output, in the order they are shown (default: the context's stdout and
    /// stderr files).
    fn log_files(&self, cx: &InstanceContext) -> Vec<PathBuf> {
        cx.logs.files()
    }

    /// The instance's output as a stream (default: [`Runtime::log_files`] read by [`output::stream_files`]).
    async fn output(&self, cx: &InstanceContext, options: OutputOptions) -> Result<OutputStream, RuntimeError> {
        output::stream_files(&self.log_files(cx), options).await.ok_or_else(|| RuntimeError::NoOutput(cx.id.clone()))
    }

    /// The last `tail` lines of each of the instance's output files, in turn (stdout first).
    async fn logs(&self, cx: &InstanceContext, tail: usize) -> Result<String, RuntimeError> {
        let mut out = String::new();
        for path in self.log_files(cx) {
            out.push_str(&output::tail_lines(&path, tail).map_err(|e| RuntimeError::io(&path, e))?);
        }
        Ok(out)
    }

    /// Whether a live migration needs the destination's runtime to prepare the instance before the source takes
    /// it off ([`Runtime::migrate_prepare`]; default: no).
    fn prepares_destination(&self) -> bool {
        false
    }

    /// Migration, destination side, before the source takes the instance off (live, when
    /// [`Runtime::prepares_destination`]): makes ready what the incoming instance needs here (its disks, its
    /// images) and answers what the source's runtime needs to send it (runtime-specific).
    async fn migrate_prepare(&self, _cx: &InstanceContext, _desired: &DesiredInstance) -> Result<String, RuntimeError> {
        Err(RuntimeError::Unsupported("preparing a live migration's destination"))
    }

    /// Migration, source side: takes the instance off this node for `to`. Cold (the default): stops it (its
    /// volumes are then sent by the driver). Live: checkpoints it, leaving it stopped, and says where the checkpoint
    /// is (sent along with the volumes, under the ticket's `location` relative to the volumes); or moves the running
    /// instance to the prepared destination itself (a ticket starting with
    /// [`fos_api::migration::MOVED_BY_RUNTIME`]: nothing is streamed).
    async fn migrate_out(
        &self,
        cx: &InstanceContext,
        _to: &Destination,
        mode: MigrationMode,
    ) -> Result<MigrationTicket, RuntimeError> {
        match mode {
            MigrationMode::Cold => depart_cold(self, cx).await,
            MigrationMode::Live => Err(RuntimeError::Unsupported("live migration")),
        }
    }

    /// Migration, destination side: starts the instance, configured here, from what arrived. Cold (the default):
    /// runs it on its volumes. Live: restores the checkpoint the ticket names.
    async fn migrate_in(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        ticket: &MigrationTicket,
    ) -> Result<(), RuntimeError> {
        if !ticket.location.is_empty() {
            return Err(RuntimeError::Unsupported("live migration"));
        }
        self.run(cx, desired).await
    }

    /// Migration abandoned before the destination took the instance over: the source runs it again where it
    /// stopped (the default: runs it again on its volumes).
    async fn migrate_abort(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        self.run(cx, desired).await
    }
}
