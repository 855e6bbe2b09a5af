//! The lifecycle driver: lists and watches the node's desired instance records (re-listing after a compaction or a
//! broken watch), keeps one task per instance (so a slow or failing instance never blocks another), and on start
//! resumes the instances the runtimes recovered, tearing down those no longer desired. It builds every instance's
//! [`crate::runtime::InstanceContext`] with the node's [`NodeLayout`] and keeps [`LocalInstances`] current.

pub mod backoff;
mod instance;
mod local;
mod networking;
mod secrets;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fos_api::manifest::EntityKind;
use fos_api::record::{ActualInstance, DesiredInstance, InstanceId};
use fos_store::records::{ActualInstances, Change, DesiredInstances, Entry};
use fos_store::{Event, EventKind, Records, Revision, StoreError};
use futures::StreamExt;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::backoff::Backoff;
use self::instance::Start;
pub use self::local::{Local, LocalInstances};
pub use self::networking::Networking;
pub use crate::runtime::registry::Runtimes;
use crate::runtime::{NodeLayout, Recovered, Runtime};

/// Timing of the driver.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// First retry delay after a failure or crash (doubled each time, jittered: see [`Backoff`]).
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How often readiness probes run.
    pub probe_interval: Duration,
    /// A run lasting this long resets the crash backoff.
    pub stable_after: Duration,
    /// Pause before re-listing after the store failed.
    pub relist_delay: Duration,
}

impl DriverSettings {
    /// The retry delays these settings give.
    pub fn backoff(&self) -> Backoff {
        Backoff { base: self.backoff_base, max: self.backoff_max }
    }
}

impl Default for DriverSettings {
    fn default() -> Self {
        DriverSettings {
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            probe_interval: Duration::from_secs(1),
            stable_after: Duration::from_secs(10),
            relist_delay: Duration::from_millis(500),
        }
    }
}

/// What the instance tasks share.
pub struct Shared {
    /// The store's records.
    pub records: Records,
    /// This node's name.
    pub node: String,
    /// The runtimes.
    pub runtimes: Runtimes,
    /// How the node lays out instances: builds each one's context.
    pub layout: NodeLayout,
    /// The instances the runtimes hold (kept current by the instance tasks).
    pub local: LocalInstances,
    /// Timing.
    pub settings: DriverSettings,
    /// The node's networks, when it has a network manager (instances with `networks` fail to configure without).
    pub networking: Option<Networking>,
    /// The cluster's secrets key, to open the Secrets entities reference (none: such entities fail to start).
    pub secrets: Option<std::sync::Arc<fos_store::seal::SealKey>>,
}

/// Driver failures that stop it.
#[derive(Debug, Error)]
pub enum DriverError {
    /// A runtime could not report what it left behind.
    #[error("recovering {kind} instances: {message}")]
    Recover {
        /// The runtime's kind.
        kind: EntityKind,
        /// What failed.
        message: String,
    },
    /// The actual records left by an earlier run could not be marked unverified.
    #[error("marking the instances of an earlier run unverified: {0}")]
    Mark(String),
}

struct Handle {
    tx: watch::Sender<Option<DesiredInstance>>,
    task: JoinHandle<()>,
}

/// The lifecycle driver of one node.
pub struct Driver {
    shared: Arc<Shared>,
    tasks: HashMap<InstanceId, Handle>,
    recovered: HashMap<InstanceId, (Recovered, Arc<dyn Runtime>)>,
}

impl Driver {
    /// A driver; call [`Driver::recover`] then [`Driver::run`].
    pub fn new(shared: Shared) -> Self {
        Driver { shared: Arc::new(shared), tasks: HashMap::new(), recovered: HashMap::new() }
    }

    /// Collects the instances every runtime left behind (adopting live processes), marks every actual record an
    /// earlier run of the agent left as unverified (its instance task clears the mark once it has checked the
    /// instance: adopted or restarted it, and seen its readiness probe pass), and tells the networking which
    /// recovered instances hold which networks (so none is torn down under them).
    pub async fn recover(&mut self) -> Result<usize, DriverError> {
        for (kind, rt) in &self.shared.runtimes {
            let found = rt.recover().await.map_err(|e| DriverError::Recover { kind: *kind, message: e.to_string() })?;
            for r in found {
                self.recovered.insert(r.desired.id.clone(), (r, rt.clone()));
            }
        }
        self.mark_unverified().await?;
        if let Some(networking) = &self.shared.networking {
            for (rec, _) in self.recovered.values() {
                networking.adopt(&rec.desired).await;
            }
        }
        Ok(self.recovered.len())
    }

    /// Marks the node's actual records unverified and not ready (they were written before this start).
    async fn mark_unverified(&self) -> Result<(), DriverError> {
        let records = &self.shared.records;
        let prefix = records.keys().actual_instances_prefix(&self.shared.node);
        let marking = |e: StoreError| DriverError::Mark(e.to_string());
        let (list, _) = records.list_in::<ActualInstances>(&prefix).await.map_err(marking)?;
        for (id, _) in list {
            let mark = |current: Option<&ActualInstance>| -> Result<Change<ActualInstance>, StoreError> {
                Ok(match current {
                    Some(a) if !a.unverified || a.ready => {
                        Change::Put(ActualInstance { unverified: true, ready: false, ..a.clone() })
                    }
                    _ => Change::Keep,
                })
            };
            records.update::<ActualInstances, StoreError, _>(&id, mark).await.map_err(marking)?;
        }
        Ok(())
    }

