//! `fos-bench-apply`: one application of 5,000 components (about 420 KB of YAML) applied to a release `fosd` (API and
//! controller, no agent) on a real etcd with ten nodes: the time until `POST /v1/apply` answers, the time until every
//! instance is placed (the controller wrote its 5,000 desired records and the status saying so, seen on the API's
//! watch stream), and `fosd`'s resident memory before, at its
//! peak and after. Beside it, in the same run, the floor: the same 5,000 records written to the same etcd by a bare
//! `etcd-client` in transactions of 128.
//!
//! Usage: `fos-bench-apply [COMPONENTS]` (default 5000); release binaries from `FOS_BIN_DIR`, default
//! `target/release`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fos_api::wire::{AppStatus, ApplyRequest, WatchEvent};
use fos_api::{Keys, Node, NodeStatus, Object};
use fos_sim::figures::{self, Figure};
use fos_store::records::{DesiredInstances, NodeInfos, NodeStatuses};
use fos_store::testing::EtcdServer;
use fos_store::{Records, MAX_TXN_OPS};
use futures::StreamExt;

/// A resident-set figure of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The application: `n` components in chains of ten (each needs the one before it), 10m of cpu each.
fn manifest(n: usize) -> String {
    let mut yaml = String::from("apiVersion: fos/v1\nkind: Application\nmetadata: {name: big}\nspec:\n  components:\n");
    for i in 0..n {
        let need = if i % 10 == 0 { String::new() } else { format!(", need: [c{}]", i - 1) };
        yaml.push_str(&format!(
            "    - {{name: c{i}{need}, entity: {{kind: native, command: [sleep, '1000'], resources: {{cpu: 10m}}}}}}\n"
        ));
    }
    yaml
}

fn node(name: &str) -> anyhow::Result<Node> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"arch": "x86_64", "cpu": {"count": 64}, "memory": "256Gi", "runtimes": ["native"]}
    }))?)
}

fn main() -> anyhow::Result<()> {
    let components: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let bin = std::env::var_os("FOS_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release").into());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let etcd = rt.block_on(EtcdServer::start())?;
    let endpoint = etcd.endpoint(0).to_string();
    let store = rt.block_on(etcd.store())?;
    let records = Records::new(store, Keys::default());
    rt.block_on(async {
        for n in 0..10 {
            let name = format!("n{n}");
            records.put::<NodeInfos>(&name, &node(&name)?, None).await?;
            let status: NodeStatus = serde_json::from_value(serde_json::json!({"ready": true}))?;
            records.put::<NodeStatuses>(&name, &status, None).await?;
        }
        anyhow::Ok(())
    })?;

    let dir = tempfile::tempdir()?;
    let port = fos_e2e::free_port();
    let base = format!("https://127.0.0.1:{port}");
    let mut fosd = Command::new(bin.join("fosd"))
        .args(["--etcd", &endpoint, "--no-agent", "--node-name", "bench", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("fosd.log"))?)
        .spawn()?;
    let pid = fosd.id();
    let outcome = rt.block_on(measure(&base, dir.path(), pid, components, &records, &endpoint));
    let _ = fosd.kill();
    let _ = fosd.wait();
    let (answered, placed, before, peak, after, floor, yaml_bytes) = outcome?;
    println!("one application of {components} components ({} KB of YAML), 10 nodes, etcd:", yaml_bytes / 1000);
    println!("  apply answered        {:>9.1} ms", answered.as_secs_f64() * 1e3);
    println!("  all placed            {:>9.1} ms   (goal ≤ 1000 ms)", placed.as_secs_f64() * 1e3);
    println!(
        "  fosd RSS              {} before, {} peak, {} after   (goal: growth ≤ 200 MiB)",
        mib(before),
        mib(peak),
        mib(after)
    );
    println!("  reference: the same {components} desired records put by a bare etcd-client: {:.1} ms", floor * 1e3);
    let figure = format!("one application of {components} components applied, all placed (etcd)");
    figures::record(Figure {
        figure: &figure,
        value: placed.as_secs_f64() * 1e3,
        unit: "ms",
        goal: "≤ 1000 ms",
        reference: format!("bare etcd-client puts {:.0} ms", floor * 1e3),
    });
    let figure = format!("one application of {components} components applied, fosd RSS growth");
    figures::record(Figure {
        figure: &figure,
        value: peak.saturating_sub(before) as f64 / 1024.0,
        unit: "MiB",
        goal: "≤ 200 MiB",
        reference: String::new(),
    });
    Ok(())
}

type Figures = (Duration, Duration, u64, u64, u64, f64, usize);

async fn measure(
    base: &str,
    data: &std::path::Path,
    pid: u32,
    n: usize,
    records: &Records,
    endpoint: &str,
) -> anyhow::Result<Figures> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let config = data.join("fosctl.yaml");
    while !config.exists() {
        anyhow::ensure!(Instant::now() < deadline, "fosd did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&config)?)?;
    let token = config["token"].as_str().unwrap_or_default().to_string();
    let ca = std::fs::read_to_string(data.join("tls/ca.pem"))?;
    let http = fos_e2e::https_client(&ca, Some(&token));
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "fosd did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = proc_kib(pid, "VmRSS:");
    let yaml = manifest(n);
    let value: serde_json::Value = serde_yaml_ng::from_str(&yaml)?;
    let object = Object::from_value(value).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let request = ApplyRequest::new([&object]);

    // The application's status, as the controller writes it, on the API's watch stream.
    let watch = http.get(format!("{base}/v1/watch?uri=afos://0/apps/default/big")).send().await?.error_for_status()?;
    let mut stream = watch.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let started = Instant::now();
    http.post(format!("{base}/v1/apply")).json(&request).send().await?.error_for_status()?;
    let answered = started.elapsed();
    let mut peak = 0;
    'placing: loop {
        peak = peak.max(proc_kib(pid, "VmRSS:"));
        let chunk = tokio::time::timeout(Duration::from_secs(120), stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("not placed after 2 minutes"))?
            .ok_or_else(|| anyhow::anyhow!("the watch stream ended"))??;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let event: WatchEvent = serde_json::from_slice(&line)?;
            let Ok(status) = serde_json::from_value::<AppStatus>(event.entry.value) else { continue };
            if status.components.values().map(|c| c.placed as usize).sum::<usize>() == n {
                break 'placing;
            }
        }
    }
    let placed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc_kib(pid, "VmRSS:");
    let peak = peak.max(proc_kib(pid, "VmHWM:"));

    // The floor: the controller's desired records, written again by a bare client in transactions of 128.
    let (desired, _) = records.list::<DesiredInstances>().await?;
    let kvs: Vec<(String, Vec<u8>)> = desired
        .iter()
        .map(|(id, v)| (format!("/bench-floor{}", records.key::<DesiredInstances>(id)), serde_json::to_vec(&v.value)))
        .map(|(k, v)| v.map(|v| (k, v)))
        .collect::<Result<_, _>>()?;
    let mut client = etcd_client::Client::connect([endpoint], None).await?;
    let started = Instant::now();
    for chunk in kvs.chunks(MAX_TXN_OPS) {
        let ops: Vec<etcd_client::TxnOp> =
            chunk.iter().map(|(k, v)| etcd_client::TxnOp::put(k.as_str(), v.clone(), None)).collect();
        client.txn(etcd_client::Txn::new().and_then(ops)).await?;
    }
    let floor = started.elapsed().as_secs_f64();
    Ok((answered, placed, before, peak, after, floor, yaml.len()))
}
