//! What a destination node receives of migrations: each migration's stream ([`super::stream`]) is unpacked as it
//! arrives into a directory of `<data>/migrations/in/` (one directory per part), its SHA-256 computed on the way. The
//! inbox keeps, while this node's agent runs, how far each stream has arrived: a sender whose connection broke asks
//! [`Inbox::received`] and sends the rest from there (a destination that restarted has nothing and is sent all
//! again). At commit the length and digest are checked, the unpacking finished, and the `volumes` part moved into
//! the instance's volumes directory (replacing it); the other parts stay under [`Inbox::landed`] for the runtime.
//! A migration that ends is forgotten ([`Inbox::forget`], by [`super::janitor`]). The inbox also keeps the volumes
//! of instances that departed this node until their migration is over ([`keep`]).

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fos_api::migration::{DataCommit, Received};
use fos_api::InstanceId;
use futures::{Stream, StreamExt};
use ring::digest::{Context, SHA256};
use thiserror::Error;
use tokio::sync::{mpsc, Notify};

use super::stream::{self, Decoder};
use crate::runtime::NodeLayout;

/// The part of a migration's stream that holds the instance's volumes.
pub const VOLUMES: &str = "volumes";

/// Frames waiting for the unpacker.
const QUEUE: usize = 8;

/// Sessions started by this process (naming their directories).
static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// Why the inbox refused data or a commit.
#[derive(Debug, Error)]
pub enum InboxError {
    /// The migration id is not one (letters, digits and `-` only).
    #[error("`{0}` is not a migration id")]
    BadId(String),
    /// Data does not start where the received stream ends.
    #[error("data at offset {offset}, but {have} bytes are here: resume from {have}")]
    Offset {
        /// Where the data starts.
        offset: u64,
        /// What is here.
        have: u64,
    },
    /// The stream received is not the one sent (what arrived is dropped: send it again from the start).
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
    /// The data is not a stream of frames (what arrived is dropped).
    #[error("migration {0}: {1}")]
    Frame(String, stream::FrameError),
    /// Another request for the same migration took over (the sender reconnected).
    #[error("migration {0}: a newer request took over")]
    Superseded(String),
    /// The connection broke mid-stream (what arrived of whole frames is kept).
    #[error("migration {0}: the data stopped: {1}")]
    Broken(String, String),
    /// This node has no runtime for the incoming instance's kind.
    #[error("this node has no {0} runtime")]
    NoRuntime(fos_api::manifest::EntityKind),
    /// The incoming instance could not be attached to its networks.
    #[error("attaching the incoming instance to its networks: {0}")]
    Attach(String),
    /// The runtime could not prepare the incoming instance.
    #[error("preparing the incoming instance: {0}")]
    Prepare(#[source] crate::runtime::RuntimeError),
    /// A file operation failed (what arrived is dropped).
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(io::Error) -> InboxError + '_ {
    move |source| InboxError::Io { path: path.to_path_buf(), source }
}

/// A stream being received and unpacked.
struct Session {
    dir: PathBuf,
    /// Stream bytes received (and handed to the unpacker).
    offset: AtomicU64,
    /// The latest request's turn: an older one stops at its next frame.
    turn: AtomicU64,
    preempt: Notify,
    state: tokio::sync::Mutex<Receiving>,
}

struct Receiving {
    digest: Context,
    feed: Option<mpsc::Sender<Vec<u8>>>,
    unpacker: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Receiving {
    /// Ends the unpacking: its outcome.
    async fn finish(&mut self) -> io::Result<()> {
        self.feed = None;
        match self.unpacker.take() {
            Some(t) => tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(io::Error::other)?
                .map_err(|_| io::Error::other("the unpacker panicked"))?,
            None => Ok(()),
        }
    }
}

/// The stream bytes the unpacker reads.
struct Feed {
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(v) => (self.cur, self.pos) = (v, 0),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpacks the stream `feed` into `dir` (made at its first byte), then reads it to its end.
fn unpack(mut feed: Feed, dir: &Path) -> io::Result<()> {
    match feed.rx.blocking_recv() {
        Some(first) => feed.cur = first,
        None => return Ok(()),
    }
    let mut tar = tar::Archive::new(feed);
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(true);
    tar.set_preserve_mtime(true);
    tar.set_overwrite(true);
    tar.unpack(dir)?;
    io::copy(&mut tar.into_inner(), &mut io::sink())?;
    Ok(())
}

/// The migrations a node receives.
pub struct Inbox {
    root: PathBuf,
    pub(super) layout: NodeLayout,
    /// The node's runtimes, which prepare an incoming live migration ([`Inbox::prepare`]).
    pub(super) runtimes: crate::runtime::registry::Runtimes,
    /// The node's networking (the driver's), which attaches an incoming instance to its networks.
    pub(super) networking: Option<Arc<crate::driver::Networking>>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Held while an instance's volumes directory is replaced or removed.
    volumes: tokio::sync::Mutex<()>,
}

/// The mark that instance `id`'s volumes stay on this node after it departed (its migration is not over):
/// `<data>/migrations/kept/<instance>`, holding the migration's id.
pub fn kept_marker(layout: &NodeLayout, id: &InstanceId) -> PathBuf {
    kept_dir(layout).join(id.to_string())
}

/// Keeps instance `id`'s volumes on the node laid out as `layout` after it departed, until migration `migration`
/// is over.
pub fn keep(layout: &NodeLayout, id: &InstanceId, migration: &str) -> io::Result<()> {
    std::fs::create_dir_all(kept_dir(layout))?;
    std::fs::write(kept_marker(layout, id), migration)
}

fn kept_dir(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join("migrations").join("kept")
}

impl Inbox {
    /// The inbox of the node laid out as `layout` (`<data>/migrations/in`).
    pub fn new(layout: NodeLayout) -> Self {
        let root = layout.data_dir().join("migrations").join("in");
        let runtimes = Default::default();
        let volumes = tokio::sync::Mutex::new(());
        Inbox { root, layout, runtimes, networking: None, sessions: Mutex::default(), volumes }
    }

