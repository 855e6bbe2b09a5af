//! One container instance: its files (`<dir>/bundle/{config.json,rootfs}`, `<dir>/state.json`), its run state, and
//! the task that watches its `runc run` process (or, once adopted after an agent restart, its init process through a
//! pidfd) and reports how it ended: exit status, signal, and whether the kernel's OOM killer ended it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use fos_api::lifecycle::State;
use fos_api::record::DesiredInstance;
use serde::{Deserialize, Serialize};
use tokio::process::Child;
use tokio::sync::watch;

use crate::cgroup::{InstanceCgroup, OomWatch};
use crate::runtime::{InstanceContext, RunState, RuntimeError};

/// The name of the state file in an instance's directory.
pub const STATE_FILE: &str = "state.json";

/// What a restarted agent needs to find a container again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateFile {
    /// The desired record it was last driven with.
    pub desired: DesiredInstance,
    /// Its lifecycle state.
    pub state: State,
    /// The image it runs (the reference it was asked as).
    #[serde(default)]
    pub image: Option<String>,
    /// When its container started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
}

/// A container instance.
pub struct Container {
    /// Its directory.
    pub dir: PathBuf,
    /// runc's name for it.
    pub runc_id: String,
    /// Its cgroup (the parent of runc's, holding the limits).
    pub cgroup: InstanceCgroup,
    /// How it runs now.
    pub run: watch::Sender<RunState>,
    /// Set while it is being stopped on request (its end is then not an exit).
    pub stopping: AtomicBool,
    desired: Mutex<DesiredInstance>,
    image: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Container {
    /// The instance `desired` in context `cx`, runc naming it `runc_id`.
    pub fn new(cx: &InstanceContext, desired: DesiredInstance, runc_id: String) -> Self {
        Container {
            dir: cx.dir.clone(),
            runc_id,
            cgroup: cx.cgroup.clone(),
            run: watch::channel(RunState::Idle).0,
            stopping: AtomicBool::new(false),
            desired: Mutex::new(desired),
            image: Mutex::new(None),
        }
    }

    /// Its bundle directory.
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    /// Where `runc run` writes the container's init pid once the container runs.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("runc.pid")
    }

    /// The desired record it was last set up with.
    pub fn desired(&self) -> DesiredInstance {
        lock(&self.desired).clone()
    }

    /// Sets the desired record.
    pub fn set_desired(&self, desired: &DesiredInstance) {
        *lock(&self.desired) = desired.clone();
    }

    /// The image it runs.
    pub fn image(&self) -> Option<String> {
        lock(&self.image).clone()
    }

    /// Sets the image it runs.
    pub fn set_image(&self, image: Option<String>) {
        *lock(&self.image) = image;
    }

    /// Writes its state file (a temporary file renamed in).
    pub fn persist(&self, state: State) -> Result<(), RuntimeError> {
        let started_at = match &*self.run.borrow() {
            RunState::Running { started_at, .. } => Some(*started_at),
            _ => None,
        };
        let file = StateFile { desired: self.desired(), state, image: self.image(), started_at };
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join("state.json.tmp");
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| RuntimeError::Failed(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| RuntimeError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| RuntimeError::io(&path, e))
    }

    /// Watches the `runc run` process `child` and reports its end.
    pub fn watch_child(self: &Arc<Self>, mut child: Child, oom: OomWatch) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            let code = status.and_then(|s| s.code());
            me.ended(code, Some(&oom));
        });
    }

    /// Watches an adopted container's init process `pid` (not the agent's child: its status is not known).
    pub fn watch_adopted(self: &Arc<Self>, pid: u32) {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            wait_pid(pid);
            me.ended(None, None);
        });
    }

    /// Reports the end of the run (an adopted one's OOM kills are not known).
    fn ended(&self, code: Option<i32>, oom: Option<&OomWatch>) {
        if self.stopping.load(Ordering::SeqCst) {
            self.run.send_replace(RunState::Idle);
            return;
        }
        // runc reports a container ended by signal N as 128 + N.
        let signal = code.filter(|c| (129..=192).contains(c)).map(|c| c - 128);
        // A kill by the OOM killer is a SIGKILL (runc: 137).
        let oom_killed = signal == Some(libc::SIGKILL) && oom.is_some_and(|w| w.killed(&self.cgroup));
        self.run.send_replace(RunState::Exited { status: code, signal, oom_killed, at: Utc::now() });
    }
}

/// Blocks until process `pid` has ended (a pidfd, so a reused pid is never mistaken for it).
fn wait_pid(pid: u32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as i32;
    if fd < 0 {
        return; // already gone
    }
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut poll, 1, -1) };
        if rc >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
}

/// Reads a state file.
pub fn load(path: &Path) -> Result<StateFile, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|e| RuntimeError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Failed(format!("{}: {e}", path.display())))
}

/// Removes `<root>/<hierarchy>/fos/<name>` (and runc's group under it) in every hierarchy under `root`: runc makes
/// its group in hierarchies the node's own cgroups do not use.
pub fn remove_groups(root: &Path, relative: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let mut hierarchies: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    hierarchies.push(root.to_path_buf());
    for h in hierarchies {
        let group = h.join(relative);
        let _ = std::fs::remove_dir(group.join("c"));
        let _ = std::fs::remove_dir(&group);
    }
}
