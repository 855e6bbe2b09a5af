//! Live migration of a container with CRIU through runc. Out: `runc checkpoint` writes the container's processes
//! into `<volumes>/.checkpoint` (so the images travel with the volumes, under the ticket's location) and removes
//! the container; a manifest next to the images marks the checkpoint complete. In: the destination configured the
//! instance already (its root filesystem mounted over the same image layers, its bundle written with this node's
//! paths: volumes, cgroup, network namespace), and `runc restore` brings the processes back in that bundle.
//!
//! The container's output: `runc run` (not detached, no terminal) hands the container pipes and copies them to its
//! own output, the instance's log files. `runc checkpoint` records these pipes as the container's external
//! descriptors (`descriptors.json` in the images) and `runc restore`, run the same way (not detached, the agent's
//! child, its output the log files of this node), gives the restored processes new pipes in their place, copied
//! to its output. So the restore process is tracked like `runc run`: its exit is the container's, its pid file
//! says when the container runs. The root filesystem is read-only (only `/tmp`, a tmpfs CRIU saves, and the
//! volumes change), so the one made from the same layers on the destination is the one the processes had; the
//! volumes are bind mounts runc maps to the destination's directories by their place in the container.
//!
//! A restore that fails (the images damaged, an established connection whose address is not here) starts the
//! container afresh on its volumes instead (said in its error output): never two copies, never none. The same
//! restore brings the container back on the source when the migration is given up before the destination took it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::migration::criu::{self, CHECKPOINT_DIR};
use crate::runtime::MigrationTicket;

/// The manifest the source writes next to the images once the checkpoint is complete.
const MANIFEST: &str = "fos-container-checkpoint.json";

/// How long the checkpointed container's `runc run` may take to end after the checkpoint.
const GONE_PATIENCE: Duration = Duration::from_secs(10);

/// What the source says about its checkpoint (where it kept the container; for the record).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    /// runc's name of the container on the source.
    runc_id: String,
    /// Its bundle there.
    bundle: PathBuf,
}

impl ContainerRuntime {
    fn checkpoint_dir(&self, cx: &InstanceContext, location: &str) -> Result<PathBuf, RuntimeError> {
        criu::checkpoint_dir(&self.layout.volumes_dir(&cx.id), location).map_err(RuntimeError::Invalid)
    }

    /// Checkpoints the running container into its volumes directory; once this returns it is gone.
    pub(super) async fn checkpoint(&self, cx: &InstanceContext) -> Result<MigrationTicket, RuntimeError> {
        let c = self.get(&cx.id)?;
        if !matches!(*c.run.borrow(), RunState::Running { .. }) {
            return Err(RuntimeError::Failed("no running container to checkpoint".into()));
        }
        let criu = criu::binary().ok_or_else(|| RuntimeError::Failed(criu::CriuError::NoBinary.to_string()))?;
        if self.runc.state(&c.runc_id).await?.is_some_and(|s| s.status == "paused") {
            // CRIU freezes it itself.
            self.runc.resume(&c.runc_id).await?;
        }
        let images = self.checkpoint_dir(cx, CHECKPOINT_DIR)?;
        let work = cx.dir.join("criu-dump");
        for dir in [&images, &work] {
            fresh_dir(dir)?;
        }
        // Its end (runc run's, once CRIU killed it) is not an exit.
        c.stopping.store(true, Ordering::SeqCst);
        let started = std::time::Instant::now();
        if let Err(e) = self.runc.checkpoint(&c.runc_id, &criu, &images, &work).await {
            // CRIU lets the container run on.
            c.stopping.store(false, Ordering::SeqCst);
            if !matches!(*c.run.borrow(), RunState::Running { .. }) {
                c.run.send_replace(RunState::Exited { status: None, signal: None, oom_killed: false, at: Utc::now() });
            }
            return Err(e);
        }
        let took = started.elapsed();
        let mut rx = c.run.subscribe();
        let gone = tokio::time::timeout(GONE_PATIENCE, rx.wait_for(|s| !matches!(s, RunState::Running { .. })));
        if gone.await.is_err() {
            return Err(RuntimeError::Failed(format!("the checkpointed container {} is still running", c.runc_id)));
        }
        self.runc.delete(&c.runc_id).await?;
        c.run.send_replace(RunState::Idle);
        let manifest = Manifest { runc_id: c.runc_id.clone(), bundle: c.bundle() };
        let path = images.join(MANIFEST);
        let bytes = serde_json::to_vec(&manifest).map_err(|e| RuntimeError::Failed(e.to_string()))?;
        std::fs::write(&path, bytes).map_err(|e| RuntimeError::io(&path, e))?;
        c.persist(State::Configured)?;
        tracing::info!(instance = %cx.id, checkpoint_ms = took.as_millis() as u64, "container checkpointed");
        Ok(MigrationTicket { location: CHECKPOINT_DIR.into() })
    }

