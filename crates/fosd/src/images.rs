//! The node's [`ImageDownloader`]: image content from an `http(s)://` URI (HTTPS checked against the system's root
//! certificates) or from another node's API (`GET /v1/images/{name}/content?offset=N`, TLS checked against the
//! cluster CA, with this node's token), appended to the agent's partial file from the offset it asks for. A server
//! that ignores the `Range` of a resumed URI fetch sends everything again: the file is then started over.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use fos_agent::image_store::{Download, ImageDownloader};
use fos_controller::auth::Peer;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

/// Fetches image content for the node's agent.
pub struct HttpDownloader {
    peer: Peer,
    public: reqwest::Client,
}

impl HttpDownloader {
    /// A downloader calling other nodes as `peer` and URIs with the system's root certificates.
    pub fn new(peer: Peer) -> anyhow::Result<Arc<Self>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let public = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("an HTTP client for image URIs")?;
        Ok(Arc::new(HttpDownloader { peer, public }))
    }

    async fn fetch(&self, from: &Download, offset: u64, out: &Path) -> anyhow::Result<()> {
        let request = match from {
            Download::Uri(uri) => {
                let req = self.public.get(uri);
                if offset > 0 {
                    req.header(reqwest::header::RANGE, format!("bytes={offset}-"))
                } else {
                    req
                }
            }
            Download::Node { address, name, .. } => {
                let url = format!("{}://{address}/v1/images/{name}/content?offset={offset}", self.peer.scheme);
                self.peer.http.get(url).bearer_auth(&self.peer.token)
            }
        };
        let resp = request.send().await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!("{status}: {}", body.trim());
        }
        let restart = offset > 0 && matches!(from, Download::Uri(_)) && status != reqwest::StatusCode::PARTIAL_CONTENT;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(!restart)
            .write(true)
            .truncate(restart)
            .open(out)
            .await
            .with_context(|| out.display().to_string())?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            file.write_all(&chunk?).await.with_context(|| out.display().to_string())?;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(())
    }
}

#[async_trait]
impl ImageDownloader for HttpDownloader {
    async fn download(&self, from: &Download, offset: u64, out: &Path) -> Result<(), String> {
        self.fetch(from, offset, out).await.map_err(|e| format!("{e:#}"))
    }
}
