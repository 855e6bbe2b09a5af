//! The native runtime: an instance is a process started from an argv (no shell) in its own session, with its env,
//! the working area its context names, setup commands at configure, output to the context's log files (rotated),
//! the context's cgroup with its reservations as limits where the machine has cgroups, pause by freezer or SIGSTOP,
//! and a state file in the instance's directory that lets a restarted agent adopt the processes it started.
//! Live migration checkpoints and restores the process tree with CRIU ([`live`]).

pub mod identity;
pub(crate) mod instance;
mod live;
pub mod logs;
pub mod process;
pub mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use fos_api::lifecycle::State;
use fos_api::manifest::{EntityKind, Probe, RunAs};
use fos_api::migration::MigrationMode;
use fos_api::record::{DesiredInstance, InstanceId};
use tokio::sync::watch;

use self::instance::Instance;
use crate::cgroup::Cgroups;
use crate::network::netns;
use crate::runtime::{
    probe, InstanceContext, MigrationTicket, NodeLayout, Recovered, RunState, Runtime, RuntimeEnv, RuntimeError,
};

/// Settings of the native runtime.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// Time between SIGTERM and SIGKILL at stop.
    pub stop_grace: Duration,
    /// Size above which an output file is rotated.
    pub log_max_bytes: u64,
    /// Rotated copies kept per output file.
    pub log_keep: u32,
    /// How often output files are checked for rotation.
    pub log_check_interval: Duration,
    /// Addresses reported for instances (native processes share the node's network).
    pub addresses: Vec<String>,
    /// Who processes run as when the entity has no `runAs` (the node configuration's
    /// `runtimes.native.config.runAs`; default `fos-entity`, created when missing).
    pub run_as: RunAs,
}

/// The native runtime's section of the node configuration (`runtimes: {native: {config: {runAs: …}}}`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NativeSettings {
    /// The default user of entities.
    #[serde(default)]
    pub run_as: Option<RunAs>,
}

impl Default for NativeConfig {
    /// 10 s grace, 10 MiB logs with 2 copies checked every 5 s.
    fn default() -> Self {
        NativeConfig {
            stop_grace: Duration::from_secs(10),
            log_max_bytes: 10 << 20,
            log_keep: 2,
            log_check_interval: Duration::from_secs(5),
            addresses: Vec::new(),
            run_as: RunAs::Named(identity::DEFAULT_USER.to_string()),
        }
    }
}

/// Builds the node's native runtime (its registration in [`crate::runtime::RuntimeRegistry::builtin`]).
pub fn factory(env: &RuntimeEnv) -> Result<Arc<dyn Runtime>, RuntimeError> {
    let settings: NativeSettings = if env.config.is_null() {
        NativeSettings::default()
    } else {
        serde_json::from_value(env.config.clone())
            .map_err(|e| RuntimeError::Invalid(format!("runtimes.native.config: {e}")))?
    };
    let defaults = NativeConfig::default();
    let config = NativeConfig {
        stop_grace: env.stop_grace,
        log_max_bytes: env.log_max_bytes,
        addresses: env.addresses.clone(),
        run_as: settings.run_as.unwrap_or(defaults.run_as.clone()),
        ..defaults
    };
    Ok(NativeRuntime::new(config, env.layout.clone())? as Arc<dyn Runtime>)
}

impl NativeRuntime {
    /// Who the instance's processes run as and the Secret values of their environment, for its next setup or
    /// spawn; its working directory is given to that user.
    fn prepare_launch(
        &self,
        inst: &Instance,
        cx: &InstanceContext,
        desired: &DesiredInstance,
    ) -> Result<(), RuntimeError> {
        let who = identity::resolve(desired.entity.run_as.as_ref(), &self.config.run_as)?;
        if let Some(id) = &who {
            for dir in [inst.work_dir.clone(), inst.cwd()?] {
                identity::give(&dir, id)?;
            }
            for dir in cx.volumes.values() {
                identity::give_tree(dir, id)?;
            }
        }
        inst.set_launch(instance::Launch {
            identity: who,
            secret_env: cx.secret_env.clone(),
            volumes: cx.volumes.clone(),
        });
        Ok(())
    }
}

