//! The two ends of a migration's data in `fosd`: the API's [`MigrationInbox`] over this node's agent (set once the
//! agent has started), and the agent's [`VolumeSender`] over the node API client (the cluster CA, this node's
//! token): it finds the destination's address in its heartbeat, asks what has arrived, streams the rest of the
//! migration's stream in one request as its frames are made (after a broken or stalled connection: asks again and
//! resumes from there), then asks the destination to check it and move it into place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use fos_agent::migration::stream::{self, Frame};
use fos_agent::migration::{Inbox, InboxError, Outgoing, Progress, VolumeSender};
use fos_api::migration::{DataCommit, Received};
use fos_api::record::DesiredInstance;
use fos_api::wire::ErrorBody;
use fos_api::InstanceId;
use fos_controller::auth::Peer;
use fos_controller::ops::transfer::{BodyStream, InboxRefusal, MigrationInbox, Prepared};
use fos_store::records::NodeStatuses;
use fos_store::Records;
use futures::StreamExt;

/// Frames made ahead of the connection.
const QUEUE: usize = 4;

/// Attempts before the sender gives up (the agent tries again later, resuming).
const ATTEMPTS: u32 = 5;

/// A stream that moves no byte for this long is given up (and resumed).
const STALL: Duration = Duration::from_secs(20);

/// How long the destination may take to prepare an incoming instance (its images fetched, its disks made).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the destination may take to finish unpacking and move the volumes into place.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(300);

/// This node's agent's inbox, once the agent runs.
#[derive(Clone, Default)]
pub struct AgentInbox(Arc<OnceLock<Arc<Inbox>>>);

impl AgentInbox {
    /// Receives into `inbox` from now on.
    pub fn set(&self, inbox: Arc<Inbox>) {
        let _ = self.0.set(inbox);
    }

    fn get(&self) -> Result<&Arc<Inbox>, InboxRefusal> {
        self.0.get().ok_or_else(|| InboxRefusal::Failed("this node runs no agent".into()))
    }
}

fn refusal(e: InboxError) -> InboxRefusal {
    match e {
        InboxError::Offset { .. }
        | InboxError::Mismatch { .. }
        | InboxError::BadId(_)
        | InboxError::Frame(..)
        | InboxError::Superseded(_)
        | InboxError::NoRuntime(_) => InboxRefusal::Conflict(e.to_string()),
        InboxError::Io { .. } | InboxError::Broken(..) | InboxError::Prepare(_) | InboxError::Attach(_) => {
            InboxRefusal::Failed(e.to_string())
        }
    }
}

#[async_trait]
impl MigrationInbox for AgentInbox {
    fn received(&self, migration: &str) -> Result<Received, InboxRefusal> {
        self.get()?.received(migration).map_err(refusal)
    }

    async fn append(&self, migration: &str, offset: u64, body: BodyStream) -> Result<u64, InboxRefusal> {
        self.get()?.receive(migration, offset, body).await.map_err(refusal)
    }

    async fn commit(&self, migration: &str, instance: &InstanceId, commit: &DataCommit) -> Result<(), InboxRefusal> {
        self.get()?.commit(migration, instance, commit).await.map_err(refusal)
    }

    async fn prepare(&self, migration: &str, desired: &DesiredInstance) -> Result<String, InboxRefusal> {
        self.get()?.prepare(migration, desired).await.map_err(refusal)
    }
}

/// Sends archives to other nodes' APIs.
pub struct PeerSender {
    /// The node API client.
    pub peer: Peer,
    /// The store, for the destination's address.
    pub records: Records,
}

impl std::fmt::Debug for PeerSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSender").field("scheme", &self.peer.scheme).finish()
    }
}

impl PeerSender {
    async fn answer<T: serde::de::DeserializeOwned>(resp: reqwest::Response, node: &str) -> Result<T, String> {
        let status = resp.status();
        if status.is_success() {
            return resp.json::<T>().await.map_err(|e| format!("{node}: {e}"));
        }
        let message = resp.json::<ErrorBody>().await.map(|b| b.message).unwrap_or_else(|e| e.to_string());
        Err(format!("{node} answered {status}: {message}"))
    }
}

