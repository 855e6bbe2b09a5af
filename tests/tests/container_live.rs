//! Live migration of a container, runtime to runtime: two container runtimes (real runc, real CRIU) with their own
//! data directories (two nodes), a busybox container (an OCI layout archive on the node) that keeps a count and a
//! token in memory checkpointed on one (`migrate_out(Live)`: `runc checkpoint`), its volumes directory carried with
//! the real migration stream and inbox, and restored on the other (`migrate_in` with the ticket: `runc restore`):
//! the same processes go on counting into the volume, their output into the destination's log. Given up before the
//! destination took it, it is restored on the source; a checkpoint that cannot be restored starts the container
//! afresh, saying why. Nothing is left once undefined. Skipped, saying so, where `criu check` fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fos_agent::images::Images;
use fos_agent::migration::{criu, stream, Inbox, Part};
use fos_agent::runtime::container::{ContainerConfig, ContainerRuntime};
use fos_agent::runtime::{MigrationTicket, NodeLayout, RunState, Runtime};
use fos_api::manifest::EntitySpec;
use fos_api::migration::MigrationMode;
use fos_api::record::{DesiredInstance, InstanceId};
use fos_e2e::oci::{busybox_image, write_layout_tar};

/// Appends `<n> <token>` to a file of its volume it keeps open and `out <n>` to its output every 20 ms; `n` and the
/// token live in memory only.
const COUNTER: &str = "t=$RANDOM$RANDOM$RANDOM; n=0; exec 3>>/data/counter; \
    while :; do n=$((n+1)); echo \"$n $t\" >&3; echo \"out $n\"; sleep 0.02; done";

async fn criu_works() -> bool {
    let probe = criu::probe().await;
    if !probe.ready {
        eprintln!("SKIPPED: live migration needs a working CRIU: {}", probe.error.unwrap_or_default());
    }
    probe.ready
}

fn desired(node: &str, archive: &Path) -> DesiredInstance {
    let entity: EntitySpec = serde_json::from_value(serde_json::json!({
        "kind": "container",
        "image": archive.display().to_string(),
        "runAs": "root",
        "command": ["/bin/busybox", "sh", "-c", COUNTER],
        "volumes": [{"name": "data", "mountPath": "/data"}],
    }))
    .expect("a container entity");
    DesiredInstance::new(InstanceId::new("default", "clive", "counter", 0), node, entity)
}

struct Node {
    dir: tempfile::TempDir,
    layout: NodeLayout,
    rt: Arc<ContainerRuntime>,
}

impl Node {
    fn new(name: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let layout = NodeLayout::detect(dir.path(), true, name);
        let config = ContainerConfig {
            runc: PathBuf::from("runc"),
            insecure_registries: Vec::new(),
            run_as: "65534:65534".into(),
            image_retention: Duration::from_secs(3600),
            stop_grace: Duration::from_secs(2),
            addresses: Vec::new(),
        };
        let rt = ContainerRuntime::new(config, layout.clone(), Images::paths_only()).unwrap();
        Node { dir, layout, rt }
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

    /// The containers runc knows on this node.
    fn containers(&self) -> Vec<String> {
        let root = self.layout.data_dir().join("container/.runc");
        let out = std::process::Command::new("runc").arg("--root").arg(root).args(["list", "-q"]).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()).unwrap_or_default()
    }

    fn mounts(&self) -> Vec<String> {
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.path().display().to_string();
        table.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&dir)).map(str::to_string).collect()
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
    for _ in 0..3000 {
        if lines(path).len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never reached {n} lines: {:?}", path.display(), lines(path));
}

/// The source's volumes directory streamed (the real frames) into the destination's inbox, which checks and moves
/// it into place.
async fn carry(from: &Node, to: &Node, d: &DesiredInstance) {
    let parts = [Part { name: "volumes".into(), dir: from.layout.volumes_dir(&d.id) }];
    let mut frames = Vec::new();
    let streamed = stream::produce(&parts, 0, &mut |f| {
        frames.push(Ok::<_, std::io::Error>(bytes::Bytes::from(f.data)));
        Ok(())
    })
    .unwrap();
    let inbox = Inbox::new(to.layout.clone());
    let got = inbox.receive("m-clive", 0, futures::stream::iter(frames)).await.unwrap();
    assert_eq!(got, streamed.bytes);
    let commit = fos_api::migration::DataCommit { bytes: streamed.bytes, sha256: streamed.sha256 };
    inbox.commit("m-clive", &d.id, &commit).await.unwrap();
}