    /// The same inbox, with the node's runtimes to prepare incoming live migrations.
    pub fn with_runtimes(mut self, runtimes: crate::runtime::registry::Runtimes) -> Self {
        self.runtimes = runtimes;
        self
    }

    /// The same inbox, with the node's networking to attach incoming live migrations to their networks.
    pub fn with_networking(mut self, networking: Option<Arc<crate::driver::Networking>>) -> Self {
        self.networking = networking;
        self
    }

    /// The instances whose volumes are kept here, with their migration.
    pub fn kept(&self) -> Vec<(InstanceId, String)> {
        let entries = std::fs::read_dir(kept_dir(&self.layout)).into_iter().flatten().flatten();
        entries
            .filter_map(|e| {
                let id = e.file_name().to_str()?.parse().ok()?;
                Some((id, std::fs::read_to_string(e.path()).ok()?.trim().to_string()))
            })
            .collect()
    }

    /// Ends the keeping of instance `id`'s volumes: removed with them (`remove`), or left in use.
    pub async fn release(&self, id: &InstanceId, remove: bool) -> io::Result<()> {
        let _one = self.volumes.lock().await;
        if remove {
            remove_all(&self.layout.volumes_dir(id))?;
        }
        match std::fs::remove_file(kept_marker(&self.layout, id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes instance `id`'s volumes (what a given-up migration brought).
    pub async fn remove_volumes(&self, id: &InstanceId) -> io::Result<()> {
        let _one = self.volumes.lock().await;
        remove_all(&self.layout.volumes_dir(id))
    }

    /// The migrations that have something here (received, or being received).
    pub fn pending(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for e in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
            ids.extend(e.file_name().to_string_lossy().split('.').next().map(str::to_string));
        }
        ids.sort();
        ids.dedup();
        ids
    }

    pub(super) fn check(migration: &str) -> Result<(), InboxError> {
        let ok = !migration.is_empty()
            && migration.len() <= 64
            && migration.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then_some(()).ok_or_else(|| InboxError::BadId(migration.to_string()))
    }

    fn done_marker(&self, migration: &str) -> PathBuf {
        self.root.join(format!("{migration}.done"))
    }

    /// Where the parts of `migration` other than the volumes are once it is committed.
    pub fn landed(&self, migration: &str) -> PathBuf {
        self.root.join(migration)
    }

    fn session(&self, migration: &str) -> Option<Arc<Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(migration).cloned()
    }

    /// What has arrived of `migration`.
    pub fn received(&self, migration: &str) -> Result<Received, InboxError> {
        Self::check(migration)?;
        let done = self.done_marker(migration);
        if done.exists() {
            let bytes = std::fs::read_to_string(&done).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
            return Ok(Received { bytes, complete: true });
        }
        let bytes = self.session(migration).map_or(0, |s| s.offset.load(Ordering::SeqCst));
        Ok(Received { bytes, complete: false })
    }

    /// A fresh session for `migration` (what an earlier one left is dropped).
    fn start(&self, migration: &str) -> Result<Arc<Session>, InboxError> {
        self.forget(migration);
        // Each session unpacks into a directory of its own: an older one's unpacker, still ending, never writes
        // into the new one.
        let nonce = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join(format!("{migration}.{}-{nonce}.incoming", std::process::id()));
        let (tx, rx) = mpsc::channel(QUEUE);
        let target = dir.clone();
        let unpacker = std::thread::Builder::new()
            .name("fos-unpack".into())
            .spawn(move || unpack(Feed { rx, cur: Vec::new(), pos: 0 }, &target))
            .map_err(io(&dir))?;
        let session = Arc::new(Session {
            dir,
            offset: AtomicU64::new(0),
            turn: AtomicU64::new(0),
            preempt: Notify::new(),
            state: tokio::sync::Mutex::new(Receiving {
                digest: Context::new(&SHA256),
                feed: Some(tx),
                unpacker: Some(unpacker),
            }),
        });
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(migration.to_string(), session.clone());
        Ok(session)
    }

    /// Stops and forgets the session of `migration` (its directory stays).
    fn drop_session(&self, migration: &str) {
        if let Some(old) = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(migration) {
            old.turn.fetch_add(1, Ordering::SeqCst);
            old.preempt.notify_waiters();
        }
    }

    /// Receives `body` (frames) as the stream of `migration` from byte `offset` on (0: from the start, dropping
    /// what arrived before; else what has arrived); answers how far the stream has arrived then.
    pub async fn receive<S, E>(&self, migration: &str, offset: u64, body: S) -> Result<u64, InboxError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        Self::check(migration)?;
        let have = self.received(migration)?;
        if have.complete || (offset != 0 && offset != have.bytes) {
            return Err(InboxError::Offset { offset, have: have.bytes });
        }
        let session = match (offset, self.session(migration)) {
            (0, _) | (_, None) => self.start(migration)?,
            (_, Some(s)) => s,
        };
        let turn = session.turn.fetch_add(1, Ordering::SeqCst) + 1;
        session.preempt.notify_waiters();
        let mut state = session.state.lock().await;
        if session.offset.load(Ordering::SeqCst) != offset {
            return Err(InboxError::Offset { offset, have: session.offset.load(Ordering::SeqCst) });
        }
        let result = self.take(migration, &session, turn, &mut state, body).await;
        if let Err(e) = &result {
            if !matches!(e, InboxError::Broken(..) | InboxError::Superseded(_)) {
                // What arrived cannot be trusted any more: the sender starts again.
                let _ = state.finish().await;
                drop(state);
                self.forget(migration);
            }
        }
        result
    }

