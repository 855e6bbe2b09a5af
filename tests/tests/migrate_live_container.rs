//! Live migration of a container with CRIU through runc between real `fosd` on the cluster harness (`make
//! test-migrate`): a busybox container (an OCI layout archive made from Debian's busybox-static, uploaded as an
//! Image) keeps a count and a random token in memory (a container started afresh would count from 1 with another
//! token) and appends `<n> <seconds.micros> <token>` every 50 ms to a file of its volume (mounted at `/data`) it keeps
//! open, and `out <n>` to its output. Moved with `fosctl migrate --live --wait`, it carries on from memory on the
//! destination (same token, no value twice, no gap beyond the downtime), its output going on into the
//! destination's log, and a checker sampling every node's processes never sees two copies. Beside it, in the same
//! run, the same container is checkpointed and restored by hand with `runc checkpoint` / `runc restore` for the
//! downtime figure. Then a drain moves a second one live. Skipped, saying so, where `criu check` fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fos_e2e::cluster::{json_items, Cluster};
use fos_e2e::live::{criu, criu_missing};
use fos_e2e::oci::{busybox_image, write_layout_tar};

/// `--node-lost-after` of the test.
const LOST_AFTER: Duration = Duration::from_secs(6);

/// The counter's script (busybox sh): the count and token in memory, the file opened once; the time is the real
/// clock as `adjtimex` reads it (microseconds; not the uptime: a restored process sees boot time go on from where it
/// was checkpointed, in its own time namespace).
const SCRIPT: &str = r#"t=$RANDOM$RANDOM$RANDOM; n=0; exec 3>>/data/counter; while :; do n=$((n+1)); set -- $(/bin/busybox adjtimex | /bin/busybox grep tv_); printf "%d %d.%06d %s\n" $n $2 $4 $t >&3; echo "out $n"; sleep 0.05; done"#;

fn entity(name: &str) -> String {
    format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: {name}}}\nspec:\n  kind: container\n  image: busybox\n  \
         migration: live\n  runAs: root\n  volumes:\n    - {{name: data, size: 10Mi, mountPath: /data}}\n  \
         command: [/bin/busybox, sh, -c, '{}']\n",
        SCRIPT.replace('\'', "''")
    )
}

fn instance(name: &str) -> String {
    format!("{name}-0.{name}.default")
}

/// A counter line: (value, milliseconds since the epoch, token).
type Line = (u64, u64, String);

fn lines(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let secs: f64 = f.get(1)?.parse().ok()?;
            Some((f.first()?.parse().ok()?, (secs * 1000.0).round() as u64, f.get(2)?.to_string()))
        })
        .collect()
}

/// Waits until `path` has `n` lines.
fn until_lines(path: &Path, n: usize, what: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(path).len() < n {
        assert!(Instant::now() < deadline, "{} never reached {n} lines\n{}", path.display(), what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Values consecutive from 1 under one token; the longest gap between two lines (ms).
fn check_one_process(all: &[Line]) -> u64 {
    assert_eq!(all.first().map(|l| l.0), Some(1), "{all:?}");
    let mut longest = 0;
    for w in all.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "a value skipped or written twice: {:?} then {:?}", w[0], w[1]);
        assert_eq!(w[1].2, w[0].2, "another process wrote {:?} after {:?}: started afresh, not restored", w[1], w[0]);
        longest = longest.max(w[1].1.saturating_sub(w[0].1));
    }
    longest
}

fn entity_record(cluster: &Cluster, name: &str) -> serde_json::Value {
    let run = cluster.fosctl(0, &["get", "entities", "-o", "json"]);
    json_items(&run.stdout).into_iter().find(|e| e["id"] == instance(name).as_str()).unwrap_or_default()
}

/// The node running `name` and its record, once it runs there as desired.
fn running(cluster: &Cluster, name: &str) -> (String, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let e = entity_record(cluster, name);
        let a = &e["actual"];
        if a["state"] == "Running" && e["desired"]["node"] == a["node"] && a["pid"].is_u64() {
            return (a["node"].as_str().unwrap_or_default().to_string(), e);
        }
        assert!(Instant::now() < deadline, "{name} not running: {e}\n{}\n{}", cluster.log(0), cluster.log(1));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn millis(v: &serde_json::Value) -> i64 {
    v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis()).unwrap_or(0)
}

/// The migration record of `name` (requested by `by`).
fn migration(cluster: &Cluster, name: &str, by: Option<&str>) -> serde_json::Value {
    let run = cluster.fosctl(0, &["get", "migrations", "-o", "json"]);
    json_items(&run.stdout)
        .into_iter()
        .find(|m| m["instance"] == instance(name).as_str() && by.is_none_or(|b| m["requestedBy"] == b))
        .unwrap_or_default()
}

/// A bundle of the same container for runc by hand: busybox's root (read-only, as fos makes it), `/data` a bind
/// mount of `dir/data`, the script as its process, sharing this network namespace.
fn hand_bundle(dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp", "data"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static installed");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let out = Command::new("runc").arg("spec").current_dir(&bundle).output().expect("runc spec");
    assert!(out.status.success(), "runc spec: {}", String::from_utf8_lossy(&out.stderr));
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", SCRIPT]);
    spec["process"]["env"] = serde_json::json!(["PATH=/bin"]);
    let data = dir.join("data").display().to_string();
    spec["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}));
    let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|n| n["type"] != "network");
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    bundle
}

