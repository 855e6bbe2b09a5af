//! Layers into a root filesystem. Each layer is unpacked once into `<data>/oci/layers/<hex>/` with its whiteouts in
//! overlayfs's form (a `0:0` character device for a removed file, `trusted.overlay.opaque=y` on a directory whose
//! lower contents are hidden), so an instance's root is an overlay mount of the cached layers under its own upper
//! directory. Where the kernel refuses the mount, the layers are unpacked in order into a plain directory instead,
//! whiteouts applied by removing what they hide.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::{Image, ImageStore, Layer, OciError};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// How an instance's root filesystem was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsKind {
    /// An overlay mount over the cached layers.
    Overlay,
    /// A copy of the layers (the kernel refused the overlay mount).
    Copy,
}

/// Refuses layer media types fos cannot unpack (zstd, foreign layers).
pub fn check_media_type(image: &str, media_type: &str) -> Result<(), OciError> {
    if compression(media_type).is_some() {
        Ok(())
    } else {
        Err(OciError::invalid(
            image,
            format!("layer media type `{media_type}` is not supported (tar or tar+gzip only)"),
        ))
    }
}

/// Whether a layer of `media_type` is gzip-compressed (`Some(true)`), a plain tar (`Some(false)`), or neither.
fn compression(media_type: &str) -> Option<bool> {
    match media_type {
        t if t.ends_with(".tar.gzip") || t.ends_with(".tar+gzip") => Some(true),
        t if t.ends_with(".tar") => Some(false),
        _ => None,
    }
}

/// How whiteouts are written while unpacking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whiteouts {
    /// As overlayfs marks (for a cached layer, a lower directory).
    Overlay,
    /// By removing what they hide (unpacking over the layers below).
    Apply,
}

/// The directory of `layer` unpacked, unpacking it first when needed.
pub fn unpacked_layer(store: &ImageStore, layer: &Layer) -> Result<PathBuf, OciError> {
    let dir = store.layer_dir(&layer.digest);
    if dir.exists() {
        return Ok(dir);
    }
    let tmp = store.tmp_dir().join(format!("layer-{}-{}", layer.digest.hex(), fastrand::u64(..)));
    std::fs::create_dir_all(&tmp).map_err(|e| OciError::io(&tmp, e))?;
    if let Err(e) = extract(store, layer, &tmp, Whiteouts::Overlay) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another instance unpacked it meanwhile.
        Err(_) if dir.exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(OciError::io(&dir, e)),
    }
}

/// Makes `image`'s root filesystem at `<dir>/rootfs` (an overlay with `<dir>/upper` and `<dir>/overlay-work`, or a
/// copy). Called again on a root already mounted, it leaves it as it is.
pub fn make_rootfs(store: &ImageStore, image: &Image, dir: &Path) -> Result<RootfsKind, OciError> {
    let rootfs = dir.join("rootfs");
    if is_mount_point(&rootfs) {
        return Ok(RootfsKind::Overlay);
    }
    if dir.join("rootfs.copied").exists() {
        return Ok(RootfsKind::Copy);
    }
    let mut lower = Vec::new();
    for layer in image.layers.iter().rev() {
        lower.push(unpacked_layer(store, layer)?.to_string_lossy().into_owned());
    }
    let upper = dir.join("upper");
    let work = dir.join("overlay-work");
    for d in [&rootfs, &upper, &work] {
        std::fs::create_dir_all(d).map_err(|e| OciError::io(d, e))?;
    }
    if lower.is_empty() {
        // An image without layers: an empty directory is its root.
        return mark_copied(dir);
    }
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    match mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::empty(), Some(options.as_str())) {
        Ok(()) => Ok(RootfsKind::Overlay),
        Err(errno) => {
            tracing::info!(rootfs = %rootfs.display(), %errno, "overlay mount refused; copying the layers");
            for layer in &image.layers {
                extract(store, layer, &rootfs, Whiteouts::Apply)?;
            }
            mark_copied(dir)
        }
    }
}