    /// Feeds the frames of `body` to the session's unpacker.
    async fn take<S, E>(
        &self,
        migration: &str,
        session: &Session,
        turn: u64,
        state: &mut Receiving,
        body: S,
    ) -> Result<u64, InboxError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut decoder = Decoder::default();
        tokio::pin!(body);
        loop {
            let notified = session.preempt.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if session.turn.load(Ordering::SeqCst) != turn {
                return Err(InboxError::Superseded(migration.to_string()));
            }
            let next = tokio::select! {
                next = body.next() => next,
                _ = notified => continue,
            };
            match next {
                None => return Ok(session.offset.load(Ordering::SeqCst)),
                Some(Err(e)) => return Err(InboxError::Broken(migration.to_string(), e.to_string())),
                Some(Ok(data)) => decoder.push(&data),
            }
            while let Some(raw) = decoder.next_frame().map_err(|e| InboxError::Frame(migration.to_string(), e))? {
                state.digest.update(&raw);
                let n = raw.len() as u64;
                let feed = state.feed.as_ref().ok_or_else(|| InboxError::Superseded(migration.to_string()))?;
                if feed.send(raw).await.is_err() {
                    let why = match state.finish().await {
                        Err(e) => e,
                        Ok(()) => io::Error::other("data past the end of the archive"),
                    };
                    return Err(InboxError::Io { path: session.dir.clone(), source: why });
                }
                session.offset.fetch_add(n, Ordering::SeqCst);
            }
        }
    }

