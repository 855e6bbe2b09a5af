//! Live migration of a native process with CRIU between real `fosd` on the cluster harness (`make test-migrate`): a
//! counter that keeps its count and a random token in memory (a process started afresh would count from 1 with
//! another token) and appends `<n> <nanos> <token>` to a file of its volume it keeps open every 50 ms is moved with
//! `fosctl migrate --live --wait`. It carries on from memory on the destination (same token, same pid, no value
//! twice, no gap beyond the downtime), and a checker sampling every node's processes (by network namespace) never
//! sees two copies. Beside it, in the same run, the same process is dumped and restored by hand with `criu` for the
//! downtime figure. Then a drain moves a second counter live, the same process carrying on. Skipped, saying so,
//! where `criu check` fails.

use std::time::{Duration, Instant};

use fos_e2e::cluster::{json_items, Cluster};
use fos_e2e::live::{by_hand, check_one_process, criu_missing, has_sys_resource, lines, until_lines, SCRIPT};

/// `--node-lost-after` of the test.
const LOST_AFTER: Duration = Duration::from_secs(6);

fn entity(name: &str, as_root: bool) -> String {
    let run_as = if as_root { "  runAs: root\n" } else { "" };
    let script = SCRIPT.replace("$COUNTER", "$FOS_VOLUME_DATA/counter").replace('\'', "''");
    format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: {name}}}\nspec:\n  kind: native\n  migration: live\n{run_as}  \
         volumes:\n    - name: data\n      size: 10Mi\n  command: [sh, -c, '{script}']\n"
    )
}

fn instance(name: &str) -> String {
    format!("{name}-0.{name}.default")
}

/// The entity's record as `fosctl get entities` shows it.
fn entity_record(cluster: &Cluster, name: &str) -> serde_json::Value {
    let run = cluster.fosctl(0, &["get", "entities", "-o", "json"]);
    json_items(&run.stdout).into_iter().find(|e| e["id"] == instance(name).as_str()).unwrap_or_default()
}

/// The node running `name` and its pid, once it runs.
fn running(cluster: &Cluster, name: &str) -> (String, u64, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let e = entity_record(cluster, name);
        let a = &e["actual"];
        if a["state"] == "Running" && e["desired"]["node"] == a["node"] && a["pid"].is_u64() {
            return (a["node"].as_str().unwrap_or_default().to_string(), a["pid"].as_u64().unwrap_or(0), e);
        }
        assert!(Instant::now() < deadline, "{name} not running: {e}\n{}", cluster.log(0));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn millis(v: &serde_json::Value) -> i64 {
    v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis()).unwrap_or(0)
}

