//! Cleaning the node when its agent stops for good (`fosd --cleanup`, which `make demo-down` uses): everything the
//! agent created on the host goes, and the host is left as it was before the agent first started.
//!
//! 1. Every instance a runtime holds is stopped, cleaned and undefined (processes, cgroup, directories) and its
//!    actual record deleted.
//! 2. The network manager detaches every instance and tears down every network of the node, then sweeps links and
//!    namespaces named in the agent's scope, `dnsmasq`, and the namespace directory's mount
//!    ([`crate::network::cleanup`]).
//! 3. Cgroups named in the agent's scope are emptied and removed, and the `fos` parent groups this agent's first
//!    start created (remembered in the data directory) are removed when empty.
//!
//! A step that fails is retried with the driver's backoff a few times, then reported; the cleanup goes on with the
//! next one. The desired records stay: a later start brings the instances back.

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fos_api::record::InstanceId;
use fos_store::records::ActualInstances;
use fos_store::Records;

use crate::cgroup::Cgroups;
use crate::driver::{Backoff, LocalInstances};
use crate::network::{StoreNetworkManager, Swept};
use crate::runtime::NodeLayout;

/// The file in the data directory listing the `fos` cgroup parents the agent created.
const CGROUPS_MARKER: &str = "cgroups-created";

/// How many times a failing cleanup step is tried.
const ATTEMPTS: u32 = 5;

/// Records the `fos` cgroup parents that `cgroups`' detection created, so that a cleanup removes them again (even
/// one by a later start of the agent, which finds them existing).
pub fn remember_cgroup_parents(data_dir: &Path, cgroups: &Cgroups) {
    if cgroups.created().is_empty() {
        return;
    }
    let marker = data_dir.join(CGROUPS_MARKER);
    let mut known = created_parents(data_dir);
    known.extend(cgroups.created().iter().cloned());
    known.sort();
    known.dedup();
    let text: String = known.iter().map(|p| format!("{}\n", p.display())).collect();
    if let Err(e) = std::fs::write(&marker, text) {
        tracing::warn!(path = %marker.display(), error = %e, "cannot remember the cgroups this agent created");
    }
}

/// The `fos` cgroup parents the agent created, as remembered in `data_dir`.
fn created_parents(data_dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(data_dir.join(CGROUPS_MARKER)).unwrap_or_default();
    text.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect()
}

/// What a cleanup did.
#[derive(Debug, Clone, Default)]
pub struct CleanupReport {
    /// Instances stopped and removed.
    pub instances: Vec<InstanceId>,
    /// What the network manager removed.
    pub networks: Swept,
    /// Cgroups removed.
    pub cgroups: Vec<PathBuf>,
    /// Steps that still failed after their retries.
    pub errors: Vec<String>,
}

/// What the cleanup works on (the agent's parts, kept by its handle).
#[derive(Clone)]
pub struct Cleaner {
    /// The store's records.
    pub records: Records,
    /// This node's name.
    pub node: String,
    /// The instances the runtimes hold.
    pub local: LocalInstances,
    /// The node's layout (names, cgroups, data directory).
    pub layout: NodeLayout,
    /// The network manager, when the node has one.
    pub networks: Option<Arc<StoreNetworkManager>>,
    /// Delays between the tries of a failing step.
    pub backoff: Backoff,
}

impl Cleaner {
    /// Runs `step` until it succeeds or failed [`ATTEMPTS`] times (waiting the backoff in between, one log line per
    /// failure); the last error is returned.
    async fn retried<T, E: Display, F: Future<Output = Result<T, E>>>(
        &self,
        what: &str,
        mut step: impl FnMut() -> F,
    ) -> Result<T, String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match step().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt >= ATTEMPTS => return Err(format!("{what}: {e} (after {attempt} attempts)")),
                Err(e) => {
                    let delay = self.backoff.delay(attempt);
                    tracing::warn!(attempt, retry_in = ?delay, error = %e, "cleanup: {what} failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Removes everything the agent created on the node; see the module documentation.
    pub async fn run(&self) -> CleanupReport {
        let mut report = CleanupReport::default();
        for local in self.local.all() {
            let (rt, cx) = (local.runtime.clone(), local.context.clone());
            let id = cx.id.clone();
            let done = self
                .retried(&format!("removing instance {id}"), || async {
                    rt.stop(&cx).await?;
                    rt.clean(&cx).await?;
                    rt.undefine(&cx).await
                })
                .await;
            match done {
                Ok(()) => {
                    self.local.remove(&id);
                    report.instances.push(id);
                }
                Err(e) => report.errors.push(e),
            }
        }
        if let Some(networks) = &self.networks {
            match self.retried("removing the node's networks", || networks.clean_all()).await {
                Ok(swept) => report.networks = swept,
                Err(e) => report.errors.push(e),
            }
        }
        let cgroups = self.layout.cgroups().clone();
        let scope = self.layout.names().scope().to_string();
        let data_dir = self.layout.data_dir().to_path_buf();
        let swept = tokio::task::spawn_blocking(move || {
            let (removed, mut errors) = cgroups.sweep(&scope);
            let parents = created_parents(&data_dir);
            for parent in &parents {
                match std::fs::remove_dir(parent) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    // Another agent's groups are in it: it stays, and is remembered for a later cleanup.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => continue,
                    Err(e) => errors.push(format!("removing cgroup {}: {e}", parent.display())),
                }
            }
            if parents.iter().all(|p| !p.exists()) {
                let _ = std::fs::remove_file(data_dir.join(CGROUPS_MARKER));
            }
            (removed, errors)
        })
        .await;
        match swept {
            Ok((removed, errors)) => {
                report.cgroups = removed;
                report.errors.extend(errors);
            }
            Err(e) => report.errors.push(format!("sweeping cgroups: {e}")),
        }
        let prefix = self.records.keys().actual_instances_prefix(&self.node);
        match self.records.list_in::<ActualInstances>(&prefix).await {
            Ok((list, _)) => {
                for (id, _) in list {
                    if let Err(e) = self.records.delete::<ActualInstances>(&id).await {
                        report.errors.push(format!("deleting the actual record of {}: {e}", id.1));
                    }
                }
            }
            Err(e) => report.errors.push(format!("listing the node's actual records: {e}")),
        }
        report
    }
}