#[async_trait]
impl VolumeSender for PeerSender {
    async fn send(&self, out: &Outgoing, progress: Progress) -> Result<(), String> {
        let (destination, instance, migration) = (out.destination.as_str(), &out.instance, out.migration.as_str());
        let address = self.address(destination).await?;
        let base = format!("{}://{address}/v1/migrations/{instance}/data", self.peer.scheme);
        let parts = out.parts.clone();
        let total = tokio::task::spawn_blocking(move || stream::estimate(&parts)).await.map_err(|e| e.to_string())?;
        let mut failures = 0;
        loop {
            let attempt = self.attempt(&base, out, total, progress.clone()).await;
            match attempt {
                Ok(()) => return Ok(()),
                Err(e) => {
                    failures += 1;
                    if failures >= ATTEMPTS {
                        return Err(e);
                    }
                    tracing::warn!(%destination, %migration, error = %e, "sending failed; resuming from what arrived");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                }
            }
        }
    }

    async fn prepare(&self, destination: &str, migration: &str, desired: &DesiredInstance) -> Result<String, String> {
        let address = self.address(destination).await?;
        let url =
            format!("{}://{address}/v1/migrations/{}/prepare?migration={migration}", self.peer.scheme, desired.id);
        let req = self.peer.http.post(url).bearer_auth(&self.peer.token).json(desired).timeout(PREPARE_TIMEOUT);
        let answer: Prepared = Self::answer(req.send().await.map_err(|e| e.to_string())?, destination).await?;
        Ok(answer.prepared)
    }
}

impl PeerSender {
    /// The API address of node `node`, from its heartbeat.
    async fn address(&self, node: &str) -> Result<String, String> {
        let status = self.records.get::<NodeStatuses>(&node.to_string()).await.map_err(|e| e.to_string())?;
        status.and_then(|s| s.value.address).ok_or_else(|| format!("{node} has no API address (no heartbeat)"))
    }

    /// One attempt: asks what arrived, streams the rest (a stream that makes no progress for [`STALL`] is given
    /// up), then commits.
    async fn attempt(&self, base: &str, out: &Outgoing, total: u64, progress: Progress) -> Result<(), String> {
        let (destination, migration) = (out.destination.as_str(), out.migration.as_str());
        // The migration id is a uuid the store holds; the offset a number: nothing to escape.
        let req = self.peer.http.get(format!("{base}?migration={migration}")).bearer_auth(&self.peer.token);
        let have: Received = Self::answer(req.send().await.map_err(|e| e.to_string())?, destination).await?;
        if have.complete {
            progress(have.bytes, have.bytes);
            return Ok(());
        }
        progress(have.bytes, total.max(have.bytes));
        let moved = Arc::new(AtomicU64::new(have.bytes));
        let (tx, rx) = tokio::sync::mpsc::channel::<Frame>(QUEUE);
        let (parts, resume) = (out.parts.clone(), have.bytes);
        let producer = tokio::task::spawn_blocking(move || {
            stream::produce(&parts, resume, &mut |frame| {
                tx.blocking_send(frame).map_err(|_| std::io::Error::other("the request ended"))
            })
        });
        let body = {
            let (moved, progress) = (moved.clone(), progress.clone());
            let frames = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
            frames.map(move |frame| {
                moved.store(frame.end, Ordering::Relaxed);
                progress(frame.end, total.max(frame.end));
                Ok::<_, std::io::Error>(frame.data)
            })
        };
        let url = format!("{base}?migration={migration}&offset={}", have.bytes);
        let req = self.peer.http.put(url).bearer_auth(&self.peer.token).body(reqwest::Body::wrap_stream(body));
        let sent = async { Self::answer::<Received>(req.send().await.map_err(|e| e.to_string())?, destination).await };
        tokio::pin!(sent);
        let mut watch = tokio::time::interval(STALL);
        watch.tick().await;
        let mut last = have.bytes;
        let arrived = loop {
            tokio::select! {
                r = &mut sent => break r,
                _ = watch.tick() => {
                    let now = moved.load(Ordering::Relaxed);
                    if now == last {
                        break Err(format!("no progress for {STALL:?} at byte {now}"));
                    }
                    last = now;
                }
            }
        };
        // The body is dropped with the request: a producer still running stops at its next frame.
        let streamed = producer.await.map_err(|e| e.to_string());
        let arrived = arrived?;
        let streamed = streamed?.map_err(|e| format!("reading the data to send: {e}"))?;
        if arrived.bytes != streamed.bytes {
            return Err(format!("{destination} has {} of {} bytes", arrived.bytes, streamed.bytes));
        }
        let commit = DataCommit { bytes: streamed.bytes, sha256: streamed.sha256 };
        let req = self.peer.http.post(format!("{base}/commit?migration={migration}")).bearer_auth(&self.peer.token);
        let resp = req.json(&commit).timeout(COMMIT_TIMEOUT).send().await.map_err(|e| e.to_string())?;
        Self::answer::<Received>(resp, destination).await?;
        progress(streamed.bytes, streamed.bytes);
        Ok(())
    }
}
