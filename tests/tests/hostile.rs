//! The probes of the security review, against the real `fosd`: a store URI of 200 `**` segments is answered at once
//! and leaves the API answering; 2,000 connections that never finish their TLS handshake or their headers, under a
//! 1,024-file limit, leave `/healthz` answering; an application of 5,001 components is refused naming the limit
//! while one of 5,000 is applied with `fosd`'s memory bounded and the node's lease kept; on a full disk, applies
//! are refused and deletes still work.

use std::io::Write;
use std::time::{Duration, Instant};

use fos_e2e::{Fos, Start};
use tokio::io::AsyncWriteExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
}

/// A figure of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Raises this process's open-file limit to at least `n` (soft and, when needed, hard).
fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid pointer for both calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n {
            lim.rlim_cur = n;
            lim.rlim_max = lim.rlim_max.max(n);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0, "raising the open-file limit");
        }
    }
}

fn node_ready(fos: &Fos) -> bool {
    let nodes = fos.try_items(&["get", "nodes"]).unwrap_or_default();
    nodes.iter().any(|n| n["status"]["ready"] == serde_json::Value::Bool(true))
}

#[test]
fn a_store_uri_of_200_double_stars_is_answered_at_once() {
    let fos = Fos::start();
    let rt = runtime();
    let url = fos.url();
    let uri = format!("afos://0/{}x", "**/".repeat(200));
    assert!(uri.len() > 600, "as long as the probe's");
    rt.block_on(async {
        let admin = fos.admin_http();
        // The probe sent two at once; eight here, each with keys to match (the node's records).
        let started = Instant::now();
        let requests: Vec<_> = (0..8)
            .map(|_| {
                let req = admin.get(format!("{url}/v1/store?uri={uri}"));
                tokio::spawn(async move {
                    let r = req.send().await.expect("an answer");
                    (r.status().as_u16(), r.text().await.unwrap_or_default())
                })
            })
            .collect();
        for r in requests {
            let (status, body) = r.await.unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(body.trim(), "[]", "no key ends in x");
        }
        let took = started.elapsed();
        // A generous bound (a debug build on a shared machine); the matcher's own figure is `cargo bench -p fos-api`.
        assert!(took < Duration::from_secs(5), "8 requests took {took:?}");
        eprintln!("8 requests with 200 `**` segments answered in {took:?}");
        let matching = format!("afos://0/{}", "**/".repeat(200).trim_end_matches('/'));
        let r = admin.get(format!("{url}/v1/store?uri={matching}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("/nodes/e2e"), "`**` alone still matches the node's keys");
        assert_eq!(fos.http().get(format!("{url}/healthz")).send().await.unwrap().status(), 200);
        // Over the limits: a clear 422 naming the limit.
        let long = format!("afos://0/{}", "**/".repeat(300));
        let r = admin.get(format!("{url}/v1/store?uri={long}")).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("over the limit of 256"));
    });
}

/// Opens `n` connections to `addr` that each send `prefix` and then nothing more.
async fn half_open(addr: &str, n: usize, prefix: &'static [u8]) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let connect = tokio::net::TcpStream::connect(addr);
        let mut s = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .unwrap_or_else(|_| panic!("connection {i} not accepted within 10 s"))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        // A peer closing it early (to make room) is fine: the write may fail.
        let _ = s.write_all(prefix).await;
        held.push(s);
    }
    held
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn two_thousand_half_open_connections_leave_healthz_answering() {
    raise_nofile(8192);
    // A TLS record header announcing a 512-byte handshake that never comes; for plain HTTP, headers never ended.
    const TLS_PREFIX: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    const HTTP_PREFIX: &[u8] = b"GET /v1/apps HTTP/1.1\r\nHost: fos\r\nX-Slow: ";
    for (extra, prefix) in [(&[][..], TLS_PREFIX), (&["--insecure-plaintext"][..], HTTP_PREFIX)] {
        let fos = Fos::start_opts(Start { extra, nofile: Some(1024), ..Start::default() });
        let pid = fos.fosd.id();
        let url = fos.url();
        let rt = runtime();
        rt.block_on(async {
            let started = Instant::now();
            let held = half_open(&fos.server, 2000, prefix).await;
            eprintln!("{}: 2000 half-open connections in {:?}", fos.url(), started.elapsed());
            let client = if fos.plaintext { fos_e2e::plain_client(None) } else { fos.http() };
            let asked = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(10), client.get(format!("{url}/healthz")).send())
                .await
                .expect("/healthz answers within 10 s")
                .expect("/healthz answers");
            assert_eq!(r.status(), 200);
            eprintln!("/healthz answered in {:?} with 2000 half-open connections", asked.elapsed());
            let fds = open_fds(pid);
            assert!(fds < 1024, "fosd holds {fds} files, at its limit");
            // Authenticated requests are served too.
            let admin = if fos.plaintext { fos_e2e::plain_client(Some(&fos.admin_token())) } else { fos.admin_http() };
            assert_eq!(admin.get(format!("{url}/v1/apps")).send().await.unwrap().status(), 200);
            drop(held);
        });
        assert!(!fos.log().contains("panicked"), "{}", fos.log());
    }
}

