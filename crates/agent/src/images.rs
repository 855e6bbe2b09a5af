//! Images on the node: "make image NAME local and give me its path" for every runtime ([`Images::ensure`]). A
//! reference is either an absolute path on the node, used as it is, or the name of an Image object, resolved by the
//! node's [`ImageSource`] ([`crate::image_store::NodeImageStore`] in a real agent: a content-addressed cache under
//! `<data>/images`, filled from another node or the image's URI and checked against its sha256).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use fos_api::manifest::ImageFormat;
use thiserror::Error;

/// An image present on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// Its file (read only: runtimes make copies or overlays).
    pub path: PathBuf,
    /// Its format.
    pub format: ImageFormat,
}

/// Why an image cannot be made local.
#[derive(Debug, Error)]
pub enum ImageError {
    /// No Image object of that name, and not an absolute path.
    #[error("no image named {0}")]
    NotFound(String),
    /// A path reference that is not there.
    #[error("image file {0} does not exist")]
    NoFile(PathBuf),
    /// The content's sha256 is not the one recorded.
    #[error("image {name}: sha256 mismatch (expected {expected}, got {actual}); the copy was discarded")]
    Mismatch {
        /// The image.
        name: String,
        /// The recorded digest.
        expected: String,
        /// The digest of what was received.
        actual: String,
    },
    /// Fetching it failed.
    #[error("image {name}: {message}")]
    Fetch {
        /// The image.
        name: String,
        /// What failed.
        message: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading the Image object failed.
    #[error("reading image {name}: {message}")]
    Store {
        /// The image.
        name: String,
        /// The store's error.
        message: String,
    },
}

impl ImageError {
    /// Whether trying again later may help (a fetch or the store failing), as opposed to an image that does not
    /// exist or whose content is wrong.
    pub fn is_transient(&self) -> bool {
        matches!(self, ImageError::Fetch { .. } | ImageError::Io { .. } | ImageError::Store { .. })
    }
}

/// Resolves Image names to files on this node.
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// Makes image `name` local (fetching and checking it when needed) and says where it is.
    async fn ensure(&self, name: &str) -> Result<LocalImage, ImageError>;
}

/// The node's images, handed to every runtime ([`crate::runtime::RuntimeEnv::images`]). Cheap to clone.
#[derive(Clone)]
pub struct Images {
    source: Option<Arc<dyn ImageSource>>,
}

impl fmt::Debug for Images {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Images").field("named", &self.source.is_some()).finish()
    }
}

impl Images {
    /// Only absolute paths (no Image objects): for agents without a store-backed image cache.
    pub fn paths_only() -> Self {
        Images { source: None }
    }

    /// Paths, and Image names resolved by `source`.
    pub fn new(source: Arc<dyn ImageSource>) -> Self {
        Images { source: Some(source) }
    }

    /// Makes `reference` (an absolute path, or an Image name) local and says where it is.
    pub async fn ensure(&self, reference: &str) -> Result<LocalImage, ImageError> {
        if reference.starts_with('/') {
            let path = PathBuf::from(reference);
            if !path.is_file() {
                return Err(ImageError::NoFile(path));
            }
            let format = ImageFormat::of_file_name(&path);
            return Ok(LocalImage { path, format });
        }
        match &self.source {
            Some(source) => source.ensure(reference).await,
            None => Err(ImageError::NotFound(reference.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_path_is_used_as_it_is_and_a_name_needs_a_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.qcow2");
        std::fs::write(&file, b"x").unwrap();
        let images = Images::paths_only();
        let local = images.ensure(file.to_str().unwrap()).await.unwrap();
        assert_eq!(local, LocalImage { path: file.clone(), format: ImageFormat::Qcow2 });
        let missing = dir.path().join("gone.raw");
        assert!(matches!(images.ensure(missing.to_str().unwrap()).await, Err(ImageError::NoFile(p)) if p == missing));
        assert!(matches!(images.ensure("cirros").await, Err(ImageError::NotFound(n)) if n == "cirros"));
    }
}
