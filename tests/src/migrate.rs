//! Helpers of the migration tests on the cluster harness: the counter entity, its file, the migration record, and
//! a kill of a node at a phase of a migration (seen through an etcd watch of the record, so even a short phase is
//! caught).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cluster::{json_items, Cluster};
use crate::Run;

/// A standalone entity appending `<n> <nanos> <node>` to `$FOS_VOLUME_DATA/counter` every 50 ms, continuing from
/// the last value in the file. While the file `slow-stop` is in its volume it takes 3 s to stop (a SIGTERM lets
/// it finish its write, wait, and exit). The SIGTERM of a stop also reaches its `date`: a line is written only
/// with the time it read, else the counter exits there.
pub fn counter(name: &str) -> String {
    format!(
        r#"apiVersion: fos/v1
kind: Entity
metadata: {{name: {name}}}
spec:
  kind: native
  migration: cold
  volumes:
    - name: data
      size: 10Mi
  command:
    - sh
    - -c
    - 'trap ''test -f "$FOS_VOLUME_DATA/slow-stop" && sleep 3; exit 0'' TERM; f="$FOS_VOLUME_DATA/counter"; n=$(tail -n 1 "$f" 2>/dev/null | cut -d" " -f1); n=${{n:-0}}; while :; do t=$(date +%s%N) || exit 0; n=$((n+1)); echo "$n $t $FOS_NODE" >> "$f"; sleep 0.05; done'
"#
    )
}

/// [`counter`] with a 100 MiB file of random bytes made in the volume at its first start.
pub fn counter_with_blob(name: &str) -> String {
    counter(name).replace(
        r#"TERM; f="$FOS_VOLUME_DATA/counter";"#,
        r#"TERM; test -f "$FOS_VOLUME_DATA/blob" || head -c 100M /dev/urandom > "$FOS_VOLUME_DATA/blob"; f="$FOS_VOLUME_DATA/counter";"#,
    )
}

/// The instance id of standalone entity `name`.
pub fn instance(name: &str) -> String {
    format!("{name}-0.{name}.default")
}

/// `fosctl` through the first node whose API answers (a killed node's does not).
pub fn answering(cluster: &Cluster, args: &[&str]) -> Run {
    let mut last = None;
    for i in 0..cluster.nodes.len() {
        let run = cluster.fosctl(i, args);
        if run.code == 0 {
            return run;
        }
        last = Some(run);
    }
    last.expect("a node")
}

/// The node running instance `id` (full id), once it runs there as desired.
pub fn running_node_of(cluster: &Cluster, id: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let run = answering(cluster, &["get", "entities", "-o", "json"]);
        let e = json_items(&run.stdout).into_iter().find(|e| e["id"] == id);
        let on = e.as_ref().filter(|e| e["actual"]["state"] == "Running" && e["unknown"] != true);
        if let Some(node) = on.and_then(|e| e["actual"]["node"].as_str()) {
            if on.is_some_and(|e| e["desired"]["node"].as_str() == Some(node)) {
                return node.to_string();
            }
        }
        assert!(Instant::now() < deadline, "{id} not running: {e:?}\n{}", cluster.log(0));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node running standalone entity `name`.
pub fn running_node(cluster: &Cluster, name: &str, timeout: Duration) -> String {
    running_node_of(cluster, &instance(name), timeout)
}

/// The counter file of `name` in node `i`'s data directory.
pub fn counter_file(cluster: &Cluster, i: usize, name: &str) -> PathBuf {
    cluster.nodes[i].data.join("volumes").join(instance(name)).join("data").join("counter")
}

/// A counter line: (value, nanos, node).
pub type Line = (u64, u128, String);

/// The lines of a counter file.
pub fn lines(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?, f.get(2)?.to_string()))
        })
        .collect()
}

