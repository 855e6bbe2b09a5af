//! The Plugin spec (a per-node plugin's enablement and configuration, as in the seed's linuxbridge configuration)
//! and the Image spec (a VM or container image with its sha256 checksum, as in the seed's image service).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::application::string_enum;

string_enum!(
    /// What a plugin does.
    PluginType {
        /// Runs entities of one kind.
        Runtime = "runtime",
        /// Builds virtual networks.
        Network = "network",
        /// Reports about the operating system.
        Os = "os",
        /// Collects measurements.
        Monitoring = "monitoring",
    }
);

/// A plugin's enablement and configuration on a set of nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSpec {
    /// What the plugin does.
    #[serde(rename = "type")]
    pub kind: PluginType,
    /// Whether the plugin is on (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Plugin-specific settings (e.g. `dataplaneInterface`, `vlanRange`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub configuration: serde_json::Map<String, serde_json::Value>,
    /// Node labels selecting where it applies (empty: every node).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Only these nodes (empty: every node the selector matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

fn yes() -> bool {
    true
}

string_enum!(
    /// Image formats.
    ImageFormat {
        /// A qcow2 disk image.
        Qcow2 = "qcow2",
        /// A raw disk image.
        Raw = "raw",
        /// An ISO image.
        Iso = "iso",
        /// A tarball (an OCI root filesystem or bundle).
        TarGz = "tar.gz",
    }
);

impl ImageFormat {
    /// The format a file's name says (`.qcow2`, `.iso`, `.tar.gz`/`.tgz`; anything else is raw).
    pub fn of_file_name(path: &std::path::Path) -> ImageFormat {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.ends_with(".qcow2") {
            ImageFormat::Qcow2
        } else if name.ends_with(".iso") {
            ImageFormat::Iso
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            ImageFormat::TarGz
        } else {
            ImageFormat::Raw
        }
    }
}

/// A VM or container image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpec {
    /// Where to get it (`file://`, `http(s)://`, or a path).
    pub uri: String,
    /// Its sha256, 64 hex digits; checked after download.
    pub checksum: String,
    /// Its format.
    pub format: ImageFormat,
}

#[cfg(test)]
mod format_tests {
    use super::ImageFormat;
    use std::path::Path;

    #[test]
    fn a_file_name_says_its_format() {
        assert_eq!(ImageFormat::of_file_name(Path::new("/x/Guest.QCOW2")), ImageFormat::Qcow2);
        assert_eq!(ImageFormat::of_file_name(Path::new("cd.iso")), ImageFormat::Iso);
        assert_eq!(ImageFormat::of_file_name(Path::new("web.tar.gz")), ImageFormat::TarGz);
        assert_eq!(ImageFormat::of_file_name(Path::new("web.tgz")), ImageFormat::TarGz);
        assert_eq!(ImageFormat::of_file_name(Path::new("vmlinuz")), ImageFormat::Raw);
    }
}