/// Waits until runc wrote `pid_file`.
fn until_pid_file(pid_file: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(pid_file).map(|p| p.trim().is_empty()).unwrap_or(true) {
        assert!(Instant::now() < deadline, "{what}: no pid file");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The same container checkpointed and restored by hand with runc (the options fos uses): (downtime ms from the
/// checkpoint's start to the restored container running, checkpoint ms, longest gap in its file ms).
fn by_hand(dir: &Path) -> (u128, u128, u64) {
    let bundle = hand_bundle(dir);
    let root = dir.join("runc");
    let id = format!("fos-hand-{}", std::process::id());
    let file = dir.join("data/counter");
    let runc = |args: &[&str]| {
        let mut cmd = Command::new("runc");
        cmd.arg("--root").arg(&root).arg("--criu").arg(criu()).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };
    let pid_file = dir.join("run.pid");
    let bundle_s = bundle.display().to_string();
    let mut run = runc(&["run", "--bundle", &bundle_s, "--pid-file", &pid_file.display().to_string(), &id])
        .spawn()
        .expect("runc run");
    until_lines(&file, 20, &|| "the hand-made container does not count".into());
    let images = dir.join("images").display().to_string();
    let t = Instant::now();
    let out = runc(&["checkpoint", "--image-path", &images, "--work-path", &dir.join("work").display().to_string()])
        .args(["--tcp-established", "--file-locks", &id])
        .stderr(Stdio::piped())
        .output()
        .expect("runc checkpoint");
    let checkpoint_ms = t.elapsed().as_millis();
    assert!(out.status.success(), "runc checkpoint by hand: {}", String::from_utf8_lossy(&out.stderr));
    let _ = run.wait();
    let restored_pid = dir.join("restore.pid");
    let restore_work = dir.join("work-restore").display().to_string();
    let mut restore = runc(&["restore", "--bundle", &bundle_s, "--image-path", &images, "--work-path", &restore_work])
        .args(["--pid-file", &restored_pid.display().to_string(), "--tcp-established", "--file-locks", &id])
        .spawn()
        .expect("runc restore");
    until_pid_file(&restored_pid, "runc restore by hand");
    let downtime = t.elapsed().as_millis();
    let before = lines(&file).len();
    until_lines(&file, before + 10, &|| "the hand-restored container does not count".into());
    let _ = runc(&["kill", &id, "KILL"]).status();
    let _ = restore.wait();
    let _ = runc(&["delete", "--force", &id]).status();
    let gap = check_one_process(&lines(&file));
    (downtime, checkpoint_ms, gap)
}

#[test]
fn a_container_migrated_live_carries_on_from_memory_with_one_copy_at_every_sample() {
    if let Some(why) = criu_missing() {
        println!("SKIPPED: live migration needs `criu check` to pass on this machine: {why}");
        return;
    }
    let cluster = Cluster::start(2, LOST_AFTER);
    let run = cluster.fosctl(0, &["tenant", "allow-root", "default"]);
    assert!(run.code == 0, "allow-root: {}", run.stderr);
    let archive = cluster.dir.path().join("busybox.tar");
    write_layout_tar(&busybox_image(8080, "-", 0), &archive);
    let upload = ["image", "upload", &archive.display().to_string(), "--name", "busybox", "--format", "tar.gz"];
    let run = cluster.fosctl(0, &upload);
    assert!(run.code == 0, "image upload: {}", run.stderr);

    let name = "ctr-live";
    let run = cluster.apply(0, name, &entity(name));
    assert!(run.code == 0, "apply: {}", run.stderr);
    let (source, _) = running(&cluster, name);
    let s = cluster.nodes.iter().position(|n| n.name == source).expect("a node");
    let d = 1 - s;
    let destination = cluster.nodes[d].name.clone();
    let file = |i: usize| cluster.nodes[i].data.join("volumes").join(instance(name)).join("data").join("counter");
    until_lines(&file(s), 20, &|| cluster.log(s));
    let checker = cluster.checker(&[name]);

    let started = Instant::now();
    let args = ["migrate", &instance(name), "--to", &destination, "--live", "--wait", "--timeout", "120s"];
    let run = cluster.fosctl(0, &args);
    let total = started.elapsed();
    assert!(run.code == 0, "migrate: {}\n{}\n{}\n{}", run.stdout, run.stderr, cluster.log(s), cluster.log(d));
    let (now_on, e) = running(&cluster, name);
    assert_eq!(now_on, destination);
    let after = lines(&file(d)).len();
    until_lines(&file(d), after + 20, &|| cluster.log(d));
    let (twice, samples) = checker.finish();
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    assert!(samples > 20, "only {samples} samples");

    let m = migration(&cluster, name, None);
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
    assert!(
        !cluster.nodes[d].data.join("volumes").join(instance(name)).join(".checkpoint").exists(),
        "the images are removed once restored"
    );
    // Its output goes on into the destination's log: the restored container's pipes copied there.
    let logs = cluster.fosctl(0, &["logs", &instance(name)]);
    assert!(!logs.stdout.contains("could not be restored"), "restored, not started afresh: {}", logs.stdout);
    let last = all.last().map(|l| l.0).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = cluster.fosctl(0, &["logs", &instance(name)]);
        if logs.stdout.lines().any(|l| l == format!("out {last}")) {
            break;
        }
        assert!(Instant::now() < deadline, "its output does not go on on {destination}: {}", logs.stdout);
        std::thread::sleep(Duration::from_millis(200));
    }

    println!(
        "figure: live migration of a container (busybox sh writing a line every 50 ms): total {} ms (fosctl --wait), \
         downtime {downtime_ms} ms (stoppedAt -> running on {destination}; {recorded_ms} ms to the record's \
         finished), longest gap in its file {gap_ms} ms, {} values, {} bytes moved, {samples} samples, never twice",
        total.as_millis(),
        all.len(),
        m["bytesMoved"]
    );
    let hand = tempfile::tempdir().expect("temp dir");
    let (hand_ms, checkpoint_ms, hand_gap) = by_hand(hand.path());
    println!(
        "figure: the same container by hand in the same run: runc checkpoint {checkpoint_ms} ms, restored and \
         running after {hand_ms} ms (downtime), longest gap in its file {hand_gap} ms; fos/hand downtime {:.2}, \
         gap {:.2}",
        downtime_ms as f64 / hand_ms.max(1) as f64,
        gap_ms as f64 / hand_gap.max(1) as f64
    );

    // A drain moves a live-migratable container live too: a second one started on the source (the destination
    // cordoned meanwhile), then the source drained.
    let drained = "ctr-drain";
    let run = cluster.fosctl(0, &["node", "cordon", &destination]);
    assert!(run.code == 0, "cordon: {}", run.stderr);
    let run = cluster.apply(0, drained, &entity(drained));
    assert!(run.code == 0, "apply: {}", run.stderr);
    let (on, _) = running(&cluster, drained);
    assert_eq!(on, source, "placed away from the cordoned node");
    let run = cluster.fosctl(0, &["node", "uncordon", &destination]);
    assert!(run.code == 0, "uncordon: {}", run.stderr);
    let counter = |i: usize| cluster.nodes[i].data.join("volumes").join(instance(drained)).join("data").join("counter");
    until_lines(&counter(s), 20, &|| cluster.log(s));
    let checker = cluster.checker(&[drained]);
    let run = cluster.fosctl(0, &["node", "drain", &source]);
    assert!(run.code == 0, "drain: {}", run.stderr);
    let deadline = Instant::now() + Duration::from_secs(120);
    let m = loop {
        let m = migration(&cluster, drained, Some("drain"));
        if m["phase"] == "Completed" {
            break m;
        }
        assert!(Instant::now() < deadline, "the drain does not migrate it: {m}\n{}", cluster.log(s));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((m["mode"].as_str(), m["destination"].as_str()), (Some("live"), Some(destination.as_str())), "{m}");
    let (now_on, e) = running(&cluster, drained);
    assert_eq!(now_on, destination);
    let after = lines(&counter(d)).len();
    until_lines(&counter(d), after + 20, &|| cluster.log(d));
    let (twice, samples) = checker.finish();
    assert!(twice.is_empty() && samples > 20, "ran twice: {twice:?} ({samples} samples)");
    let gap_ms = check_one_process(&lines(&counter(d)));
    println!(
        "figure: the drain's live migration of a second container (its image on {destination} already): downtime {} \
         ms, longest gap in its file {gap_ms} ms",
        millis(&e["actual"]["startedAt"]) - millis(&m["stoppedAt"])
    );
}
