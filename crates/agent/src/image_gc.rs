//! Garbage collection of the node's image content (`<data>/images/sha256/<hex>`, [`crate::image_store`]): content
//! no Image object names any more (the Image was deleted) goes, unless an instance of this node still uses it; and,
//! with a cap on the cache's size (`images: {maxBytes}` in the node configuration), the least recently used content
//! of live Images goes too until the cache fits, but only content the node can fetch again (the Image has an
//! `http(s)` URI, or another node holds a copy) and no instance uses. Each removal also removes this node's copy
//! record (`system/images/<hex>/<node>`), so no node asks this one for it.
//!
//! Content younger than a minute is left alone when no Image names it (an upload moves its content in just before it
//! records the Image). "Used by an instance" is read from the instances' own files, so it holds for content whose Image is gone: a VM's
//! domain XML names its kernel and initrd by path, and its qcow2 overlay names its backing file in its header.
//! The collector runs when the agent starts and then every `images.gcIntervalSecs` (default 300 s).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fos_api::image::UPLOADED_URI_PREFIX;
use fos_api::manifest::Object;
use fos_store::records::{ImageCopies, Images};
use fos_store::Records;
use serde::{Deserialize, Serialize};

/// The node configuration's `images` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageCacheConfig {
    /// Seconds between collections (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_interval_secs: Option<u64>,
    /// The most the cache may hold (`20Gi`); none: no cap, only deleted Images' content goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<fos_api::quantity::ByteSize>,
}

impl ImageCacheConfig {
    /// Whether nothing is set.
    pub fn is_default(&self) -> bool {
        *self == ImageCacheConfig::default()
    }

    /// The cap in bytes, when one is set; an error says what is wrong with it.
    pub fn max_bytes(&self) -> Result<Option<u64>, String> {
        self.max_bytes.as_ref().map(|b| b.bytes().map_err(|e| format!("images.maxBytes: {e}"))).transpose()
    }

    /// The time between collections.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.gc_interval_secs.unwrap_or(300).max(1))
    }
}

/// Content younger than this is never collected for lack of an Image: an upload renames its content in just before
/// it records the Image.
const GRACE: Duration = Duration::from_secs(60);

/// What one collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// The sha256 of each content removed.
    pub removed: Vec<String>,
    /// Bytes freed.
    pub freed: u64,
}

/// The collector of one node's image content.
#[derive(Clone)]
pub struct ImageGc {
    /// `<data>/images`.
    images_dir: PathBuf,
    /// `<data>`, whose runtime directories hold the instances' files.
    data_dir: PathBuf,
    records: Records,
    node: String,
    max_bytes: Option<u64>,
}

/// One content file.
struct Content {
    hex: String,
    path: PathBuf,
    size: u64,
    used_at: SystemTime,
}

impl ImageGc {
    /// A collector of `<data_dir>/images` for `node`, capping the cache at `max_bytes` when given.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        records: Records,
        node: impl Into<String>,
        max_bytes: Option<u64>,
    ) -> Self {
        let data_dir = data_dir.into();
        ImageGc { images_dir: data_dir.join("images"), data_dir, records, node: node.into(), max_bytes }
    }

    /// Removes what may go (see the module's documentation).
    pub async fn collect(&self) -> Result<Collected, String> {
        let (images, _) = self.records.list::<Images>().await.map_err(|e| format!("listing Images: {e}"))?;
        // Each live content's sha256, with whether the node can fetch it again from elsewhere.
        let mut live: BTreeMap<String, bool> = BTreeMap::new();
        for (_, v) in images {
            let Object::Image(image) = v.value else { continue };
            let hex = image.spec.checksum.to_ascii_lowercase();
            let uri = &image.spec.uri;
            let fetchable = uri.starts_with("http://") || uri.starts_with("https://");
            let fetchable = fetchable || (uri.starts_with(UPLOADED_URI_PREFIX) && self.held_elsewhere(&hex).await?);
            *live.entry(hex).or_default() |= fetchable;
        }
        let contents = self.contents();
        let in_use = self.in_use(&contents);
        let settled = |c: &Content| c.used_at.elapsed().is_ok_and(|age| age >= GRACE);
        let mut done = Collected::default();
        let mut kept = Vec::new();
        for c in contents {
            if in_use.contains(&c.hex) {
                continue;
            }
            match live.get(&c.hex) {
                None if settled(&c) => self.remove(&c, &mut done).await?,
                None => {}
                Some(true) => kept.push(c),
                Some(false) => {}
            }
        }
        if let Some(max) = self.max_bytes {
            let mut total: u64 = self.contents().iter().map(|c| c.size).sum();
            kept.sort_by_key(|c| c.used_at);
            for c in kept {
                if total <= max {
                    break;
                }
                total = total.saturating_sub(c.size);
                self.remove(&c, &mut done).await?;
            }
        }
        if !done.removed.is_empty() {
            tracing::info!(removed = ?done.removed, freed = done.freed, "image content collected");
        }
        Ok(done)
    }

    /// Whether a node other than this one records a copy of `hex`.
    async fn held_elsewhere(&self, hex: &str) -> Result<bool, String> {
        let prefix = format!("{}{hex}/", self.records.keys().system_prefix("images"));
        let (copies, _) =
            self.records.list_in::<ImageCopies>(&prefix).await.map_err(|e| format!("listing image copies: {e}"))?;
        Ok(copies.iter().any(|((_, node), _)| *node != self.node))
    }

    /// The content files, with their size and last use (their modification time, set by each use).
    fn contents(&self) -> Vec<Content> {
        let dir = self.images_dir.join("sha256");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| {
                let hex = e.file_name().to_string_lossy().into_owned();
                let meta = e.metadata().ok().filter(|m| m.is_file())?;
                (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Content {
                    path: e.path(),
                    hex,
                    size: meta.len(),
                    used_at: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect()
    }

    /// The content instances of this node use: named by path in a VM's domain XML or in the header of its overlay.
    fn in_use(&self, contents: &[Content]) -> BTreeSet<String> {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        let vm_dir = self.data_dir.join("vm");
        for entry in std::fs::read_dir(&vm_dir).into_iter().flatten().flatten() {
            for (file, limit) in [("domain.xml", 1 << 20), ("disk.qcow2", 64 << 10)] {
                if let Some(bytes) = head(&entry.path().join(file), limit) {
                    texts.push(bytes);
                }
            }
        }
        contents
            .iter()
            .filter(|c| {
                let needle = c.path.to_string_lossy();
                texts.iter().any(|t| t.windows(needle.len()).any(|w| w == needle.as_bytes()))
            })
            .map(|c| c.hex.clone())
            .collect()
    }

    async fn remove(&self, c: &Content, done: &mut Collected) -> Result<(), String> {
        match std::fs::remove_file(&c.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{}: {e}", c.path.display())),
            _ => {}
        }
        let id = (c.hex.clone(), self.node.clone());
        self.records.delete::<ImageCopies>(&id).await.map_err(|e| format!("image copy {}: {e}", c.hex))?;
        done.removed.push(c.hex.clone());
        done.freed += c.size;
        Ok(())
    }

    /// Collects now, then every `interval` until `shutdown` says so.
    pub async fn run(self, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.collect().await {
                tracing::warn!(error = %e, "image garbage collection failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The first `limit` bytes of a file.
fn head(path: &Path, limit: u64) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut out = Vec::new();
    file.take(limit).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Marks content as used now (its modification time), for the cap's least-recently-used order.
pub fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}
