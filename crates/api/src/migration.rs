//! Migrations: moving one instance from its node to another with its volumes, never two copies at once. The
//! control plane keeps one [`Migration`] record per instance (`system/migrations/<instance>`, the last one asked
//! for), its phases moved forward by the controller from what the two agents report ([`MigrationProgress`] in the
//! source's actual record):
//!
//! ```text
//! Preparing -> TakingOff (source stops it) -> Transferring (volumes sent agent to agent) -> Landing (the desired
//! record moves to the destination under a new epoch) -> Completed
//! Preparing | TakingOff | Transferring -> Failed | Aborted   (the source runs it again)
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::string_enum;
use crate::record::InstanceId;

string_enum!(
    /// How an instance moves.
    #[derive(Default)]
    MigrationMode {
        /// Stopped on the source, its volumes sent, started on the destination.
        #[default]
        Cold = "cold",
        /// Checkpointed while running (CRIU, libvirt), restored on the destination.
        Live = "live",
    }
);

string_enum!(
    /// Where a migration is.
    MigrationPhase {
        /// Asked for; the source has not been told yet.
        Preparing = "Preparing",
        /// The source is stopping (or checkpointing) the instance.
        TakingOff = "TakingOff",
        /// The source sends the volumes (and checkpoint) to the destination.
        Transferring = "Transferring",
        /// The destination has everything and owns the instance (new epoch); it starts it.
        Landing = "Landing",
        /// The instance runs on the destination.
        Completed = "Completed",
        /// It could not move; the source runs it again.
        Failed = "Failed",
        /// Cancelled before the destination took it over; the source runs it again.
        Aborted = "Aborted",
    }
);

impl MigrationPhase {
    /// Whether the migration is over (completed, failed or aborted).
    pub fn is_final(self) -> bool {
        matches!(self, MigrationPhase::Completed | MigrationPhase::Failed | MigrationPhase::Aborted)
    }

    /// Whether the source still owns the instance (it may still be aborted and resumed there).
    pub fn before_landing(self) -> bool {
        matches!(self, MigrationPhase::Preparing | MigrationPhase::TakingOff | MigrationPhase::Transferring)
    }
}

/// One migration of one instance (`system/migrations/<instance>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    /// This migration's id (a uuid): the source's progress and the destination's received data name it.
    pub id: String,
    /// The instance moved.
    pub instance: InstanceId,
    /// The node it leaves.
    pub source: String,
    /// The node it goes to.
    pub destination: String,
    /// Cold or live.
    pub mode: MigrationMode,
    /// Where it is.
    pub phase: MigrationPhase,
    /// The source placement's epoch (the desired record it moves from).
    pub from_epoch: String,
    /// The epoch of the destination's desired record.
    pub epoch: String,
    /// Bytes sent to the destination so far.
    #[serde(default)]
    pub bytes_moved: u64,
    /// Bytes to send (the compressed archive of the volumes), once known.
    #[serde(default)]
    pub bytes_total: u64,
    /// Cancellation asked for (`fosctl migrate --abort`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort: bool,
    /// Why it failed, or the last problem while retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who asked.
    #[serde(default)]
    pub requested_by: String,
    /// When it was asked for.
    pub started: DateTime<Utc>,
    /// When the source stopped the instance (downtime starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
    /// A live migration's checkpoint, as the source reported it (see [`MigrationProgress::ticket`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

string_enum!(
    /// What the source agent reports of a migration it sends.
    SendPhase {
        /// Stopping or checkpointing the instance.
        Stopping = "Stopping",
        /// Sending its volumes.
        Sending = "Sending",
        /// Everything arrived at the destination, checked.
        Sent = "Sent",
        /// It could not be sent (the message says why); the agent keeps trying until the controller gives up.
        Retrying = "Retrying",
    }
);

/// The source agent's progress of a migration, in the instance's actual record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationProgress {
    /// The migration.
    pub id: String,
    /// Where the sending is.
    pub phase: SendPhase,
    /// Bytes the destination has.
    #[serde(default)]
    pub bytes_moved: u64,
    /// Bytes to send.
    #[serde(default)]
    pub bytes_total: u64,
    /// When the instance was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// The last failure, while retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Live: where the runtime saved the instance's checkpoint (relative to its volumes, sent with them), for the
    /// destination to restore; or, starting with [`MOVED_BY_RUNTIME`], that the runtime moved the instance itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// The start of a ticket saying the runtime moved the running instance, memory and disks, to the destination itself
/// (a VM by libvirt's live migration): no volumes are streamed, and the destination adopts what runs there.
pub const MOVED_BY_RUNTIME: &str = "moved:";

/// Whether `ticket` says the runtime moved the instance itself ([`MOVED_BY_RUNTIME`]).
pub fn moved_by_runtime(ticket: Option<&str>) -> bool {
    ticket.is_some_and(|t| t.starts_with(MOVED_BY_RUNTIME))
}

/// `POST /v1/migrations/{instance}`: what `fosctl migrate` asks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateRequest {
    /// The destination (default: the scheduler's choice under the component's constraints and proximity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Cold or live (default: the entity's `migration`, cold when it says none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MigrationMode>,
    /// Cancel the instance's migration in progress instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort: bool,
}

/// What a destination has received of a migration's data (`GET /v1/migrations/{instance}/data`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// Bytes received so far (the next chunk starts there).
    pub bytes: u64,
    /// The data was checked and unpacked.
    #[serde(default)]
    pub complete: bool,
}

/// The end of a migration's data (`POST /v1/migrations/{instance}/data/commit`): checked, then unpacked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataCommit {
    /// The whole archive's length.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_ticket_starting_with_the_mark_says_the_runtime_moved_the_instance() {
        assert!(moved_by_runtime(Some("moved:libvirt downtimeMs=21")));
        assert!(!moved_by_runtime(Some(".checkpoint")));
        assert!(!moved_by_runtime(Some("")));
        assert!(!moved_by_runtime(None));
    }
}
