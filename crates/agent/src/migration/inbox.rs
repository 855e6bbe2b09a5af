//! What a destination node receives of migrations: each migration's archive is appended chunk by chunk to
//! `<data>/migrations/in/<migration>.part`, each chunk at the offset the sender says (which must be what is there
//! already, so a sender that lost a connection asks [`Inbox::received`] and resumes from there); at commit the
//! length and SHA-256 are checked and the archive is unpacked into the instance's volumes directory, replacing it.

use std::io::Write;
use std::path::PathBuf;

use fos_api::migration::{DataCommit, Received};
use fos_api::InstanceId;
use thiserror::Error;

use super::archive;
use crate::runtime::NodeLayout;

/// Why the inbox refused a chunk or a commit.
#[derive(Debug, Error)]
pub enum InboxError {
    /// The migration id is not one (letters, digits and `-` only).
    #[error("`{0}` is not a migration id")]
    BadId(String),
    /// A chunk does not start where the received data ends.
    #[error("a chunk at offset {offset}, but {have} bytes are here: resume from {have}")]
    Offset {
        /// Where the chunk starts.
        offset: u64,
        /// What is here.
        have: u64,
    },
    /// The archive received is not the one sent.
    #[error("the data received ({bytes} bytes, sha256 {sha256}) is not what was sent ({want_bytes} bytes, sha256 {want_sha256})")]
    Mismatch {
        /// Bytes here.
        bytes: u64,
        /// Their digest.
        sha256: String,
        /// Bytes sent.
        want_bytes: u64,
        /// Their digest.
        want_sha256: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The migrations a node receives.
pub struct Inbox {
    root: PathBuf,
    layout: NodeLayout,
    lock: tokio::sync::Mutex<()>,
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> InboxError + '_ {
    move |source| InboxError::Io { path: path.to_path_buf(), source }
}

impl Inbox {
    /// The inbox of the node laid out as `layout` (`<data>/migrations/in`).
    pub fn new(layout: NodeLayout) -> Self {
        Inbox { root: layout.data_dir().join("migrations").join("in"), layout, lock: tokio::sync::Mutex::new(()) }
    }

    fn paths(&self, migration: &str) -> Result<(PathBuf, PathBuf), InboxError> {
        let ok = !migration.is_empty()
            && migration.len() <= 64
            && migration.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(InboxError::BadId(migration.to_string()));
        }
        Ok((self.root.join(format!("{migration}.part")), self.root.join(format!("{migration}.done"))))
    }

    /// What has arrived of `migration`.
    pub fn received(&self, migration: &str) -> Result<Received, InboxError> {
        let (part, done) = self.paths(migration)?;
        if done.exists() {
            let bytes = std::fs::read_to_string(&done).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
            return Ok(Received { bytes, complete: true });
        }
        let bytes = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        Ok(Received { bytes, complete: false })
    }

    /// Appends `data` at `offset` (which must be what has arrived); answers what has arrived then.
    pub async fn append(&self, migration: &str, offset: u64, data: &[u8]) -> Result<u64, InboxError> {
        let _one = self.lock.lock().await;
        let (part, _) = self.paths(migration)?;
        let have = self.received(migration)?;
        if have.complete || have.bytes != offset {
            return Err(InboxError::Offset { offset, have: have.bytes });
        }
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&part).map_err(io(&part))?;
        file.write_all(data).map_err(io(&part))?;
        Ok(offset + data.len() as u64)
    }

    /// Checks what arrived of `migration` against `commit` and unpacks it into `instance`'s volumes; again after it
    /// succeeded: nothing to do.
    pub async fn commit(&self, migration: &str, instance: &InstanceId, commit: &DataCommit) -> Result<(), InboxError> {
        let _one = self.lock.lock().await;
        let (part, done) = self.paths(migration)?;
        if self.received(migration)?.complete {
            return Ok(());
        }
        let dest = self.layout.volumes_dir(instance);
        let (part2, want) = (part.clone(), commit.clone());
        tokio::task::spawn_blocking(move || {
            let got = archive::digest_file(&part2).map_err(io(&part2))?;
            if got.bytes != want.bytes || got.sha256 != want.sha256 {
                let _ = std::fs::remove_file(&part2);
                return Err(InboxError::Mismatch {
                    bytes: got.bytes,
                    sha256: got.sha256,
                    want_bytes: want.bytes,
                    want_sha256: want.sha256,
                });
            }
            archive::unpack(&part2, &dest).map_err(io(&dest))
        })
        .await
        .map_err(|e| InboxError::Io { path: part.clone(), source: std::io::Error::other(e) })??;
        std::fs::write(&done, commit.bytes.to_string()).map_err(io(&done))?;
        let _ = std::fs::remove_file(&part);
        Ok(())
    }

    /// Forgets what arrived of `migration` (it ended).
    pub fn forget(&self, migration: &str) {
        if let Ok((part, done)) = self.paths(migration) {
            let _ = std::fs::remove_file(part);
            let _ = std::fs::remove_file(done);
        }
    }
}