#[test]
fn a_counter_migrated_live_carries_on_from_memory_with_one_copy_at_every_sample() {
    if let Some(why) = criu_missing() {
        println!("SKIPPED: live migration needs `criu check` to pass on this machine: {why}");
        return;
    }
    let cluster = Cluster::start(2, LOST_AFTER);
    // Where root lacks CAP_SYS_RESOURCE (some sandboxes), CRIU can only checkpoint root's processes.
    let as_root = !has_sys_resource();
    if as_root {
        let run = cluster.fosctl(0, &["tenant", "allow-root", "default"]);
        assert!(run.code == 0, "allow-root: {}", run.stderr);
    }
    let name = "mig-live";
    let run = cluster.apply(0, name, &entity(name, as_root));
    assert!(run.code == 0, "apply: {}", run.stderr);
    let (source, pid, _) = running(&cluster, name);
    let s = cluster.nodes.iter().position(|n| n.name == source).expect("a node");
    let d = 1 - s;
    let destination = cluster.nodes[d].name.clone();
    let file = |i: usize| cluster.nodes[i].data.join("volumes").join(instance(name)).join("data").join("counter");
    until_lines(&file(s), 20, &|| cluster.log(s));
    let checker = cluster.checker(&[name]);

    let started = Instant::now();
    let args = ["migrate", &instance(name), "--to", &destination, "--live", "--wait", "--timeout", "90s"];
    let run = cluster.fosctl(0, &args);
    let total = started.elapsed();
    assert!(run.code == 0, "migrate: {}\n{}\n{}\n{}", run.stdout, run.stderr, cluster.log(s), cluster.log(d));
    let (now_on, restored_pid, e) = running(&cluster, name);
    assert_eq!(now_on, destination);
    assert_eq!(restored_pid, pid, "the process restored is the one checkpointed (CRIU keeps its pid): {e}");
    let after = lines(&file(d)).len();
    until_lines(&file(d), after + 20, &|| cluster.log(d));
    let (twice, samples) = checker.finish();
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    assert!(samples > 20, "only {samples} samples");

    let run = cluster.fosctl(0, &["get", "migrations", "-o", "json"]);
    let m = json_items(&run.stdout).into_iter().find(|m| m["instance"] == instance(name).as_str()).unwrap_or_default();
    assert_eq!(m["phase"], "Completed", "{m}");
    assert_eq!(m["mode"], "live", "{m}");
    let stopped = millis(&m["stoppedAt"]);
    let downtime_ms = millis(&e["actual"]["startedAt"]) - stopped;
    let recorded_ms = millis(&m["finished"]) - stopped;
    assert!(downtime_ms > 0 && recorded_ms >= downtime_ms, "{m}\n{e}");
    let all = lines(&file(d));
    let gap_ms = check_one_process(&all) as i64;
    assert!(gap_ms <= recorded_ms + 200, "gap {gap_ms} ms, downtime {recorded_ms} ms");
    assert!(!file(s).exists(), "the source's volume is removed once it departed");
    let err = cluster.fosctl(0, &["logs", &instance(name)]);
    assert!(!err.stdout.contains("could not be restored"), "restored, not started afresh: {}", err.stdout);

    println!(
        "figure: live migration of a counter (sh writing a line every 50 ms, {}): total {} ms (fosctl --wait), \
         downtime {downtime_ms} ms (stoppedAt -> running on {destination}; {recorded_ms} ms to the record's \
         finished), longest gap in its file {gap_ms} ms, {} values, {} bytes moved, {samples} samples, never twice",
        if as_root { "as root" } else { "as the node's entity user" },
        total.as_millis(),
        all.len(),
        m["bytesMoved"]
    );
    let hand = tempfile::tempdir().expect("temp dir");
    let (hand_ms, dump_ms, restore_ms, hand_gap) = by_hand(hand.path());
    println!(
        "figure: the same process by hand in the same run: criu dump {dump_ms} ms + restore {restore_ms} ms = \
         downtime {hand_ms} ms, longest gap in its file {hand_gap} ms; fos/hand downtime {:.2}, gap {:.2}",
        downtime_ms as f64 / hand_ms.max(1) as f64,
        gap_ms as f64 / hand_gap.max(1) as f64
    );

    // A drain moves a live-migratable entity live too (its entity says `migration: live`, both nodes' CRIU works):
    // a second counter started on the source (the destination cordoned meanwhile), then the source drained.
    let drained = "mig-drain";
    let run = cluster.fosctl(0, &["node", "cordon", &destination]);
    assert!(run.code == 0, "cordon: {}", run.stderr);
    let run = cluster.apply(0, drained, &entity(drained, as_root));
    assert!(run.code == 0, "apply: {}", run.stderr);
    let (on, drained_pid, _) = running(&cluster, drained);
    assert_eq!(on, source, "placed away from the cordoned node");
    let run = cluster.fosctl(0, &["node", "uncordon", &destination]);
    assert!(run.code == 0, "uncordon: {}", run.stderr);
    let counter = |i: usize| cluster.nodes[i].data.join("volumes").join(instance(drained)).join("data").join("counter");
    until_lines(&counter(s), 20, &|| cluster.log(s));
    let checker = cluster.checker(&[drained]);
    let run = cluster.fosctl(0, &["node", "drain", &source]);
    assert!(run.code == 0, "drain: {}", run.stderr);
    let deadline = Instant::now() + Duration::from_secs(90);
    let m = loop {
        let run = cluster.fosctl(0, &["get", "migrations", "-o", "json"]);
        let m = json_items(&run.stdout)
            .into_iter()
            .find(|m| m["instance"] == instance(drained).as_str() && m["requestedBy"] == "drain")
            .unwrap_or_default();
        if m["phase"] == "Completed" {
            break m;
        }
        assert!(Instant::now() < deadline, "the drain does not migrate it: {m}\n{}", cluster.log(s));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((m["mode"].as_str(), m["destination"].as_str()), (Some("live"), Some(destination.as_str())), "{m}");
    let (now_on, now_pid, e) = running(&cluster, drained);
    assert_eq!(now_on, destination);
    assert_eq!(
        now_pid,
        drained_pid,
        "the drain restored the same process: {e}\n{}\n{}",
        cluster.log(s),
        cluster.log(d)
    );
    let after = lines(&counter(d)).len();
    until_lines(&counter(d), after + 20, &|| cluster.log(d));
    let (twice, samples) = checker.finish();
    assert!(twice.is_empty() && samples > 20, "ran twice: {twice:?} ({samples} samples)");
    check_one_process(&lines(&counter(d)));
}
