//! Live migration of a native instance with CRIU ([`crate::migration::criu`]). Out: the instance's process tree is
//! checkpointed into `<volumes>/.checkpoint` (so the images travel with the volumes, under the ticket's location),
//! with a manifest saying where this node kept the instance's files; the tree is dead once the dump returns (a
//! restore waits until its pids are free, zombies reaped). In: the tree is restored from the images inside the instance's cgroups, its output, working
//! directory and volume files reopened where this node keeps them, and adopted like a process found after a restart
//! (tracked by pid, its exit seen, the restart policy applied). A restore that fails starts the instance afresh on
//! its volumes instead (said in its error output): never two copies, never none. The same restore brings the
//! instance back on the source when the migration is given up before the destination took it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use fos_api::lifecycle::State;
use fos_api::record::DesiredInstance;
use serde::{Deserialize, Serialize};

use super::instance::Instance;
use super::process;
use super::state::ProcessRecord;
use super::NativeRuntime;
use crate::migration::criu::{dump, restore, CriuError};
use crate::runtime::{InstanceContext, MigrationTicket, RunState, RuntimeError};

use crate::migration::criu::CHECKPOINT_DIR;

/// The manifest the source writes next to the images.
const MANIFEST: &str = "fos-checkpoint.json";

/// How long the dumped tree may take to be gone after `criu dump` returns (and its pids to be free).
const GONE_PATIENCE: Duration = Duration::from_secs(10);

/// Where the checkpointed instance's files were on the node it was made on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    /// The root pid of the tree.
    pid: u32,
    /// The instance's directory (its output, working area).
    instance_dir: PathBuf,
    /// Its volumes directory.
    volumes_dir: PathBuf,
}

fn failed(e: CriuError) -> RuntimeError {
    RuntimeError::Failed(e.to_string())
}

impl NativeRuntime {
    fn checkpoint_dir(&self, cx: &InstanceContext, location: &str) -> Result<PathBuf, RuntimeError> {
        crate::migration::criu::checkpoint_dir(&self.layout.volumes_dir(&cx.id), location)
            .map_err(RuntimeError::Invalid)
    }

    /// Checkpoints the running instance into its volumes directory; once this returns its processes are gone.
    pub(super) async fn checkpoint(&self, cx: &InstanceContext) -> Result<MigrationTicket, RuntimeError> {
        let inst = self.get(&cx.id)?;
        inst.settle().await?;
        let p = inst.process().filter(|_| inst.main_running());
        let p = p.ok_or_else(|| RuntimeError::Failed("no running process to checkpoint".into()))?;
        // A paused instance is thawed first: the dump freezes it itself.
        let _ = inst.cgroup.freeze(false);
        let _ = process::signal_group(p.pid as i32, libc::SIGCONT);
        let images = self.checkpoint_dir(cx, CHECKPOINT_DIR)?;
        let took = dump::dump(p.pid, &images, &cx.dir.join("criu-dump.log")).await.map_err(failed)?;
        let manifest =
            Manifest { pid: p.pid, instance_dir: cx.dir.clone(), volumes_dir: self.layout.volumes_dir(&cx.id) };
        let path = images.join(MANIFEST);
        let bytes = serde_json::to_vec(&manifest).map_err(|e| RuntimeError::Failed(e.to_string()))?;
        std::fs::write(&path, bytes).map_err(|e| RuntimeError::io(&path, e))?;
        wait_dead(&inst, p.pid as i32).await?;
        inst.set_process(None);
        inst.run.send_replace(RunState::Idle);
        inst.persist(State::Configured, None)?;
        tracing::info!(instance = %cx.id, pid = p.pid, dump_ms = took.as_millis() as u64, "checkpointed");
        Ok(MigrationTicket { location: CHECKPOINT_DIR.into() })
    }

    /// Restores the instance from the checkpoint at `location` (relative to its volumes), or, when there is none
    /// (restored already) or it cannot be restored, starts it afresh on its volumes.
    pub(super) async fn restore_or_run(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        location: &str,
    ) -> Result<(), RuntimeError> {
        let images = self.checkpoint_dir(cx, location)?;
        let manifest = std::fs::read(images.join(MANIFEST)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let Some(manifest) = manifest else {
            return crate::runtime::Runtime::run(self, cx, desired).await;
        };
        let restored = self.restore(cx, desired, &images, &manifest).await;
        let _ = std::fs::remove_dir_all(&images);
        match restored {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(instance = %cx.id, error = %e, "restore failed: starting it afresh on its volumes");
                let note = format!("fos: the checkpoint could not be restored ({e}); started afresh on its volumes\n");
                let _ = super::logs::open_append(&cx.logs.stderr)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()));
                crate::runtime::Runtime::run(self, cx, desired).await
            }
        }
    }

    async fn restore(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        images: &Path,
        manifest: &Manifest,
    ) -> Result<(), RuntimeError> {
        super::check_native(desired)?;
        let inst = self.get(&cx.id)?;
        inst.settle().await?;
        if inst.main_running() {
            // Never two copies.
            inst.stop(self.config.stop_grace).await?;
        }
        inst.kill_leftovers();
        inst.set_desired(desired);
        self.prepare_launch(&inst, cx, desired)?;
        std::fs::create_dir_all(&inst.logs.dir).map_err(|e| RuntimeError::io(&inst.logs.dir, e))?;
        let moved = [
            restore::Moved { from: manifest.instance_dir.clone(), to: cx.dir.clone() },
            restore::Moved { from: manifest.volumes_dir.clone(), to: self.layout.volumes_dir(&cx.id) },
        ];
        wait_pids_free(manifest.pid as i32).await?;
        let log = cx.dir.join("criu-restore.log");
        let pid = match restore::restore(images, &moved, &inst.cgroup.procs_files(), &log).await {
            Ok(pid) => pid,
            Err(e) => {
                inst.cgroup.kill_all();
                return Err(failed(e));
            }
        };
        let start_time = process::start_time(pid).unwrap_or(0);
        let record = ProcessRecord { pid, start_time, started_at: Utc::now() };
        inst.adopt(record);
        tracing::info!(instance = %cx.id, pid, "restored from its checkpoint");
        inst.persist(State::Running, Some(desired))
    }
}

/// Waits until the dumped tree (process group `pgid`) has no live process left, its leader reaped by the runtime.
/// Its other processes may stay zombies a while (until whoever inherited them reaps them): [`wait_pids_free`].
async fn wait_dead(inst: &Instance, pgid: i32) -> Result<(), RuntimeError> {
    let deadline = tokio::time::Instant::now() + GONE_PATIENCE;
    while inst.main_running() || process::group_alive(pgid) || !inst.cgroup.pids().is_empty() {
        if tokio::time::Instant::now() > deadline {
            return Err(RuntimeError::Failed(format!("the checkpointed process group {pgid} is still alive")));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Waits until no process of group `pgid` is left on this node, zombies included: a restore needs the tree's pids
/// free (on the node it was dumped on, its orphans may not all be reaped yet).
async fn wait_pids_free(pgid: i32) -> Result<(), RuntimeError> {
    let deadline = tokio::time::Instant::now() + GONE_PATIENCE;
    // SAFETY: kill(2) with signal 0 only checks for existence (a zombie counts).
    while pgid > 1 && unsafe { libc::kill(-pgid, 0) } == 0 {
        if tokio::time::Instant::now() > deadline {
            return Err(RuntimeError::Failed(format!("process group {pgid} is still there: its pids are taken")));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}
