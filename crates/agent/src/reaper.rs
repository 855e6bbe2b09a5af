//! The agent as its entities' subreaper (`PR_SET_CHILD_SUBREAPER`), as container shims and service managers are: a
//! process an entity leaves behind (a backgrounded child whose parent exited, the rest of a tree CRIU checkpointed
//! and killed, a tree CRIU restored and detached) becomes the agent's child instead of the machine's init's, and is
//! reaped here at once. The machine's init may reap late (every few seconds) or never (a container's pid 1 that is not
//! an init), and a live migration that restores on the node it was dumped on waits for those pids to be free.
//!
//! The agent's own children are reaped by whoever spawned them (tokio, with their exit status), so this reaps only
//! zombies that are none of them: a child is the agent's own when it leads its process group (every process the agent
//! starts for an entity or a step does, and the restored tree's root does, watched by its pidfd) or is in the agent's
//! own process group (helpers such as `ip` or `criu`). An orphan is in the group of the process that led it. The one
//! case this leaves unreaped: a helper's child, in the agent's own group, that outlives the helper (the helpers the
//! agent runs do not leave any); it stays a zombie until the agent exits.

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

/// How often zombies are looked for even without a SIGCHLD (one may be missed while a pass runs).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

static STARTED: OnceLock<bool> = OnceLock::new();

/// Makes this process the subreaper of its descendants and starts reaping orphans on a thread of its own (once per
/// process, whichever runtimes come and go; later calls only say whether it worked). False when the kernel refused
/// (then the machine's init reaps).
pub fn start() -> bool {
    *STARTED.get_or_init(|| {
        // SAFETY: prctl(2) with PR_SET_CHILD_SUBREAPER reads no memory of ours.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } == -1 {
            tracing::warn!(error = %io::Error::last_os_error(), "cannot become the subreaper of entities' processes");
            return false;
        }
        let reaper = std::thread::Builder::new().name("fos-reaper".into()).spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let Ok(runtime) = runtime else { return sweep_forever() };
            runtime.block_on(async {
                let mut sigchld = signal(SignalKind::child()).ok();
                loop {
                    match sigchld.as_mut() {
                        Some(s) => {
                            let _ = tokio::time::timeout(SWEEP_EVERY, s.recv()).await;
                        }
                        None => tokio::time::sleep(SWEEP_EVERY).await,
                    }
                    reap_orphans();
                }
            })
        });
        if let Err(e) = reaper {
            tracing::warn!(error = %e, "cannot start the reaper: orphans go to the machine's init");
            // SAFETY: as above.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0 as libc::c_ulong, 0, 0, 0) };
            return false;
        }
        true
    })
}

/// Without a runtime for the signal: sweeps on a short period.
fn sweep_forever() {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        reap_orphans();
    }
}

/// Reaps every zombie child of this process that is an orphan it inherited (see the module's doc), returning how
/// many it reaped.
pub fn reap_orphans() -> usize {
    // SAFETY: getpid(2)/getpgrp(2) have no preconditions.
    let (me, my_group) = unsafe { (libc::getpid(), libc::getpgrp()) };
    let mut reaped = 0;
    for pid in children(me) {
        let Some((state, ppid, pgid)) = stat(pid) else { continue };
        if state != 'Z' || ppid != me || pgid == pid || pgid == my_group {
            continue;
        }
        let mut status = 0;
        // SAFETY: waitpid(2) on one pid with WNOHANG writes only `status`.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            reaped += 1;
        }
    }
    reaped
}

/// The children of `me`: from `/proc/<me>/task/*/children` where the kernel has it, else from every process's stat.
fn children(me: i32) -> Vec<i32> {
    let parse = |text: &str| text.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{me}/task")) {
        let mut found = Vec::new();
        let mut supported = false;
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                supported = true;
                found.extend(parse(&text));
            }
        }
        if supported {
            return found;
        }
    }
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(_, ppid, _)| ppid == me))
        .collect()
}

/// State, parent pid and process group of `pid` (fields 3, 4 and 5 of `/proc/<pid>/stat`).
pub(crate) fn stat(pid: i32) -> Option<(char, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the fields after it start after the last ')'.
    let mut fields = text.get(text.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some((state, ppid, pgid))
}
