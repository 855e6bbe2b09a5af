//! Joining the cluster, k3s style. The first node makes the cluster's CA, secrets key and join token, and stores
//! the CA (its key and the secrets key sealed with a key derived from the join token) in the bootstrap record;
//! every other node starts with the join token (`--join-token-file`, `--join-token`), opens that record and so
//! serves a certificate of the same CA and opens the same Secrets. Every node then issues its own serving
//! certificate, publishes its node token (for calls between nodes), and writes the administrator's client
//! configuration `<data-dir>/fosctl.yaml` (mode 0600) the first time.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use fos_api::auth::{ClientConfig, Role};
use fos_controller::auth::{self, Peer};
use fos_store::records::{Bootstrap, BootstrapRecord, BootstrapSecrets, Tokens, CLUSTER};
use fos_store::seal::{random_bytes, SealKey};
use fos_store::{Records, Txn};

use crate::options::Options;
use crate::pki::{self, Ca};

/// What the API and the agent need of the cluster's security.
pub struct Security {
    /// The API's TLS configuration (none behind `--insecure-plaintext`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The key Secrets are sealed with.
    pub secrets: Arc<SealKey>,
    /// How this node calls the others.
    pub peer: Peer,
}

/// Writes `text` to `path`, readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_trimmed(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?.trim().to_string())
}

/// The join token this node was given, or kept from an earlier start.
fn given_join_token(opts: &Options) -> anyhow::Result<Option<String>> {
    if let Some(t) = &opts.join_token {
        return Ok(Some(t.trim().to_string()));
    }
    if let Some(p) = &opts.join_token_file {
        return Ok(Some(read_trimmed(p)?));
    }
    let kept = opts.data_dir.join("join-token");
    Ok(if kept.exists() { Some(read_trimmed(&kept)?) } else { None })
}

fn token_check(token: &str) -> String {
    SealKey::derive(token, "join token check").digest(b"fos join token")
}

/// The secrets key of `--secrets-key`, else the one kept in the data directory.
fn local_secrets_key(opts: &Options) -> anyhow::Result<Option<SealKey>> {
    let path = opts.secrets_key.clone().unwrap_or_else(|| opts.data_dir.join("secrets.key"));
    if !path.exists() {
        if opts.secrets_key.is_some() {
            bail!("--secrets-key {}: no such file", path.display());
        }
        return Ok(None);
    }
    let key = SealKey::from_hex(&read_trimmed(&path)?).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(key))
}

/// Makes the bootstrap record of a new cluster; `None` when another node made one first.
async fn create(opts: &Options, records: &Records, token: &str) -> anyhow::Result<Option<(Ca, SealKey)>> {
    let ca = match (&opts.ca, &opts.tls_cert) {
        (Some(ca), Some(_)) => Ca { cert: std::fs::read_to_string(ca).context("reading --ca")?, key: String::new() },
        _ => pki::new_ca()?,
    };
    let secrets = match local_secrets_key(opts)? {
        Some(k) => k,
        None => SealKey::generate()?,
    };
    let inner = BootstrapSecrets { ca_key: ca.key.clone(), secrets_key: secrets.to_hex() };
    let key = records.key::<Bootstrap>(&CLUSTER.to_string());
    let sealed = SealKey::derive(token, "bootstrap").seal(&serde_json::to_vec(&inner)?, &key)?;
    let rec = BootstrapRecord { ca_cert: ca.cert.clone(), token_check: token_check(token), sealed };
    let id = CLUSTER.to_string();
    let made = records
        .store()
        .txn(Txn {
            compare: vec![records.absent::<Bootstrap>(&id)],
            success: vec![records.put_op::<Bootstrap>(&id, &rec)?],
            failure: vec![],
        })
        .await?;
    Ok(made.succeeded.then_some((ca, secrets)))
}

/// Opens the existing bootstrap record with `token`.
fn open(rec: &BootstrapRecord, records: &Records, token: Option<&str>) -> anyhow::Result<(Ca, SealKey)> {
    let Some(token) = token else {
        bail!(
            "this store already holds a fos cluster: start with --join-token-file FILE (the first node's \
             <data-dir>/join-token) to join it"
        );
    };
    if token_check(token) != rec.token_check {
        bail!("the join token does not match this cluster's (see the first node's <data-dir>/join-token)");
    }
    let key = records.key::<Bootstrap>(&CLUSTER.to_string());
    let plain = SealKey::derive(token, "bootstrap").open(&rec.sealed, &key).context("opening the bootstrap record")?;
    let inner: BootstrapSecrets = serde_json::from_slice(&plain).context("reading the bootstrap record")?;
    Ok((Ca { cert: rec.ca_cert.clone(), key: inner.ca_key }, SealKey::from_hex(&inner.secrets_key)?))
}

