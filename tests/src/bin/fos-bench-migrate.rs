//! `fos-bench-migrate`: migration figures between two real `fosd` on the cluster harness (each in its own network
//! namespace, a 3-member etcd), each the median of N moves back and forth (argument, default 3):
//!
//! - cold migration of a native counter whose volume holds 100 MiB of random bytes: total (`fosctl migrate --wait`)
//!   and downtime (the record's `stoppedAt` → `finished`), beside `rsync -a` of the same directory between the two
//!   nodes' data directories just before each move (goal: total ≤ 1.5 × rsync);
//! - live migration (CRIU) of an idle counter that keeps its count in memory and writes a line every 50 ms: downtime
//!   (`stoppedAt` → Running on the destination) and the longest gap between two lines of its file, beside the same
//!   process dumped and restored by hand with `criu` in the same run (goals: ≤ 1.2 × by hand; gap ≤ 100 ms).
//!   Then the same with 100 MiB of random bytes in its volume (total and downtime beside rsync). Skipped, saying
//!   so, where `criu check` fails.
//!
//! Runs the binaries of `FOS_BIN_DIR` (default `target/release`); needs root.

use std::time::{Duration, Instant};

use fos_e2e::cluster::{json_items, Cluster};
use fos_e2e::live::{by_hand, check_one_process, criu_missing, has_sys_resource, lines, until_lines, SCRIPT};
use fos_e2e::migrate::{counter_file, counter_with_blob, counts_on, index, instance, migration, millis, running_node};
use fos_sim::figures::{self, Figure};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `rsync -a` of `volume` into the data directory `to` (removed after): how long it took (ms).
fn rsync(volume: &std::path::Path, to: &std::path::Path) -> anyhow::Result<f64> {
    let reference = to.join("rsync-reference");
    let t = Instant::now();
    let status =
        std::process::Command::new("rsync").arg("-a").arg(format!("{}/", volume.display())).arg(&reference).status()?;
    let took = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.success(), "rsync failed");
    std::fs::remove_dir_all(&reference)?;
    Ok(took)
}

/// Places `manifest`'s entity on `n0` (`n1` cordoned meanwhile).
fn apply_on_n0(cluster: &Cluster, name: &str, manifest: &str) -> anyhow::Result<()> {
    cluster.fosctl(0, &["node", "cordon", "n1"]);
    let run = cluster.apply(0, name, manifest);
    cluster.fosctl(0, &["node", "uncordon", "n1"]);
    anyhow::ensure!(run.code == 0, "apply {name}: {}", run.stderr);
    Ok(())
}

/// Moves `name` to the other node; answers (total ms, its migration record).
fn move_once(cluster: &Cluster, name: &str, live: bool) -> anyhow::Result<(f64, serde_json::Value)> {
    let from = running_node(cluster, name, Duration::from_secs(60));
    let to = if from == "n0" { "n1" } else { "n0" };
    let id = instance(name);
    let args = ["migrate", &id, "--to", to, "--wait", "--timeout", "120s", if live { "--live" } else { "--cold" }];
    let started = Instant::now();
    let run = cluster.fosctl(0, &args);
    let total = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(run.code == 0, "migrate {name} to {to}: {}\n{}", run.stdout, run.stderr);
    let m = migration(cluster, name);
    anyhow::ensure!(m["phase"] == "Completed" && m["destination"] == to, "{m}");
    Ok((total, m))
}

fn cold(cluster: &Cluster, moves: usize) -> anyhow::Result<()> {
    let name = "bench-cold";
    apply_on_n0(cluster, name, &counter_with_blob(name))?;
    counts_on(cluster, 0, name, 10);
    let (mut totals, mut downtimes, mut rsyncs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..moves {
        let s = index(cluster, &running_node(cluster, name, Duration::from_secs(60)));
        let volume = counter_file(cluster, s, name).parent().map(|p| p.to_path_buf()).unwrap_or_default();
        rsyncs.push(rsync(&volume, &cluster.nodes[1 - s].data)?);
        let (total, m) = move_once(cluster, name, false)?;
        totals.push(total);
        downtimes.push((millis(&m["finished"]) - millis(&m["stoppedAt"])) as f64);
        counts_on(cluster, 1 - s, name, 5);
    }
    let (total, downtime, rsync) = (median(totals), median(downtimes), median(rsyncs));
    println!("cold migration of a 100 MiB volume, median of {moves}: total {total:.0} ms, downtime {downtime:.0} ms;");
    println!(
        "  reference, same run: rsync -a of the same directory {rsync:.0} ms ({:.2}×; goal ≤ 1.5×)",
        total / rsync
    );
    figures::record(Figure {
        figure: "cold migration, 100 MiB volume, total",
        value: total,
        unit: "ms",
        goal: "≤ 1.5 × rsync",
        reference: format!("rsync -a {rsync:.0} ms ({:.2}×); downtime {downtime:.0} ms", total / rsync),
    });
    Ok(())
}

/// The live counter ([`SCRIPT`]) as an entity named `name`, its volume first given a 100 MiB file of random bytes
/// when `blob`.
fn live_counter(name: &str, blob: bool) -> String {
    // Where root lacks CAP_SYS_RESOURCE (some sandboxes), CRIU can only checkpoint root's processes.
    let run_as = if has_sys_resource() { "" } else { "  runAs: root\n" };
    let mut script = SCRIPT.replace("$COUNTER", "$FOS_VOLUME_DATA/counter");
    if blob {
        script = format!(
            r#"test -f "$FOS_VOLUME_DATA/blob" || head -c 100M /dev/urandom > "$FOS_VOLUME_DATA/blob"; {script}"#
        );
    }
    let script = script.replace('\'', "''");
    format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: {name}}}\nspec:\n  kind: native\n  migration: live\n\
         {run_as}  volumes:\n    - name: data\n      size: 10Mi\n  command: [sh, -c, '{script}']\n"
    )
}

