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
        let run = answering(cluster, &["get", "entities", "-o", "json"]);
        let entities: Vec<serde_json::Value> = json_items(&run.stdout)
            .into_iter()
            .filter(|e| e["id"].as_str().is_some_and(|id| id.split('.').nth(1) == Some(name)))
            .collect();
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
    let run = answering(cluster, &["get", "migrations", "-o", "json"]);
    json_items(&run.stdout).into_iter().find(|m| m["instance"] == instance(name).as_str()).unwrap_or_default()
}

/// `fosctl` through the first node whose API answers (a killed node's does not).
fn answering(cluster: &Cluster, args: &[&str]) -> fos_e2e::Run {
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

fn millis(v: &serde_json::Value) -> i64 {
    v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis()).unwrap_or(0)
}

#[test]
fn a_counter_migrated_cold_carries_on_from_its_volume_with_one_copy_at_every_sample() {
    let cluster = Cluster::start(2, LOST_AFTER);
    let name = "mig-cold";
    let run = cluster.apply(0, name, &counter(name));
    assert!(run.code == 0, "apply: {}", run.stderr);
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
    assert!(bad.code != 0 && bad.stderr.contains("node nowhere not found"), "{}", bad.stderr);
    let same = cluster.fosctl(0, &["migrate", &instance(name), "--to", &source]);
    assert!(same.code != 0 && same.stderr.contains("runs there already"), "{}", same.stderr);

    let started = Instant::now();
    let run = cluster.fosctl(0, &["migrate", &instance(name), "--to", &destination, "--wait", "--timeout", "90s"]);
    let total = started.elapsed();
    assert!(run.code == 0, "migrate: {}\n{}\n{}\n{}", run.stdout, run.stderr, cluster.log(s), cluster.log(d));
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

    // A drain of its node migrates it (its entity says `migration: cold`) rather than starting it afresh.
    let checker = cluster.checker(&[name]);
    let run = cluster.fosctl(0, &["node", "drain", &destination]);
    assert!(run.code == 0, "drain: {}", run.stderr);
    let deadline = Instant::now() + Duration::from_secs(90);
    let m = loop {
        let m = migration(&cluster, name);
        if m["requestedBy"] == "drain" && m["phase"] == "Completed" {
            break m;
        }
        assert!(Instant::now() < deadline, "the drain does not migrate it: {m}\n{}", cluster.log(0));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(m["destination"], source.as_str(), "{m}");
    assert_eq!(running_node(&cluster, name, Duration::from_secs(30)), source);
    let all = counts_on(&cluster, s, name, 10);
    assert!(all.iter().any(|l| l.2 == destination), "the values written on {destination} came back with the volume");
    let (twice, _) = checker.finish();
    assert!(twice.is_empty(), "ran twice during the drain: {twice:?}");
    let run = cluster.fosctl(0, &["node", "uncordon", &destination]);
    assert!(run.code == 0, "uncordon: {}", run.stderr);
}

/// [`counter`] with a 100 MiB file of random bytes made in the volume at its first start.
fn counter_with_blob(name: &str) -> String {
    counter(name).replace(
        r#"'f="$FOS_VOLUME_DATA/counter";"#,
        r#"'test -f "$FOS_VOLUME_DATA/blob" || head -c 100M /dev/urandom > "$FOS_VOLUME_DATA/blob"; f="$FOS_VOLUME_DATA/counter";"#,
    )
}

/// The SHA-256 of a file (`sha256sum`).
fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string()
}

