//! Moving an instance's data between nodes: the archive of its volumes (tar, compressed, with its SHA-256:
//! [`archive`]), what a destination receives ([`inbox`]: chunks appended at their offset, so a sender resumes where
//! the last attempt stopped; checked and unpacked into the instance's volumes at commit), and the [`VolumeSender`]
//! seam through which a source agent sends an archive to another node (the node API client `fosd` provides); and
//! the node's [`criu`] capability for live migration of processes.

pub mod archive;
pub mod criu;
pub mod inbox;

use std::path::Path;

use async_trait::async_trait;
use fos_api::InstanceId;

pub use self::inbox::{Inbox, InboxError};

/// Sends a migration's archive to its destination node over the authenticated node API, resuming after what the
/// destination already has, and asks it to check and unpack it.
#[async_trait]
pub trait VolumeSender: Send + Sync + std::fmt::Debug {
    /// Sends `archive` (`bytes` long, SHA-256 `sha256`) of migration `migration` of `instance` to node
    /// `destination`, calling `progress` with the bytes the destination has after each chunk.
    async fn send(
        &self,
        destination: &str,
        instance: &InstanceId,
        migration: &str,
        archive: &Path,
        bytes: u64,
        sha256: &str,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), String>;
}
