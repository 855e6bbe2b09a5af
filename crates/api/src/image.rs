//! Images as the image service keeps them: the content of an Image object is stored by its sha256
//! (`<data>/images/sha256/<hex>` on every node holding it), and each node holding a copy says so with an
//! [`ImageCopy`] record (`system/images/<sha256>/<node>`), so a node lacking an image knows whom to fetch it from.
//! [`ImageView`] is what `GET /v1/images` answers and `fosctl get images` shows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::ImageFormat;

/// The `uri` an uploaded image is recorded with: its content is on the nodes holding it, nowhere else.
pub const UPLOADED_URI_PREFIX: &str = "fos:sha256:";

/// A node's copy of an image's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageCopy {
    /// Its size in bytes.
    pub size: u64,
    /// When the node got it (upload or fetch, checked).
    pub since: DateTime<Utc>,
}

/// An Image with what the cluster holds of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    /// Its name.
    pub name: String,
    /// Its format.
    pub format: ImageFormat,
    /// Its size in bytes, when a node holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Its sha256 (64 hex digits).
    pub sha256: String,
    /// Where it comes from (`fos:sha256:<hex>` for an upload, else its `http(s)://` or file URI).
    pub uri: String,
    /// The nodes holding a checked copy.
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// An upload's parameters (`POST /v1/images/{name}?format=&sha256=`; the body is the content).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadQuery {
    /// Its format (default: raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ImageFormat>,
    /// The sha256 the content must have (refused otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Whether `text` is a sha256 in lowercase hex.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