/// Live migration of a process with a 100 MiB volume: the volume moves while the process is checkpointed.
fn live_volume(cluster: &Cluster, moves: usize) -> anyhow::Result<()> {
    let name = "bench-live-blob";
    apply_on_n0(cluster, name, &live_counter(name, true))?;
    let file = |i: usize| cluster.nodes[i].data.join("volumes").join(instance(name)).join("data").join("counter");
    until_lines(&file(0), 20, &|| cluster.log(0));
    let (mut totals, mut downtimes, mut rsyncs) = (Vec::new(), Vec::new(), Vec::new());
    let mut on = 0;
    for _ in 0..moves {
        let volume = file(on).parent().map(|p| p.to_path_buf()).unwrap_or_default();
        rsyncs.push(rsync(&volume, &cluster.nodes[1 - on].data)?);
        let (total, m) = move_once(cluster, name, true)?;
        on = 1 - on;
        totals.push(total);
        downtimes.push((millis(&m["finished"]) - millis(&m["stoppedAt"])) as f64);
        let before = lines(&file(on)).len();
        until_lines(&file(on), before + 5, &|| cluster.log(on));
    }
    check_one_process(&lines(&file(on)));
    let (total, downtime, rsync) = (median(totals), median(downtimes), median(rsyncs));
    println!("live migration (CRIU) with a 100 MiB volume, median of {moves}: total {total:.0} ms, downtime {downtime:.0} ms;");
    println!("  reference, same run: rsync -a of the same directory {rsync:.0} ms ({:.2}×)", total / rsync);
    figures::record(Figure {
        figure: "live migration (CRIU), 100 MiB volume, total",
        value: total,
        unit: "ms",
        goal: "",
        reference: format!("rsync -a {rsync:.0} ms ({:.2}×); downtime {downtime:.0} ms", total / rsync),
    });
    Ok(())
}

fn live(cluster: &Cluster, moves: usize) -> anyhow::Result<()> {
    if let Some(why) = criu_missing() {
        println!("live migration: SKIPPED, `criu check` fails here: {why}");
        return Ok(());
    }
    if !has_sys_resource() {
        cluster.fosctl(0, &["tenant", "allow-root", "default"]);
    }
    let name = "bench-live";
    apply_on_n0(cluster, name, &live_counter(name, false))?;
    let file = |i: usize| cluster.nodes[i].data.join("volumes").join(instance(name)).join("data").join("counter");
    until_lines(&file(0), 20, &|| cluster.log(0));
    let mut downtimes = Vec::new();
    let mut on = 0;
    for _ in 0..moves {
        let (_, m) = move_once(cluster, name, true)?;
        on = 1 - on;
        let e = json_items(&cluster.fosctl(0, &["get", "entities", "-o", "json"]).stdout)
            .into_iter()
            .find(|e| e["id"] == instance(name).as_str())
            .unwrap_or_default();
        downtimes.push((millis(&e["actual"]["startedAt"]) - millis(&m["stoppedAt"])) as f64);
        let before = lines(&file(on)).len();
        until_lines(&file(on), before + 10, &|| cluster.log(on));
    }
    let gap = check_one_process(&lines(&file(on))) as f64;
    let downtime = median(downtimes);
    let hand_dir = tempfile::tempdir()?;
    let (hand, dump, restore, hand_gap) = by_hand(hand_dir.path());
    let hand = hand as f64;
    println!("live migration (CRIU) of an idle counter, median of {moves}: downtime {downtime:.0} ms, longest gap {gap:.0} ms;");
    println!(
        "  reference, same run: criu dump {dump} ms + restore {restore} ms by hand = {hand:.0} ms, gap {hand_gap} ms \
         ({:.2}×; goal ≤ 1.2×, gap ≤ 100 ms)",
        downtime / hand.max(1.0)
    );
    figures::record(Figure {
        figure: "live migration (CRIU), idle process, downtime",
        value: downtime,
        unit: "ms",
        goal: "≤ 1.2 × criu by hand",
        reference: format!("criu by hand {hand:.0} ms ({:.2}×)", downtime / hand.max(1.0)),
    });
    figures::record(Figure {
        figure: "live migration (CRIU), idle process, longest gap seen",
        value: gap,
        unit: "ms",
        goal: "≤ 100 ms",
        reference: format!("criu by hand {hand_gap} ms"),
    });
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let moves: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    if std::env::var_os("FOS_BIN_DIR").is_none() {
        std::env::set_var("FOS_BIN_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release"));
    }
    let cluster = Cluster::start(2, Duration::from_secs(10));
    cold(&cluster, moves)?;
    live(&cluster, moves)?;
    if criu_missing().is_none() {
        live_volume(&cluster, moves)?;
    }
    Ok(())
}
