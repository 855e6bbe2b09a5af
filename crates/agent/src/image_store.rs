//! The node's image cache ([`NodeImageStore`], the [`ImageSource`] of a real agent): Image content kept by its
//! sha256 under `<data>/images/sha256/<hex>` (the same place the node's API stores uploads). An image the node lacks
//! is fetched into `<data>/images/incoming/<hex>.part` — from its `http(s)://` URI, from its `file://` URI or path,
//! or (an uploaded image, `fos:sha256:<hex>`) from a node holding a copy (`system/images/<hex>/<node>`), over that
//! node's authenticated API — resuming a fetch cut short from where it stopped, then checked against the recorded
//! sha256: a mismatch discards the copy and is refused. A checked copy is moved into place and recorded as this
//! node's (`system/images/<hex>/<this node>`), so other nodes may fetch it from here. The transfers themselves are
//! the [`ImageDownloader`]'s (`fosd` gives one with the cluster's CA and the node's token).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use fos_api::image::{ImageCopy, UPLOADED_URI_PREFIX};
use fos_api::manifest::{ImageSpec, Object};
use fos_store::records::{ImageCopies, Images, NodeStatuses};
use fos_store::Records;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::images::{ImageError, ImageSource, LocalImage};

/// Where to fetch content from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// An `http(s)://` URI.
    Uri(String),
    /// Another node's API (`address`: its `host:port`), asking for image `name`.
    Node {
        /// The node.
        node: String,
        /// Its API address.
        address: String,
        /// The image.
        name: String,
    },
}

/// Transfers image content (HTTP(S) and node-to-node); `fosd` implements it with the cluster's CA and node token.
#[async_trait]
pub trait ImageDownloader: Send + Sync {
    /// Appends the content of `from`, starting at byte `offset`, to the file at `out`.
    async fn download(&self, from: &Download, offset: u64, out: &Path) -> Result<(), String>;
}

/// An [`ImageDownloader`] to hand the agent ([`crate::AgentConfig::image_downloader`]).
#[derive(Clone)]
pub struct Downloader(pub Arc<dyn ImageDownloader>);

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Downloader")
    }
}

/// The node's content-addressed image cache.
pub struct NodeImageStore {
    dir: PathBuf,
    records: Records,
    node: String,
    downloader: Option<Arc<dyn ImageDownloader>>,
    fetching: tokio::sync::Mutex<()>,
}

impl NodeImageStore {
    /// A cache under `dir` (`<data>/images`) for node `node`, fetching with `downloader` (none: local content only).
    pub fn new(
        dir: impl Into<PathBuf>,
        records: Records,
        node: impl Into<String>,
        downloader: Option<Arc<dyn ImageDownloader>>,
    ) -> Self {
        NodeImageStore {
            dir: dir.into(),
            records,
            node: node.into(),
            downloader,
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Where the content of sha256 `hex` is kept.
    pub fn content_path(&self, hex: &str) -> PathBuf {
        self.dir.join("sha256").join(hex)
    }

    /// The spec of Image `name`; a reference that is a URI (a fog05 `base_image`) names the Image with that `uri`,
    /// whose checksum the content is checked against.
    async fn spec(&self, name: &str) -> Result<ImageSpec, ImageError> {
        let store = |e: fos_store::StoreError| ImageError::Store { name: name.to_string(), message: e.to_string() };
        if name.contains("://") {
            let (all, _) = self.records.list::<Images>().await.map_err(store)?;
            return all
                .into_iter()
                .find_map(|(_, v)| match v.value {
                    Object::Image(image) if image.spec.uri == name => Some(image.spec),
                    _ => None,
                })
                .ok_or_else(|| {
                    ImageError::NotFound(format!("{name} (no Image object has this uri to give its sha256)"))
                });
        }
        match self.records.get::<Images>(&name.to_string()).await.map_err(store)? {
            Some(v) => match v.value {
                Object::Image(image) => Ok(image.spec),
                _ => Err(ImageError::NotFound(name.to_string())),
            },
            None => Err(ImageError::NotFound(name.to_string())),
        }
    }

    /// Where the content can be fetched from, best first.
    async fn sources(&self, name: &str, spec: &ImageSpec) -> Result<Vec<Download>, ImageError> {
        if spec.uri.starts_with("http://") || spec.uri.starts_with("https://") {
            return Ok(vec![Download::Uri(spec.uri.clone())]);
        }
        let store = |e: fos_store::StoreError| ImageError::Store { name: name.to_string(), message: e.to_string() };
        let prefix = format!("{}{}/", self.records.keys().system_prefix("images"), spec.checksum);
        let (copies, _) = self.records.list_in::<ImageCopies>(&prefix).await.map_err(store)?;
        let mut sources = Vec::new();
        for ((_, node), _) in copies {
            if node == self.node {
                continue;
            }
            let status = self.records.get::<NodeStatuses>(&node).await.map_err(store)?;
            if let Some(address) = status.and_then(|s| s.value.address) {
                sources.push(Download::Node { node, address, name: name.to_string() });
            }
        }
        Ok(sources)
    }

    async fn record_copy(&self, name: &str, hex: &str, size: u64) -> Result<(), ImageError> {
        let id = (hex.to_string(), self.node.clone());
        let store = |e: fos_store::StoreError| ImageError::Store { name: name.to_string(), message: e.to_string() };
        if self.records.get::<ImageCopies>(&id).await.map_err(store)?.is_none() {
            self.records.put::<ImageCopies>(&id, &ImageCopy { size, since: Utc::now() }, None).await.map_err(store)?;
        }
        Ok(())
    }

    /// Copies a local file (`file://` URI or path) into `part`.
    async fn copy_local(&self, name: &str, uri: &str, part: &Path) -> Result<(), ImageError> {
        let source = PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri));
        tokio::fs::copy(&source, part).await.map(|_| ()).map_err(|e| ImageError::Fetch {
            name: name.to_string(),
            message: format!("copying {}: {e}", source.display()),
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io { path: path.to_path_buf(), source }
}

/// The sha256 (lowercase hex) and size of a file.
pub async fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hash.finalize().iter().map(|b| format!("{b:02x}")).collect(), size))
}