    /// Restores the container from the checkpoint at `location` (relative to its volumes), or, when there is none
    /// (restored already) or it cannot be restored, starts it afresh on its volumes.
    pub(super) async fn restore_or_run(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        location: &str,
    ) -> Result<(), RuntimeError> {
        let images = self.checkpoint_dir(cx, location)?;
        let manifest: Option<Manifest> =
            std::fs::read(images.join(MANIFEST)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let Some(manifest) = manifest else {
            return crate::runtime::Runtime::run(self, cx, desired).await;
        };
        let started = std::time::Instant::now();
        let restored = self.restore(cx, desired, &images).await;
        let _ = std::fs::remove_dir_all(&images);
        match restored {
            Ok(()) => {
                let restore_ms = started.elapsed().as_millis() as u64;
                tracing::info!(instance = %cx.id, from = %manifest.runc_id, restore_ms, "container restored from its checkpoint");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(instance = %cx.id, error = %e, "restore failed: starting it afresh on its volumes");
                let note = format!("fos: the checkpoint could not be restored ({e}); started afresh on its volumes\n");
                let _ = open_log(&cx.logs.stderr).and_then(|mut f| {
                    std::io::Write::write_all(&mut f, note.as_bytes()).map_err(|e| RuntimeError::io("stderr", e))
                });
                crate::runtime::Runtime::run(self, cx, desired).await
            }
        }
    }

    async fn restore(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        images: &Path,
    ) -> Result<(), RuntimeError> {
        check_container(desired)?;
        let c = self.get(&cx.id)?;
        if matches!(*c.run.borrow(), RunState::Running { .. }) {
            // Never two copies.
            self.stop_container(&c).await?;
        }
        self.runc.delete(&c.runc_id).await?;
        c.set_desired(desired);
        let image = self.image(cx, desired).await?;
        self.write_spec(&c, cx, desired, &image)?;
        let criu = criu::binary().ok_or_else(|| RuntimeError::Failed(criu::CriuError::NoBinary.to_string()))?;
        let work = cx.dir.join("criu-restore");
        fresh_dir(&work)?;
        let (id, bundle) = (c.runc_id.clone(), c.bundle());
        self.launch(&c, cx, "runc restore", |pid_file, stdout, stderr| {
            self.runc.spawn_restore(&id, &criu, &bundle, images, &work, pid_file, stdout, stderr)
        })
        .await?;
        if !matches!(*c.run.borrow(), RunState::Running { .. }) {
            // runc restore ended without the container running: CRIU's log says why.
            let _ = self.runc.delete(&c.runc_id).await;
            c.run.send_replace(RunState::Idle);
            let why = criu::log_errors(&work.join("restore.log"));
            let why = if why.is_empty() { "runc restore ended (its error is in the output)".into() } else { why };
            return Err(RuntimeError::Failed(format!("runc restore: {why}")));
        }
        c.persist(State::Running)
    }
}

/// Makes `dir` empty (removed and made again).
fn fresh_dir(dir: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RuntimeError::io(dir, e)),
        _ => {}
    }
    std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))
}
