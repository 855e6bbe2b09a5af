//! OCI images on the node: a content-addressed store of blobs (`<data>/oci/blobs/sha256/<hex>`, each checked
//! against its digest before it is kept), the images pulled or loaded into it (`<data>/oci/images/<key>.json`: the
//! manifest's digest, the image configuration, the layers), the layers unpacked once each
//! (`<data>/oci/layers/<hex>/`), and garbage collection of what no image kept in use still names.
//!
//! Images come from a registry ([`pull`], with `oci-client`: manifest lists resolved to this node's platform, every
//! manifest, configuration and layer checked against its digest, plain HTTP only for the registries the node marks
//! insecure) or from an OCI image layout archive on the node ([`layout::load`]). Nothing whose digest does not match
//! is kept, so a container never runs from a blob that was not checked.

pub mod auth;
pub mod blobs;
pub mod gc;
pub mod layout;
pub mod pull;
pub mod unpack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

pub use self::blobs::Digest;

/// What can go wrong with an image.
#[derive(Debug, Error)]
pub enum OciError {
    /// The image reference cannot be parsed.
    #[error("image reference `{reference}`: {reason}")]
    Reference {
        /// The reference as written.
        reference: String,
        /// Why it is not one.
        reason: String,
    },
    /// A blob's content does not match its digest (nothing of it is kept).
    #[error("{what} {expected} of {image}: digest mismatch (the content is {actual}); refused")]
    DigestMismatch {
        /// What the blob is (layer, configuration, manifest).
        what: String,
        /// The image.
        image: String,
        /// The digest it should have.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The registry answered with an error or could not be reached.
    #[error("registry {registry}: {source}")]
    Registry {
        /// The registry.
        registry: String,
        /// What oci-client said.
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// The registry refused the image: no credentials were given, or not these.
    #[error("registry {registry} refused {image} {}", match .secret {
        Some(s) => format!("with the credentials of secret {s} (wrong user name or password?)"),
        None => "without credentials: name a Secret holding them in the entity's `imagePullSecret`".to_string(),
    })]
    Unauthorized {
        /// The registry.
        registry: String,
        /// The image.
        image: String,
        /// The Secret whose credentials were refused (none: none were given).
        secret: Option<String>,
    },
    /// The entity's `imagePullSecret` holds no credentials for the image's registry.
    #[error("image {image}: {reason}")]
    Credentials {
        /// The image.
        image: String,
        /// What the Secret lacks (keys named, never values).
        reason: String,
    },
    /// The image (or one of its parts) is malformed or of a kind fos cannot run.
    #[error("image {image}: {reason}")]
    Invalid {
        /// The image.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl OciError {
    /// An [`OciError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OciError::Io { path: path.into(), source }
    }

    /// An [`OciError::Invalid`] for `image`.
    pub fn invalid(image: impl Into<String>, reason: impl Into<String>) -> Self {
        OciError::Invalid { image: image.into(), reason: reason.into() }
    }

    /// Whether waiting will not help (a bad reference, a bad image, a digest mismatch): the entity is held until
    /// it changes.
    pub fn is_permanent(&self) -> bool {
        matches!(self, OciError::Reference { .. } | OciError::DigestMismatch { .. } | OciError::Invalid { .. })
    }
}

/// The parts of an image configuration a container is started from (`config` of the OCI image configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// The program and its first arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The default arguments (the command when there is no entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `user[:group]`, names or numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// An OCI image configuration as far as fos reads it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfigFile {
    /// Its architecture (`amd64`, `arm64`).
    #[serde(default)]
    pub architecture: String,
    /// Its operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// How containers start by default.
    #[serde(default)]
    pub config: Option<ImageConfig>,
}

/// One layer of an image: its digest and how it is compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// The digest of the blob as stored (compressed).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
}

/// An image held by the node: what a container is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// What it was asked as (a registry reference, or an archive's path).
    pub reference: String,
    /// The digest of the image manifest (for this node's platform).
    pub manifest: Digest,
    /// The digest of its configuration blob.
    pub config_digest: Digest,
    /// How containers start by default.
    pub config: ImageConfig,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// When it was last used by an instance (seconds since the epoch), for garbage collection.
    #[serde(default)]
    pub last_used: u64,
    /// Pulled with credentials: a tenant gets it from the store only once the registry accepted its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// The tenants whose access the registry confirmed (for a private image).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub tenants: std::collections::BTreeSet<String>,
}

/// The node's image store under `<data>/oci`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// The architecture name OCI uses for this machine (`amd64`, `arm64`, …).
pub fn this_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The key an image record is stored under: the SHA-256 of the reference.
pub fn image_key(reference: &str) -> String {
    hex::encode(Sha256::digest(reference.as_bytes()))
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl ImageStore {
    /// The store under `root` (made when missing).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, OciError> {
        let root = root.into();
        for dir in [root.join("blobs/sha256"), root.join("images"), root.join("layers"), root.join("tmp")] {
            std::fs::create_dir_all(&dir).map_err(|e| OciError::io(&dir, e))?;
        }
        Ok(ImageStore { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `digest` is kept.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest.algorithm()).join(digest.hex())
    }

    /// Where layer `digest` is unpacked.
    pub fn layer_dir(&self, digest: &Digest) -> PathBuf {
        self.root.join("layers").join(digest.hex())
    }

    /// A directory for partial downloads and unpacking (on the same file system, so results are renamed in).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn record_path(&self, reference: &str) -> PathBuf {
        self.root.join("images").join(format!("{}.json", image_key(reference)))
    }

    /// The image recorded for `reference`, when every blob it names is held.
    pub fn get(&self, reference: &str) -> Option<Image> {
        let bytes = std::fs::read(self.record_path(reference)).ok()?;
        let image: Image = serde_json::from_slice(&bytes).ok()?;
        let complete = image.layers.iter().all(|l| self.blob_path(&l.digest).exists())
            && self.blob_path(&image.config_digest).exists();
        complete.then_some(image)
    }

    /// Every image recorded.
    pub fn images(&self) -> Vec<Image> {
        let dir = self.root.join("images");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Records `image` (written whole: a temporary file renamed in).
    pub fn put(&self, image: &Image) -> Result<(), OciError> {
        let path = self.record_path(&image.reference);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(image).map_err(|e| OciError::invalid(&image.reference, e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| OciError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| OciError::io(&path, e))
    }

    /// Marks `reference` as used now (garbage collection keeps images used recently).
    pub fn touch(&self, reference: &str) -> Result<(), OciError> {
        match self.get(reference) {
            Some(mut image) => {
                image.last_used = now_secs();
                self.put(&image)
            }
            None => Ok(()),
        }
    }

    /// The images by key, for garbage collection.
    fn records(&self) -> BTreeMap<String, Image> {
        self.images().into_iter().map(|i| (image_key(&i.reference), i)).collect()
    }
}

/// Decodes an image configuration blob.
pub fn parse_config(image: &str, bytes: &[u8]) -> Result<ImageConfigFile, OciError> {
    serde_json::from_slice(bytes).map_err(|e| OciError::invalid(image, format!("image configuration: {e}")))
}
