//! Test helpers (feature `testing`): a real etcd (the system's `etcd` binary) on free loopback ports with a
//! temporary data directory, alone or as a 3-member cluster. Every process is killed and every directory removed
//! when the helper is dropped, also when the test panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use crate::{EtcdConfig, EtcdStore, EtcdTls, Store, StoreError};

/// The etcd binary: `$FOS_ETCD_BIN`, else `/usr/bin/etcd`.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("FOS_ETCD_BIN").map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from)
}

/// A free TCP port on 127.0.0.1 (free when asked; a clash makes the start fail and retry).
fn free_port() -> Result<u16, StoreError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| StoreError::Other(format!("free port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| StoreError::Other(format!("free port: {e}")))
}

/// One etcd member process.
struct Member {
    name: String,
    extra_args: Vec<String>,
    client_url: String,
    peer_url: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn new(name: &str, root: &Path, tls: Option<&ServerTls>) -> Result<Member, StoreError> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let extra_args = tls.map_or_else(Vec::new, |t| {
            let path = |p: &Path| p.display().to_string();
            vec![
                "--cert-file".into(),
                path(&t.cert),
                "--key-file".into(),
                path(&t.key),
                "--trusted-ca-file".into(),
                path(&t.ca),
                "--client-cert-auth".into(),
            ]
        });
        Ok(Member {
            name: name.to_string(),
            extra_args,
            client_url: format!("{scheme}://127.0.0.1:{}", free_port()?),
            peer_url: format!("http://127.0.0.1:{}", free_port()?),
            data_dir: root.join(name),
            log: root.join(format!("{name}.log")),
            child: None,
        })
    }

    fn spawn(&mut self, initial_cluster: &str) -> Result<(), StoreError> {
        let log = std::fs::File::create(&self.log).map_err(|e| StoreError::Other(format!("etcd log: {e}")))?;
        let log_err = log.try_clone().map_err(|e| StoreError::Other(format!("etcd log: {e}")))?;
        let child = Command::new(etcd_binary())
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &self.client_url, "--advertise-client-urls", &self.client_url])
            .args(["--listen-peer-urls", &self.peer_url, "--initial-advertise-peer-urls", &self.peer_url])
            .args(["--initial-cluster", initial_cluster, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "fos-test", "--logger", "zap", "--log-level", "warn"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| StoreError::Other(format!("starting {}: {e}", etcd_binary().display())))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| c.try_wait().map(|s| s.is_some()).unwrap_or(true))
    }
}

/// A set of etcd members forming one cluster.
pub struct EtcdCluster {
    members: Vec<Member>,
    client_tls: Option<EtcdTls>,
    _root: TempDir,
}

/// TLS for a test etcd's client port (clients must present a certificate signed by `ca`).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server certificate (PEM), valid for 127.0.0.1.
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// The CA that signs client certificates (PEM).
    pub ca: PathBuf,
}

/// A single-member etcd.
pub type EtcdServer = EtcdCluster;

impl EtcdCluster {
    /// Starts a single-member etcd and waits until it serves.
    pub async fn start() -> Result<EtcdCluster, StoreError> {
        EtcdCluster::start_members(1).await
    }

    /// Starts an `n`-member cluster and waits until it has a leader and serves.
    pub async fn start_members(n: usize) -> Result<EtcdCluster, StoreError> {
        let mut last = None;
        for _ in 0..3 {
            match EtcdCluster::try_start(n, None, None).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Other("etcd did not start".into())))
    }

    /// Starts a single-member etcd serving clients over TLS with client-certificate authentication; `client` is
    /// what the readiness check and [`EtcdCluster::store`] connect with.
    pub async fn start_tls(server: ServerTls, client: EtcdTls) -> Result<EtcdCluster, StoreError> {
        EtcdCluster::try_start(1, Some(server), Some(client)).await
    }

    async fn try_start(
        n: usize,
        tls: Option<ServerTls>,
        client_tls: Option<EtcdTls>,
    ) -> Result<EtcdCluster, StoreError> {
        let root = tempfile::Builder::new()
            .prefix("fos-etcd-")
            .tempdir()
            .map_err(|e| StoreError::Other(format!("temp dir: {e}")))?;
        let mut members =
            (0..n).map(|i| Member::new(&format!("m{i}"), root.path(), tls.as_ref())).collect::<Result<Vec<_>, _>>()?;
        let initial: Vec<String> = members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect();
        let initial = initial.join(",");
        let mut cluster = EtcdCluster { members: Vec::new(), client_tls, _root: root };
        for m in &mut members {
            m.spawn(&initial)?;
        }
        cluster.members = members;
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    async fn wait_ready(&mut self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for i in 0..self.members.len() {
            loop {
                if self.members[i].exited() {
                    let log = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
                    return Err(StoreError::Other(format!("etcd {} exited: {log}", self.members[i].name)));
                }
                let mut config = EtcdConfig::new([self.members[i].client_url.clone()]);
                config.tls = self.client_tls.clone();
                config.retry_for = Duration::from_millis(500);
                config.request_timeout = Duration::from_secs(1);
                if EtcdStore::connect(config).await.is_ok() {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(StoreError::Other(format!("etcd {} not ready in 30 s", self.members[i].name)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.members[i].client_url
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// A store connected to every member (default settings).
    pub async fn store(&self) -> Result<Arc<dyn Store>, StoreError> {
        let mut config = EtcdConfig::new(self.endpoints());
        config.tls = self.client_tls.clone();
        Ok(Arc::new(EtcdStore::connect(config).await?))
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}
