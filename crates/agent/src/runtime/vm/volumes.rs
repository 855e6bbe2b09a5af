//! A VM's volumes as disks: each volume of the entity (a directory on the node, `<data>/volumes/<instance>/<name>`,
//! kept across restarts and carried along by migration) holds one disk image the guest sees as its next virtio disk
//! after the image's (`vdb`, `vdc`, … in the entity's order). The image is `disk.raw` when the volume holds one (put
//! there by hand or by an earlier life of the instance), else `disk.qcow2`, made once by `qemu-img create` at the
//! volume's `size` (sparse: it takes what the guest writes).

use std::path::{Path, PathBuf};

use fos_api::manifest::EntitySpec;

use super::domain::Disk;
use crate::runtime::{InstanceContext, RuntimeError};

/// The file names of a volume's disk image, in the order they are looked for.
pub const DISK_FILES: [(&str, &str); 2] = [("disk.raw", "raw"), ("disk.qcow2", "qcow2")];

/// The disks of `entity`'s volumes, made when missing.
pub async fn disks(qemu_img: &str, cx: &InstanceContext, entity: &EntitySpec) -> Result<Vec<Disk>, RuntimeError> {
    let mut out = Vec::new();
    for volume in &entity.volumes {
        let dir = cx
            .volumes
            .get(&volume.name)
            .ok_or_else(|| RuntimeError::Failed(format!("volume {} has no directory on this node", volume.name)))?;
        if let Some((path, format)) = existing(dir) {
            out.push(Disk { path, format: format.into(), cdrom: false });
            continue;
        }
        let size = volume.size.as_ref().and_then(|s| s.bytes().ok()).unwrap_or(0);
        if size == 0 {
            return Err(RuntimeError::Invalid(format!("volume {} of a vm needs a `size` (its disk's)", volume.name)));
        }
        let path = dir.join("disk.qcow2");
        create(qemu_img, &path, size).await?;
        out.push(Disk { path, format: "qcow2".into(), cdrom: false });
    }
    Ok(out)
}

/// The disk image a volume directory holds, with its format.
pub fn existing(dir: &Path) -> Option<(PathBuf, &'static str)> {
    DISK_FILES.iter().map(|(file, format)| (dir.join(file), *format)).find(|(path, _)| path.is_file())
}

/// Makes an empty qcow2 image of `size` bytes at `path` (written aside, then renamed in).
async fn create(qemu_img: &str, path: &Path, size: u64) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("qcow2.tmp");
    let out = tokio::process::Command::new(qemu_img)
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&tmp)
        .arg(size.to_string())
        .output()
        .await
        .map_err(|source| RuntimeError::Spawn { command: qemu_img.to_string(), source })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(RuntimeError::Failed(format!(
            "qemu-img create {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io(path, e))
}
