//! The [`Runtime`] steps of the container runtime, one method each.

use super::*;
use crate::runtime::MigrationTicket;
use fos_api::migration::MigrationMode;

#[async_trait]
impl Runtime for ContainerRuntime {
    fn kind(&self) -> EntityKind {
        EntityKind::Container
    }

    fn detail(&self) -> Option<String> {
        Some(format!("runc {}; images in {}", self.config.runc.display(), self.images.root().display()))
    }

    async fn probe(&self) -> Result<(), RuntimeError> {
        let version = self.runc.version().await?;
        tracing::debug!(%version, "container runtime");
        // runc answers for its state directory: a container list proves it can run here.
        let mut cmd = tokio::process::Command::new(&self.config.runc);
        let root = self.root().join(".runc");
        cmd.arg("--root")
            .arg(&root)
            .arg("list")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let out = cmd.output().await.map_err(|source| RuntimeError::Spawn { command: "runc".into(), source })?;
        if !out.status.success() {
            return Err(RuntimeError::Failed(format!("runc list: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        if !nix::unistd::Uid::effective().is_root() {
            return Err(RuntimeError::Unsupported("containers without root"));
        }
        Ok(())
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let root = self.root();
        let entries = std::fs::read_dir(&root).map_err(|e| RuntimeError::io(&root, e))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let Ok(file) = instance::load(&entry.path().join(instance::STATE_FILE)) else { continue };
            let id = file.desired.id.clone();
            if self.map().contains_key(&id) {
                continue;
            }
            let cx = self.layout.context(&file.desired);
            let c = Arc::new(Container::new(&cx, file.desired.clone(), self.runc_id(&id)));
            c.set_image(file.image.clone());
            let mut state = file.state;
            let mut adopted = None;
            if matches!(state, State::Running | State::Paused) {
                let live = self
                    .runc
                    .state(&c.runc_id)
                    .await?
                    .filter(|s| s.pid > 0 && matches!(s.status.as_str(), "running" | "paused"));
                match live {
                    Some(s) => {
                        let started_at = file.started_at.unwrap_or_else(Utc::now);
                        c.run.send_replace(RunState::Running { pid: s.pid, started_at });
                        c.watch_adopted(s.pid);
                        state = if s.status == "paused" { State::Paused } else { State::Running };
                        adopted = Some((s.pid, started_at));
                        tracing::info!(instance = %id, pid = s.pid, status = %s.status, "adopted running container");
                    }
                    None => {
                        tracing::info!(instance = %id, "container ended while the agent was down");
                        self.runc.delete(&c.runc_id).await?;
                        state = State::Configured;
                        c.persist(state)?;
                    }
                }
            }
            found.push(Recovered {
                desired: file.desired,
                state,
                pid: adopted.map(|a| a.0),
                started_at: adopted.map(|a| a.1),
            });
            self.map().insert(id, c);
        }
        self.collect_images();
        Ok(found)
    }

    async fn define(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_container(desired)?;
        std::fs::create_dir_all(&cx.dir).map_err(|e| RuntimeError::io(&cx.dir, e))?;
        let c = Arc::new(Container::new(cx, desired.clone(), self.runc_id(&cx.id)));
        c.persist(State::Defined)?;
        self.map().insert(cx.id.clone(), c);
        Ok(())
    }

    async fn configure(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_container(desired)?;
        let c = self.get(&cx.id)?;
        c.set_desired(desired);
        let image = self.image(cx, desired).await?;
        c.set_image(desired.entity.image.clone());
        for dir in [c.bundle(), cx.logs.dir.clone()] {
            std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        }
        let (store, img, bundle) = (self.images.clone(), image.clone(), c.bundle());
        let kind = tokio::task::spawn_blocking(move || unpack::make_rootfs(&store, &img, &bundle))
            .await
            .map_err(|e| RuntimeError::Failed(e.to_string()))?
            .map_err(oci_error)?;
        tracing::debug!(instance = %cx.id, ?kind, "container root filesystem");
        if cx.cgroup.is_enabled() {
            let limits = &cx.reservations;
            cx.cgroup.create(limits.cpu_millis, limits.memory_bytes).map_err(|e| RuntimeError::io("cgroup", e))?;
        }
        self.write_spec(&c, cx, desired, &image)?;
        c.persist(State::Configured)
    }

    async fn run(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_container(desired)?;
        let c = self.get(&cx.id)?;
        if matches!(*c.run.borrow(), RunState::Running { .. }) {
            // A run retried after it started the container but failed later: never two copies.
            self.stop_container(&c).await?;
        }
        // What a crashed run left (a stopped container) goes first.
        self.runc.delete(&c.runc_id).await?;
        c.set_desired(desired);
        let image = self.image(cx, desired).await?;
        self.write_spec(&c, cx, desired, &image)?;
        let (id, bundle) = (c.runc_id.clone(), c.bundle());
        self.launch(&c, cx, "runc run", |pid_file, stdout, stderr| {
            self.runc.spawn_run(&id, &bundle, pid_file, stdout, stderr)
        })
        .await?;
        // Recorded right after the start: a restarted agent adopts the container instead of starting another.
        c.persist(State::Running)
    }

    async fn stop(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let c = self.get(&cx.id)?;
        self.stop_container(&c).await?;
        c.persist(State::Configured)
    }

    async fn pause(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let c = self.get(&cx.id)?;
        self.runc.pause(&c.runc_id).await?;
        c.persist(State::Paused)
    }

    async fn resume(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let c = self.get(&cx.id)?;
        self.runc.resume(&c.runc_id).await?;
        c.persist(State::Running)
    }

    async fn clean(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let c = self.get(&cx.id)?;
        self.stop_container(&c).await?;
        let bundle = c.bundle();
        tokio::task::spawn_blocking(move || unpack::remove_rootfs(&bundle))
            .await
            .map_err(|e| RuntimeError::Failed(e.to_string()))?
            .map_err(oci_error)?;
        let _ = std::fs::remove_file(c.bundle().join("config.json"));
        instance::remove_groups(Path::new(CGROUP_ROOT), &cx.cgroup.relative_path());
        cx.cgroup.remove().map_err(|e| RuntimeError::io("cgroup", e))?;
        c.persist(State::Defined)
    }

    async fn undefine(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let Some(c) = self.map().get(&cx.id).cloned() else {
            return Ok(());
        };
        self.stop_container(&c).await?;
        let bundle = c.bundle();
        let _ = tokio::task::spawn_blocking(move || unpack::remove_rootfs(&bundle)).await;
        instance::remove_groups(Path::new(CGROUP_ROOT), &cx.cgroup.relative_path());
        let _ = cx.cgroup.remove();
        self.map().remove(&cx.id);
        match std::fs::remove_dir_all(&c.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RuntimeError::io(&c.dir, e)),
            _ => {}
        }
        self.collect_images();
        Ok(())
    }

    async fn status(&self, id: &InstanceId) -> Result<RunState, RuntimeError> {
        Ok(self.get(id)?.run.borrow().clone())
    }

    fn subscribe(&self, id: &InstanceId) -> Option<watch::Receiver<RunState>> {
        self.map().get(id).map(|c| c.run.subscribe())
    }

    async fn ready(&self, cx: &InstanceContext, desired: &DesiredInstance) -> bool {
        let Ok(c) = self.get(&cx.id) else { return false };
        if !matches!(*c.run.borrow(), RunState::Running { .. }) {
            return false;
        }
        match (&desired.entity.readiness, cx.netns.as_ref()) {
            (None, _) => true,
            (Some(Probe::Exec(argv)), _) => self.runc.exec_ok(&c.runc_id, argv, probe::PROBE_TIMEOUT).await,
            (Some(p), None) => probe::check(p, Path::new("/")).await,
            (Some(p), Some(ns)) => probe_in(p.clone(), ns.clone()).await,
        }
    }

    fn addresses(&self, _id: &InstanceId) -> Vec<String> {
        self.config.addresses.clone()
    }

    fn prepares_destination(&self) -> bool {
        true
    }

    /// The image made local before the source stops the container, so that the restore here does not wait for it
    /// (a failure is only logged: configure fetches it again).
    async fn migrate_prepare(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<String, RuntimeError> {
        check_container(desired)?;
        if let Err(e) = self.image(cx, desired).await {
            tracing::warn!(instance = %cx.id, error = %e, "the incoming container's image could not be fetched ahead");
        }
        Ok(String::new())
    }

    /// Cold: stops the container. Live: checkpoints it with `runc checkpoint` into its volumes directory.
    async fn migrate_out(
        &self,
        cx: &InstanceContext,
        _to: &crate::runtime::Destination,
        mode: MigrationMode,
    ) -> Result<MigrationTicket, RuntimeError> {
        match mode {
            MigrationMode::Cold => crate::runtime::depart_cold(self, cx).await,
            MigrationMode::Live => self.checkpoint(cx).await,
        }
    }

    /// Restores the checkpoint the ticket names with `runc restore` (else, or when it cannot be restored, runs the
    /// container on its volumes).
    async fn migrate_in(
        &self,
        cx: &InstanceContext,
        desired: &DesiredInstance,
        ticket: &MigrationTicket,
    ) -> Result<(), RuntimeError> {
        match ticket.location.is_empty() {
            true => self.run(cx, desired).await,
            false => self.restore_or_run(cx, desired, &ticket.location).await,
        }
    }

    /// Restores the checkpoint a live migration left here, else runs the container again on its volumes.
    async fn migrate_abort(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        self.restore_or_run(cx, desired, crate::migration::criu::CHECKPOINT_DIR).await
    }
}