/// The names and addresses this node's certificate is for.
fn names(opts: &Options, node: &str) -> Vec<String> {
    let mut out = vec![node.to_string(), "localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !opts.listen.ip().is_unspecified() {
        out.push(opts.listen.ip().to_string());
    }
    if let Some(a) = &opts.advertise {
        let host = a.rsplit_once(':').map(|(h, _)| h).unwrap_or(a).trim_matches(['[', ']']);
        out.push(host.to_string());
    }
    out.extend(opts.tls_san.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    out
}

/// The URL clients of this node use.
pub fn server_url(opts: &Options) -> String {
    let scheme = if opts.insecure_plaintext { "http" } else { "https" };
    let ip = opts.listen.ip();
    let host = if ip.is_unspecified() {
        "127.0.0.1".to_string()
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("{scheme}://{host}:{}", opts.listen.port())
}

/// Joins (or makes) the cluster: certificates, keys, this node's token and the administrator's configuration.
pub async fn prepare(opts: &Options, records: &Records, node: &str) -> anyhow::Result<Security> {
    let data = &opts.data_dir;
    let tls_dir = data.join("tls");
    std::fs::create_dir_all(&tls_dir).with_context(|| format!("creating {}", tls_dir.display()))?;
    std::fs::set_permissions(&tls_dir, std::fs::Permissions::from_mode(0o700))?;
    let given = given_join_token(opts)?;
    let id = CLUSTER.to_string();
    let (ca, secrets, token) = loop {
        if let Some(rec) = records.get::<Bootstrap>(&id).await? {
            let (ca, key) = open(&rec.value, records, given.as_deref())?;
            break (ca, key, given.clone().unwrap_or_default());
        }
        let token = match &given {
            Some(t) => t.clone(),
            None => format!("fosjoin.{}", B64.encode(random_bytes::<32>()?)),
        };
        if let Some((ca, key)) = create(opts, records, &token).await? {
            tracing::info!(join_token = %data.join("join-token").display(), "made a new cluster");
            break (ca, key, token);
        }
    };
    write_private(&data.join("join-token"), &format!("{token}\n"))?;
    let secrets = match local_secrets_key(opts)? {
        Some(local) if opts.secrets_key.is_some() => local,
        _ => secrets,
    };
    write_private(&data.join("secrets.key"), &format!("{}\n", secrets.to_hex()))?;
    std::fs::write(tls_dir.join("ca.pem"), &ca.cert)?;

    let tls = if opts.insecure_plaintext {
        None
    } else {
        let (cert, key) = match (&opts.tls_cert, &opts.tls_key) {
            (Some(c), Some(k)) => (
                std::fs::read_to_string(c).with_context(|| format!("reading {}", c.display()))?,
                std::fs::read_to_string(k).with_context(|| format!("reading {}", k.display()))?,
            ),
            _ if ca.key.is_empty() => {
                bail!("the cluster's CA was given without its key: give this node --tls-cert and --tls-key too")
            }
            _ => pki::server_cert(&ca, &names(opts, node))?,
        };
        std::fs::write(tls_dir.join("server.pem"), &cert)?;
        write_private(&tls_dir.join("server-key.pem"), &key)?;
        Some(pki::server_config(&cert, &key)?)
    };

    // This node's token, for calling the API of other nodes (replaced at every start).
    let node_id = format!("node-{node}");
    let secret = B64.encode(random_bytes::<32>()?);
    let node_token = format!("{}.{node_id}.{secret}", fos_api::auth::TOKEN_PREFIX);
    let rec = auth::record(&node_id, &node_token, Role::Node, None, &format!("node {node}"), None);
    records.put::<Tokens>(&node_id, &rec, None).await?;
    let http = reqwest::Client::builder().tls_backend_preconfigured(pki::client_config(&ca.cert)?).build()?;
    let peer = Peer { http, scheme: if opts.insecure_plaintext { "http" } else { "https" }, token: node_token };

    write_client_config(opts, records, node, &ca).await?;
    Ok(Security { tls, secrets: Arc::new(secrets), peer })
}

/// Writes `<data-dir>/fosctl.yaml` with an administrator token made for it the first time; later starts keep the
/// token and update the server and CA.
async fn write_client_config(opts: &Options, records: &Records, node: &str, ca: &Ca) -> anyhow::Result<PathBuf> {
    let path = opts.data_dir.join("fosctl.yaml");
    let kept: Option<ClientConfig> = std::fs::read_to_string(&path).ok().and_then(|t| serde_yaml_ng::from_str(&t).ok());
    let kept_token = match kept.and_then(|c| c.token) {
        Some(t) => match fos_api::auth::token_id(&t) {
            Some(id) if records.get::<Tokens>(&id.to_string()).await?.is_some() => Some(t),
            _ => None,
        },
        None => None,
    };
    let token = match kept_token {
        Some(t) => t,
        None => {
            let (id, token) = auth::new_token()?;
            let rec = auth::record(&id, &token, Role::Admin, None, &format!("admin (written by {node})"), None);
            records.put::<Tokens>(&id, &rec, None).await?;
            token
        }
    };
    let config = ClientConfig {
        server: Some(server_url(opts)),
        ca: (!opts.insecure_plaintext).then(|| ca.cert.clone()),
        token: Some(token),
    };
    let text = format!(
        "# fosctl configuration for this fos cluster, with an administrator token: keep it private.\n{}",
        serde_yaml_ng::to_string(&config)?
    );
    write_private(&path, &text)?;
    tracing::info!(path = %path.display(), "wrote the administrator's client configuration");
    Ok(path)
}
