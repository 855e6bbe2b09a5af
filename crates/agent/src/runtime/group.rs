//! The processes of one step (a setup command, an exec readiness probe) in a process group of their own, so that
//! cancelling or timing out the step kills everything it started, not only its first process, and the next step
//! starts only once they are gone. [`ProcessGroup`] kills its group when dropped (a cancelled step), and hands it
//! to [`KilledGroups`], which the next step of the same instance awaits ([`KilledGroups::settle`]);
//! [`ProcessGroup::kill_and_wait`] does both at once for a step that ends normally or times out.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a group is checked for remaining processes.
const POLL: Duration = Duration::from_millis(5);

/// The processes of group `pgid` that are alive (zombies, which hold nothing but a pid, do not count): from
/// `/proc/<pid>/stat`, field 5.
pub fn live_members(pgid: i32) -> Vec<u32> {
    // SAFETY: kill(2) with signal 0 only checks for existence.
    if pgid <= 1 || unsafe { libc::kill(-pgid, 0) } == -1 {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else { return false };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
            group == Some(pgid) && state != Some("Z")
        })
        .collect()
}

/// Sends SIGKILL to every process of group `pgid`.
fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// Kills group `pgid` until no live process is left in it, for at most `patience`.
pub async fn kill_and_wait(pgid: i32, patience: Duration) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let left = live_members(pgid);
        if left.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("processes {left:?} of group {pgid} survive SIGKILL"),
            ));
        }
        kill_group(pgid);
        tokio::time::sleep(POLL).await;
    }
}

/// The groups killed by a cancelled step of one instance, which its next step waits for.
#[derive(Debug, Clone, Default)]
pub struct KilledGroups(Arc<Mutex<Vec<i32>>>);

impl KilledGroups {
    fn push(&self, pgid: i32) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(pgid);
    }

    /// Waits until every group killed so far has no live process (killing again what is left), for at most
    /// `patience` per group. A group that survives stays on the list and fails the step.
    pub async fn settle(&self, patience: Duration) -> io::Result<()> {
        let groups: Vec<i32> = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, pgid) in groups.iter().enumerate() {
            if let Err(e) = kill_and_wait(*pgid, patience).await {
                for rest in &groups[i..] {
                    self.push(*rest);
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// A step's process group (its leader's pid is the group id): killed when dropped before
/// [`ProcessGroup::kill_and_wait`] (a cancelled step), and then handed to `killed` to be waited for.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: i32,
    killed: Option<KilledGroups>,
    armed: bool,
}

impl ProcessGroup {
    /// The group led by `pgid`; when dropped unfinished it is killed and added to `killed`.
    pub fn new(pgid: i32, killed: Option<KilledGroups>) -> Self {
        ProcessGroup { pgid, killed, armed: true }
    }

    /// The group id.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Kills whatever is left in the group and waits until it is gone (at most `patience`).
    pub async fn kill_and_wait(mut self, patience: Duration) -> io::Result<()> {
        self.armed = false;
        let result = kill_and_wait(self.pgid, patience).await;
        if result.is_err() {
            if let Some(killed) = &self.killed {
                killed.push(self.pgid);
            }
        }
        result
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pgid);
            if let Some(killed) = &self.killed {
                killed.push(self.pgid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn spawn_group(script: &str) -> std::process::Child {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", script]).process_group(0);
        cmd.spawn().expect("sh")
    }

    #[tokio::test]
    async fn dropping_a_group_kills_all_of_it_and_the_next_step_waits_for_it() {
        let mut child = spawn_group("sleep 30 & sleep 30 & wait");
        let pgid = child.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while live_members(pgid).len() < 3 {
            assert!(std::time::Instant::now() < deadline, "the group never had its three processes");
            tokio::time::sleep(POLL).await;
        }
        let killed = KilledGroups::default();
        drop(ProcessGroup::new(pgid, Some(killed.clone())));
        killed.settle(Duration::from_secs(5)).await.expect("settled");
        let _ = child.wait();
        assert!(live_members(pgid).is_empty(), "the shell and both of its children are gone");
        killed.settle(Duration::from_secs(1)).await.expect("nothing left to wait for");
    }

    #[tokio::test]
    async fn kill_and_wait_takes_the_leftovers_of_a_finished_leader() {
        let mut child = spawn_group("sleep 30 & exit 0");
        let pgid = child.id() as i32;
        let _ = child.wait();
        assert!(!live_members(pgid).is_empty(), "the background sleep outlives its shell");
        ProcessGroup::new(pgid, None).kill_and_wait(Duration::from_secs(5)).await.expect("gone");
        assert!(live_members(pgid).is_empty());
    }
}
