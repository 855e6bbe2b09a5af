//! The cloud-init seed disk of a VM whose entity gives `userData` or `sshKey` (cloud-init's NoCloud source): an ISO
//! 9660 image labelled `cidata` holding `user-data` (the entity's `userData`, else a `#cloud-config` authorising the
//! key) and `meta-data` (`instance-id`, `local-hostname`, and the key under `public-keys`), made with `genisoimage`
//! into the instance's directory (`<dir>/seed.iso`) at configure and attached as a read-only CD-ROM.

use std::path::Path;

use fos_api::record::DesiredInstance;

use super::domain::Disk;
use crate::runtime::{InstanceContext, RuntimeError};

/// The seed image's file name in the instance's directory.
pub const SEED_FILE: &str = "seed.iso";

/// The `user-data` and `meta-data` of `desired`, when its entity asks for a seed.
pub fn contents(desired: &DesiredInstance) -> Option<(String, String)> {
    let entity = &desired.entity;
    let user_data = entity.user_data.as_deref().filter(|u| !u.trim().is_empty());
    let key = entity.ssh_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
    if user_data.is_none() && key.is_none() {
        return None;
    }
    let yaml = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut meta = format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        yaml(&desired.id.to_string()),
        yaml(&format!("{}-{}", desired.id.component, desired.id.replica))
    );
    if let Some(key) = key {
        meta.push_str(&format!("public-keys:\n  - {}\n", yaml(key)));
    }
    let user = match (user_data, key) {
        (Some(u), _) => u.to_string(),
        (None, Some(key)) => format!("#cloud-config\nssh_authorized_keys:\n  - {}\n", yaml(key)),
        (None, None) => String::new(),
    };
    Some((user, meta))
}

/// Makes the seed image of `desired` (again, so a changed `userData` is seen) and its disk; none when not asked for.
pub async fn disk(
    genisoimage: &str,
    cx: &InstanceContext,
    desired: &DesiredInstance,
) -> Result<Option<Disk>, RuntimeError> {
    let Some((user, meta)) = contents(desired) else { return Ok(None) };
    let dir = cx.dir.join("seed");
    std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
    for (file, text) in [("user-data", &user), ("meta-data", &meta)] {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| RuntimeError::io(&path, e))?;
    }
    let iso = cx.dir.join(SEED_FILE);
    let tmp = cx.dir.join("seed.iso.tmp");
    let out = tokio::process::Command::new(genisoimage)
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
        .arg(&tmp)
        .arg(dir.join("user-data"))
        .arg(dir.join("meta-data"))
        .output()
        .await
        .map_err(|source| RuntimeError::Spawn { command: genisoimage.to_string(), source })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(RuntimeError::Failed(format!("{genisoimage}: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    std::fs::rename(&tmp, &iso).map_err(|e| RuntimeError::io(&iso, e))?;
    Ok(Some(Disk { path: iso, format: "raw".into(), cdrom: true }))
}

/// Removes the seed's files from the instance's directory.
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(SEED_FILE));
    let _ = std::fs::remove_file(dir.join("seed.iso.tmp"));
    let _ = std::fs::remove_dir_all(dir.join("seed"));
}
