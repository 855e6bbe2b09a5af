//! Moving an instance's data between nodes: the archive of its volumes (tar, compressed, with its SHA-256:
//! [`archive`]), what a destination receives ([`inbox`]: chunks appended at their offset, so a sender resumes where
//! the last attempt stopped; checked and unpacked into the instance's volumes at commit), and the [`VolumeSender`]
//! seam through which a source agent sends an archive to another node (the node API client `fosd` provides); and
//! the node's [`criu`] capability for live migration of processes.

pub mod archive;
pub mod criu;
pub mod inbox;

use std::path::PathBuf;

use async_trait::async_trait;
use fos_api::InstanceId;

pub use self::inbox::{Inbox, InboxError};

/// A migration's archive on its way out.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The node it goes to.
    pub destination: String,
    /// The instance migrating.
    pub instance: InstanceId,
    /// The migration's id.
    pub migration: String,
    /// The archive file.
    pub archive: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// Its SHA-256 (hex).
    pub sha256: String,
}

/// Sends a migration's archive to its destination node over the authenticated node API, resuming after what the
/// destination already has, and asks it to check and unpack it.
#[async_trait]
pub trait VolumeSender: Send + Sync + std::fmt::Debug {
    /// Sends `out`, calling `progress` with the bytes the destination has after each chunk.
    async fn send(&self, out: &Outgoing, progress: &(dyn Fn(u64) + Send + Sync)) -> Result<(), String>;
}