    /// Checks what arrived of `migration` against `commit`, finishes unpacking it and moves its volumes into
    /// `instance`'s; again after it succeeded: nothing to do.
    pub async fn commit(&self, migration: &str, instance: &InstanceId, commit: &DataCommit) -> Result<(), InboxError> {
        if self.received(migration)?.complete {
            return Ok(());
        }
        let session = self.session(migration).ok_or(InboxError::Offset { offset: commit.bytes, have: 0 })?;
        session.turn.fetch_add(1, Ordering::SeqCst);
        session.preempt.notify_waiters();
        let mut state = session.state.lock().await;
        let bytes = session.offset.load(Ordering::SeqCst);
        let sha256 = stream::hex(state.digest.clone().finish().as_ref());
        let finished = state.finish().await;
        let result = if bytes != commit.bytes || sha256 != commit.sha256 {
            Err(InboxError::Mismatch { bytes, sha256, want_bytes: commit.bytes, want_sha256: commit.sha256.clone() })
        } else {
            finished.map_err(io(&session.dir))
        };
        drop(state);
        if let Err(e) = result {
            self.forget(migration);
            return Err(e);
        }
        let (dir, landed, dest) = (session.dir.clone(), self.landed(migration), self.layout.volumes_dir(instance));
        let _one = self.volumes.lock().await;
        // What arrives replaces volumes kept here from an earlier migration away.
        let _ = std::fs::remove_file(kept_marker(&self.layout, instance));
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            remove_all(&dest)?;
            let staged = dir.join(VOLUMES);
            match staged.is_dir() {
                true => std::fs::rename(&staged, &dest)?,
                false => std::fs::create_dir_all(&dest)?,
            }
            remove_all(&landed)?;
            match dir.is_dir() {
                true => std::fs::rename(&dir, &landed),
                false => std::fs::create_dir_all(&landed),
            }
        })
        .await
        .map_err(|e| InboxError::Io { path: session.dir.clone(), source: io::Error::other(e) })?
        .map_err(io(&session.dir))?;
        let done = self.done_marker(migration);
        std::fs::write(&done, commit.bytes.to_string()).map_err(io(&done))?;
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(migration);
        Ok(())
    }

    /// Forgets what arrived of `migration` (it ended, or what arrived is dropped).
    pub fn forget(&self, migration: &str) {
        if Self::check(migration).is_err() {
            return;
        }
        self.drop_session(migration);
        for e in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.split('.').next() == Some(migration) {
                let path = e.path();
                let _ = if path.is_dir() { remove_all(&path) } else { std::fs::remove_file(&path) };
            }
        }
    }
}