/// The native process runtime.
pub struct NativeRuntime {
    config: NativeConfig,
    layout: NodeLayout,
    instances: Mutex<HashMap<InstanceId, Arc<Instance>>>,
}

impl NativeRuntime {
    /// A runtime keeping its instances where `layout` puts native instances (`<data>/native`). Must be called
    /// inside a tokio runtime (it starts the log rotation task, which ends when the runtime is dropped).
    pub fn new(config: NativeConfig, layout: NodeLayout) -> Result<Arc<Self>, RuntimeError> {
        let root = layout.runtime_dir(EntityKind::Native);
        std::fs::create_dir_all(&root).map_err(|e| RuntimeError::io(&root, e))?;
        tracing::debug!(cgroups = %layout.cgroups().describe(), "native runtime");
        let rt = Arc::new(NativeRuntime { config, layout, instances: Mutex::new(HashMap::new()) });
        tokio::spawn(rotate_logs(Arc::downgrade(&rt), rt.config.log_check_interval));
        Ok(rt)
    }

    /// What cgroup support the node has.
    pub fn cgroups(&self) -> &Cgroups {
        self.layout.cgroups()
    }

    fn root(&self) -> PathBuf {
        self.layout.runtime_dir(EntityKind::Native)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Arc<Instance>>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &InstanceId) -> Result<Arc<Instance>, RuntimeError> {
        self.map().get(id).cloned().ok_or_else(|| RuntimeError::NotDefined(id.clone()))
    }

    /// The working area of an instance (where its processes run), when defined.
    pub fn work_dir(&self, id: &InstanceId) -> Option<PathBuf> {
        self.map().get(id).map(|i| i.work_dir.clone())
    }

    /// The memory limit of an instance's cgroup, when it has one.
    pub fn memory_limit(&self, id: &InstanceId) -> Option<u64> {
        self.map().get(id).and_then(|i| i.cgroup.memory_limit())
    }

    /// The cgroup directories an instance has now (empty without cgroups, or once cleaned).
    pub fn cgroup_dirs(&self, id: &InstanceId) -> Vec<PathBuf> {
        self.map().get(id).map(|i| i.cgroup.existing()).unwrap_or_default()
    }

    /// Whether an instance is frozen by its freezer cgroup.
    pub fn is_frozen(&self, id: &InstanceId) -> bool {
        self.map().get(id).is_some_and(|i| i.cgroup.is_frozen())
    }

    /// Every process in an instance's cgroups (empty without cgroups).
    pub fn cgroup_pids(&self, id: &InstanceId) -> Vec<i32> {
        self.map().get(id).map(|i| i.cgroup.pids()).unwrap_or_default()
    }

    fn rotate_all(&self) {
        let instances: Vec<Arc<Instance>> = self.map().values().cloned().collect();
        for inst in instances {
            for path in [&inst.logs.stdout, &inst.logs.stderr] {
                if let Err(e) = logs::rotate_if_needed(path, self.config.log_max_bytes, self.config.log_keep) {
                    tracing::warn!(instance = %inst.id, path = %path.display(), error = %e, "log rotation failed");
                }
            }
        }
    }
}

async fn rotate_logs(rt: Weak<NativeRuntime>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(rt) = rt.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || rt.rotate_all()).await;
    }
}

/// Runs a readiness probe from inside the network namespace at `ns` (the instance's loopback is its own).
async fn probe_in_namespace(p: Probe, cwd: PathBuf, ns: &Path, who: Option<identity::Identity>) -> bool {
    let ns = ns.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&ns).ok()?;
        netns::run_in(&file, || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            Some(rt.block_on(probe::check_as(&p, &cwd, who.as_ref())))
        })
        .ok()
        .flatten()
    })
    .await;
    matches!(checked, Ok(Some(true)))
}

