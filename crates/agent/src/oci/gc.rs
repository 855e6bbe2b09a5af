//! Garbage collection of the image store: image records neither in use nor used within the retention time are
//! dropped, then every blob and unpacked layer no remaining image names is removed.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{image_key, now_secs, ImageStore, OciError};

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Image records dropped (their references).
    pub images: Vec<String>,
    /// Blobs removed.
    pub blobs: usize,
    /// Unpacked layers removed.
    pub layers: usize,
}

/// Drops the images not in `in_use` (references) and not used within `retention`, then the blobs and unpacked
/// layers nothing left names, and leftovers of interrupted downloads.
pub fn collect(store: &ImageStore, in_use: &BTreeSet<String>, retention: Duration) -> Result<Collected, OciError> {
    let mut out = Collected::default();
    let now = now_secs();
    let in_use: BTreeSet<String> = in_use.iter().map(|r| image_key(r)).collect();
    let mut keep = BTreeSet::new();
    for (key, image) in store.records() {
        let recent = now.saturating_sub(image.last_used) < retention.as_secs();
        if in_use.contains(&key) || recent {
            keep.insert(image.config_digest.hex().to_string());
            keep.insert(image.manifest.hex().to_string());
            keep.extend(image.layers.iter().map(|l| l.digest.hex().to_string()));
        } else {
            let path = store.root().join("images").join(format!("{key}.json"));
            std::fs::remove_file(&path).map_err(|e| OciError::io(&path, e))?;
            out.images.push(image.reference);
        }
    }
    for (sub, count) in [("blobs/sha256", &mut out.blobs), ("layers", &mut out.layers)] {
        let dir = store.root().join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.map_err(|e| OciError::io(&path, e))?;
            *count += 1;
        }
    }
    // Partial downloads and unpackings of a process that is gone (ours are named with our pid).
    if let Ok(entries) = std::fs::read_dir(store.tmp_dir()) {
        let mine = format!("-{}-", std::process::id());
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("blob-") && !name.contains(&mine) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(out)
}
