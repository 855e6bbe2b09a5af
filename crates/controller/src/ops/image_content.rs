//! An image's content as this node holds it, for another node that lacks it (`GET /v1/images/{name}/content`, with
//! the node's token) or an administrator: the checked copy under `<data>/images/sha256/<hex>`, from a byte offset
//! (a fetch cut short resumes where it stopped). Also the list of images with what the cluster holds of them
//! (`GET /v1/images/status`, `fosctl get images`).

use std::collections::BTreeMap;
use std::io::SeekFrom;

use fos_api::auth::Role;
use fos_api::image::ImageView;
use fos_api::manifest::Object;
use fos_store::records::{ImageCopies, Images};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::AsyncSeekExt;

use super::image_upload::content_path;
use super::{Caller, OpError};
use crate::Context;

/// An image's content from an offset: its total size and the bytes from the offset on.
pub struct Content {
    /// The size of the whole content.
    pub size: u64,
    /// The bytes from the offset asked for.
    pub stream: BoxStream<'static, std::io::Result<bytes::Bytes>>,
}

/// The content of image `name` from byte `offset` (administrators and nodes).
pub async fn content(ctx: &Context, caller: &Caller, name: &str, offset: u64) -> Result<Content, OpError> {
    if !(caller.is_admin() || caller.role == Role::Node) {
        return Err(OpError::Forbidden(format!(
            "{} may not read image content: administrators and nodes only",
            caller.principal
        )));
    }
    let image = ctx
        .records()
        .get::<Images>(&name.to_string())
        .await?
        .ok_or_else(|| OpError::NotFound(format!("image {name} not found")))?;
    let Object::Image(image) = image.value else {
        return Err(OpError::NotFound(format!("image {name} not found")));
    };
    let data_dir = ctx
        .security
        .data_dir
        .clone()
        .ok_or_else(|| OpError::NotFound(format!("this node holds no copy of image {name}")))?;
    let path = content_path(&data_dir, &image.spec.checksum);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpError::NotFound(format!("node {} holds no copy of image {name}", ctx.node_name)));
        }
        Err(e) => return Err(OpError::Upstream(format!("{}: {e}", path.display()))),
    };
    let size = file.metadata().await.map_err(|e| OpError::Upstream(format!("{}: {e}", path.display())))?.len();
    if offset > size {
        return Err(OpError::invalid(format!("offset {offset} is past the end of image {name} ({size} bytes)")));
    }
    file.seek(SeekFrom::Start(offset)).await.map_err(|e| OpError::Upstream(format!("{}: {e}", path.display())))?;
    Ok(Content { size, stream: tokio_util::io::ReaderStream::new(file).boxed() })
}

/// Every Image with its size and the nodes holding a checked copy (shared by every tenant).
pub async fn views(ctx: &Context, _caller: &Caller) -> Result<Vec<ImageView>, OpError> {
    let records = ctx.records();
    let (images, _) = records.list::<Images>().await?;
    let (copies, _) = records.list::<ImageCopies>().await?;
    let mut by_digest: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for ((digest, node), copy) in copies {
        let entry = by_digest.entry(digest).or_default();
        entry.0 = copy.value.size;
        entry.1.push(node);
    }
    Ok(images
        .into_iter()
        .filter_map(|(_, entry)| match entry.value {
            Object::Image(image) => {
                let held = by_digest.get(&image.spec.checksum);
                Some(ImageView {
                    name: image.metadata.name,
                    format: image.spec.format,
                    size: held.map(|h| h.0),
                    sha256: image.spec.checksum,
                    uri: image.spec.uri,
                    nodes: held.map(|h| h.1.clone()).unwrap_or_default(),
                })
            }
            _ => None,
        })
        .collect())
}
