//! Agent benchmark: the agent's own overhead from a desired record to the process running (beyond the spawn itself
//! and the store's delivery of the record), and the resident memory of a process hosting the agent, idle and with
//! 100 native instances. Run with `cargo bench -p fos-agent --bench agent`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fos_agent::runtime::native::process;
use fos_agent::{Agent, AgentConfig, NodeConfig};
use fos_api::lifecycle::State;
use fos_api::manifest::{EntitySpec, RestartPolicy};
use fos_api::record::{DesiredInstance, InstanceId};
use fos_api::Keys;
use fos_store::records::{ActualInstances, DesiredInstances};
use fos_store::{EmbeddedConfig, EmbeddedStore, EventKind, Records, Store};
use futures::StreamExt;

const ITERATIONS: usize = 40;

fn now_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

fn stats(name: &str, mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!("{name:<44} median {:>8.3} ms   p10 {:>8.3} ms   p90 {:>8.3} ms", p(0.5), p(0.1), p(0.9));
    p(0.5)
}

/// Wall-clock time from just before spawning `date +%s%N` (in its own session, output to a file, as the native
/// runtime does) to the time the child prints.
async fn spawn_baseline(dir: &std::path::Path) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..ITERATIONS {
        let path = dir.join(format!("baseline-{i}"));
        let file = std::fs::File::create(&path).unwrap();
        let mut cmd = tokio::process::Command::new("date");
        cmd.arg("+%s%N").stdout(file).stdin(Stdio::null());
        process::isolate(&mut cmd);
        let t0 = now_ns();
        cmd.spawn().unwrap().wait().await.unwrap();
        let stamp: i128 = std::fs::read_to_string(&path).unwrap().trim().parse().unwrap();
        out.push((stamp - t0) as f64 / 1e6);
    }
    out
}

async fn overhead() {
    let tmp = tempfile::tempdir().unwrap();
    let spawn = stats("spawn itself (date +%s%N, own group)", spawn_baseline(tmp.path()).await);

    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(tmp.path().join("store"))).unwrap());
    // Store delivery: put a record, see it on a watch.
    let mut delivery = Vec::new();
    let mut stream = store.watch("/bench/", 0).await.unwrap();
    for i in 0..ITERATIONS {
        let t0 = Instant::now();
        store.put(&format!("/bench/{i}"), b"{}".to_vec(), None).await.unwrap();
        stream.next().await.unwrap().unwrap();
        delivery.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let delivery = stats("store delivery (put -> watch event)", delivery);

    for cgroups in [true, false] {
        let total = agent_total(&store, tmp.path(), cgroups).await;
        println!(
            "agent overhead, cgroups {}: {:.3} ms = total - spawn - store delivery (target <= 2 ms)",
            if cgroups { "on " } else { "off" },
            total - spawn - delivery
        );
    }
}

/// Median time from putting a desired record to its process printing, through a whole agent.
async fn agent_total(store: &Arc<dyn Store>, dir: &std::path::Path, cgroups: bool) -> f64 {
    let records = Records::new(store.clone(), Keys::default());
    let name = if cgroups { "bench-cg" } else { "bench" };
    let data = dir.join(name);
    let node =
        NodeConfig::parse(&format!("name: {name}\ndataDir: {}\nprobePort: 0\n", data.display()), "bench").unwrap();
    let mut config = AgentConfig::new(node);
    config.use_cgroups = cgroups;
    let agent = Agent::start(config, store.clone()).await.unwrap();
    let mut totals = Vec::new();
    for i in 0..ITERATIONS {
        let id = InstanceId::new("default", "bench", "stamp", i as u32);
        let mut entity = EntitySpec::native(["date", "+%s%N"]);
        entity.restart = RestartPolicy::Never;
        let d = DesiredInstance::new(id.clone(), name, entity);
        let on_node = (name.to_string(), id.clone());
        let log = data.join("native").join(id.to_string()).join("logs").join("stdout.log");
        let t0 = now_ns();
        records.put::<DesiredInstances>(&on_node, &d, None).await.unwrap();
        let stamp: i128 = loop {
            if let Some(s) = std::fs::read_to_string(&log).ok().and_then(|s| s.trim().parse().ok()) {
                break s;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        totals.push((stamp - t0) as f64 / 1e6);
        let mut w = store.watch(&records.key::<ActualInstances>(&on_node), 0).await.unwrap();
        records.delete::<DesiredInstances>(&on_node).await.unwrap();
        if records.get::<ActualInstances>(&on_node).await.unwrap().is_some() {
            while let Some(Ok(ev)) = w.next().await {
                if ev.kind == EventKind::Delete {
                    break;
                }
            }
        }
    }
    let label = format!("desired put -> process running (cgroups {})", if cgroups { "on" } else { "off" });
    let total = stats(&label, totals);
    agent.shutdown().await;
    total
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Starts `fos-agent-host` with `instances` sleeping instances, waits until all run and settle, returns its RSS.
fn host_rss(instances: u32) -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("node.yaml");
    std::fs::write(&config, format!("name: bench\ndataDir: {}\nprobePort: 0\n", tmp.path().join("agent").display()))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fos-agent-host"))
        .arg("--store")
        .arg(tmp.path().join("store"))
        .arg("--config")
        .arg(&config)
        .args(["--instances", &instances.to_string(), "--print", "--command", "sleep", "3600"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut running = std::collections::BTreeMap::new();
    let mut lines = BufReader::new(stdout).lines();
    if instances == 0 {
        lines.next();
    }
    while running.len() < instances as usize {
        let Some(Ok(line)) = lines.next() else { break };
        if let Ok(a) = serde_json::from_str::<fos_api::record::ActualInstance>(&line) {
            if let (Some(State::Running), Some(pid)) = (a.state(), a.pid) {
                running.insert(a.id.to_string(), pid);
            }
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    for pid in running.values() {
        let _ = process::signal_group(*pid as i32, libc::SIGKILL);
    }
    for pid in running.values() {
        while process::proc_state(*pid).is_some_and(|s| s != 'Z') {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    remove_cgroups(".bench.default@");
    rss
}

/// Removes the (empty) cgroups left by instances whose id contains `pattern` (their agent was killed, not
/// cleaned).
fn remove_cgroups(pattern: &str) {
    for ctl in ["cpu", "memory", "freezer", "unified"] {
        let Ok(entries) = std::fs::read_dir(format!("/sys/fs/cgroup/{ctl}/fos")) else { continue };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().contains(pattern) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("agent: bench");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(overhead());
    let idle = host_rss(0);
    println!("fos-agent-host RSS idle:               {:>6.1} MiB (target <= 15 MiB)", idle as f64 / 1024.0);
    let busy = host_rss(100);
    println!("fos-agent-host RSS with 100 instances: {:>6.1} MiB (target <= 30 MiB)", busy as f64 / 1024.0);
}
