//! Process plumbing for the native runtime: spawning a command in its own session and cgroups, identifying a
//! process by pid + start time (so a reused pid is never mistaken for ours), signalling whole process groups, and
//! watching a process's exit whether it is our child (reaped) or an adopted one (pidfd).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use chrono::Utc;
use tokio::io::unix::AsyncFd;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::runtime::RunState;

/// How long an exited child of ours that a tracer still holds may take to become reapable.
const TRACED_PATIENCE: Duration = Duration::from_secs(10);

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`), if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the fields after it start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The one-letter state of `pid` (`R`, `S`, `T`, `Z`, …), if it exists.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?.chars().next()
}

/// Whether `pid` is the process that started at `start` (not a later process that reused the pid), still alive.
pub fn is_same_process(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start) && proc_state(pid) != Some('Z')
}

/// Sends `signal` to every process of group `pgid`. A group that no longer exists is not an error.
pub fn signal_group(pgid: i32, signal: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to signal process group <= 1"));
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(-pgid, signal) } == -1 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err);
        }
    }
    Ok(())
}

/// Whether any live process is left in group `pgid` (a zombie left unreaped by whoever inherited it does not
/// count: it holds nothing).
pub fn group_alive(pgid: i32) -> bool {
    !crate::runtime::group::live_members(pgid).is_empty()
}

/// Sends `signal` to one process.
pub fn signal_pid(pid: i32, signal: i32) {
    if pid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Prepares `cmd` to start as the leader of a new process group (pgid = pid), so that stop can signal everything it
/// started and a signal aimed at the agent's own group does not reach it. Nothing runs between fork and exec, so the
/// standard library starts it with posix_spawn (much cheaper than fork for a large agent).
pub fn isolate(cmd: &mut Command) {
    cmd.process_group(0);
}

/// Prepares `cmd` to start as the leader of a new session (and so of a new process group, pgid = sid = pid) with
/// only its standard streams, as a service manager starts a daemon: stop signals everything it started, a signal
/// aimed at the agent's group does not reach it, no descriptor the agent inherited from whoever started it leaks in,
/// and CRIU can checkpoint it wherever the agent's own session leader is (even outside the agent's pid namespace, as
/// under a container runtime).
pub fn lead_session(cmd: &mut Command) {
    // SAFETY: setsid(2) and close_range(2) are async-signal-safe and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            // Marked close-on-exec rather than closed: the standard library's own pipe to report exec errors stays
            // usable. A kernel without close_range (before 5.11) leaves them as they are.
            libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
}

fn exited(status: Option<i32>, signal: Option<i32>) -> RunState {
    RunState::Exited { status, signal, oom_killed: false, at: Utc::now() }
}

/// Waits for our child to exit (reaping it, so it never lingers as a zombie) and publishes the exit.
pub async fn watch_child(mut child: Child, tx: watch::Sender<RunState>) {
    let state = match child.wait().await {
        Ok(s) => exited(s.code().or(s.signal().map(|sig| 128 + sig)), s.signal()),
        Err(_) => exited(None, None),
    };
    tx.send_replace(state);
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) returns a new descriptor or -1; the descriptor is owned from here on.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Reaps the process of `pidfd` if it is a child of ours that has exited (one a restore detached, inherited as the
/// subreaper: see [`crate::reaper`]), returning its exit; None when it is not our child (adopted after a restart:
/// its exit status cannot be known) or has not exited.
fn reap_pidfd(pidfd: &OwnedFd) -> Option<RunState> {
    // SAFETY: an all-zero siginfo_t is a valid value; waitid(2) writes only into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pidfd` is an open pidfd; waitid(2) with WNOHANG only fills `info`.
    let r = unsafe {
        libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG)
    };
    // SAFETY: after a successful waitid, si_pid/si_status are the fields it filled.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if r != 0 || pid == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => exited(Some(status), None),
        _ => exited(Some(128 + status), Some(status)),
    })
}

/// Waits for an adopted process (not a child spawned here: adopted after a restart, or restored by CRIU) to exit,
/// reaps it if it is a child of ours, and publishes the exit (with its status where it could be read).
pub async fn watch_adopted(pid: u32, start: u64, tx: watch::Sender<RunState>) {
    if let Ok(fd) = pidfd_open(pid) {
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open and unchanged until the AsyncFd is dropped.
        if let Ok(async_fd) = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
            // A pidfd becomes readable when the process exits; it was opened after checking the start time, so
            // re-check once to close the race with a pid reused in between.
            if is_same_process(pid, start) {
                let _ = async_fd.readable().await;
            }
            let mut state = reap_pidfd(async_fd.get_ref());
            // A child of ours that a tracer still holds (CRIU kills a tree it dumped while it traces it) can be
            // reaped only once the tracer let it go: until then waitid finds nothing, and the zombie, leading its
            // group, is no orphan for the reaper. Left there, it would hold its pids (a restore of the tree waits
            // for them).
            let deadline = tokio::time::Instant::now() + TRACED_PATIENCE;
            while state.is_none() && is_our_zombie(pid) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
                state = reap_pidfd(async_fd.get_ref());
            }
            tx.send_replace(state.unwrap_or_else(|| exited(None, None)));
            return;
        }
    }
    while is_same_process(pid, start) && !is_zombie(pid) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tx.send_replace(exited(None, None));
}

/// Whether `pid` is a child of this process that has exited and is not reaped yet.
fn is_our_zombie(pid: u32) -> bool {
    // SAFETY: getpid(2) has no preconditions.
    let me = unsafe { libc::getpid() };
    crate::reaper::stat(pid as i32).is_some_and(|(state, ppid, _)| state == 'Z' && ppid == me)
}

/// Whether `pid` has exited and waits for its parent to reap it.
fn is_zombie(pid: u32) -> bool {
    crate::reaper::stat(pid as i32).is_some_and(|(state, _, _)| state == 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_identifies_this_process() {
        let me = std::process::id();
        let t = start_time(me).unwrap();
        assert!(is_same_process(me, t));
        assert!(!is_same_process(me, t + 1), "another start time is another process");
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn group_one_is_never_signalled() {
        assert!(signal_group(1, 0).is_err());
        assert!(signal_group(0, 0).is_err());
    }
}
