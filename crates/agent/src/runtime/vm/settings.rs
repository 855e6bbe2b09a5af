//! The VM runtime's settings: its section of the node configuration (`runtimes: {vm: {config: {…}}}`), with the
//! libvirt daemon it drives, the accelerator, the programs it runs and how other nodes reach it for a live migration.

use serde::Deserialize;

use super::accel;

/// The VM runtime's section of the node configuration (`runtimes: {vm: {config: {uri, accel, qemuImg, …}}}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmSettings {
    /// The libvirt daemon (default `qemu:///system`).
    #[serde(default = "default_uri")]
    pub uri: String,
    /// `auto` (default), `kvm` or `tcg`.
    #[serde(default)]
    pub accel: accel::AccelSetting,
    /// The `qemu-img` program (default: found on `PATH`).
    #[serde(default = "default_qemu_img")]
    pub qemu_img: String,
    /// The `genisoimage` program that makes cloud-init seed disks (default: found on `PATH`).
    #[serde(default = "default_genisoimage")]
    pub genisoimage: String,
    /// How other nodes' libvirt daemons reach this node's for a live migration (default: `uri`).
    #[serde(default)]
    pub migration_uri: Option<String>,
    /// The address other nodes' QEMU send a live migration's data to (default: the host name libvirt knows).
    #[serde(default)]
    pub migration_address: Option<String>,
    /// The longest pause of a guest at the end of its live migration, in ms (default 50).
    #[serde(default = "default_max_downtime")]
    pub migration_max_downtime_ms: u64,
}

fn default_max_downtime() -> u64 {
    50
}

fn default_genisoimage() -> String {
    "genisoimage".into()
}

fn default_uri() -> String {
    "qemu:///system".into()
}

fn default_qemu_img() -> String {
    "qemu-img".into()
}

impl Default for VmSettings {
    fn default() -> Self {
        VmSettings {
            uri: default_uri(),
            accel: accel::AccelSetting::Auto,
            qemu_img: default_qemu_img(),
            genisoimage: default_genisoimage(),
            migration_uri: None,
            migration_address: None,
            migration_max_downtime_ms: default_max_downtime(),
        }
    }
}