/// Removes a directory tree, when there.
pub fn remove_all(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Cgroups;
    use crate::migration::stream::{produce, Part};
    use crate::network::names::Names;

    fn inbox(data: &Path) -> Inbox {
        let names = Names::new("0", "n1", data);
        Inbox::new(NodeLayout::new(data, "/run/netns", Cgroups::default(), names))
    }

    /// The frames of `parts` from `resume` on, and the whole stream's digest.
    fn frames(parts: &[Part], resume: u64) -> (Vec<Bytes>, DataCommit) {
        let mut out = Vec::new();
        let s = produce(parts, resume, &mut |f| {
            out.push(Bytes::from(f.data));
            Ok(())
        })
        .unwrap();
        (out, DataCommit { bytes: s.bytes, sha256: s.sha256 })
    }

    fn body(frames: Vec<Bytes>) -> impl Stream<Item = Result<Bytes, String>> + Send {
        futures::stream::iter(frames.into_iter().map(Ok))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_cut_short_resumes_and_lands_in_the_volumes_and_a_bad_one_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("vol/data")).unwrap();
        let big: Vec<u8> = (0..(5 << 20)).map(|_| fastrand::u8(..)).collect();
        std::fs::write(src.join("vol/data/big"), &big).unwrap();
        std::fs::create_dir_all(src.join("ckpt")).unwrap();
        std::fs::write(src.join("ckpt/img"), b"image").unwrap();
        let parts = vec![
            Part { name: VOLUMES.into(), dir: src.join("vol") },
            Part { name: "checkpoint".into(), dir: src.join("ckpt") },
        ];
        let inbox = inbox(&tmp.path().join("dest"));
        let id = InstanceId::new("default", "app", "db", 0);
        let m = "0b7c-1";
        let (all, commit) = frames(&parts, 0);

        // Two frames, then the connection breaks: what arrived is kept.
        let broken =
            futures::stream::iter(all[..2].iter().cloned().map(Ok))
                .chain(futures::stream::iter([Err::<Bytes, String>("reset".into())]));
        assert!(matches!(inbox.receive(m, 0, broken).await, Err(InboxError::Broken(..))));
        let have = inbox.received(m).unwrap();
        assert_eq!(have.bytes, 2 << 20);
        // Resuming elsewhere than where it ends is refused, saying where.
        let err = inbox.receive(m, 1, body(vec![])).await.unwrap_err();
        assert!(err.to_string().contains(&format!("resume from {}", 2 << 20)), "{err}");
        // A commit before everything arrived does not match, and drops what arrived.
        let (rest, _) = frames(&parts, have.bytes);
        let got = inbox.receive(m, have.bytes, body(rest)).await.unwrap();
        assert_eq!(got, commit.bytes);
        let wrong = DataCommit { bytes: commit.bytes, sha256: "00".repeat(32) };
        assert!(matches!(inbox.commit(m, &id, &wrong).await, Err(InboxError::Mismatch { .. })));
        assert_eq!(inbox.received(m).unwrap().bytes, 0, "dropped");

        // Sent again from the start, it lands.
        assert_eq!(inbox.receive(m, 0, body(all)).await.unwrap(), commit.bytes);
        inbox.commit(m, &id, &commit).await.unwrap();
        assert!(inbox.received(m).unwrap().complete);
        inbox.commit(m, &id, &commit).await.unwrap();
        assert_eq!(std::fs::read(inbox.layout.volumes_dir(&id).join("data/big")).unwrap(), big);
        assert_eq!(std::fs::read(inbox.landed(m).join("checkpoint/img")).unwrap(), b"image");
        assert_eq!(inbox.pending(), vec![m.to_string()]);
        inbox.forget(m);
        assert!(inbox.pending().is_empty());
        assert!(!inbox.landed(m).exists());
        assert!(inbox.layout.volumes_dir(&id).join("data/big").exists(), "the volumes stay");
    }

    #[tokio::test]
    async fn garbage_is_refused_and_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let inbox = inbox(tmp.path());
        let junk = body(vec![Bytes::from_static(&[9u8; 64])]);
        assert!(matches!(inbox.receive("m-1", 0, junk).await, Err(InboxError::Frame(..))));
        assert_eq!(inbox.received("m-1").unwrap().bytes, 0);
        assert!(inbox.pending().is_empty());
        assert!(matches!(inbox.received("../x"), Err(InboxError::BadId(_))));
    }
}
