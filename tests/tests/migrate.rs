//! Migration between real `fosd` on the cluster harness (`fos_e2e::cluster`): a native entity appending a counter
//! to a file in its volume every 50 ms is moved cold from one node to the other and carries on from where it was;
//! a checker sampling every process of the machine sees one copy at every sample. Each test prints its figures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fos_e2e::cluster::{json_items, Cluster};

/// `--node-lost-after` of the migration tests.
const LOST_AFTER: Duration = Duration::from_secs(6);

/// A standalone entity appending `<n> <nanos> <node>` to `$FOS_VOLUME_DATA/counter` every 50 ms, continuing from
/// the last value in the file.
fn counter(name: &str) -> String {
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
    - 'f="$FOS_VOLUME_DATA/counter"; n=$(tail -n 1 "$f" 2>/dev/null | cut -d" " -f1); n=${{n:-0}}; while :; do n=$((n+1)); echo "$n $(date +%s%N) $FOS_NODE" >> "$f"; sleep 0.05; done'
"#
    )
}

/// The instance id of standalone entity `name`.
fn instance(name: &str) -> String {
    format!("{name}-0.{name}.default")
}

/// The node running `name`, once it runs.
fn running_node(cluster: &Cluster, name: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let entities = cluster.entities(0, name);
        let on = entities.iter().find(|e| e["actual"]["state"] == "Running" && e["unknown"] != true);
        if let Some(node) = on.and_then(|e| e["actual"]["node"].as_str()) {
            if e_node_matches(on, node) {
                return node.to_string();
            }
        }
        assert!(Instant::now() < deadline, "{name} not running: {entities:?}\n{}", cluster.log(0));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn e_node_matches(e: Option<&serde_json::Value>, node: &str) -> bool {
    e.is_some_and(|e| e["desired"]["node"].as_str() == Some(node))
}

/// The counter file of `name` in node `i`'s data directory.
fn counter_file(cluster: &Cluster, i: usize, name: &str) -> PathBuf {
    cluster.nodes[i].data.join("volumes").join(instance(name)).join("data").join("counter")
}

/// The lines of a counter file: (value, nanos, node).
fn lines(path: &PathBuf) -> Vec<(u64, u128, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?, f.get(2)?.to_string()))
        })
        .collect()
}

fn index(cluster: &Cluster, node: &str) -> usize {
    cluster.nodes.iter().position(|n| n.name == node).expect("a node of the cluster")
}

/// The migration record of `name`.
fn migration(cluster: &Cluster, name: &str) -> serde_json::Value {
    let run = cluster.fosctl(0, &["get", "migrations", "-o", "json"]);
    json_items(&run.stdout).into_iter().find(|m| m["instance"] == instance(name).as_str()).unwrap_or_default()
}

fn millis(v: &serde_json::Value) -> i64 {
    v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis()).unwrap_or(0)
}

#[test]
fn a_counter_migrated_cold_carries_on_from_its_volume_with_one_copy_at_every_sample() {
    let cluster = Cluster::start(2, LOST_AFTER);
    let name = "mig-cold";
    let run = cluster.apply(0, name, &counter(name));
    assert!((run.code == 0), "apply: {}", run.stderr);
    let source = running_node(&cluster, name, Duration::from_secs(60));
    let (s, d) = (index(&cluster, &source), 1 - index(&cluster, &source));
    let destination = cluster.nodes[d].name.clone();
    let checker = cluster.checker(&[name]);
    // Let it count for a while on the source.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines(&counter_file(&cluster, s, name)).len() < 20 {
        assert!(Instant::now() < deadline, "the counter does not count:\n{}", cluster.log(s));
        std::thread::sleep(Duration::from_millis(100));
    }

    // A destination that is not a node is refused, saying so; so is the node it runs on.
    let bad = cluster.fosctl(0, &["migrate", &instance(name), "--to", "nowhere"]);
    assert!(!(bad.code == 0) && bad.stderr.contains("node nowhere not found"), "{}", bad.stderr);
    let same = cluster.fosctl(0, &["migrate", &instance(name), "--to", &source]);
    assert!(!(same.code == 0) && same.stderr.contains("runs there already"), "{}", same.stderr);

    let started = Instant::now();
    let run = cluster.fosctl(0, &["migrate", &instance(name), "--to", &destination, "--wait", "--timeout", "90s"]);
    let total = started.elapsed();
    assert!((run.code == 0), "migrate: {}\n{}\n{}\n{}", run.stdout, run.stderr, cluster.log(s), cluster.log(d));
    assert_eq!(running_node(&cluster, name, Duration::from_secs(30)), destination);
    // Count a while on the destination, then look at the whole file.
    let after = lines(&counter_file(&cluster, d, name)).len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines(&counter_file(&cluster, d, name)).len() < after + 20 {
        assert!(Instant::now() < deadline, "the counter does not go on:\n{}", cluster.log(d));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (twice, samples) = checker.finish();
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    assert!(samples > 20, "only {samples} samples");

    let m = migration(&cluster, name);
    assert_eq!(m["phase"], "Completed", "{m}");
    assert_eq!(m["source"], source.as_str());
    assert_eq!(m["destination"], destination.as_str());
    let downtime_ms = millis(&m["finished"]) - millis(&m["stoppedAt"]);
    assert!(downtime_ms > 0, "{m}");

    let all = lines(&counter_file(&cluster, d, name));
    for w in all.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "the counter skips or repeats a value: {:?} then {:?}", w[0], w[1]);
    }
    let switch = all.windows(2).find(|w| w[0].2 == source && w[1].2 == destination).expect("a switch of node");
    let gap_ms = ((switch[1].1 - switch[0].1) / 1_000_000) as i64;
    let others = all.windows(2).filter(|w| w[0].2 == w[1].2).map(|w| ((w[1].1 - w[0].1) / 1_000_000) as i64);
    let longest_other = others.max().unwrap_or(0);
    // The writes stop before the source is stopped and start as soon as the destination runs, which the controller
    // sees within a poll: the gap seen in the file is at most the recorded downtime and a write period.
    assert!(gap_ms <= downtime_ms + 200, "gap {gap_ms} ms, downtime {downtime_ms} ms");
    assert!(!counter_file(&cluster, s, name).exists(), "the source's volume is removed once it departed");
    println!(
        "figure: cold migration of a counter: total {} ms, downtime {downtime_ms} ms, gap in the file {gap_ms} ms \
         (longest gap elsewhere {longest_other} ms), {} values, {} bytes moved, {samples} samples, never twice",
        total.as_millis(),
        all.len(),
        m["bytesMoved"]
    );
}
