//! The native runtime: an instance is a process started from an argv (no shell) in its own session, with its env,
//! a working area under the data directory, setup commands at configure, output to rotated log files, cgroup limits
//! where the machine has them, pause by freezer or SIGSTOP, and a state file that lets a restarted agent adopt the
//! processes it started.

pub mod cgroup;
mod instance;
pub mod logs;
pub mod process;
pub mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use fos_api::lifecycle::State;
use fos_api::manifest::EntityKind;
use fos_api::record::{DesiredInstance, InstanceId};
use tokio::sync::watch;

use self::cgroup::Cgroups;
use self::instance::Instance;
use self::logs::LOG_FILES;
use crate::runtime::{probe, Recovered, RunState, Runtime, RuntimeError};

/// Settings of the native runtime.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// The agent's data directory (instances live under `<data_dir>/native/`).
    pub data_dir: PathBuf,
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
    /// Whether to put instances in cgroups when the machine has them.
    pub use_cgroups: bool,
}

impl NativeConfig {
    /// Defaults for a data directory: 10 s grace, 10 MiB logs with 2 copies, cgroups on.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NativeConfig {
            data_dir: data_dir.into(),
            stop_grace: Duration::from_secs(10),
            log_max_bytes: 10 << 20,
            log_keep: 2,
            log_check_interval: Duration::from_secs(5),
            addresses: Vec::new(),
            use_cgroups: true,
        }
    }
}

/// The native process runtime.
pub struct NativeRuntime {
    config: NativeConfig,
    cgroups: Cgroups,
    /// Tells this runtime's cgroups apart from another agent's on the same machine (a hash of the data directory).
    scope: String,
    instances: Mutex<HashMap<InstanceId, Arc<Instance>>>,
}

impl NativeRuntime {
    /// A runtime keeping its instances under `config.data_dir/native`. Must be called inside a tokio runtime (it
    /// starts the log rotation task, which ends when the runtime is dropped).
    pub fn new(config: NativeConfig) -> Result<Arc<Self>, RuntimeError> {
        let root = config.data_dir.join("native");
        std::fs::create_dir_all(&root).map_err(|e| RuntimeError::io(&root, e))?;
        let cgroups = if config.use_cgroups { Cgroups::detect() } else { Cgroups::default() };
        tracing::debug!(cgroups = %cgroups.describe(), "native runtime");
        let scope = format!("{:08x}", fnv1a(root.as_os_str().as_encoded_bytes()) as u32);
        let rt = Arc::new(NativeRuntime { config, cgroups, scope, instances: Mutex::new(HashMap::new()) });
        tokio::spawn(rotate_logs(Arc::downgrade(&rt), rt.config.log_check_interval));
        Ok(rt)
    }

    /// What cgroup support this runtime found.
    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    fn root(&self) -> PathBuf {
        self.config.data_dir.join("native")
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Arc<Instance>>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &InstanceId) -> Result<Arc<Instance>, RuntimeError> {
        self.map().get(id).cloned().ok_or_else(|| RuntimeError::NotDefined(id.clone()))
    }

    /// The working area of an instance (where its processes run), when defined.
    pub fn work_dir(&self, id: &InstanceId) -> Option<PathBuf> {
        self.map().get(id).map(|i| i.work_dir())
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
            for name in LOG_FILES {
                let path = inst.log_dir().join(name);
                if let Err(e) = logs::rotate_if_needed(&path, self.config.log_max_bytes, self.config.log_keep) {
                    tracing::warn!(instance = %inst.id, path = %path.display(), error = %e, "log rotation failed");
                }
            }
        }
    }
}

/// FNV-1a, a stable hash for naming.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
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

fn check_native(desired: &DesiredInstance) -> Result<(), RuntimeError> {
    if desired.entity.kind != EntityKind::Native {
        return Err(RuntimeError::Invalid(format!("a {} entity cannot run as a native process", desired.entity.kind)));
    }
    if desired.entity.command.is_empty() {
        return Err(RuntimeError::Invalid("a native entity needs a command".into()));
    }
    // A native process shares the node's network: it cannot honour what would need the network manager (its own
    // namespace on virtual networks, a host port proxied to another port). Refused loudly rather than run wrongly.
    if !desired.entity.networks.is_empty() {
        return Err(RuntimeError::Unsupported("attaching a native process to virtual networks"));
    }
    if desired.entity.ports.iter().any(|p| p.host_port.is_some_and(|h| h != p.port)) {
        return Err(RuntimeError::Unsupported("exposing a native process's port on another host port"));
    }
    Ok(())
}

#[async_trait]
impl Runtime for NativeRuntime {
    fn kind(&self) -> EntityKind {
        EntityKind::Native
    }

