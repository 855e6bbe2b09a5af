//! `fosd`'s command line (roles, store, listen address, node identity) and its logging set-up.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// fosd: the fos node daemon (api + controller + agent, with an embedded store unless --etcd is given).
#[derive(Debug, Parser)]
#[command(name = "fosd", version, about)]
pub struct Options {
    /// Where the embedded store and the instances' files live.
    #[arg(long, default_value = "/var/lib/fos", env = "FOS_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Use this etcd cluster instead of the embedded store (comma-separated client URLs).
    #[arg(long, value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// CA certificate to verify etcd's servers with (PEM).
    #[arg(long, requires = "etcd")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd (PEM).
    #[arg(long, requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Client key for etcd (PEM).
    #[arg(long, requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// The name etcd's server certificates carry, when not the endpoints' host.
    #[arg(long, requires = "etcd")]
    pub etcd_domain: Option<String>,
    /// etcd user (the password is read from `FOS_ETCD_PASSWORD`).
    #[arg(long, requires = "etcd")]
    pub etcd_user: Option<String>,
    /// Address the API (and /healthz, /metrics) listens on.
    #[arg(long, default_value = "127.0.0.1:7887", env = "FOS_LISTEN")]
    pub listen: SocketAddr,
    /// Address other nodes reach this node's API at, `host` or `host:port` (default: the listen address, or the
    /// address of the default route when listening on every address); published in the node's heartbeat.
    #[arg(long)]
    pub advertise: Option<String>,
    /// A node without a heartbeat for this long is lost and its instances are placed elsewhere (`20s`, `5s`; the
    /// same on every node). The heartbeat period, lease TTL and fence deadline derive from it.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub node_lost_after: std::time::Duration,
    /// Serve the API with this certificate (PEM chain) instead of one issued by the cluster CA.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The CA that signed `--tls-cert` (PEM), handed to clients and other nodes.
    #[arg(long, requires = "tls_cert")]
    pub ca: Option<PathBuf>,
    /// Another name or address for this node's serving certificate (repeatable).
    #[arg(long)]
    pub tls_san: Vec<String>,
    /// Serve the API over plain HTTP (tokens are still required). Refused on any address other than loopback.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Also serve the fog05 REST API (what `fog05rest` and OSM's fos VIM connector speak) on this address, for the
    /// tenant of `--fog05-rest-tenant`. It cannot authenticate: loopback only unless `--fog05-rest-insecure`.
    #[arg(long, requires = "fog05_rest_tenant")]
    pub fog05_rest: Option<SocketAddr>,
    /// The one tenant the fog05 REST API acts for.
    #[arg(long, requires = "fog05_rest")]
    pub fog05_rest_tenant: Option<String>,
    /// Let the fog05 REST API listen on other addresses than loopback (it has no authentication; warned at every
    /// start).
    #[arg(long, requires = "fog05_rest")]
    pub fog05_rest_insecure: bool,
    /// Join the cluster in the store with this token (the first node's `<data-dir>/join-token`).
    #[arg(long, env = "FOS_JOIN_TOKEN", hide_env_values = true, conflicts_with = "join_token_file")]
    pub join_token: Option<String>,
    /// Join the cluster with the token in this file.
    #[arg(long)]
    pub join_token_file: Option<PathBuf>,
    /// The key Secrets are encrypted with (64 hexadecimal digits in a file; default: the cluster's, kept in
    /// `<data-dir>/secrets.key`).
    #[arg(long)]
    pub secrets_key: Option<PathBuf>,
    /// Most API connections open at once (default: from the open-file limit).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Free space applies must leave on the data directory's file system, for deletes (`64Mi`, `1Gi`).
    #[arg(long, default_value = "64Mi")]
    pub free_space_margin: fos_api::ByteSize,
    /// This node's name (default: the host name).
    #[arg(long, env = "FOS_NODE_NAME")]
    pub node_name: Option<String>,
    /// The node's configuration file (labels, declared devices, position, runtimes).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The system id (store key prefix `/fos/<sys>/`).
    #[arg(long, default_value = fos_api::keys::DEFAULT_SYSTEM)]
    pub system: String,
    /// Do not serve the API.
    #[arg(long)]
    pub no_api: bool,
    /// Do not run the controller.
    #[arg(long)]
    pub no_controller: bool,
    /// Do not run the node agent.
    #[arg(long)]
    pub no_agent: bool,
    /// On shutdown, stop and remove everything the agent created on this machine (instances, their cgroups and
    /// directories, network namespaces, links, `dnsmasq`, forwarding entries) instead of leaving the instances
    /// running for the next start to adopt.
    #[arg(long)]
    pub cleanup: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (`info`, `fos_controller=debug`); `RUST_LOG` overrides it.
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// Parses `500ms`, `20s`, `1m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    fos_agent::config::parse_duration(text).ok_or_else(|| format!("`{text}` is not a duration (500ms, 20s, 1m)"))
}

impl Options {
    /// Refuses option combinations that would expose the API: plaintext on anything but loopback.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.insecure_plaintext && !self.listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing --insecure-plaintext on {}: a plaintext API is only allowed on a loopback address \
                 (127.0.0.1, ::1); drop the flag to serve HTTPS",
                self.listen
            );
        }
        if let Some(rest) = self.fog05_rest() {
            rest.check().map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// The fog05 REST listener's settings, when `--fog05-rest` is given.
    pub fn fog05_rest(&self) -> Option<fos_controller::fog05::Fog05Rest> {
        Some(fos_controller::fog05::Fog05Rest {
            listen: self.fog05_rest?,
            tenant: self.fog05_rest_tenant.clone().unwrap_or_default(),
            insecure: self.fog05_rest_insecure,
        })
    }

    /// The node's name: `--node-name`, else the host name, else `node`.
    pub fn node_name(&self) -> String {
        if let Some(n) = &self.node_name {
            return n.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_ascii_lowercase().replace(['.', '_'], "-"))
            .ok()
            .filter(|h| fos_api::validate_name(h).is_ok())
            .unwrap_or_else(|| "node".to_string())
    }
}

/// Installs the `tracing` subscriber: text with ANSI colours only when standard error is a terminal (a log file or
/// journal gets plain lines), or JSON.
pub fn init_logging(opts: &Options) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&opts.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match opts.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