fn consecutive_one_token(all: &[(u64, String)]) {
    assert_eq!(all.first().map(|l| l.0), Some(1));
    for w in all.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "skipped or repeated: {:?} then {:?}", w[0], w[1]);
        assert_eq!(w[1].1, w[0].1, "another process (token) at {:?}: started afresh, not restored", w[1]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_checkpointed_by_runc_goes_on_from_memory_on_another_node_or_back_on_its_own() {
    if !criu_works().await {
        return;
    }
    let (n1, n2) = (Node::new("n1"), Node::new("n2"));
    let archive = n1.dir.path().join("busybox.tar");
    write_layout_tar(&busybox_image(8080, "-", 0), &archive);
    let d = desired("n1", &archive);
    n1.prepare(&d).await;
    let cx1 = n1.layout.context(&d);
    n1.rt.run(&cx1, &d).await.unwrap();
    assert!(n1.pid(&d).await.is_some(), "running");
    until_lines(&n1.counter(&d), 10).await;

    let t = std::time::Instant::now();
    let ticket = n1.rt.migrate_out(&cx1, &"n2".into(), MigrationMode::Live).await.unwrap();
    let out_ms = t.elapsed().as_millis();
    assert_eq!(ticket.location, ".checkpoint");
    assert_eq!(n1.pid(&d).await, None, "the source holds no container once checkpointed");
    assert!(n1.containers().is_empty(), "runc removed it: {:?}", n1.containers());
    let at_dump = lines(&n1.counter(&d)).len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lines(&n1.counter(&d)).len(), at_dump, "nothing counts while the checkpoint travels");

    carry(&n1, &n2, &d).await;
    let d2 = desired("n2", &archive);
    n2.prepare(&d2).await;
    let cx2 = n2.layout.context(&d2);
    let t = std::time::Instant::now();
    n2.rt.migrate_in(&cx2, &d2, &ticket).await.unwrap();
    println!("figure: runtime to runtime: runc checkpoint {out_ms} ms, runc restore {} ms", t.elapsed().as_millis());
    assert!(n2.pid(&d2).await.is_some(), "restored and running");
    until_lines(&n2.counter(&d2), at_dump + 10).await;
    consecutive_one_token(&lines(&n2.counter(&d2)));
    assert!(!n2.layout.volumes_dir(&d.id).join(".checkpoint").exists(), "the images are removed once restored");
    // Its output goes on into this node's log: the restored container's pipes copied there by runc restore.
    let mut out = String::new();
    for _ in 0..300 {
        out = std::fs::read_to_string(&cx2.logs.stdout).unwrap_or_default();
        if out.lines().any(|l| l == format!("out {}", at_dump + 5)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(out.lines().any(|l| l == format!("out {}", at_dump + 5)), "output goes on here: {out}");

    // Given up before the destination took it: restored where it was checkpointed, the same processes.
    n2.rt.migrate_out(&cx2, &"n1".into(), MigrationMode::Live).await.unwrap();
    n2.rt.migrate_abort(&cx2, &d2).await.unwrap();
    let before = lines(&n2.counter(&d2)).len();
    until_lines(&n2.counter(&d2), before + 5).await;
    consecutive_one_token(&lines(&n2.counter(&d2)));

    // A checkpoint whose images are damaged: the container starts afresh (one copy), saying why.
    n2.rt.migrate_out(&cx2, &"n1".into(), MigrationMode::Live).await.unwrap();
    let images = n2.layout.volumes_dir(&d.id).join(".checkpoint");
    std::fs::write(images.join("pstree.img"), b"broken").unwrap();
    let count = lines(&n2.counter(&d2)).len();
    n2.rt.migrate_in(&cx2, &d2, &MigrationTicket { location: ".checkpoint".into() }).await.unwrap();
    assert!(n2.pid(&d2).await.is_some(), "running again");
    until_lines(&n2.counter(&d2), count + 3).await;
    let all = lines(&n2.counter(&d2));
    assert_eq!(all[count].0, 1, "started afresh: counts from 1 again");
    assert_ne!(all[count].1, all[0].1, "another process");
    let err = std::fs::read_to_string(&cx2.logs.stderr).unwrap_or_default();
    assert!(err.contains("could not be restored"), "said why: {err}");
    assert!(!images.exists(), "the damaged images are removed");
    assert_eq!(n2.containers().len(), 1, "one container: {:?}", n2.containers());
    // A ticket outside the volumes is refused.
    let bad = MigrationTicket { location: "../x".into() };
    assert!(n2.rt.migrate_in(&cx2, &d2, &bad).await.is_err());

    for (n, d) in [(&n1, &d), (&n2, &d2)] {
        let cx = n.layout.context(d);
        n.rt.clean(&cx).await.unwrap();
        n.rt.undefine(&cx).await.unwrap();
        assert!(n.containers().is_empty(), "no container left: {:?}", n.containers());
        assert!(n.mounts().is_empty(), "no mount left: {:?}", n.mounts());
    }
}
