//! Readiness probes (tcp, http, exec): one check each, bounded by a timeout, deciding an instance's `ready`. An
//! exec probe runs in a process group of its own, killed and waited for when it ends or times out, so a probe never
//! leaves processes behind.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fos_api::manifest::Probe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use super::group::ProcessGroup;
use super::native::identity::Identity;

/// How long one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the processes of a timed-out exec probe may take to die.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// Runs `probe` once against a process on this host; `dir` is the working directory for exec probes.
pub async fn check(probe: &Probe, dir: &Path) -> bool {
    check_within(probe, dir, PROBE_TIMEOUT, None).await
}

/// [`check`], with an exec probe run as `who` (the instance's own user, without capabilities).
pub async fn check_as(probe: &Probe, dir: &Path, who: Option<&Identity>) -> bool {
    check_within(probe, dir, PROBE_TIMEOUT, who).await
}

/// Runs `probe` once, failing it after `timeout`; an exec probe runs as `who` when given.
pub async fn check_within(probe: &Probe, dir: &Path, timeout: Duration, who: Option<&Identity>) -> bool {
    match probe {
        Probe::Tcp(port) => {
            tokio::time::timeout(timeout, TcpStream::connect(local(*port))).await.is_ok_and(|c| c.is_ok())
        }
        Probe::Http(http) => tokio::time::timeout(timeout, http_ok(http.port, &http.path)).await.unwrap_or(false),
        Probe::Exec(argv) => exec_ok(argv, dir, timeout, who).await,
    }
}

/// Runs a tcp or http `probe` once against `host` (a guest's address) instead of this host's loopback; an exec probe
/// runs here in `dir`.
pub async fn check_at(probe: &Probe, host: IpAddr, dir: &Path) -> bool {
    match probe {
        Probe::Tcp(port) => tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(SocketAddr::new(host, *port)))
            .await
            .is_ok_and(|c| c.is_ok()),
        Probe::Http(http) => {
            tokio::time::timeout(PROBE_TIMEOUT, http_ok_at(SocketAddr::new(host, http.port), &http.path))
                .await
                .unwrap_or(false)
        }
        Probe::Exec(_) => check(probe, dir).await,
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

async fn http_ok(port: u16, path: &str) -> bool {
    http_ok_at(local(port), path).await
}

async fn http_ok_at(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: fos-agent\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    // "HTTP/1.x NNN"
    let line = String::from_utf8_lossy(&head[..read]);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    matches!(code, Some(200..=399))
}

async fn exec_ok(argv: &[String], dir: &Path, timeout: Duration, who: Option<&Identity>) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.kill_on_drop(true).process_group(0);
    if let Some(id) = who {
        super::native::identity::apply(cmd.as_std_mut(), id);
    }
    let Ok(mut child) = cmd.spawn() else { return false };
    let Some(pgid) = child.id() else { return false };
    let group = ProcessGroup::new(pgid as i32, None);
    let status = tokio::time::timeout(timeout, child.wait()).await;
    // Timed out or not, nothing the probe started outlives it.
    if let Err(e) = group.kill_and_wait(KILL_PATIENCE).await {
        tracing::warn!(probe = ?argv, error = %e, "exec probe processes survive");
    }
    matches!(status, Ok(Ok(s)) if s.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fos_api::manifest::HttpProbe;

    #[tokio::test]
    async fn tcp_probe_follows_the_listener() {
        let listener = tokio::net::TcpListener::bind(local(0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = std::env::temp_dir();
        assert!(check(&Probe::Tcp(port), &dir).await);
        drop(listener);
        assert!(!check(&Probe::Tcp(port), &dir).await);
    }

    #[tokio::test]
    async fn http_probe_reads_the_status_code() {
        for (answer, expect) in [("HTTP/1.0 204 No Content\r\n\r\n", true), ("HTTP/1.0 503 Busy\r\n\r\n", false)] {
            let listener = tokio::net::TcpListener::bind(local(0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                s.write_all(answer.as_bytes()).await.unwrap();
            });
            let probe = Probe::Http(HttpProbe { port, path: "/health".into() });
            assert_eq!(check(&probe, &std::env::temp_dir()).await, expect, "{answer}");
            server.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_timed_out_exec_probe_leaves_no_process() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!("sleep 30 & echo $! >> {0}; echo $$ >> {0}; sleep 30", pids.display());
        let probe = Probe::Exec(vec!["sh".into(), "-c".into(), script]);
        let started = std::time::Instant::now();
        assert!(!check_within(&probe, dir.path(), Duration::from_millis(300), None).await, "timed out: not ready");
        assert!(started.elapsed() < Duration::from_secs(5), "the timeout holds");
        let written = std::fs::read_to_string(&pids).unwrap();
        let pids: Vec<u32> = written.lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_eq!(pids.len(), 2, "the probe's shell and its background child: {written}");
        for pid in pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("gone").to_string();
            assert!(state == "gone" || state == "Z", "process {pid} of the probe is still {state}");
        }
    }

    #[tokio::test]
    async fn exec_probe_uses_the_exit_status() {
        let dir = std::env::temp_dir();
        assert!(check(&Probe::Exec(vec!["true".into()]), &dir).await);
        assert!(!check(&Probe::Exec(vec!["false".into()]), &dir).await);
        assert!(!check(&Probe::Exec(vec!["/nonexistent/x".into()]), &dir).await);
    }
}
