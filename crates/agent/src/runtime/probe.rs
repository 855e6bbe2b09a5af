//! Readiness probes (tcp, http, exec): one check each, bounded by a timeout, deciding an instance's `ready`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fos_api::manifest::Probe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use super::native::identity::Identity;

/// How long one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `probe` once against a process on this host; `dir` is the working directory for exec probes.
pub async fn check(probe: &Probe, dir: &Path) -> bool {
    check_as(probe, dir, None).await
}

/// [`check`], with an exec probe run as `who` (the instance's own user, without capabilities).
pub async fn check_as(probe: &Probe, dir: &Path, who: Option<&Identity>) -> bool {
    tokio::time::timeout(PROBE_TIMEOUT, check_inner(probe, dir, who)).await.unwrap_or(false)
}

async fn check_inner(probe: &Probe, dir: &Path, who: Option<&Identity>) -> bool {
    match probe {
        Probe::Tcp(port) => TcpStream::connect(local(*port)).await.is_ok(),
        Probe::Http(http) => http_ok(http.port, &http.path).await,
        Probe::Exec(argv) => exec_ok(argv, dir, who).await,
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

async fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(local(port)).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\nUser-Agent: fos-agent\r\n\r\n");
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

async fn exec_ok(argv: &[String], dir: &Path, who: Option<&Identity>) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.kill_on_drop(true);
    if let Some(id) = who {
        super::native::identity::apply(cmd.as_std_mut(), id);
    }
    matches!(cmd.status().await, Ok(s) if s.success())
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
    async fn exec_probe_uses_the_exit_status() {
        let dir = std::env::temp_dir();
        assert!(check(&Probe::Exec(vec!["true".into()]), &dir).await);
        assert!(!check(&Probe::Exec(vec!["false".into()]), &dir).await);
        assert!(!check(&Probe::Exec(vec!["/nonexistent/x".into()]), &dir).await);
    }
}