    /// Watches the desired records until `shutdown` turns true; instance tasks stop with it (their processes keep
    /// running, to be adopted by the next start).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let prefix = self.shared.records.keys().desired_instances_prefix(&self.shared.node);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let revision = match self.relist(&prefix).await {
                Ok(rev) => rev,
                Err(e) => {
                    tracing::warn!(error = %e, "listing desired instances failed; retrying");
                    tokio::select! {
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(self.shared.settings.relist_delay) => {}
                    }
                    continue;
                }
            };
            let mut stream = match self.shared.records.store().watch(&prefix, revision + 1).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "watching desired instances failed; re-listing");
                    tokio::select! {
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(self.shared.settings.relist_delay) => {}
                    }
                    continue;
                }
            };
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    event = stream.next() => match event {
                        Some(Ok(ev)) => self.on_event(&ev),
                        Some(Err(StoreError::Compacted { .. })) => break,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "desired instance watch failed; re-listing");
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
        for (_, h) in self.tasks.drain() {
            drop(h.tx);
            h.task.abort();
        }
    }

    /// Lists the desired records and brings every task in line with them; returns the list's revision.
    async fn relist(&mut self, prefix: &str) -> Result<Revision, StoreError> {
        let (list, revision) = self.shared.records.list_in::<DesiredInstances>(prefix).await?;
        let mut desired: HashMap<InstanceId, DesiredInstance> = HashMap::new();
        for entry in list {
            if let Some(d) = self.mine(entry) {
                desired.insert(d.id.clone(), d);
            }
        }
        let mut ids: Vec<InstanceId> = self.tasks.keys().cloned().collect();
        ids.extend(self.recovered.keys().cloned());
        for id in ids {
            if !desired.contains_key(&id) {
                self.send(id, None);
            }
        }
        for (id, d) in desired {
            self.send(id, Some(d));
        }
        self.remove_stale_actuals().await;
        Ok(revision)
    }

    /// Deletes actual records of instances that are neither desired nor held by any runtime (left by an agent whose
    /// data directory was lost): nothing here would ever update them. Only their keys are read, so an unreadable
    /// record goes too.
    async fn remove_stale_actuals(&self) {
        let records = &self.shared.records;
        let prefix = records.keys().actual_instances_prefix(&self.shared.node);
        let Ok(list) = records.store().list(&prefix).await else { return };
        for kv in list.kvs {
            let Some(id) = records.parse::<ActualInstances>(&kv.key) else { continue };
            if !self.tasks.contains_key(&id.1) {
                tracing::info!(instance = %id.1, "removing the actual record of an instance this node does not have");
                let _ = records.delete::<ActualInstances>(&id).await;
            }
        }
    }

    /// The desired record of `entry` when it is for this node.
    fn mine(&self, (_, d): Entry<DesiredInstances>) -> Option<DesiredInstance> {
        if d.value.node == self.shared.node {
            return Some(d.value);
        }
        tracing::warn!(key = d.key, node = %d.value.node, "desired record names another node; ignored");
        None
    }

    fn on_event(&mut self, ev: &Event) {
        let records = &self.shared.records;
        match ev.kind {
            EventKind::Put => match records.decode::<DesiredInstances>(&ev.kv) {
                Some(Ok(entry)) => {
                    if let Some(d) = self.mine(entry) {
                        self.send(d.id.clone(), Some(d));
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "undecodable desired record; ignored"),
                None => {}
            },
            EventKind::Delete => {
                if let Some((_, id)) = records.parse::<DesiredInstances>(&ev.kv.key) {
                    self.send(id, None);
                }
            }
        }
    }

    /// Hands `desired` to the instance's task, starting one when there is none (or the last one finished).
    fn send(&mut self, id: InstanceId, desired: Option<DesiredInstance>) {
        if let Some(h) = self.tasks.get(&id) {
            if !h.task.is_finished() && h.tx.send(desired.clone()).is_ok() {
                return;
            }
            self.tasks.remove(&id);
        }
        let recovered = self.recovered.remove(&id);
        if desired.is_none() && recovered.is_none() {
            return; // nothing here to tear down
        }
        let (tx, rx) = watch::channel(desired);
        let shared = self.shared.clone();
        let start_id = id.clone();
        let task = tokio::spawn(async move {
            let previous = match recovered {
                Some(_) => previous_actual(&shared, &start_id).await,
                None => None,
            };
            instance::drive(shared, Start { id: start_id, recovered, previous }, rx).await;
        });
        self.tasks.insert(id, Handle { tx, task });
        self.tasks.retain(|_, h| !h.task.is_finished());
    }
}

/// The actual record a previous agent left (to keep its restart count and start time).
async fn previous_actual(shared: &Shared, id: &InstanceId) -> Option<ActualInstance> {
    let previous = shared.records.get::<ActualInstances>(&(shared.node.clone(), id.clone())).await;
    previous.ok().flatten().map(|v| v.value)
}