fn check_native(desired: &DesiredInstance) -> Result<(), RuntimeError> {
    if desired.entity.kind != EntityKind::Native {
        return Err(RuntimeError::Invalid(format!("a {} entity cannot run as a native process", desired.entity.kind)));
    }
    if desired.entity.command.is_empty() {
        return Err(RuntimeError::Invalid("a native entity needs a command".into()));
    }
    // A native process without networks shares the node's network: a host port proxied to another port needs the
    // network manager's proxy, which only instances on virtual networks get. Refused loudly rather than run wrongly.
    let remapped = desired.entity.ports.iter().any(|p| p.host_port.is_some_and(|h| h != p.port));
    if desired.entity.networks.is_empty() && remapped {
        return Err(RuntimeError::Unsupported("exposing a native process's port on another host port"));
    }
    Ok(())
}

#[async_trait]
impl Runtime for NativeRuntime {
    fn kind(&self) -> EntityKind {
        EntityKind::Native
    }

    fn detail(&self) -> Option<String> {
        Some(self.cgroups().describe())
    }

    async fn probe(&self) -> Result<(), RuntimeError> {
        let root = self.root();
        let test = root.join(".probe");
        std::fs::write(&test, b"").map_err(|e| RuntimeError::io(&test, e))?;
        let _ = std::fs::remove_file(&test);
        let status = tokio::process::Command::new("/bin/sh").arg("-c").arg("exit 0").status().await;
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(RuntimeError::Failed(format!("test process: {s}"))),
            Err(source) => Err(RuntimeError::Spawn { command: "/bin/sh".into(), source }),
        }
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let root = self.root();
        let entries = std::fs::read_dir(&root).map_err(|e| RuntimeError::io(&root, e))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let Ok(file) = state::load(&entry.path().join(instance::STATE_FILE)) else { continue };
            let id = file.desired.id.clone();
            if self.map().contains_key(&id) {
                continue;
            }
            let cx = self.layout.context(&file.desired);
            let inst = Arc::new(Instance::new(&cx, file.desired.clone(), file.state));
            let mut state = file.state;
            let mut adopted = None;
            if matches!(state, State::Running | State::Paused) {
                match file.process.filter(|p| process::is_same_process(p.pid, p.start_time)) {
                    Some(p) => {
                        inst.adopt(p);
                        adopted = Some(p);
                        tracing::info!(instance = %id, pid = p.pid, "adopted running process");
                    }
                    None => {
                        tracing::info!(instance = %id, "process ended while the agent was down");
                        if let Some(p) = file.process {
                            let _ = process::signal_group(p.pid as i32, libc::SIGKILL);
                        }
                        inst.cgroup.kill_all();
                        state = State::Configured;
                        inst.persist(state, None)?;
                    }
                }
            }
            found.push(Recovered {
                desired: file.desired,
                state,
                pid: adopted.map(|p| p.pid),
                started_at: adopted.map(|p| p.started_at),
            });
            self.map().insert(id, inst);
        }
        Ok(found)
    }

    async fn define(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_native(desired)?;
        std::fs::create_dir_all(&cx.dir).map_err(|e| RuntimeError::io(&cx.dir, e))?;
        let inst = Arc::new(Instance::new(cx, desired.clone(), State::Defined));
        inst.persist(State::Defined, None)?;
        self.map().insert(cx.id.clone(), inst);
        Ok(())
    }

    async fn configure(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_native(desired)?;
        let inst = self.get(&cx.id)?;
        inst.settle().await?;
        inst.set_desired(desired);
        for dir in [inst.work_dir.clone(), inst.cwd()?, inst.logs.dir.clone()] {
            std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        }
        if inst.cgroup.is_enabled() {
            let limits = &cx.reservations;
            inst.cgroup.create(limits.cpu_millis, limits.memory_bytes).map_err(|e| RuntimeError::io("cgroup", e))?;
        }
        self.prepare_launch(&inst, cx, desired)?;
        inst.setup(desired, cx.netns.as_deref()).await?;
        inst.persist(State::Configured, Some(desired))
    }

    async fn run(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_native(desired)?;
        let inst = self.get(&cx.id)?;
        inst.settle().await?;
        if matches!(*inst.run.borrow(), RunState::Running { .. }) {
            // A run retried after it started the process but failed later: never two copies.
            inst.stop(self.config.stop_grace).await?;
        }
        inst.set_desired(desired);
        self.prepare_launch(&inst, cx, desired)?;
        inst.spawn(desired, cx.netns.as_deref())?;
        // Recorded right after the spawn: a restarted agent adopts the process instead of starting another.
        inst.persist(State::Running, Some(desired))
    }

    async fn stop(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let inst = self.get(&cx.id)?;
        inst.settle().await?;
        inst.stop(self.config.stop_grace).await?;
        inst.persist(State::Configured, None)
    }

    async fn pause(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let inst = self.get(&cx.id)?;
        inst.pause()?;
        inst.persist(State::Paused, None)
    }

    async fn resume(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let inst = self.get(&cx.id)?;
        inst.resume()?;
        inst.persist(State::Running, None)
    }

    async fn clean(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let inst = self.get(&cx.id)?;
        inst.settle().await?;
        inst.stop(self.config.stop_grace).await?;
        let work = &inst.work_dir;
        match std::fs::remove_dir_all(work) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RuntimeError::io(work, e)),
            _ => {}
        }
        inst.forget_setup();
        inst.cgroup.remove().map_err(|e| RuntimeError::io("cgroup", e))?;
        inst.persist(State::Defined, None)
    }

    async fn undefine(&self, cx: &InstanceContext) -> Result<(), RuntimeError> {
        let Some(inst) = self.map().get(&cx.id).cloned() else {
            return Ok(());
        };
        // After a cancelled configure, setup leftovers may remain: nothing of the instance survives undefine.
        inst.settle().await?;
        self.map().remove(&cx.id);
        inst.cgroup.kill_all();
        let _ = inst.cgroup.remove();
        match std::fs::remove_dir_all(&inst.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::io(&inst.dir, e)),
            _ => Ok(()),
        }
    }

    async fn status(&self, id: &InstanceId) -> Result<RunState, RuntimeError> {
        Ok(self.get(id)?.run.borrow().clone())
    }

    fn subscribe(&self, id: &InstanceId) -> Option<watch::Receiver<RunState>> {
        self.map().get(id).map(|i| i.run.subscribe())
    }

    async fn ready(&self, cx: &InstanceContext, desired: &DesiredInstance) -> bool {
        let Ok(inst) = self.get(&cx.id) else { return false };
        if !matches!(*inst.run.borrow(), RunState::Running { .. }) {
            return false;
        }
        let who = inst.launch().identity;
        match (&desired.entity.readiness, inst.cwd(), cx.netns.as_deref()) {
            (None, _, _) => true,
            (Some(p), Ok(cwd), None) => probe::check_as(p, &cwd, who.as_ref()).await,
            (Some(p), Ok(cwd), Some(ns)) => probe_in_namespace(p.clone(), cwd, ns, who).await,
            (Some(_), Err(_), _) => false,
        }
    }

    fn addresses(&self, _id: &InstanceId) -> Vec<String> {
        self.config.addresses.clone()
    }

    /// Cold: stops the instance. Live: checkpoints its process tree with CRIU into its volumes directory.
    async fn migrate_out(
        &self,
        cx: &InstanceContext,
        _to: &crate::runtime::Destination,
        mode: MigrationMode,
    ) -> Result<MigrationTicket, RuntimeError> {
        match mode {
            MigrationMode::Cold => super::depart_cold(self, cx).await,
            MigrationMode::Live => self.checkpoint(cx).await,
        }
    }

    /// Restores the checkpoint the ticket names (else, or when it cannot be restored, starts it on its volumes).
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

    /// Restores the checkpoint a live migration left here, else starts the instance again on its volumes.
    async fn migrate_abort(&self, cx: &InstanceContext, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        self.restore_or_run(cx, desired, crate::migration::criu::CHECKPOINT_DIR).await
    }
}
