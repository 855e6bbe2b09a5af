//! `fos-bench`: apply → Running latency of one native entity on an idle one-node fos (p50/p99 over N runs), and
//! the resident memory of an idle all-in-one `fosd`. Runs the release binaries (`FOS_BIN_DIR`, default
//! `target/release`); the latency is taken from the API: `POST /v1/apply` until the application's status, read on
//! the API's watch stream, says Running.

use std::time::{Duration, Instant};

use fos_e2e::Fos;
use fos_sim::figures::{self, Figure};
use futures::StreamExt;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn entity(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "fos/v1",
        "kind": "Entity",
        "metadata": {"name": name},
        "spec": {"kind": "native", "command": ["sleep", "1000"]}
    })
}

/// Reads watch lines until one satisfies `done`.
async fn until(
    lines: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut Vec<u8>,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    loop {
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                if done(&v) {
                    return Ok(());
                }
            }
        }
        match lines.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => anyhow::bail!("the watch stream ended"),
        }
    }
}

async fn one_run(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<Duration> {
    let uri = format!("afos://0/apps/default/{name}");
    let watch = http.get(format!("{base}/v1/watch?uri={uri}")).send().await?.error_for_status()?;
    let mut stream = watch.bytes_stream();
    let mut buf = Vec::new();
    let started = Instant::now();
    http.post(format!("{base}/v1/apply"))
        .json(&serde_json::json!({ "objects": [entity(name)] }))
        .send()
        .await?
        .error_for_status()?;
    until(&mut stream, &mut buf, |v| v["kind"] == "put" && v["value"]["phase"] == "Running").await?;
    let took = started.elapsed();
    http.delete(format!("{base}/v1/apps/default/{name}")).send().await?.error_for_status()?;
    until(&mut stream, &mut buf, |v| v["kind"] == "delete").await?;
    // Idle again: wait for the instance's records to go too.
    loop {
        let list: serde_json::Value = http.get(format!("{base}/v1/entities")).send().await?.json().await?;
        if list.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(took)
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    if std::env::var_os("FOS_BIN_DIR").is_none() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release");
        std::env::set_var("FOS_BIN_DIR", dir);
    }
    let fos = Fos::start();
    let pid = fos.fosd.id();
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_kib(pid);
    let base = fos.url();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut times = rt.block_on(async {
        let http = fos.admin_http();
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs {
            times.push(one_run(&http, &base, &format!("bench-{i}")).await?);
        }
        anyhow::Ok(times)
    })?;
    let after_rss = rss_kib(pid);
    times.sort();
    let reference = fork_exec_wait(runs)?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("apply → Running, one native entity, idle node, {runs} runs:");
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   min {:.2} ms   max {:.2} ms",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    println!(
        "  reference, same run: fork+exec+wait of `true` p50 {:.2} ms (goal: apply → Running p50 ≤ 3 × it)",
        ms(reference)
    );
    println!("fosd (api + controller + agent + embedded store) RSS:");
    println!("  idle {:.1} MiB   after the runs {:.1} MiB", idle_rss as f64 / 1024.0, after_rss as f64 / 1024.0);
    figures::record(Figure {
        figure: "apply → Running p50, one native entity, idle node",
        value: ms(percentile(&times, 0.50)),
        unit: "ms",
        goal: "≤ 3 × fork+exec+wait",
        reference: format!(
            "fork+exec+wait {:.2} ms ({:.1}×)",
            ms(reference),
            ms(percentile(&times, 0.50)) / ms(reference)
        ),
    });
    figures::record(Figure {
        figure: "fosd RSS, idle all-in-one",
        value: idle_rss as f64 / 1024.0,
        unit: "MiB",
        goal: "",
        reference: format!("{:.1} MiB after the runs", after_rss as f64 / 1024.0),
    });
    Ok(())
}

/// The same-run reference: median time to fork, exec and wait for `true`, over `runs` runs.
fn fork_exec_wait(runs: usize) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let at = Instant::now();
        std::process::Command::new("true").status()?;
        times.push(at.elapsed());
    }
    times.sort();
    Ok(percentile(&times, 0.50))
}
