//! The HTTPS client of the fos API: finds the server, the CA and the token (`--server`/`FOS_SERVER`, `--ca`,
//! `--token`/`FOS_TOKEN`, else the configuration file of `--config`, `FOS_CONFIG` or `~/.config/fos/config.yaml`;
//! the server defaults to `https://127.0.0.1:7887`), sends JSON with the bearer token, and turns error answers into
//! [`ServerError`]s that say what the server said (with the object index and field path when a manifest is at
//! fault).

use std::fmt;
use std::path::{Path, PathBuf};

use fos_api::auth::ClientConfig;
use fos_api::wire::ErrorBody;
use fos_apply::load::read_manifest;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The default API address.
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:7887";

/// The API answered with an error.
#[derive(Debug)]
pub struct ServerError {
    /// The HTTP status.
    pub status: u16,
    /// What the server said.
    pub body: ErrorBody,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body.message)?;
        if let Some(p) = &self.body.path {
            write!(f, " (at {p})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

/// A connection to one fos API server (clones share the connection pool).
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// Where the client configuration comes from: `--config`, else `FOS_CONFIG`, else `~/.config/fos/config.yaml`
/// when it exists.
fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("FOS_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".config/fos/config.yaml");
    path.exists().then_some(path)
}

/// Reads the client configuration file (server, CA, token) and the directory relative paths in it start from.
pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<(ClientConfig, PathBuf)> {
    let Some(path) = config_path(explicit) else { return Ok((ClientConfig::default(), PathBuf::from("."))) };
    let text = read_manifest(&path).map_err(|e| anyhow::anyhow!("reading the fosctl configuration {e}"))?;
    let config: ClientConfig = serde_yaml_ng::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a fosctl configuration (server, ca, token): {e}", path.display()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((config, dir))
}

/// The CA named by a configuration (PEM text, or a file relative to `dir`) as PEM text.
fn ca_pem(ca: &str, dir: &Path) -> anyhow::Result<String> {
    if ca.trim_start().starts_with("-----BEGIN") {
        return Ok(ca.to_string());
    }
    read_manifest(&dir.join(ca)).map_err(|e| anyhow::anyhow!("reading the CA {e}"))
}

/// A TLS client configuration trusting the certificates of `pem` (none: trusting nothing, so an HTTPS server
/// cannot be reached without a CA).
fn tls_config(pem: Option<&str>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = pem {
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.map_err(|e| anyhow::anyhow!("reading the CA: {e}"))?)?;
        }
        anyhow::ensure!(!roots.is_empty(), "the CA holds no certificate");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// What the command line says about the connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct Connect<'a> {
    /// `--server` / `FOS_SERVER`.
    pub server: Option<&'a str>,
    /// `--config` / `FOS_CONFIG`.
    pub config: Option<&'a Path>,
    /// `--token` / `FOS_TOKEN`.
    pub token: Option<&'a str>,
    /// `--ca`.
    pub ca: Option<&'a Path>,
}

impl Client {
    /// A client as the command line and the configuration file say: the server (`https://` unless a scheme is
    /// given), the CA it is trusted with, and the bearer token.
    pub fn new(c: Connect<'_>) -> anyhow::Result<Client> {
        let (config, dir) = load_config(c.config)?;
        let base = c.server.map(str::to_string).or(config.server.clone()).unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let base = if base.contains("://") { base } else { format!("https://{base}") };
        let ca = match c.ca {
            Some(path) => Some(read_manifest(path).map_err(|e| anyhow::anyhow!("reading the CA {e}"))?),
            None => config.ca.as_deref().map(|ca| ca_pem(ca, &dir)).transpose()?,
        };
        let http = reqwest::Client::builder().tls_backend_preconfigured(tls_config(ca.as_deref())?).build()?;
        let token = c.token.map(str::to_string).or(config.token);
        Ok(Client { base: base.trim_end_matches('/').to_string(), http, token })
    }

    /// The server's base URL (`https://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn decode<T: DeserializeOwned>(&self, resp: reqwest::Response) -> anyhow::Result<T> {
        if resp.status().is_success() {
            return Ok(serde_json::from_slice(&resp.bytes().await?)?);
        }
        Err(failure(resp).await)
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why.push_str(&format!(": {s}"));
            source = s.source();
        }
        anyhow::anyhow!("cannot reach the fos API at {}: {why}", self.base)
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.request(reqwest::Method::GET, path).send().await.map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let resp = self.request(reqwest::Method::PUT, path).json(body).send().await.map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let resp =
            self.request(reqwest::Method::POST, path).json(body).send().await.map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    /// `POST path` with a streamed body (an image upload), answered with JSON.
    pub async fn post_body<T: DeserializeOwned>(&self, path: &str, body: reqwest::Body) -> anyhow::Result<T> {
        let resp = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.request(reqwest::Method::DELETE, path).send().await.map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    /// `GET path` as a byte stream (logs, watch).
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let resp = self.request(reqwest::Method::GET, path).send().await.map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(failure(resp).await)
    }
}

/// The error a failed response carries.
async fn failure(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return e.into(),
    };
    let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
        message: format!("{status}: {}", String::from_utf8_lossy(&bytes).trim()),
        index: None,
        kind: None,
        name: None,
        path: None,
    });
    ServerError { status: status.as_u16(), body }.into()
}

/// Percent-encodes a query value.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
