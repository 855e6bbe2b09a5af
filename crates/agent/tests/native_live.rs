//! Live migration of native processes with CRIU, runtime to runtime: two native runtimes with their own data
//! directories (two nodes), a counter that keeps its count in memory checkpointed on one (`migrate_out(Live)`), its
//! volumes directory carried with the real migration stream and inbox, and restored on the other (`migrate_in` with the ticket):
//! the same process (same token, same pid) goes on counting, into the destination's output file and cgroup, and is
//! migrated back and there again (a restored process, once dumped, leaves its pids free). Given
//! up before the destination took it, it is restored on the source; a checkpoint that cannot be restored starts the
//! instance afresh. Skipped, saying so, where `criu check` fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fos_agent::migration::{criu, stream, Inbox, Part};
use fos_agent::runtime::native::{NativeConfig, NativeRuntime};
use fos_agent::runtime::{MigrationTicket, NodeLayout, RunState, Runtime};
use fos_api::manifest::{EntitySpec, RunAs, Volume};
use fos_api::migration::MigrationMode;
use fos_api::record::{DesiredInstance, InstanceId};

/// Appends `<n> <token>` to a file of its volume it keeps open and `out <n>` to its output every 20 ms; `n` and the
/// token live in memory only (a process started afresh begins at 1 with another token).
const COUNTER: &str = "t=$(od -An -N4 -tx4 /dev/urandom | tr -d ' '); n=0; exec 3>>\"$FOS_VOLUME_DATA/counter\"; \
    while :; do n=$((n+1)); echo \"$n $t\" >&3; echo \"out $n\"; sleep 0.02; done";

async fn criu_works() -> bool {
    let probe = criu::probe().await;
    if !probe.ready {
        eprintln!("SKIPPED: live migration needs a working CRIU: {}", probe.error.unwrap_or_default());
    }
    probe.ready
}

fn desired(node: &str) -> DesiredInstance {
    let mut d = DesiredInstance::new(
        InstanceId::new("default", "live", "counter", 0),
        node,
        EntitySpec::native(["/bin/sh", "-c", COUNTER]),
    );
    d.entity.volumes = vec![Volume { name: "data".into(), size: None, mount_path: None }];
    if !criu::has_sys_resource() {
        // Without CAP_SYS_RESOURCE (some sandboxes) CRIU cannot read another user's resource limits.
        d.entity.run_as = Some(RunAs::Named("root".into()));
    }
    d
}

struct Node {
    _dir: tempfile::TempDir,
    layout: NodeLayout,
    rt: std::sync::Arc<NativeRuntime>,
}

impl Node {
    fn new(name: &str) -> Node {
        // As the agent does: the checkpointed tree's orphans are reaped here, whatever the machine's init does.
        fos_agent::reaper::start();
        let dir = tempfile::tempdir().unwrap();
        let layout = NodeLayout::detect(dir.path(), true, name);
        let config = NativeConfig { stop_grace: Duration::from_secs(2), ..NativeConfig::default() };
        let rt = NativeRuntime::new(config, layout.clone()).unwrap();
        Node { _dir: dir, layout, rt }
    }

    /// Defines and configures the instance here (its volumes made, as the driver does).
    async fn prepare(&self, d: &DesiredInstance) {
        let cx = self.layout.context(d);
        for v in cx.volumes.values() {
            std::fs::create_dir_all(v).unwrap();
        }
        self.rt.define(&cx, d).await.unwrap();
        self.rt.configure(&cx, d).await.unwrap();
    }

    fn counter(&self, d: &DesiredInstance) -> PathBuf {
        self.layout.volumes_dir(&d.id).join("data").join("counter")
    }