/// Starts migrating `name` to `to` (no wait) and kills node `victim` (with every process of its namespace) once the
/// migration is in `phase`. Panics when the migration went past it first.
fn kill_at(cluster: &mut Cluster, name: &str, to: &str, phase: &str, victim: usize) -> serde_json::Value {
    let old = migration(cluster, name)["id"].clone();
    let run = answering(cluster, &["migrate", &instance(name), "--to", to, "--cold"]);
    assert!(run.code == 0, "migrate: {}", run.stderr);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = migration(cluster, name);
        if m["id"] != old && m["phase"] == phase {
            cluster.kill_node(victim);
            return m;
        }
        let past = ["Landing", "Completed", "Failed", "Aborted"];
        assert!(
            m["id"] == old || !past.contains(&m["phase"].as_str().unwrap_or("")),
            "the migration went past {phase} before the kill: {m}"
        );
        assert!(Instant::now() < deadline, "never {phase}: {m}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the migration of `name` ends; returns its record.
fn wait_end(cluster: &Cluster, name: &str, timeout: Duration) -> serde_json::Value {
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

/// The counter goes on by one from `from` lines to at least `more` more (in node `i`'s volume); returns the lines.
fn counts_on(cluster: &Cluster, i: usize, name: &str, more: usize) -> Vec<(u64, u128, String)> {
    let path = counter_file(cluster, i, name);
    let before = lines(&path).len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&path).len() < before + more {
        assert!(
            Instant::now() < deadline,
            "the counter does not count on {}:\n{}",
            cluster.nodes[i].name,
            cluster.log(i)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = lines(&path);
    for w in all.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "the counter skips or repeats a value: {:?} then {:?}", w[0], w[1]);
    }
    all
}

#[test]
fn a_kill_9_of_either_end_mid_transfer_leaves_one_copy_with_its_volume_intact() {
    // Long enough that a node restarted at once is never declared lost meanwhile.
    let mut cluster = Cluster::start(2, Duration::from_secs(20));
    let name = "mig-kill";
    let run = cluster.apply(0, name, &counter_with_blob(name));
    assert!(run.code == 0, "apply: {}", run.stderr);
    let source = running_node(&cluster, name, Duration::from_secs(90));
    let (s, d) = (index(&cluster, &source), 1 - index(&cluster, &source));
    let destination = cluster.nodes[d].name.clone();
    counts_on(&cluster, s, name, 10);
    let blob = counter_file(&cluster, s, name).with_file_name("blob");
    let digest = sha256(&blob);
    let checker = cluster.checker(&[name]);

    // 1. The destination dies while the volume moves: the migration fails and the source runs the instance again
    // on its volume; the destination, back, holds no copy.
    let m = kill_at(&mut cluster, name, &destination, "Transferring", d);
    let end = wait_end(&cluster, name, Duration::from_secs(60));
    assert_eq!(end["phase"], "Failed", "{end}");
    assert!(end["message"].as_str().unwrap_or("").contains("not ready"), "{end}");
    assert_eq!(running_node(&cluster, name, Duration::from_secs(60)), source);
    counts_on(&cluster, s, name, 10);
    assert_eq!(sha256(&blob), digest, "the volume is intact on the source");
    let outbox = cluster.nodes[s].data.join("migrations").join("out");
    let left: Vec<_> =
        std::fs::read_dir(&outbox).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "the archive of the failed migration is removed: {left:?}");
    cluster.start_node(d);
    cluster.wait_ready(&[0, 1], Duration::from_secs(60));
    println!(
        "figure: destination killed at {} ({} of {} bytes): migration Failed, the source runs it again",
        m["phase"], m["bytesMoved"], m["bytesTotal"]
    );

    // 2. A clean migration of the 100 MiB volume, beside rsync of the same directory between the two data dirs.
    let volume = counter_file(&cluster, s, name).parent().expect("volume").to_path_buf();
    let reference = cluster.nodes[d].data.join("rsync-reference");
    let t = Instant::now();
    let rsync =
        std::process::Command::new("rsync").arg("-a").arg(format!("{}/", volume.display())).arg(&reference).status();
    let rsync_ms = t.elapsed().as_millis();
    assert!(rsync.is_ok_and(|s| s.success()), "rsync failed");
    std::fs::remove_dir_all(&reference).expect("removing the rsync copy");
    let t = Instant::now();
    let run = cluster.fosctl(0, &["migrate", &instance(name), "--to", &destination, "--wait", "--timeout", "120s"]);
    let total_ms = t.elapsed().as_millis();
    assert!(run.code == 0, "migrate: {}\n{}\n{}", run.stderr, cluster.log(s), cluster.log(d));
    let m = migration(&cluster, name);
    let downtime_ms = millis(&m["finished"]) - millis(&m["stoppedAt"]);
    let recorded_total = millis(&m["finished"]) - millis(&m["started"]);
    counts_on(&cluster, d, name, 10);
    let moved_blob = counter_file(&cluster, d, name).with_file_name("blob");
    assert_eq!(sha256(&moved_blob), digest, "the volume arrived intact");
    println!(
        "figure: cold migration of a 100 MiB volume: total {total_ms} ms (fosctl --wait; recorded {recorded_total} ms), \
         downtime {downtime_ms} ms, {} bytes sent; rsync -a of the same directory in the same run {rsync_ms} ms \
         (total/rsync {:.2})",
        m["bytesMoved"],
        recorded_total as f64 / rsync_ms.max(1) as f64
    );

    // 3. The source (now `destination`) dies while the volume moves back, and starts again: it resumes sending and
    // the migration completes, the volume intact.
    let m = kill_at(&mut cluster, name, &source, "Transferring", d);
    cluster.start_node(d);
    let end = wait_end(&cluster, name, Duration::from_secs(120));
    assert_eq!(end["phase"], "Completed", "{end}\n{}\n{}", cluster.log(d), cluster.log(s));
    assert_eq!(running_node(&cluster, name, Duration::from_secs(60)), source);
    let all = counts_on(&cluster, s, name, 10);
    assert_eq!(sha256(&blob), digest, "the volume arrived intact after the source's restart");
    let (twice, samples) = checker.finish();
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    println!(
        "figure: source killed at {} ({} of {} bytes) and restarted: migration Completed, {} values without a gap or \
         repeat, {samples} samples, never twice",
        m["phase"],
        m["bytesMoved"],
        m["bytesTotal"],
        all.len()
    );
}
