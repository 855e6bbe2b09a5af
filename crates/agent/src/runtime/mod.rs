//! Runtime plugins: the [`Runtime`] trait every entity kind's runtime implements (native processes here; libvirt VMs
//! and OCI containers later), the run state a runtime reports, and the errors it fails with.

pub mod native;
pub mod probe;

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fos_api::lifecycle::State;
use fos_api::manifest::EntityKind;
use fos_api::record::{DesiredInstance, InstanceId};
use thiserror::Error;
use tokio::sync::watch;

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
        /// When the exit was seen.
        at: DateTime<Utc>,
    },
}

impl RunState {
    /// A human-readable description of an exit, for the actual record's error.
    pub fn describe_exit(&self) -> Option<String> {
        match self {
            RunState::Exited { signal: Some(sig), .. } => Some(format!("killed by signal {sig}")),
            RunState::Exited { status: Some(code), .. } => Some(format!("exited with status {code}")),
            RunState::Exited { .. } => Some("exited (status unknown: process was adopted)".to_string()),
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

/// What can go wrong in a runtime.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The instance is not known to this runtime (never defined, or undefined).
    #[error("instance {0} is not defined in this runtime")]
    NotDefined(InstanceId),
    /// The desired record is not for this runtime or is incomplete.
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
}

impl RuntimeError {
    /// An [`RuntimeError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io { path: path.into(), source }
    }
}

/// A runtime plugin: runs one kind of entity through the lifecycle steps. Every step is called by the driver only
/// when the lifecycle allows it, one step at a time per instance, and must be safe to call again after it failed
/// half-way (the driver retries).
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The entity kind this runtime runs.
    fn kind(&self) -> EntityKind;

    /// Checks that the runtime works on this node (binaries present, daemon reachable).
    async fn probe(&self) -> Result<(), RuntimeError>;

    /// Instances this runtime left behind before the agent restarted, with their real state (live processes are
    /// adopted, not restarted).
    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError>;

    /// (none) → Defined: registers the instance.
    async fn define(&self, desired: &DesiredInstance) -> Result<(), RuntimeError>;

    /// Defined → Configured: prepares resources (directories, setup commands, disks).
    async fn configure(&self, desired: &DesiredInstance) -> Result<(), RuntimeError>;

    /// Configured → Running: starts the instance with `desired`'s spec and environment.
    async fn run(&self, desired: &DesiredInstance) -> Result<(), RuntimeError>;

    /// Running or Paused → Configured: stops the instance and everything it started.
    async fn stop(&self, id: &InstanceId) -> Result<(), RuntimeError>;

    /// Running → Paused.
    async fn pause(&self, id: &InstanceId) -> Result<(), RuntimeError>;

    /// Paused → Running.
    async fn resume(&self, id: &InstanceId) -> Result<(), RuntimeError>;

    /// Configured (or Error) → Defined: releases what configure prepared.
    async fn clean(&self, id: &InstanceId) -> Result<(), RuntimeError>;

    /// Defined → (none): forgets the instance.
    async fn undefine(&self, id: &InstanceId) -> Result<(), RuntimeError>;

    /// The instance's run state now.
    async fn status(&self, id: &InstanceId) -> Result<RunState, RuntimeError>;

    /// A receiver that changes whenever the instance's run state changes (e.g. its process exits).
    fn subscribe(&self, id: &InstanceId) -> Option<watch::Receiver<RunState>>;

    /// Whether the instance's readiness probe passes (without a probe: whether it runs).
    async fn ready(&self, desired: &DesiredInstance) -> bool;

    /// Addresses the instance can be reached at.
    fn addresses(&self, id: &InstanceId) -> Vec<String>;

    /// The last `tail` lines of the instance's output (stdout and stderr interleaved by file, stdout first).
    async fn logs(&self, id: &InstanceId, tail: usize) -> Result<String, RuntimeError>;

    /// Migration, source side: saves the running instance's state for `destination`.
    async fn migrate_out(&self, _id: &InstanceId, _destination: &str) -> Result<MigrationTicket, RuntimeError> {
        Err(RuntimeError::Unsupported("migration"))
    }

    /// Migration, destination side: starts the instance from a saved state.
    async fn migrate_in(&self, _desired: &DesiredInstance, _ticket: &MigrationTicket) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported("migration"))
    }

    /// Migration abandoned: the source resumes the instance, the destination discards what it received.
    async fn migrate_abort(&self, _id: &InstanceId) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported("migration"))
    }
}
