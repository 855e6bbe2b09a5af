//! The two ends of a migration's data in `fosd`: the API's [`MigrationInbox`] over this node's agent (set once the
//! agent has started), and the agent's [`VolumeSender`] over the node API client (the cluster CA, this node's
//! token): it finds the destination's address in its heartbeat, asks what has arrived, sends the rest of the
//! archive in chunks (each retried from what arrived when a connection fails), then asks the destination to check
//! and unpack it.

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use fos_agent::migration::{Inbox, InboxError, Outgoing, VolumeSender};
use fos_api::migration::{DataCommit, Received};
use fos_api::wire::ErrorBody;
use fos_api::InstanceId;
use fos_controller::auth::Peer;
use fos_controller::ops::transfer::{InboxRefusal, MigrationInbox};
use fos_store::records::NodeStatuses;
use fos_store::Records;

/// Bytes per request (within the API's body limit).
const CHUNK: usize = 4 << 20;

/// Attempts per chunk before the sender gives up (the agent tries again later, resuming).
const ATTEMPTS: u32 = 5;

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
        InboxError::Offset { .. } | InboxError::Mismatch { .. } | InboxError::BadId(_) => {
            InboxRefusal::Conflict(e.to_string())
        }
        InboxError::Io { .. } => InboxRefusal::Failed(e.to_string()),
    }
}

#[async_trait]
impl MigrationInbox for AgentInbox {
    fn received(&self, migration: &str) -> Result<Received, InboxRefusal> {
        self.get()?.received(migration).map_err(refusal)
    }

    async fn append(&self, migration: &str, offset: u64, data: &[u8]) -> Result<u64, InboxRefusal> {
        self.get()?.append(migration, offset, data).await.map_err(refusal)
    }

    async fn commit(&self, migration: &str, instance: &InstanceId, commit: &DataCommit) -> Result<(), InboxRefusal> {
        self.get()?.commit(migration, instance, commit).await.map_err(refusal)
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
    async fn send(&self, out: &Outgoing, progress: &(dyn Fn(u64) + Send + Sync)) -> Result<(), String> {
        let (destination, instance, migration) = (out.destination.as_str(), &out.instance, out.migration.as_str());
        let (archive, bytes, sha256) = (out.archive.as_path(), out.bytes, out.sha256.as_str());
        let status = self.records.get::<NodeStatuses>(&destination.to_string()).await.map_err(|e| e.to_string())?;
        let address = status
            .and_then(|s| s.value.address)
            .ok_or_else(|| format!("{destination} has no API address (no heartbeat)"))?;
        let base = format!("{}://{address}/v1/migrations/{instance}/data", self.peer.scheme);
        // The migration id is a uuid the store holds; the offset a number: nothing to escape.
        let url = |offset: u64| format!("{base}?migration={migration}&offset={offset}");
        let received = |this: &Self| {
            let req = this.peer.http.get(url(0)).bearer_auth(&this.peer.token);
            async move { Self::answer::<Received>(req.send().await.map_err(|e| e.to_string())?, destination).await }
        };
        let mut have = received(self).await?;
        let mut file = std::fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
        let mut failures = 0;
        while !have.complete && have.bytes < bytes {
            progress(have.bytes);
            let len = CHUNK.min((bytes - have.bytes) as usize);
            let mut chunk = vec![0u8; len];
            file.seek(SeekFrom::Start(have.bytes))
                .and_then(|_| file.read_exact(&mut chunk))
                .map_err(|e| e.to_string())?;
            let req = self.peer.http.put(url(have.bytes)).bearer_auth(&self.peer.token).body(chunk);
            let sent = match req.timeout(Duration::from_secs(60)).send().await {
                Ok(resp) => Self::answer::<Received>(resp, destination).await,
                Err(e) => Err(e.to_string()),
            };
            match sent {
                Ok(r) => {
                    have = r;
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    if failures >= ATTEMPTS {
                        return Err(e);
                    }
                    tracing::warn!(%destination, %migration, error = %e, "chunk failed; resuming from what arrived");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                    have = received(self).await?;
                }
            }
        }
        progress(have.bytes);
        if !have.complete {
            let commit = DataCommit { bytes, sha256: sha256.to_string() };
            let commit_url = format!("{base}/commit?migration={migration}");
            let req = self.peer.http.post(commit_url).bearer_auth(&self.peer.token);
            let resp = req.json(&commit).send().await.map_err(|e| e.to_string())?;
            Self::answer::<Received>(resp, destination).await?;
        }
        Ok(())
    }
}
