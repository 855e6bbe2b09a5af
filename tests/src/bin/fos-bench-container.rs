//! `fos-bench-container`: containers' figures on an idle one-node fos with a real registry (`docker-registry` on
//! loopback) and images built from busybox-static:
//!
//! - the pull time of a 50 MiB image (busybox plus 50 MiB of random bytes) into an empty image store, with
//!   `oci-client` (every blob checked against its digest);
//! - apply → Running of one container entity whose image is cached on the node (p50 over N runs: `POST
//!   /v1/apply` until the application's status, read on the API's watch stream, says Running), beside `runc run
//!   --detach` of the same bundle in the same run.
//!
//! Runs the binaries of `FOS_BIN_DIR` (default `target/release`).

use std::time::{Duration, Instant};

use fos_agent::oci::pull::{self, PullOptions};
use fos_agent::oci::ImageStore;
use fos_e2e::oci::{busybox_image, Registry};
use fos_e2e::Fos;
use fos_sim::figures::{self, Figure};
use futures::StreamExt;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn entity(name: &str, image: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "fos/v1",
        "kind": "Entity",
        "metadata": {"name": name},
        "spec": {"kind": "container", "image": image, "command": ["/bin/busybox", "sleep", "1000"]}
    })
}

async fn until(
    lines: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut Vec<u8>,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    loop {
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if serde_json::from_slice::<serde_json::Value>(&line).is_ok_and(|v| done(&v)) {
                return Ok(());
            }
        }
        match lines.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => anyhow::bail!("the watch stream ended"),
        }
    }
}

async fn one_run(http: &reqwest::Client, base: &str, name: &str, image: &str, keep: bool) -> anyhow::Result<Duration> {
    let uri = format!("afos://0/apps/default/{name}");
    let watch = http.get(format!("{base}/v1/watch?uri={uri}")).send().await?.error_for_status()?;
    let mut stream = watch.bytes_stream();
    let mut buf = Vec::new();
    let started = Instant::now();
    let body = serde_json::json!({ "objects": [entity(name, image)] });
    http.post(format!("{base}/v1/apply")).json(&body).send().await?.error_for_status()?;
    until(&mut stream, &mut buf, |v| v["kind"] == "put" && v["value"]["phase"] == "Running").await?;
    let took = started.elapsed();
    if keep {
        return Ok(took);
    }
    http.delete(format!("{base}/v1/apps/default/{name}")).send().await?.error_for_status()?;
    until(&mut stream, &mut buf, |v| v["kind"] == "delete").await?;
    loop {
        let list: serde_json::Value = http.get(format!("{base}/v1/entities")).send().await?.json().await?;
        let prefix = format!("{name}-");
        let left = list
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["id"].as_str().is_some_and(|id| id.starts_with(&prefix))));
        if !left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(took)
}

fn runc(root: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("runc").arg("--root").arg(root).args(args).status()?;
    anyhow::ensure!(status.success(), "runc {args:?}: {status}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    if std::env::var_os("FOS_BIN_DIR").is_none() {
        std::env::set_var("FOS_BIN_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release"));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let registry = Registry::start(None);
    let options = PullOptions { insecure: vec![registry.addr.clone()], ..Default::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;

    // Pull of a 50 MiB image.
    let big = busybox_image(8080, "big", 50);
    let size: usize = big.layers.iter().map(Vec::len).sum::<usize>() + big.config.len();
    registry.push("big:1", &big);
    let reference = format!("{}/big:1", registry.addr);
    let mut pulls = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir()?;
        let store = ImageStore::open(dir.path())?;
        let at = Instant::now();
        rt.block_on(pull::pull(&store, &reference, &options))?;
        pulls.push(at.elapsed());
    }
    pulls.sort();
    let pull = percentile(&pulls, 0.5);
    let mib = size as f64 / (1 << 20) as f64;
    println!(
        "pull of a {mib:.1} MiB image from the loopback registry, 3 runs: median {:.0} ms ({:.0} MiB/s)",
        ms(pull),
        mib / pull.as_secs_f64()
    );
    figures::record(Figure {
        figure: "pull of a 50 MiB image, loopback registry",
        value: ms(pull),
        unit: "ms",
        goal: "",
        reference: format!("{:.0} MiB/s", mib / pull.as_secs_f64()),
    });

    // apply → Running with the image cached.
    registry.push("web:1", &busybox_image(8080, "web", 0));
    let image = format!("{}/web:1", registry.addr);
    let config_dir = tempfile::tempdir()?;
    let config = config_dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!("runtimes:\n  container:\n    config: {{insecureRegistries: ['{}']}}\n", registry.addr),
    )?;
    let fos = Fos::start_with(None, &["--config", &config.display().to_string()]);
    let base = fos.url();
    let http = fos.admin_http();
    let (mut times, bundle) = rt.block_on(async {
        one_run(&http, &base, "warm", &image, true).await?; // pulls the image, and stays for the reference below
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs {
            times.push(one_run(&http, &base, &format!("bench-{i}"), &image, false).await?);
        }
        anyhow::Ok((times, fos.dir.path().join("data/container/warm-0.warm.default/bundle")))
    })?;
    times.sort();

    // The reference: `runc run --detach` of the same bundle (its root, its spec with a cgroup of its own).
    let refdir = tempfile::tempdir()?;
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json"))?)?;
    spec["root"]["path"] = bundle.join("rootfs").display().to_string().into();
    spec["linux"]["cgroupsPath"] = "/fos-bench-runc".into();
    std::fs::write(refdir.path().join("config.json"), serde_json::to_vec(&spec)?)?;
    let state = refdir.path().join("state");
    let mut reference = Vec::with_capacity(runs);
    for i in 0..runs {
        let id = format!("fos-bench-{i}");
        let at = Instant::now();
        runc(&state, &["run", "--detach", "--bundle", &refdir.path().display().to_string(), &id])?;
        reference.push(at.elapsed());
        runc(&state, &["delete", "--force", &id])?;
    }
    reference.sort();
    rt.block_on(async {
        http.delete(format!("{base}/v1/apps/default/warm")).send().await?.error_for_status()?;
        anyhow::Ok(())
    })?;
    let (p50, r50) = (percentile(&times, 0.5), percentile(&reference, 0.5));
    println!("apply → Running, one container entity, image cached, {runs} runs:");
    println!(
        "  p50 {:.1} ms   p99 {:.1} ms   min {:.1} ms   max {:.1} ms",
        ms(p50),
        ms(percentile(&times, 0.99)),
        ms(times[0]),
        ms(times[runs - 1])
    );
    println!(
        "  reference, same run: runc run --detach of the same bundle p50 {:.1} ms ({:.2}×; goal ≤ 1.5×)",
        ms(r50),
        ms(p50) / ms(r50)
    );
    figures::record(Figure {
        figure: "apply → Running p50, one container, image cached",
        value: ms(p50),
        unit: "ms",
        goal: "≤ 1.5 × runc run",
        reference: format!("runc run --detach {:.1} ms ({:.2}×)", ms(r50), ms(p50) / ms(r50)),
    });
    Ok(())
}