    async fn pid(&self, d: &DesiredInstance) -> Option<u32> {
        match self.rt.status(&d.id).await.unwrap() {
            RunState::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

/// The counter's lines: (value, token).
fn lines(path: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (n, t) = l.split_once(' ')?;
            Some((n.parse().ok()?, t.to_string()))
        })
        .collect()
}

async fn until_lines(path: &Path, n: usize) {
    for _ in 0..1000 {
        if lines(path).len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never reached {n} lines: {:?}", path.display(), lines(path));
}

/// What the transfer does: the source's volumes directory streamed (the real frames) into the destination's inbox,
/// which checks and moves it into place.
async fn carry(from: &Node, to: &Node, d: &DesiredInstance, migration: &str) {
    let parts = [Part { name: "volumes".into(), dir: from.layout.volumes_dir(&d.id) }];
    let mut frames = Vec::new();
    let streamed = stream::produce(&parts, 0, &mut |f| {
        frames.push(Ok::<_, std::io::Error>(bytes::Bytes::from(f.data)));
        Ok(())
    })
    .unwrap();
    let inbox = Inbox::new(to.layout.clone());
    let got = inbox.receive(migration, 0, futures::stream::iter(frames)).await.unwrap();
    assert_eq!(got, streamed.bytes);
    let commit = fos_api::migration::DataCommit { bytes: streamed.bytes, sha256: streamed.sha256 };
    inbox.commit(migration, &d.id, &commit).await.unwrap();
}

fn consecutive_one_token(all: &[(u64, String)]) {
    assert!(!all.is_empty());
    assert_eq!(all[0].0, 1);
    for w in all.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "skipped or repeated: {:?} then {:?}", w[0], w[1]);
        assert_eq!(w[1].1, w[0].1, "another process (token) at {:?}: started afresh, not restored", w[1]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_migrated_process_goes_on_from_memory_on_the_other_node() {
    if !criu_works().await {
        return;
    }
    let (n1, n2) = (Node::new("n1"), Node::new("n2"));
    let d = desired("n1");
    n1.prepare(&d).await;
    let cx1 = n1.layout.context(&d);
    n1.rt.run(&cx1, &d).await.unwrap();
    let pid = n1.pid(&d).await.expect("running");
    until_lines(&n1.counter(&d), 10).await;

    let t = std::time::Instant::now();
    let ticket = n1.rt.migrate_out(&cx1, &"n2".into(), MigrationMode::Live).await.unwrap();
    let out_ms = t.elapsed().as_millis();
    assert_eq!(ticket.location, ".checkpoint");
    assert_eq!(n1.pid(&d).await, None, "the source holds no process once checkpointed");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the checkpointed process is gone (reaped)");
    let at_dump = lines(&n1.counter(&d)).len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lines(&n1.counter(&d)).len(), at_dump, "nothing counts while the checkpoint travels");

    carry(&n1, &n2, &d, "m-live").await;
    let d2 = desired("n2");
    n2.prepare(&d2).await;
    let cx2 = n2.layout.context(&d2);
    let t = std::time::Instant::now();
    n2.rt.migrate_in(&cx2, &d2, &ticket).await.unwrap();
    println!(
        "figure: runtime to runtime: checkpoint {out_ms} ms, restore {} ms (including the wait for the dumped tree's \
         orphans to be reaped, which frees their pids)",
        t.elapsed().as_millis()
    );
    assert_eq!(n2.pid(&d2).await, Some(pid), "the restored process keeps its pid");
    until_lines(&n2.counter(&d2), at_dump + 10).await;
    let all = lines(&n2.counter(&d2));
    consecutive_one_token(&all);
    assert!(!n2.layout.volumes_dir(&d.id).join(".checkpoint").exists(), "the images are removed once restored");
    // Its output goes on into this node's output file, its process is in this node's cgroup.
    let out = std::fs::read_to_string(&cx2.logs.stdout).unwrap_or_default();
    assert!(out.lines().any(|l| l == format!("out {}", at_dump + 5)), "output continues here: {out}");
    if !n2.rt.cgroup_dirs(&d.id).is_empty() {
        assert!(n2.rt.cgroup_pids(&d.id).contains(&(pid as i32)), "restored into the instance's cgroup");
    }
    // Migrated live again, back: the restored (adopted) process, once dumped, is reaped (CRIU still traces it as it
    // dies), so its pids are free for the restore on the first node, the same process going on.
    let ticket = n2.rt.migrate_out(&cx2, &"n1".into(), MigrationMode::Live).await.unwrap();
    let back = lines(&n2.counter(&d2)).len();
    carry(&n2, &n1, &d, "m-back").await;
    let t = std::time::Instant::now();
    n1.rt.migrate_in(&cx1, &d, &ticket).await.unwrap();
    let err = std::fs::read_to_string(&cx1.logs.stderr).unwrap_or_default();
    assert!(!err.contains("could not be restored"), "restored, not started afresh: {err}");
    assert_eq!(n1.pid(&d).await, Some(pid), "the same process, back (restored in {:?})", t.elapsed());
    until_lines(&n1.counter(&d), back + 10).await;
    consecutive_one_token(&lines(&n1.counter(&d)));
    let t = std::time::Instant::now();
    n1.rt.migrate_out(&cx1, &"n2".into(), MigrationMode::Live).await.unwrap();
    carry(&n1, &n2, &d, "m-again").await;
    n2.rt.migrate_in(&cx2, &d2, &ticket).await.unwrap();
    let err = std::fs::read_to_string(&cx2.logs.stderr).unwrap_or_default();
    assert!(!err.contains("could not be restored"), "restored a third time, not started afresh: {err}");
    assert_eq!(n2.pid(&d2).await, Some(pid), "the same process, there again (in {:?})", t.elapsed());
    // Supervised as a started one: its exit is seen.
    let mut rx = n2.rt.subscribe(&d.id).unwrap();
    unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| matches!(s, RunState::Exited { .. })))
        .await
        .expect("its exit is seen")
        .unwrap();
    for n in [&n1, &n2] {
        let cx = n.layout.context(&d);
        n.rt.clean(&cx).await.unwrap();
        n.rt.undefine(&cx).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_up_it_is_restored_on_the_source_and_a_broken_checkpoint_starts_afresh() {
    if !criu_works().await {
        return;
    }
    let n1 = Node::new("n1");
    let d = desired("n1");
    n1.prepare(&d).await;
    let cx = n1.layout.context(&d);
    n1.rt.run(&cx, &d).await.unwrap();
    let pid = n1.pid(&d).await.unwrap();
    until_lines(&n1.counter(&d), 5).await;
    n1.rt.migrate_out(&cx, &"n2".into(), MigrationMode::Live).await.unwrap();
    n1.rt.migrate_abort(&cx, &d).await.unwrap();
    assert_eq!(n1.pid(&d).await, Some(pid), "restored, the same process");
    let before = lines(&n1.counter(&d)).len();
    until_lines(&n1.counter(&d), before + 5).await;
    consecutive_one_token(&lines(&n1.counter(&d)));

    // A checkpoint whose images are damaged: the instance starts afresh (one copy), saying why.
    n1.rt.migrate_out(&cx, &"n2".into(), MigrationMode::Live).await.unwrap();
    let images = n1.layout.volumes_dir(&d.id).join(".checkpoint");
    std::fs::write(images.join("pstree.img"), b"broken").unwrap();
    let ticket = MigrationTicket { location: ".checkpoint".into() };
    let count = lines(&n1.counter(&d)).len();
    n1.rt.migrate_in(&cx, &d, &ticket).await.unwrap();
    let fresh = n1.pid(&d).await.expect("running again");
    until_lines(&n1.counter(&d), count + 3).await;
    let all = lines(&n1.counter(&d));
    assert_eq!(all[count].0, 1, "started afresh: counts from 1 again");
    assert_ne!(all[count].1, all[0].1, "another process");
    let err = std::fs::read_to_string(&cx.logs.stderr).unwrap_or_default();
    assert!(err.contains("could not be restored"), "said why: {err}");
    assert!(!images.exists(), "the damaged images are removed");
    // A ticket outside the volumes is refused.
    let bad = MigrationTicket { location: "../x".into() };
    assert!(n1.rt.migrate_in(&cx, &d, &bad).await.is_err());
    n1.rt.clean(&cx).await.unwrap();
    n1.rt.undefine(&cx).await.unwrap();
    assert!(!Path::new(&format!("/proc/{fresh}")).exists());
}
