//! Moving an instance's data between nodes: the [`stream`] of the directories to move (tar, LZ4 where it pays,
//! SHA-256, resumable at any byte), what a destination receives ([`inbox`]: unpacked as it arrives; checked and
//! moved into the instance's volumes at commit), and the [`VolumeSender`] seam through which a source agent streams
//! them to another node (the node API client `fosd` provides); and the node's [`criu`] capability for live
//! migration of processes.

pub mod criu;
pub mod inbox;
pub mod janitor;
pub mod prepare;
pub mod stream;

use std::sync::Arc;

use async_trait::async_trait;
use fos_api::record::DesiredInstance;
use fos_api::InstanceId;

pub use self::inbox::{Inbox, InboxError};
pub use self::stream::Part;

/// What a migration sends: directories, each under its name (`volumes`: the instance's volumes, moved into place
/// on the destination; any other part lands under [`Inbox::landed`]).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The node it goes to.
    pub destination: String,
    /// The instance migrating.
    pub instance: InstanceId,
    /// The migration's id.
    pub migration: String,
    /// The directories to move.
    pub parts: Vec<Part>,
}

/// Progress of a transfer: the stream bytes the destination has, and about how many there are in all.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Streams a migration's directories to its destination node over the authenticated node API, resuming after what
/// the destination already has, and asks it to check them and move them into place.
#[async_trait]
pub trait VolumeSender: Send + Sync + std::fmt::Debug {
    /// Sends `out`, reporting its progress as it goes.
    async fn send(&self, out: &Outgoing, progress: Progress) -> Result<(), String>;

    /// Asks the destination of migration `migration` to prepare the incoming instance `desired` (a live migration
    /// whose runtime moves the instance itself); answers what the destination's runtime said.
    async fn prepare(&self, destination: &str, migration: &str, desired: &DesiredInstance) -> Result<String, String>;
}