fn mark_copied(dir: &Path) -> Result<RootfsKind, OciError> {
    let marker = dir.join("rootfs.copied");
    std::fs::write(&marker, b"").map_err(|e| OciError::io(&marker, e))?;
    Ok(RootfsKind::Copy)
}

/// Unmounts (or removes the copy of) the root filesystem under `dir`, and removes its upper and work directories.
pub fn remove_rootfs(dir: &Path) -> Result<(), OciError> {
    let rootfs = dir.join("rootfs");
    while is_mount_point(&rootfs) {
        umount2(&rootfs, MntFlags::MNT_DETACH).map_err(|e| OciError::io(&rootfs, e.into()))?;
    }
    for d in ["rootfs", "upper", "overlay-work"] {
        let path = dir.join(d);
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(OciError::io(&path, e)),
            _ => {}
        }
    }
    let _ = std::fs::remove_file(dir.join("rootfs.copied"));
    Ok(())
}

/// Whether `path` is a mount point (listed in this process's mount table).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(canonical) = path.canonicalize() else { return false };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = canonical.to_string_lossy();
    table.lines().any(|line| line.split(' ').nth(4).is_some_and(|m| unescape(m) == want))
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

fn extract(store: &ImageStore, layer: &Layer, dest: &Path, whiteouts: Whiteouts) -> Result<(), OciError> {
    let blob = store.blob_path(&layer.digest);
    let file = std::fs::File::open(&blob).map_err(|e| OciError::io(&blob, e))?;
    let reader: Box<dyn Read> = match compression(&layer.media_type) {
        Some(true) => Box::new(flate2::read::GzDecoder::new(file)),
        _ => Box::new(file),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let io = |e| OciError::io(&blob, e);
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.into_owned();
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(OciError::invalid(
                layer.digest.to_string(),
                format!("layer entry `{}` leaves the root", path.display()),
            ));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = dest.join(path.parent().unwrap_or(Path::new("")));
        if name == OPAQUE {
            std::fs::create_dir_all(&parent).map_err(|e| OciError::io(&parent, e))?;
            match whiteouts {
                Whiteouts::Overlay => set_opaque(&parent)?,
                Whiteouts::Apply => clear_dir(&parent)?,
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            std::fs::create_dir_all(&parent).map_err(|e| OciError::io(&parent, e))?;
            let target = parent.join(hidden);
            remove_any(&target)?;
            if whiteouts == Whiteouts::Overlay {
                nix::sys::stat::mknod(&target, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)
                    .map_err(|e| OciError::io(&target, e.into()))?;
            }
            continue;
        }
        // A file replacing a directory of a lower layer (or the other way round) replaces it whole.
        let target = dest.join(&path);
        if let Ok(meta) = std::fs::symlink_metadata(&target) {
            let replacing_dir = meta.is_dir() && !entry.header().entry_type().is_dir();
            if replacing_dir || (!meta.is_dir() && entry.header().entry_type().is_dir()) {
                remove_any(&target)?;
            }
        }
        entry.unpack_in(dest).map_err(|e| OciError::io(&target, e))?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<(), OciError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| OciError::io(path, e)),
        Ok(_) => std::fs::remove_file(path).map_err(|e| OciError::io(path, e)),
        Err(_) => Ok(()),
    }
}

fn clear_dir(dir: &Path) -> Result<(), OciError> {
    let entries = std::fs::read_dir(dir).map_err(|e| OciError::io(dir, e))?;
    for entry in entries.flatten() {
        remove_any(&entry.path())?;
    }
    Ok(())
}

fn set_opaque(dir: &Path) -> Result<(), OciError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|e| OciError::io(dir, e.into()))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the value is one byte long.
    let rc = unsafe { libc::setxattr(path.as_ptr(), c"trusted.overlay.opaque".as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        return Err(OciError::io(dir, std::io::Error::last_os_error()));
    }
    Ok(())
}
