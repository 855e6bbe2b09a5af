//! Loading an OCI image layout archive (a tar of `oci-layout`, `index.json` and `blobs/sha256/<hex>`, as
//! `skopeo copy … oci-archive:` or `fosctl image upload` write it) into the store: every blob is checked against the
//! digest its name says before it is kept, and the image is recorded under the name it is loaded as.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::blobs::{BlobWriter, Digest};
use super::pull::{choose_platform, descriptors};
use super::{now_secs, parse_config, Image, ImageStore, Layer, OciError};

/// Loads the OCI image layout archive at `archive` (plain or gzip-compressed tar) into `store` as image `name`.
/// Blocking: call it from a blocking thread.
pub fn load(store: &ImageStore, archive: &Path, name: &str) -> Result<Image, OciError> {
    let file = std::fs::File::open(archive).map_err(|e| OciError::io(archive, e))?;
    let mut head = [0u8; 2];
    let gz = {
        let mut f = &file;
        f.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b]
    };
    let file = std::fs::File::open(archive).map_err(|e| OciError::io(archive, e))?;
    let reader: Box<dyn Read> = if gz { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut tar = tar::Archive::new(reader);
    let mut index: Option<Value> = None;
    let mut layout_seen = false;
    let entries = tar.entries().map_err(|e| OciError::io(archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| OciError::io(archive, e))?;
        let path =
            entry.path().map_err(|e| OciError::io(archive, e))?.to_string_lossy().trim_start_matches("./").to_string();
        if path == "index.json" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| OciError::io(archive, e))?;
            index =
                Some(serde_json::from_slice(&bytes).map_err(|e| OciError::invalid(name, format!("index.json: {e}")))?);
        } else if path == "oci-layout" {
            layout_seen = true;
        } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            if hex.is_empty() || !entry.header().entry_type().is_file() {
                continue;
            }
            let digest = Digest::parse(&format!("sha256:{hex}"))
                .map_err(|reason| OciError::invalid(name, format!("{path}: {reason}")))?;
            if store.blob_path(&digest).exists() {
                continue;
            }
            let mut writer = BlobWriter::new(store)?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = match entry.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        writer.abandon();
                        return Err(OciError::io(archive, e));
                    }
                };
                if n == 0 {
                    break;
                }
                writer.write(&buf[..n])?;
            }
            writer.commit(store, &digest, &format!("blob {path}:"), name)?;
        }
    }
    if !layout_seen {
        return Err(OciError::invalid(
            name,
            format!("{} is not an OCI image layout (no `oci-layout` file)", archive.display()),
        ));
    }
    let index = index.ok_or_else(|| OciError::invalid(name, "the archive has no index.json"))?;
    let mut manifest_digest = first_manifest(name, &index)?;
    let mut manifest = read_json(store, name, &manifest_digest)?;
    if manifest.get("manifests").is_some() {
        manifest_digest = choose_platform(name, &manifest)?;
        manifest = read_json(store, name, &manifest_digest)?;
    }
    let (config_desc, layer_descs) = descriptors(name, &manifest)?;
    let config_digest = Digest::parse(&config_desc.digest).map_err(|r| OciError::invalid(name, r))?;
    let config_path = store.blob_path(&config_digest);
    let config_bytes = std::fs::read(&config_path)
        .map_err(|_| OciError::invalid(name, format!("the archive lacks the configuration blob {config_digest}")))?;
    let config = parse_config(name, &config_bytes)?;
    let mut layers = Vec::new();
    for desc in layer_descs {
        let digest = Digest::parse(&desc.digest).map_err(|r| OciError::invalid(name, r))?;
        super::unpack::check_media_type(name, &desc.media_type)?;
        if !store.blob_path(&digest).exists() {
            return Err(OciError::invalid(name, format!("the archive lacks layer {digest}")));
        }
        layers.push(Layer { digest, media_type: desc.media_type });
    }
    let image = Image {
        reference: name.to_string(),
        manifest: manifest_digest,
        config_digest,
        config: config.config.unwrap_or_default(),
        layers,
        last_used: now_secs(),
        private: false,
        tenants: Default::default(),
    };
    store.put(&image)?;
    Ok(image)
}

fn first_manifest(name: &str, index: &Value) -> Result<Digest, OciError> {
    let entries = index.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default();
    match entries.as_slice() {
        [] => Err(OciError::invalid(name, "index.json lists no manifest")),
        [one] => Digest::parse(one.get("digest").and_then(Value::as_str).unwrap_or(""))
            .map_err(|r| OciError::invalid(name, format!("index.json: {r}"))),
        _ => choose_platform(name, index),
    }
}

fn read_json(store: &ImageStore, name: &str, digest: &Digest) -> Result<Value, OciError> {
    let bytes = std::fs::read(store.blob_path(digest))
        .map_err(|_| OciError::invalid(name, format!("the archive lacks manifest {digest}")))?;
    serde_json::from_slice(&bytes).map_err(|e| OciError::invalid(name, format!("manifest {digest}: {e}")))
}
