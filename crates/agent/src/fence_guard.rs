//! The fence guard: a small process, separate from the agent, that stops the node's instances when the agent is no
//! longer there to fence them.
//!
//! The heartbeat fences a node that cannot renew its lease (its instances stop before the cluster may declare the
//! node lost and place them elsewhere). That needs a running agent: when `fosd` alone dies (killed, crashed, stopped
//! for good) its instances keep running while the control plane, seeing no heartbeat, declares the node lost and
//! starts them on other nodes. The guard closes that gap. The agent re-executes its own binary as the guard
//! ([`GUARD_ARG`]), in a session of its own so that it outlives the agent, and pushes a deadline forward
//! (`<data>/fence/deadline`, milliseconds of `CLOCK_BOOTTIME`) at every lease renewal, and while the store is down
//! everywhere (edge autonomy). Once the deadline passes, the guard kills, as the agent's fence would stop them, the
//! running native instances not marked `onNodeLoss: keep` (their process group and cgroups, found from the native
//! runtime's state files), and keeps doing so until a new agent pushes the deadline forward again. A restarted agent
//! finds the guard by its pid file and keeps it. The deadline is the agent's own fence deadline plus one heartbeat
//! period, so the agent decides first whenever it is alive. The guard exits when the deadline file says `off`
//! (`fosd --cleanup` removing everything) or disappears.
//!
//! Only nodes on a shared store (etcd) run a guard: with the embedded store, the control plane dies with the agent
//! and nothing can be placed elsewhere.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fos_api::lifecycle::State;
use fos_api::manifest::{EntityKind, OnNodeLoss};

use crate::cgroup::Cgroups;
use crate::network::names::Names;
use crate::runtime::native::{instance::STATE_FILE, process, state};
use crate::runtime::NodeLayout;

/// The first argument that makes the agent's binary run as the guard: `<binary> __fence-guard <data dir> <system>
/// <node> <cgroups: yes|no>`.
pub const GUARD_ARG: &str = "__fence-guard";

/// How often the guard reads the deadline.
const POLL: Duration = Duration::from_millis(100);

/// What the deadline file holds to make the guard exit.
const OFF: &str = "off";

/// Milliseconds of `CLOCK_BOOTTIME` (monotonic, counting suspend; the same clock for the agent and the guard).
pub fn boot_millis() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Where the guard's files live: `<data>/fence/`.
fn fence_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("fence")
}

/// The agent's side: the deadline it pushes forward.
#[derive(Debug, Clone)]
pub struct FenceGuard {
    deadline: PathBuf,
}

impl FenceGuard {
    /// Makes sure a guard runs for this node (started as `exe`, or the one a previous agent started), with a
    /// deadline `grace` from now so that instances recovered at start survive until the first renewal.
    pub fn ensure(
        exe: &Path,
        data_dir: &Path,
        system: &str,
        node: &str,
        use_cgroups: bool,
        grace: Duration,
    ) -> io::Result<FenceGuard> {
        let dir = fence_dir(data_dir);
        fs::create_dir_all(&dir)?;
        let guard = FenceGuard { deadline: dir.join("deadline") };
        guard.extend_to(boot_millis() + grace.as_millis() as u64)?;
        let pid_file = dir.join("guard.pid");
        let running = fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<u32>().ok()).filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.get(1) == Some(&GUARD_ARG.as_bytes()) && args.get(2) == Some(&data_dir.as_os_str().as_encoded_bytes())
        });
        if let Some(pid) = running {
            tracing::info!(pid, "fence guard already running");
            return Ok(guard);
        }
        let log = fs::OpenOptions::new().create(true).append(true).open(dir.join("guard.log"))?;
        let mut cmd = Command::new(exe);
        cmd.arg(GUARD_ARG)
            .arg(data_dir)
            .arg(system)
            .arg(node)
            .arg(if use_cgroups { "yes" } else { "no" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        fs::write(&pid_file, child.id().to_string())?;
        tracing::info!(pid = child.id(), "fence guard started");
        // It normally outlives this process (init reaps it then); one that exits first is reaped here.
        std::thread::spawn(move || child.wait());
        Ok(guard)
    }

    /// Pushes the deadline to `at` (milliseconds of [`boot_millis`]).
    pub fn extend_to(&self, at: u64) -> io::Result<()> {
        write_atomic(&self.deadline, &at.to_string())
    }

    /// Makes the guard exit (everything of the node is being removed).
    pub fn stand_down(&self) -> io::Result<()> {
        write_atomic(&self.deadline, OFF)
    }
}

fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// The guard process: runs until the deadline file says `off` or is gone. `args` are those after [`GUARD_ARG`].
pub fn run(args: &[String]) -> io::Result<()> {
    let [data_dir, system, node, cgroups] = args else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "usage: __fence-guard DATA_DIR SYSTEM NODE yes|no"));
    };
    let data_dir = PathBuf::from(data_dir);
    let cgroups = if cgroups == "yes" { Cgroups::detect() } else { Cgroups::default() };
    let layout = NodeLayout::new(&data_dir, "/run/netns", cgroups, Names::new(system, node, &data_dir));
    let deadline = fence_dir(&data_dir).join("deadline");
    let mut fired = false;
    loop {
        std::thread::sleep(POLL);
        let text = match fs::read_to_string(&deadline) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(_) => continue,
        };
        if text.trim() == OFF {
            return Ok(());
        }
        let Ok(at) = text.trim().parse::<u64>() else { continue };
        if boot_millis() <= at {
            fired = false;
            continue;
        }
        let killed = fence_native(&layout);
        if !killed.is_empty() || !fired {
            eprintln!("fence guard: no agent renewed the node's lease in time: stopped {killed:?}");
        }
        fired = true;
    }
}

/// Kills the running native instances not marked `onNodeLoss: keep`: their process group and cgroups. Returns the
/// instances that had a live process.
fn fence_native(layout: &NodeLayout) -> Vec<String> {
    let mut killed = Vec::new();
    let Ok(entries) = fs::read_dir(layout.runtime_dir(EntityKind::Native)) else { return killed };
    for entry in entries.flatten() {
        let Ok(file) = state::load(&entry.path().join(STATE_FILE)) else { continue };
        if file.desired.on_node_loss == OnNodeLoss::Keep || !matches!(file.state, State::Running | State::Paused) {
            continue;
        }
        if let Some(p) = file.process.filter(|p| process::is_same_process(p.pid, p.start_time)) {
            let _ = process::signal_group(p.pid as i32, libc::SIGKILL);
            killed.push(file.desired.id.to_string());
        }
        layout.context(&file.desired).cgroup.kill_all();
    }
    killed
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use fos_api::record::{DesiredInstance, InstanceId};
    use fos_api::EntitySpec;

    use super::*;
    use crate::runtime::native::state::{ProcessRecord, StateFile};

    /// A `sleep` leading its own session, recorded in a native state file as running instance `name`.
    fn running(layout: &NodeLayout, name: &str, keep: bool) -> std::process::Child {
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().expect("sleep");
        let mut desired = DesiredInstance::new(InstanceId::new("t", "a", name, 0), "n1", EntitySpec::native(["sleep"]));
        if keep {
            desired.on_node_loss = OnNodeLoss::Keep;
        }
        let dir = layout.context(&desired).dir;
        fs::create_dir_all(&dir).expect("instance dir");
        let start_time = process::start_time(child.id()).expect("start time");
        let process = Some(ProcessRecord { pid: child.id(), start_time, started_at: chrono::Utc::now() });
        state::save(&dir.join(STATE_FILE), &StateFile { desired, state: State::Running, process }).expect("state");
        child
    }

    #[test]
    fn past_its_deadline_the_guard_kills_what_may_run_elsewhere_and_spares_what_is_kept() {
        let data = tempfile::tempdir().expect("temp dir");
        let layout = NodeLayout::new(data.path(), "/run/netns", Cgroups::default(), Names::new("0", "n1", data.path()));
        let mut moved = running(&layout, "moved", false);
        let mut kept = running(&layout, "kept", true);
        let killed = fence_native(&layout);
        assert_eq!(killed, ["moved-0.a.t"]);
        let status = moved.wait().expect("wait");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
        assert!(kept.try_wait().expect("try_wait").is_none(), "onNodeLoss: keep runs on");
        assert!(fence_native(&layout).is_empty(), "nothing left to stop");
        let _ = kept.kill();
        let _ = kept.wait();
    }

    #[test]
    fn the_deadline_file_is_pushed_forward_and_turned_off() {
        let data = tempfile::tempdir().expect("temp dir");
        let dir = fence_dir(data.path());
        fs::create_dir_all(&dir).expect("fence dir");
        let guard = FenceGuard { deadline: dir.join("deadline") };
        let at = boot_millis() + 5_000;
        guard.extend_to(at).expect("extend");
        assert_eq!(fs::read_to_string(dir.join("deadline")).expect("read"), at.to_string());
        guard.stand_down().expect("off");
        // The guard process exits on `off`.
        let args = [data.path().display().to_string(), "0".into(), "n1".into(), "no".into()];
        assert!(run(&args).is_ok());
    }
}