/// Node `node`'s index.
pub fn index(cluster: &Cluster, node: &str) -> usize {
    cluster.nodes.iter().position(|n| n.name == node).expect("a node of the cluster")
}

/// The migration record of `name`.
pub fn migration(cluster: &Cluster, name: &str) -> serde_json::Value {
    let run = answering(cluster, &["get", "migrations", "-o", "json"]);
    json_items(&run.stdout).into_iter().find(|m| m["instance"] == instance(name).as_str()).unwrap_or_default()
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn millis(v: &serde_json::Value) -> i64 {
    v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis()).unwrap_or(0)
}

/// Starts migrating `name` to `to` (no wait) and kills node `victim` (with every process of its namespace) as soon
/// as the store has the migration in `phase`; returns the record then. Panics when it went past it first.
pub fn kill_at(cluster: &mut Cluster, name: &str, to: &str, phase: &str, victim: usize) -> serde_json::Value {
    let old = migration(cluster, name)["id"].clone();
    let watch = cluster.watch_key(&format!("/fos/0/system/migrations/{}", instance(name)));
    std::thread::sleep(Duration::from_millis(300)); // the watch is established
    let run = answering(cluster, &["migrate", &instance(name), "--to", to, "--cold"]);
    assert!(run.code == 0, "migrate: {}", run.stderr);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m =
            watch.values.recv_timeout(left).unwrap_or_else(|_| panic!("never {phase}: {}", migration(cluster, name)));
        if m["id"] == old {
            continue;
        }
        // Mid-transfer: once some bytes arrived.
        let moving = phase != "Transferring" || m["bytesMoved"].as_u64().unwrap_or(0) > 0;
        if m["phase"] == phase && moving {
            cluster.kill_node(victim);
            return m;
        }
        let order = ["Preparing", "TakingOff", "Transferring", "Landing", "Completed", "Failed", "Aborted"];
        let at = |p: &str| order.iter().position(|o| *o == p).unwrap_or(0);
        assert!(at(m["phase"].as_str().unwrap_or("")) <= at(phase), "the migration went past {phase} first: {m}");
    }
}

/// Waits until the migration of `name` ends; returns its record.
pub fn wait_end(cluster: &Cluster, name: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let m = migration(cluster, name);
        if ["Completed", "Failed", "Aborted"].contains(&m["phase"].as_str().unwrap_or("")) {
            return m;
        }
        assert!(Instant::now() < deadline, "the migration does not end: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The counter goes on by one to at least `more` more lines (in node `i`'s volume); returns the lines.
pub fn counts_on(cluster: &Cluster, i: usize, name: &str, more: usize) -> Vec<Line> {
    let path = counter_file(cluster, i, name);
    let before = lines(&path).len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&path).len() < before + more {
        let node = &cluster.nodes[i].name;
        assert!(Instant::now() < deadline, "the counter does not count on {node}:\n{}", cluster.log(i));
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = lines(&path);
    for w in all.windows(2) {
        if w[1].0 != w[0].0 + 1 {
            // The raw lines around it (a torn or foreign line is dropped by `lines`), and the nodes' logs.
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let at = text.find(&format!("{} {} ", w[0].0, w[0].1)).unwrap_or(0);
            let raw = text.get(at..).unwrap_or("").lines().take(4).collect::<Vec<_>>();
            let logs: Vec<String> = (0..cluster.nodes.len()).map(|n| cluster.log(n)).collect();
            panic!(
                "the counter skips or repeats a value: {:?} then {:?}; raw: {raw:?}\n{}",
                w[0],
                w[1],
                logs.join("\n")
            );
        }
    }
    all
}

/// Waits until `cond` holds (checked every 200 ms), or panics with `what`.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The entries of directory `dir` (none when it is missing).
pub fn entries(dir: &Path) -> Vec<String> {
    let list = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
    list.map(Iterator::collect).unwrap_or_default()
}

/// The SHA-256 of a file (`sha256sum`).
pub fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string()
}
