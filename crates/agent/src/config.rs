//! The node configuration file (`fosd --config node.yaml`): what cannot be discovered (name, labels, position,
//! declared devices), what must not be scheduled (hidden devices), and the agent's own settings (data directory,
//! heartbeat TTL, probe port, the network plugin's and each runtime's section).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::network::NetworkPluginConfig;
use crate::runtime::registry::RuntimeSettings;
use fos_api::manifest::EntityKind;
use fos_api::node::{AcceleratorDevice, IoDevice, Position};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

/// Default heartbeat lease TTL.
pub const DEFAULT_HEARTBEAT_TTL: Duration = Duration::from_secs(10);
/// Default UDP port of the round-trip-time probe.
pub const DEFAULT_PROBE_PORT: u16 = 7447;
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/fos";

/// A node configuration file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid node configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file (or `<string>`).
        path: String,
        /// What is wrong, with its location.
        message: String,
    },
}

/// Devices declared in the node configuration (they cannot be discovered, e.g. lines of a GPIO header).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclaredDevices {
    /// I/O devices; one with the name of a discovered device replaces it.
    #[serde(default)]
    pub io: Vec<IoDevice>,
    /// Accelerators; one with the name of a discovered accelerator replaces it.
    #[serde(default)]
    pub accelerators: Vec<AcceleratorDevice>,
}

/// The node configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name (default: the host name).
    #[serde(default)]
    pub name: Option<String>,
    /// The system id of the store keys (default `0`).
    #[serde(default)]
    pub system: Option<String>,
    /// Labels (`site`, `zone`, …) matched by `nodeSelector` and proximity.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Geographic position.
    #[serde(default)]
    pub position: Option<Position>,
    /// Declared devices.
    #[serde(default)]
    pub devices: DeclaredDevices,
    /// Names of devices and interfaces never to report (so never scheduled).
    #[serde(default)]
    pub hide: Vec<String>,
    /// Heartbeat lease TTL (`10s`, `500ms`, `1m`; default 10 s).
    #[serde(default, deserialize_with = "duration_opt", serialize_with = "duration_ser")]
    pub heartbeat_ttl: Option<Duration>,
    /// Where the agent keeps instance directories and state files (default `/var/lib/fos`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// UDP port of the round-trip-time probe (default 7447; 0 picks a free port).
    #[serde(default)]
    pub probe_port: Option<u16>,
    /// The address other nodes reach this node at (default: its first non-loopback address).
    #[serde(default)]
    pub advertise: Option<IpAddr>,
    /// The network plugin's configuration (data-plane interface, VLAN interface and range); virtual networks are
    /// built with the defaults when it is absent.
    #[serde(default)]
    pub network: NetworkPluginConfig,
    /// Each runtime's section, by entity kind (`native: {enabled: false}` switches the native runtime off; `config`
    /// holds the runtime's own settings). A runtime without a section is enabled with its defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runtimes: BTreeMap<EntityKind, RuntimeSettings>,
    /// The image cache's garbage collection (`images: {gcIntervalSecs, maxBytes}`).
    #[serde(default, skip_serializing_if = "crate::image_gc::ImageCacheConfig::is_default")]
    pub images: crate::image_gc::ImageCacheConfig,
}

impl NodeConfig {
    /// Reads a YAML node configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses YAML text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_string(), message: e.to_string() })
    }

    /// The heartbeat TTL in force.
    pub fn heartbeat_ttl(&self) -> Duration {
        self.heartbeat_ttl.unwrap_or(DEFAULT_HEARTBEAT_TTL)
    }

    /// The data directory in force.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The probe port in force.
    pub fn probe_port(&self) -> u16 {
        self.probe_port.unwrap_or(DEFAULT_PROBE_PORT)
    }

    /// The system id in force.
    pub fn system(&self) -> &str {
        self.system.as_deref().unwrap_or("0")
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Secs(s)) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(Raw::Secs(s)) => Err(serde::de::Error::custom(format!("invalid duration {s}"))),
        Some(Raw::Text(t)) => parse_duration(&t)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid duration `{t}` (e.g. 10s, 500ms, 1m)"))),
    }
}

fn duration_ser<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fos_api::manifest::IoType;

    #[test]
    fn a_full_node_config_reads() {
        let c = NodeConfig::parse(
            "name: gw-1\nlabels: {site: plant-a, zone: z1}\nposition: {lat: 45.0, lon: 7.6}\n\
             devices:\n  io: [{type: gpio, name: header, lines: 4}]\nhide: [ttyS0]\nheartbeatTtl: 3s\n\
             dataDir: /tmp/fos\nprobePort: 0\n",
            "node.yaml",
        )
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("gw-1"));
        assert_eq!(c.labels["site"], "plant-a");
        assert_eq!(c.devices.io[0].kind, IoType::Gpio);
        assert_eq!(c.devices.io[0].lines, Some(4));
        assert_eq!(c.heartbeat_ttl(), Duration::from_secs(3));
        assert_eq!(c.probe_port(), 0);
        assert_eq!(NodeConfig::default().heartbeat_ttl(), DEFAULT_HEARTBEAT_TTL);
    }

    #[test]
    fn a_runtime_can_be_switched_off_or_configured() {
        let c =
            NodeConfig::parse("runtimes:\n  native: {enabled: false}\n  vm: {config: {uri: 'qemu:///system'}}\n", "n")
                .unwrap();
        assert!(!c.runtimes[&EntityKind::Native].enabled);
        assert!(c.runtimes[&EntityKind::Vm].enabled, "enabled unless said otherwise");
        assert_eq!(c.runtimes[&EntityKind::Vm].config["uri"], "qemu:///system");
        let e = NodeConfig::parse("runtimes: {docker: {}}\n", "node.yaml").unwrap_err().to_string();
        assert!(e.contains("unknown variant `docker`"), "{e}");
        let e = NodeConfig::parse("runtimes: {native: {enable: false}}\n", "node.yaml").unwrap_err().to_string();
        assert!(e.contains("unknown field `enable`"), "{e}");
    }

    #[test]
    fn mistakes_are_reported_with_the_file() {
        let e = NodeConfig::parse("lables: {}\n", "node.yaml").unwrap_err().to_string();
        assert!(e.starts_with("node.yaml:") && e.contains("unknown field `lables`"), "{e}");
        let e = NodeConfig::parse("heartbeatTtl: soon\n", "node.yaml").unwrap_err().to_string();
        assert!(e.contains("invalid duration"), "{e}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("x"), None);
    }
}
