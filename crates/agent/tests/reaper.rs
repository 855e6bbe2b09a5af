//! The agent as subreaper: a process an entity's tree leaves behind becomes the agent's child when its parent exits
//! and is reaped as soon as it exits, while the agent's own children keep their exit status for whoever waits for
//! them, and a detached tree's root (its own group leader, as a CRIU restore leaves it) is left to its watcher, which
//! reaps it with its status.

use std::time::Duration;

use fos_agent::runtime::native::process;
use fos_agent::runtime::RunState;
use tokio::process::Command;

/// The zombie children of this process.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 1..)) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] == "Z" && f[1] == me {
            found.push(pid);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_reaped_and_own_children_keep_their_exit_status() {
    assert!(fos_agent::reaper::start(), "this process becomes a subreaper");
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("orphans");
    // A group leader (as every process the agent starts is) that leaves three children behind and exits 7; they
    // outlive it by a little, then exit as orphans.
    let script = format!("for i in 1 2 3; do sleep 0.3 & echo $! >> {}; done; exit 7", pids.display());
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script]).process_group(0);
    let status = cmd.spawn().unwrap().wait().await.unwrap();
    assert_eq!(status.code(), Some(7), "the agent's own child keeps its exit status");
    let orphans: Vec<i32> =
        std::fs::read_to_string(&pids).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(orphans.len(), 3);
    for pid in &orphans {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let ppid = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().nth(1).unwrap().to_string();
        assert_eq!(ppid, std::process::id().to_string(), "orphan {pid} was inherited by this process");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while orphans.iter().any(|p| std::path::Path::new(&format!("/proc/{p}")).exists()) {
        assert!(std::time::Instant::now() < deadline, "orphans left unreaped: {:?}", zombie_children());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(zombie_children().is_empty(), "zombies left: {:?}", zombie_children());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_group_leader_is_left_to_its_watcher_which_reaps_it_with_its_status() {
    assert!(fos_agent::reaper::start());
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("leader");
    // `setsid` forks a session leader that outlives its parent: it is inherited as a CRIU restore's root is.
    let script = format!("setsid sh -c 'echo $$ > {}; sleep 0.4; exit 5' & sleep 0.1; exit 0", pid_file.display());
    let status = Command::new("/bin/sh").args(["-c", &script]).status().await.unwrap();
    assert!(status.success());
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let start = process::start_time(pid).expect("the leader runs");
    let (tx, mut rx) = tokio::sync::watch::channel(RunState::Idle);
    let watcher = tokio::spawn(process::watch_adopted(pid, start, tx));
    tokio::time::timeout(Duration::from_secs(5), watcher).await.unwrap().unwrap();
    match &*rx.borrow_and_update() {
        RunState::Exited { status, .. } => assert_eq!(*status, Some(5), "its exit status was read by reaping it"),
        other => panic!("not exited: {other:?}"),
    }
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the leader was reaped");
}
