//! One native instance: the directories, output files and cgroup of its context, its state file and process, with
//! the operations the runtime's lifecycle steps are made of (setup, spawn, stop with SIGTERM then SIGKILL, pause,
//! resume).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use fos_api::lifecycle::State;
use fos_api::record::{DesiredInstance, InstanceId};
use tokio::process::Command;
use tokio::sync::watch;

use super::logs::open_append;
use super::process::{self, group_alive, signal_group};
use super::state::{self, ProcessRecord, StateFile};
use crate::cgroup::InstanceCgroup;
use crate::network::netns;
use crate::runtime::group::{KilledGroups, ProcessGroup};
use crate::runtime::{InstanceContext, LogPaths, RunState, RuntimeError};

/// The state file's name in the instance's directory.
pub const STATE_FILE: &str = "state.json";

/// How often a stopping group is checked for remaining processes.
const STOP_POLL: Duration = Duration::from_millis(10);

/// How long killed processes may take to be gone.
const KILL_PATIENCE: Duration = Duration::from_secs(10);

/// A native instance known to the runtime.
pub struct Instance {
    /// Which instance.
    pub id: InstanceId,
    /// The instance's directory (`<data>/native/<id>`): state file and setup markers.
    pub dir: PathBuf,
    /// Its working area, made at configure and removed at clean.
    pub work_dir: PathBuf,
    /// Where its output goes.
    pub logs: LogPaths,
    /// Its cgroups (possibly none).
    pub cgroup: InstanceCgroup,
    /// What the state file holds.
    pub record: Mutex<StateFile>,
    /// Run state, published to subscribers.
    pub run: watch::Sender<RunState>,
    /// Who its processes run as and the Secret values of their environment (set before each setup and spawn).
    launch: Mutex<Launch>,
    /// Process groups of cancelled setup commands, waited for before the next step.
    pub killed: KilledGroups,
}

/// How the instance's processes are started: as whom, with which Secret values. Kept in memory only.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The user (none: as the agent).
    pub identity: Option<super::identity::Identity>,
    /// Environment values from Secrets.
    pub secret_env: crate::runtime::SecretEnv,
    /// The directories of its volumes, by name (`$FOS_VOLUME_<NAME>`).
    pub volumes: BTreeMap<String, PathBuf>,
}

