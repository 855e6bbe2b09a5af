//! `fosctl image upload`: an image's content streamed to this node's API, hashed on the way (sha256), refused when
//! it is not the digest the client declared, stored by its digest (`<data>/images/sha256/<hex>`), and recorded: the
//! Image object (`desired/images/<name>`, uri `fos:sha256:<hex>`) and this node's copy
//! (`system/images/<hex>/<node>`) in one transaction. Nothing is recorded and no file is left when anything fails.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::Utc;
use fos_api::image::{is_sha256, ImageCopy, ImageView, UploadQuery, UPLOADED_URI_PREFIX};
use fos_api::manifest::{ImageFormat, ImageSpec, Metadata, Object, Typed};
use fos_store::records::{ImageCopies, Images};
use fos_store::{Txn, TxnOp};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::{Caller, OpError};
use crate::Context;

/// Where a node keeps image content: `<data>/images/sha256/<hex>`.
pub fn content_path(data_dir: &Path, sha256: &str) -> PathBuf {
    data_dir.join("images").join("sha256").join(sha256)
}

/// Stores the content `body` as image `name` and records it (administrators only).
pub async fn upload<S, E>(
    ctx: &Context,
    caller: &Caller,
    name: &str,
    q: &UploadQuery,
    mut body: S,
) -> Result<ImageView, OpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    caller.check_admin("upload images")?;
    fos_api::names::validate_name(name).map_err(|e| OpError::invalid(format!("image name {name:?}: {e}")))?;
    if let Some(declared) = &q.sha256 {
        if !is_sha256(declared) {
            return Err(OpError::invalid(format!("sha256 {declared:?} is not 64 lowercase hex digits")));
        }
    }
    let data_dir = ctx
        .security
        .data_dir
        .clone()
        .ok_or_else(|| OpError::Upstream("this node keeps no images (it has no data directory)".into()))?;
    let incoming = data_dir.join("images").join("incoming");
    tokio::fs::create_dir_all(&incoming).await.map_err(|e| io(&incoming, e))?;
    let tmp = incoming.join(format!("{}-{}", std::process::id(), uuid_like()));
    let result = receive(ctx, &data_dir, &tmp, &mut body).await;
    let (digest, size) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    if let Some(declared) = &q.sha256 {
        if *declared != digest {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(OpError::invalid(format!(
                "image {name}: sha256 mismatch: the content's sha256 is {digest}, not the declared {declared}; \
                 nothing was stored"
            )));
        }
    }
    let format = q.format.unwrap_or(ImageFormat::Raw);
    let records = ctx.records();
    let existing = records.get::<Images>(&name.to_string()).await?;
    if let Some(old) = &existing {
        if let Object::Image(image) = &old.value {
            if image.spec.checksum != digest {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(OpError::Conflict(format!(
                    "image {name} exists with sha256 {}: delete it first to upload other content",
                    image.spec.checksum
                )));
            }
        }
    }
    let target = content_path(&data_dir, &digest);
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|e| io(dir, e))?;
    }
    tokio::fs::rename(&tmp, &target).await.map_err(|e| io(&target, e))?;
    let spec = ImageSpec { uri: format!("{UPLOADED_URI_PREFIX}{digest}"), checksum: digest.clone(), format };
    let object = Object::Image(Typed { metadata: Metadata { name: name.to_string(), ..Default::default() }, spec });
    let copy = ImageCopy { size, since: Utc::now() };
    let guard = match &existing {
        Some(old) => records.unchanged::<Images>(&name.to_string(), old.mod_revision),
        None => records.absent::<Images>(&name.to_string()),
    };
    let ops: Vec<TxnOp> = vec![
        records.put_op::<Images>(&name.to_string(), &object)?,
        records.put_op::<ImageCopies>(&(digest.clone(), ctx.node_name.clone()), &copy)?,
    ];
    let committed = records.store().txn(Txn { compare: vec![guard], success: ops, failure: Vec::new() }).await?;
    if !committed.succeeded {
        return Err(OpError::Conflict(format!("image {name} changed during the upload; try again")));
    }
    Ok(ImageView {
        name: name.to_string(),
        format,
        size: Some(size),
        sha256: digest.clone(),
        uri: format!("{UPLOADED_URI_PREFIX}{digest}"),
        nodes: vec![ctx.node_name.clone()],
    })
}

/// Writes the body to `tmp`, hashing it, checking the free-space margin as it grows; its sha256 and size.
async fn receive<S, E>(ctx: &Context, data_dir: &Path, tmp: &Path, body: &mut S) -> Result<(String, u64), OpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let mut file = tokio::fs::File::create(tmp).await.map_err(|e| io(tmp, e))?;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    let mut since_check = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| OpError::invalid(format!("reading the upload: {e}")))?;
        hash.update(&chunk);
        size += chunk.len() as u64;
        since_check += chunk.len() as u64;
        if since_check >= 16 << 20 {
            since_check = 0;
            crate::space::check(data_dir, ctx.security.free_margin)?;
        }
        file.write_all(&chunk).await.map_err(|e| io(tmp, e))?;
    }
    file.flush().await.map_err(|e| io(tmp, e))?;
    file.sync_all().await.map_err(|e| io(tmp, e))?;
    crate::space::check(data_dir, ctx.security.free_margin)?;
    let digest: String = hash.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok((digest, size))
}

fn io(path: &Path, e: std::io::Error) -> OpError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        return OpError::NoSpace(format!("{}: no space left", path.display()));
    }
    OpError::Upstream(format!("{}: {e}", path.display()))
}

fn uuid_like() -> String {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