    async fn probe(&self) -> Result<(), RuntimeError> {
        let root = self.root();
        let test = root.join(".probe");
        std::fs::write(&test, b"").map_err(|e| RuntimeError::io(&test, e))?;
        let _ = std::fs::remove_file(&test);
        let status = tokio::process::Command::new("/bin/sh").arg("-c").arg("exit 0").status().await;
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(RuntimeError::Invalid(format!("test process: {s}"))),
            Err(source) => Err(RuntimeError::Spawn { command: "/bin/sh".into(), source }),
        }
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let root = self.root();
        let entries = std::fs::read_dir(&root).map_err(|e| RuntimeError::io(&root, e))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(file) = state::load(&dir.join("state.json")) else { continue };
            let id = file.desired.id.clone();
            if self.map().contains_key(&id) {
                continue;
            }
            let inst =
                Arc::new(Instance::new(dir, self.cgroups.instance(&id, &self.scope), file.desired.clone(), file.state));
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

    async fn define(&self, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_native(desired)?;
        let id = &desired.id;
        let dir = self.root().join(id.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        let inst =
            Arc::new(Instance::new(dir, self.cgroups.instance(id, &self.scope), desired.clone(), State::Defined));
        inst.persist(State::Defined, None)?;
        self.map().insert(id.clone(), inst);
        Ok(())
    }

    async fn configure(&self, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_native(desired)?;
        let inst = self.get(&desired.id)?;
        inst.set_desired(desired);
        for dir in [inst.work_dir(), inst.cwd()?, inst.log_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        }
        if inst.cgroup.is_enabled() {
            let (cpu, mem) = (desired.entity.cpu_millis(), desired.entity.memory_bytes());
            inst.cgroup.create(cpu, mem).map_err(|e| RuntimeError::io("cgroup", e))?;
        }
        inst.setup(desired).await?;
        inst.persist(State::Configured, Some(desired))
    }

    async fn run(&self, desired: &DesiredInstance) -> Result<(), RuntimeError> {
        check_native(desired)?;
        let inst = self.get(&desired.id)?;
        if matches!(*inst.run.borrow(), RunState::Running { .. }) {
            // A run retried after it started the process but failed later: never two copies.
            inst.stop(self.config.stop_grace).await?;
        }
        inst.set_desired(desired);
        inst.spawn(desired)?;
        // Recorded right after the spawn: a restarted agent adopts the process instead of starting another.
        inst.persist(State::Running, Some(desired))
    }

    async fn stop(&self, id: &InstanceId) -> Result<(), RuntimeError> {
        let inst = self.get(id)?;
        inst.stop(self.config.stop_grace).await?;
        inst.persist(State::Configured, None)
    }

    async fn pause(&self, id: &InstanceId) -> Result<(), RuntimeError> {
        let inst = self.get(id)?;
        inst.pause()?;
        inst.persist(State::Paused, None)
    }

    async fn resume(&self, id: &InstanceId) -> Result<(), RuntimeError> {
        let inst = self.get(id)?;
        inst.resume()?;
        inst.persist(State::Running, None)
    }

    async fn clean(&self, id: &InstanceId) -> Result<(), RuntimeError> {
        let inst = self.get(id)?;
        inst.stop(self.config.stop_grace).await?;
        let work = inst.work_dir();
        match std::fs::remove_dir_all(&work) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(RuntimeError::io(&work, e)),
            _ => {}
        }
        inst.forget_setup();
        inst.cgroup.remove().map_err(|e| RuntimeError::io("cgroup", e))?;
        inst.persist(State::Defined, None)
    }

    async fn undefine(&self, id: &InstanceId) -> Result<(), RuntimeError> {
        let Some(inst) = self.map().remove(id) else {
            return Ok(());
        };
        // After a cancelled configure, setup leftovers may remain: nothing of the instance survives undefine.
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

    async fn ready(&self, desired: &DesiredInstance) -> bool {
        let Ok(inst) = self.get(&desired.id) else { return false };
        if !matches!(*inst.run.borrow(), RunState::Running { .. }) {
            return false;
        }
        match (&desired.entity.readiness, inst.cwd()) {
            (None, _) => true,
            (Some(p), Ok(cwd)) => probe::check(p, &cwd).await,
            (Some(_), Err(_)) => false,
        }
    }

    fn addresses(&self, _id: &InstanceId) -> Vec<String> {
        self.config.addresses.clone()
    }

    async fn logs(&self, id: &InstanceId, tail: usize) -> Result<String, RuntimeError> {
        let inst = self.get(id)?;
        let mut out = String::new();
        for name in LOG_FILES {
            let path = inst.log_dir().join(name);
            out.push_str(&logs::tail(&path, tail).map_err(|e| RuntimeError::io(&path, e))?);
        }
        Ok(out)
    }
}