/// Makes `cmd` start inside the network namespace `netns`, if any.
fn enter_netns(cmd: &mut Command, netns: Option<&Path>) -> Result<(), RuntimeError> {
    match netns {
        Some(path) => netns::enter_on_spawn(cmd.as_std_mut(), path).map_err(|e| RuntimeError::io(path, e)),
        None => Ok(()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Instance {
    /// A new instance record at the paths of `cx`, in `state`.
    pub fn new(cx: &InstanceContext, desired: DesiredInstance, state: State) -> Self {
        let (run, _) = watch::channel(RunState::Idle);
        Instance {
            id: cx.id.clone(),
            dir: cx.dir.clone(),
            work_dir: cx.work_dir.clone(),
            logs: cx.logs.clone(),
            cgroup: cx.cgroup.clone(),
            record: Mutex::new(StateFile { desired, state, process: None }),
            run,
            launch: Mutex::new(Launch::default()),
            killed: KilledGroups::default(),
        }
    }

    /// The state file.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn setup_marker(&self, n: usize) -> PathBuf {
        self.dir.join(format!("setup-{n}.done"))
    }

    /// The working directory of its processes (the entity's `workingDir` inside the work area).
    pub fn cwd(&self) -> Result<PathBuf, RuntimeError> {
        let desired = lock(&self.record).desired.clone();
        let work = self.work_dir.clone();
        match desired.entity.working_dir.as_deref() {
            None | Some("") | Some(".") => Ok(work),
            Some(rel) => {
                let p = Path::new(rel);
                if p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
                    return Err(RuntimeError::Invalid(format!("workingDir `{rel}` must stay inside the instance")));
                }
                Ok(work.join(p))
            }
        }
    }

    /// Updates the lifecycle state (and desired record) and writes the state file.
    pub fn persist(&self, state: State, desired: Option<&DesiredInstance>) -> Result<(), RuntimeError> {
        let mut rec = lock(&self.record);
        rec.state = state;
        if let Some(d) = desired {
            rec.desired = d.clone();
        }
        state::save(&self.state_path(), &rec).map_err(|e| RuntimeError::io(self.state_path(), e))
    }

    /// Sets the desired record used by the next steps (the working directory, env), without writing the file.
    pub fn set_desired(&self, desired: &DesiredInstance) {
        lock(&self.record).desired = desired.clone();
    }

    /// The recorded process, if any.
    pub fn process(&self) -> Option<ProcessRecord> {
        lock(&self.record).process
    }

    pub(super) fn set_process(&self, p: Option<ProcessRecord>) {
        lock(&self.record).process = p;
    }

    /// Sets who the next processes run as and their Secret values.
    pub fn set_launch(&self, launch: Launch) {
        *lock(&self.launch) = launch;
    }

    /// Who the processes run as and their Secret values.
    pub fn launch(&self) -> Launch {
        lock(&self.launch).clone()
    }

    /// Runs `cmd` as the instance's user, without capabilities (after the namespace hooks).
    fn as_user(&self, cmd: &mut Command) {
        if let Some(id) = &lock(&self.launch).identity {
            super::identity::apply(cmd.as_std_mut(), id);
        }
    }

    /// The environment of its processes: a minimal base, the entity's env (Secret references replaced by their
    /// values), then the injected env.
    fn env(&self, desired: &DesiredInstance) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string());
        env.insert("PATH".to_string(), path);
        env.insert("HOME".to_string(), self.work_dir.display().to_string());
        env.insert("FOS_INSTANCE".to_string(), desired.id.to_string());
        env.insert("FOS_NODE".to_string(), desired.node.clone());
        for v in &desired.entity.volumes {
            if let Some(dir) = lock(&self.launch).volumes.get(&v.name) {
                env.insert(v.env_name(), dir.display().to_string());
            }
        }
        let secrets = lock(&self.launch).secret_env.clone();
        env.extend(desired.entity.env.iter().filter_map(|(k, v)| match v.as_plain() {
            Some(plain) => Some((k.clone(), plain.to_string())),
            None => secrets.0.get(k).map(|s| (k.clone(), s.clone())),
        }));
        env.extend(desired.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// Waits until the processes of a cancelled step are gone (the next step must not race them).
    pub async fn settle(&self) -> Result<(), RuntimeError> {
        self.killed.settle(KILL_PATIENCE).await.map_err(|e| RuntimeError::io("a cancelled step's processes", e))
    }

    /// Runs the setup commands not run yet (each leaves a marker once it succeeded, so a retried configure does not
    /// repeat the ones that worked). Each runs in a process group of its own: what it leaves running when it ends
    /// is killed, and when the configure is cancelled (this future dropped) the whole group is killed and the next
    /// step waits for it ([`Instance::settle`]).
    pub async fn setup(&self, desired: &DesiredInstance, netns: Option<&Path>) -> Result<(), RuntimeError> {
        let cwd = self.cwd()?;
        let log_path = self.logs.dir.join("setup.log");
        for (n, argv) in desired.entity.setup.iter().enumerate() {
            if self.setup_marker(n).exists() {
                continue;
            }
            let Some((program, args)) = argv.split_first() else { continue };
            let joined = argv.join(" ");
            let log = open_append(&log_path).map_err(|e| RuntimeError::io(&log_path, e))?;
            let err_log = log.try_clone().map_err(|e| RuntimeError::io(&log_path, e))?;
            let mut cmd = Command::new(program);
            cmd.args(args).env_clear().envs(self.env(desired)).current_dir(&cwd);
            cmd.stdin(Stdio::null()).stdout(log).stderr(err_log).kill_on_drop(true);
            process::isolate(&mut cmd);
            enter_netns(&mut cmd, netns)?;
            self.as_user(&mut cmd);
            let setup_error =
                |e: std::io::Error| RuntimeError::Setup { command: joined.clone(), reason: e.to_string() };
            let mut child = cmd.spawn().map_err(setup_error)?;
            let pgid =
                child.id().ok_or_else(|| setup_error(std::io::Error::other("exited before its pid was read")))?;
            let group = ProcessGroup::new(pgid as i32, Some(self.killed.clone()));
            let status = child.wait().await.map_err(setup_error)?;
            group.kill_and_wait(KILL_PATIENCE).await.map_err(setup_error)?;
            if !status.success() {
                return Err(RuntimeError::Setup { command: joined, reason: status.to_string() });
            }
            std::fs::write(self.setup_marker(n), b"").map_err(|e| RuntimeError::io(self.setup_marker(n), e))?;
        }
        Ok(())
    }

    /// Removes the setup markers (at clean).
    pub fn forget_setup(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("setup-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Starts the main process with `desired`'s argv and env, in its own session and cgroups (and in the network
    /// namespace `netns` when the instance has one).
    pub fn spawn(&self, desired: &DesiredInstance, netns: Option<&Path>) -> Result<ProcessRecord, RuntimeError> {
        self.kill_leftovers();
        let Some((program, args)) = desired.entity.command.split_first() else {
            return Err(RuntimeError::Invalid("a native entity needs a command".into()));
        };
        let cwd = self.cwd()?;
        let logs = &self.logs;
        std::fs::create_dir_all(&logs.dir).map_err(|e| RuntimeError::io(&logs.dir, e))?;
        let open = |path: &Path| open_append(path).map_err(|e| RuntimeError::io(path, e));
        let (stdout, stderr) = (open(&logs.stdout)?, open(&logs.stderr)?);
        let mut cmd = Command::new(program);
        cmd.args(args).env_clear().envs(self.env(desired)).current_dir(&cwd);
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        process::lead_session(&mut cmd);
        enter_netns(&mut cmd, netns)?;
        self.as_user(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn { command: program.clone(), source })?;
        let pid = child.id().ok_or_else(|| RuntimeError::Failed("process exited before its pid was read".into()))?;
        if let Err(e) = self.cgroup.add(pid) {
            let _ = signal_group(pid as i32, libc::SIGKILL);
            let _ = child.start_kill();
            tokio::spawn(async move { child.wait().await });
            return Err(RuntimeError::io("cgroup.procs", e));
        }
        let start_time = process::start_time(pid).unwrap_or(0);
        let record = ProcessRecord { pid, start_time, started_at: Utc::now() };
        self.set_process(Some(record));
        self.run.send_replace(RunState::Running { pid, started_at: record.started_at });
        tokio::spawn(process::watch_child(child, self.run.clone()));
        Ok(record)
    }

    /// Takes over a process found alive after a restart.
    pub fn adopt(&self, record: ProcessRecord) {
        self.set_process(Some(record));
        self.run.send_replace(RunState::Running { pid: record.pid, started_at: record.started_at });
        tokio::spawn(process::watch_adopted(record.pid, record.start_time, self.run.clone()));
    }

    /// Kills whatever is left of a previous run (a crashed main process's children, a group member that escaped).
    pub fn kill_leftovers(&self) {
        if let Some(p) = self.process() {
            if !matches!(*self.run.borrow(), RunState::Running { .. }) {
                let _ = signal_group(p.pid as i32, libc::SIGKILL);
            }
        }
        self.cgroup.kill_all();
    }

    pub(super) fn main_running(&self) -> bool {
        matches!(*self.run.borrow(), RunState::Running { .. })
    }

    /// Stops the process group: SIGTERM, then SIGKILL after `grace`, until the main process is reaped and no
    /// process is left in its group or cgroups.
    pub async fn stop(&self, grace: Duration) -> Result<(), RuntimeError> {
        let Some(p) = self.process() else {
            return Ok(());
        };
        let pgid = p.pid as i32;
        // A paused instance must run to handle SIGTERM.
        let _ = self.cgroup.freeze(false);
        let _ = signal_group(pgid, libc::SIGCONT);
        signal_group(pgid, libc::SIGTERM).map_err(|source| RuntimeError::Signal { pgid, source })?;
        let deadline = tokio::time::Instant::now() + grace;
        while (self.main_running() || group_alive(pgid)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(STOP_POLL).await;
        }
        let hard_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.main_running() || group_alive(pgid) || !self.cgroup.pids().is_empty() {
            if tokio::time::Instant::now() > hard_deadline {
                return Err(RuntimeError::Signal {
                    pgid,
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "processes survive SIGKILL"),
                });
            }
            signal_group(pgid, libc::SIGKILL).map_err(|source| RuntimeError::Signal { pgid, source })?;
            self.cgroup.kill_all();
            tokio::time::sleep(STOP_POLL).await;
        }
        self.set_process(None);
        self.run.send_replace(RunState::Idle);
        Ok(())
    }

    /// Suspends the instance (freezer, else SIGSTOP to the group).
    pub fn pause(&self) -> Result<(), RuntimeError> {
        self.signal_or_freeze(true, libc::SIGSTOP)
    }

    /// Resumes a suspended instance (thaw, else SIGCONT to the group).
    pub fn resume(&self) -> Result<(), RuntimeError> {
        self.signal_or_freeze(false, libc::SIGCONT)
    }

    fn signal_or_freeze(&self, frozen: bool, signal: i32) -> Result<(), RuntimeError> {
        let p = self.process().ok_or_else(|| RuntimeError::Failed("no running process".into()))?;
        match self.cgroup.freeze(frozen) {
            Ok(true) => Ok(()),
            _ => {
                let pgid = p.pid as i32;
                signal_group(pgid, signal).map_err(|source| RuntimeError::Signal { pgid, source })
            }
        }
    }
}
