//! The image service's records: which nodes hold a checked copy of which image content.

use fos_api::image::ImageCopy;
use fos_api::Keys;

use super::{Kind, Scoped};

kind!(
    /// `system/images/<sha256>/<node>`: node `<node>` holds the image content of that sha256 ([`ImageCopy`]).
    ImageCopies, Scoped, ImageCopy, "image copy",
    key: |k, id| format!("{}{}/{}", k.system_prefix("images"), id.0, id.1), prefix: |k| k.system_prefix("images"),
    parse_rest: |rest| match rest.as_slice() {
        [digest, node] if !digest.is_empty() && !node.is_empty() => Some((digest.to_string(), node.to_string())),
        _ => None,
    }
);