#[async_trait]
impl ImageSource for NodeImageStore {
    async fn ensure(&self, name: &str) -> Result<LocalImage, ImageError> {
        let spec = self.spec(name).await?;
        let hex = spec.checksum.to_ascii_lowercase();
        let path = self.content_path(&hex);
        let _one_at_a_time = self.fetching.lock().await;
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            crate::image_gc::touch(&path);
            self.record_copy(name, &hex, meta.len()).await?;
            return Ok(LocalImage { path, format: spec.format });
        }
        let incoming = self.dir.join("incoming");
        tokio::fs::create_dir_all(&incoming).await.map_err(io(&incoming))?;
        let part = incoming.join(format!("{hex}.part"));
        let mut last = None;
        let sources = if spec.uri.starts_with(UPLOADED_URI_PREFIX)
            || spec.uri.starts_with("http://")
            || spec.uri.starts_with("https://")
        {
            self.sources(name, &spec).await?
        } else {
            Vec::new()
        };
        if sources.is_empty() && !spec.uri.starts_with(UPLOADED_URI_PREFIX) && !spec.uri.starts_with("http") {
            self.copy_local(name, &spec.uri, &part).await?;
        } else if sources.is_empty() {
            return Err(ImageError::Fetch { name: name.to_string(), message: "no node holds a copy of it".into() });
        }
        for source in &sources {
            let Some(downloader) = &self.downloader else {
                return Err(ImageError::Fetch {
                    name: name.to_string(),
                    message: "this node cannot fetch images".into(),
                });
            };
            let offset = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
            match downloader.download(source, offset, &part).await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(message) => {
                    tracing::warn!(image = name, ?source, %message, "image fetch failed");
                    last = Some(ImageError::Fetch { name: name.to_string(), message });
                }
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        let (actual, size) = sha256_file(&part).await.map_err(io(&part))?;
        if actual != hex {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(ImageError::Mismatch { name: name.to_string(), expected: hex, actual });
        }
        let sha_dir = self.dir.join("sha256");
        tokio::fs::create_dir_all(&sha_dir).await.map_err(io(&sha_dir))?;
        tokio::fs::rename(&part, &path).await.map_err(io(&path))?;
        tracing::info!(image = name, sha256 = %hex, size, "image fetched and checked");
        self.record_copy(name, &hex, size).await?;
        Ok(LocalImage { path, format: spec.format })
    }
}
