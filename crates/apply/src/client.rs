//! The HTTP client of the fos API: finds the server (`--server`, `FOS_SERVER`, `~/.config/fos/config.yaml`,
//! else `http://127.0.0.1:7887`), sends JSON, and turns error answers into [`ServerError`]s that say what the server
//! said (with the object index and field path when a manifest is at fault).

use std::fmt;
use std::path::PathBuf;

use fos_api::wire::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The default API address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7887";

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

/// A connection to one fos API server.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// The server named by the config file `~/.config/fos/config.yaml` (`server: http://host:port`), if any.
fn configured_server() -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".config/fos/config.yaml");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
    v.get("server")?.as_str().map(str::to_string)
}

impl Client {
    /// A client of `server` (from `--server`/`FOS_SERVER`), else of the configured or default server.
    pub fn new(server: Option<&str>) -> anyhow::Result<Client> {
        let base = server.map(str::to_string).or_else(configured_server).unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let base = if base.contains("://") { base } else { format!("http://{base}") };
        let http = reqwest::Client::builder().build()?;
        Ok(Client { base: base.trim_end_matches('/').to_string(), http })
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
        anyhow::anyhow!("cannot reach the fos API at {}: {e}", self.base)
    }

    /// `GET path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.http.get(self.url(path)).send().await.map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let resp = self.http.post(self.url(path)).json(body).send().await.map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self.http.delete(self.url(path)).send().await.map_err(|e| self.unreachable(e))?;
        self.decode(resp).await
    }

    /// `GET path` as a byte stream (logs, watch).
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let resp = self.http.get(self.url(path)).send().await.map_err(|e| self.unreachable(e))?;
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
