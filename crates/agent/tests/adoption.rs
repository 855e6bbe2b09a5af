//! Restart safety with a real agent process: SIGKILL the process hosting the agent mid-run, start it again, and the
//! instance's process is adopted (one process, same pid); a process that died while the agent was down is started
//! again.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fos_agent::runtime::native::process;
use fos_api::lifecycle::State;
use fos_api::record::ActualInstance;

const ID: &str = "host-0.bench.default";

/// A running `fos-agent-host`, killed (SIGKILL) when dropped.
struct Host {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Host {
    fn start(store: &std::path::Path, config: &std::path::Path) -> Host {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fos-agent-host"))
            .arg("--store")
            .arg(store)
            .arg("--config")
            .arg(config)
            .args(["--instances", "1", "--print", "--command", "sleep", "600"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Host { child, lines }
    }

    /// Waits for an actual record of the instance satisfying `pred`.
    fn until(&self, what: &str, pred: impl Fn(&ActualInstance) -> bool) -> ActualInstance {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
            let Ok(a) = serde_json::from_str::<ActualInstance>(&line) else { continue };
            if a.id.to_string() == ID && pred(&a) {
                return a;
            }
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Kills the instance's process group when the test ends, whatever happens.
struct Reaper(Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = process::signal_group(*pid as i32, libc::SIGKILL);
        }
        for pid in &self.0 {
            while process::proc_state(*pid).is_some_and(|s| s != 'Z') {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        remove_cgroups(&format!("{ID}@"));
    }
}

/// Removes the (empty) cgroups left by instances whose id starts with `prefix` (their agent was killed, not
/// cleaned).
fn remove_cgroups(prefix: &str) {
    for ctl in ["cpu", "memory", "freezer", "unified"] {
        let Ok(entries) = std::fs::read_dir(format!("/sys/fs/cgroup/{ctl}/fos")) else { continue };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

/// Processes whose environment names this instance.
fn instance_processes() -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        let marker = format!("FOS_INSTANCE={ID}");
        if environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) && process::proc_state(pid) != Some('Z') {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_killed_agent_adopts_its_process_on_restart_and_restarts_one_that_died() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("node.yaml");
    std::fs::write(
        &config,
        format!("name: n1\ndataDir: {}\nprobePort: 0\nheartbeatTtl: 2s\n", data.path().join("agent").display()),
    )
    .unwrap();
    let mut reaper = Reaper(Vec::new());

    let mut host = Host::start(store.path(), &config);
    let first = host.until("Running", |a| a.state() == Some(State::Running));
    let pid = first.pid.unwrap();
    reaper.0.push(pid);
    assert_eq!(instance_processes(), [pid]);

    host.kill9();
    assert!(process::group_alive(pid as i32), "the instance outlives the agent");

    let host = Host::start(store.path(), &config);
    let adopted = host.until("Running after restart", |a| a.state() == Some(State::Running));
    assert_eq!(adopted.pid, Some(pid), "same process, adopted");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(instance_processes(), [pid], "no second copy started");
    drop(host);

    // Killed while the agent is down: the next agent starts it again (nothing is lost).
    process::signal_group(pid as i32, libc::SIGKILL).unwrap();
    while process::proc_state(pid).is_some_and(|s| s != 'Z') {
        std::thread::sleep(Duration::from_millis(10));
    }
    let host = Host::start(store.path(), &config);
    let again = host.until("Running with a new process", |a| a.state() == Some(State::Running) && a.pid != Some(pid));
    let new_pid = again.pid.unwrap();
    reaper.0.push(new_pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(instance_processes(), [new_pid]);
    drop(host);
}