/// An application of `n` components in chains of ten, each asking for more CPU than the node has (so nothing runs:
/// the controller places none of them and says so).
fn big(n: usize) -> String {
    let mut yaml = String::from("apiVersion: fos/v1\nkind: Application\nmetadata: {name: big}\nspec:\n  components:\n");
    for i in 0..n {
        let need = if i % 10 == 0 { String::new() } else { format!(", need: [c{}]", i - 1) };
        yaml.push_str(&format!(
            "    - {{name: c{i}{need}, entity: {{kind: native, command: [sleep, '1000'], resources: {{cpu: '4096'}}}}}}\n"
        ));
    }
    yaml
}

#[test]
fn an_application_of_5000_components_is_applied_within_the_limits_with_bounded_memory() {
    let fos = Fos::start();
    let pid = fos.fosd.id();
    let url = fos.url();
    let rt = runtime();
    let object = |n: usize| -> serde_json::Value { serde_yaml_ng::from_str(&big(n)).expect("YAML") };

    // One over the limit: a 413 naming it, nothing stored; fosctl says the same before sending.
    rt.block_on(async {
        let admin = fos.admin_http();
        let body = serde_json::json!({ "objects": [object(5001)] });
        let r = admin.post(format!("{url}/v1/apply")).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!((400..500).contains(&status), "{status} {text}");
        assert!(text.contains("over the limit of 5000") && text.contains("spec.components"), "{text}");
    });
    let file = fos.file("big-5001.yaml", &big(5001));
    let refused = fos.fosctl(&["apply", "-f", &file]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("over the limit of 5000"), "{refused:?}");
    assert!(fos.items(&["get", "apps"]).is_empty(), "nothing stored");

    // At the limit: applied, the controller says why nothing is placed, fosd's memory grows by a bounded amount and
    // the node keeps its lease.
    std::thread::sleep(Duration::from_secs(1));
    let before = proc_kib(pid, "VmRSS:");
    let started = Instant::now();
    rt.block_on(async {
        let admin = fos.admin_http();
        let body = serde_json::json!({ "objects": [object(5000)] });
        let r = admin.post(format!("{url}/v1/apply")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    });
    let answered = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut peak = 0;
    loop {
        peak = peak.max(proc_kib(pid, "VmRSS:"));
        let apps = fos.try_items(&["get", "apps"]).unwrap_or_default();
        let status = apps.first().map(|a| a["status"].clone()).unwrap_or_default();
        if status["unschedulable"] == serde_json::Value::Bool(true)
            && status["components"].as_object().map(|c| c.len()) == Some(5000)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no status for the 5000 components after 3 minutes: {status}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let settled = started.elapsed();
    let peak = peak.max(proc_kib(pid, "VmHWM:"));
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "5000 components: apply answered in {answered:?}, status in {settled:?}; fosd RSS {} MiB before, {} MiB peak",
        before / 1024,
        peak / 1024
    );
    // The bound for a debug build; `make bench` (fos-bench-apply) measures the release build against 200 MiB.
    assert!(growth_mib < 1024, "fosd grew by {growth_mib} MiB");
    assert!(node_ready(&fos), "the node kept its lease");
    let deleted = fos.fosctl(&["delete", "big", "--wait", "--timeout", "120s"]);
    assert_eq!(deleted.code, 0, "{deleted:?}");
}

#[test]
fn on_a_full_disk_applies_are_refused_and_deletes_work() {
    // A 96 MiB tmpfs as the data directory: the free-space margin is 64 MiB.
    let fos = Fos::start_opts(Start { tmpfs_mib: Some(96), ..Start::default() });
    let marks = fos.marks();
    let app = format!(
        "apiVersion: fos/v1\nkind: Application\nmetadata: {{name: filler}}\nspec:\n  components:\n    - name: a\n      entity: {{kind: native, command: [sh, -c, 'touch {m}/a.started; sleep 1000']}}\n",
        m = marks.display()
    );
    let file = fos.file("filler.yaml", &app);
    let applied = fos.fosctl(&["apply", "-f", &file, "--wait", "--timeout", "60s"]);
    assert_eq!(applied.code, 0, "{applied:?}");

    // Fill the disk to the last byte.
    let data = fos.dir.path().join("data");
    let fill = data.join("fill");
    let mut f = std::fs::File::create(&fill).expect("the fill file");
    let chunk = vec![0u8; 1 << 20];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    let small = vec![0u8; 512];
    while f.write(&small).map(|n| n > 0).unwrap_or(false) {}
    drop(f);

    // An apply is refused with the reason; nothing of it is stored.
    let other = app.replace("name: filler", "name: other");
    let file = fos.file("other.yaml", &other);
    let refused = fos.fosctl(&["apply", "-f", &file]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("delete something first"), "{refused:?}");
    let apps = fos.fosctl(&["get", "apps", "-o", "json"]);
    assert!(!apps.stdout.contains("\"other\""), "{apps:?}");

    // A delete works, the instance stops, and the node keeps its lease.
    let deleted = fos.fosctl(&["delete", "filler", "--wait", "--timeout", "60s"]);
    assert_eq!(deleted.code, 0, "{deleted:?}");
    assert!(fos.items(&["get", "apps"]).is_empty());
    // Longer than the node's heartbeat lease (10 s), still on the full disk: its renewals went through.
    std::thread::sleep(Duration::from_secs(12));
    assert!(node_ready(&fos), "the node kept its lease on the full disk:\n{}", fos.log());
    std::fs::remove_file(&fill).expect("removing the fill file");
}
