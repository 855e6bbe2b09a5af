//! Nodes: what a node is (hardware and software, discovered by its agent or declared in its config) and how it is
//! (ready, cordoned, heartbeat, measured round-trip times). The same `Node` object is published by agents, printed
//! by `fosctl get nodes -o yaml`, and written by hand for offline planning; and what a node reports of its plugins
//! ([`PluginRecord`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::{Accelerator, Arch, EntityKind, InterfaceType, IoType, Metadata};
use crate::quantity::ByteSize;

/// A node: name and labels, what it is, how it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Name and labels (labels are what `nodeSelector` and topology proximity match).
    pub metadata: Metadata,
    /// What the node is.
    pub spec: NodeInfo,
    /// How the node is.
    #[serde(default)]
    pub status: NodeStatus,
}

/// A node's hardware and software.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeInfo {
    /// CPU architecture.
    pub arch: Arch,
    /// Operating system (`linux`).
    #[serde(default = "linux")]
    pub os: String,
    /// Distribution and version (`Debian GNU/Linux 12 (bookworm)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_release: Option<String>,
    /// Kernel release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Processors.
    pub cpu: CpuInfo,
    /// Memory available to entities.
    pub memory: ByteSize,
    /// Disk available to entities (under the data directory).
    #[serde(default = "zero_bytes")]
    pub disk: ByteSize,
    /// Mounted disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskInfo>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
    /// I/O devices (GPIO, serial, I2C, SPI, CAN, USB), discovered or declared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io: Vec<IoDevice>,
    /// Accelerators, discovered or declared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<AcceleratorDevice>,
    /// Entity kinds this node can run (runtimes probed as working).
    #[serde(default)]
    pub runtimes: Vec<EntityKind>,
    /// Geographic position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

fn linux() -> String {
    "linux".to_string()
}

fn zero_bytes() -> ByteSize {
    ByteSize::from_bytes(0)
}

/// Processors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuInfo {
    /// Model name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// Logical cpus.
    pub count: u32,
    /// Nominal frequency in MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_mhz: Option<u32>,
}

/// A mounted disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskInfo {
    /// Block device (`/dev/vda`).
    pub device: String,
    /// Mount point.
    pub mount_point: String,
    /// File system type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filesystem: String,
    /// Total size.
    pub total: ByteSize,
    /// Free space.
    pub available: ByteSize,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterfaceInfo {
    /// Interface name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: InterfaceType,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Link speed in Mb/s, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u32>,
    /// Addresses with prefix length (`192.0.2.4/24`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// An I/O device; each is one allocatable unit of its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IoDevice {
    /// Type.
    #[serde(rename = "type")]
    pub kind: IoType,
    /// Name, unique on the node (`gpiochip0`, `ttyUSB0`, `can0`).
    pub name: String,
    /// Device path, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// GPIO lines, for GPIO devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u32>,
}

/// An accelerator; each is one allocatable unit of its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceleratorDevice {
    /// Type.
    #[serde(rename = "type")]
    pub kind: Accelerator,
    /// Name, unique on the node (`gpu0`, `renderD128`, `fpga0`).
    pub name: String,
    /// Model, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Device path, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A geographic position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Position {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

impl Position {
    /// Great-circle distance to `other` in metres (haversine).
    pub fn distance_m(&self, other: &Position) -> f64 {
        const R: f64 = 6_371_000.0;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * R * a.sqrt().asin()
    }
}

/// How a node is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStatus {
    /// The agent is alive (its heartbeat lease holds). Hand-written node files default to ready.
    #[serde(default = "ready_default")]
    pub ready: bool,
    /// Cordoned: no new placements.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// The agent's API address (`host:port`), for logs and proxying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The agent's probe address (`host:port`) other agents measure round-trip time against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_address: Option<String>,
    /// When the node last published this status: at start, under a new heartbeat lease, and with each round-trip
    /// measurement (the lease itself is renewed more often; the record lives as long as it does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<DateTime<Utc>>,
    /// Measured round-trip time to other nodes, in milliseconds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rtt_ms: BTreeMap<String, f64>,
    /// When the control plane declared the node lost (no heartbeat for `--node-lost-after`; its instances were
    /// placed elsewhere); from the control plane's record, not the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_since: Option<DateTime<Utc>>,
    /// Being drained (its instances move elsewhere); from the control plane's record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// What the node warns its operators of, as its daemon was started (e.g. an API served without
    /// authentication); shown by `fosctl get nodes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The name of the plugin record a node publishes when `criu check` passes there: its native processes can migrate
/// live (checkpoint and restore).
pub const CRIU_PLUGIN: &str = "criu";

/// What a node's peers read of its heartbeat record to reach it: the probe address only. The rest of the record
/// is skipped unparsed, so that every node listing every other stays cheap at a thousand nodes. Read-only: the
/// record is written whole, as a [`NodeStatus`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeProbe {
    /// The agent's probe address (`host:port`), as in [`NodeStatus::probe_address`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_address: Option<String>,
}

impl NodeStatus {
    /// The node's lifecycle phase as shown to users: `Ready`, `NotReady` (no live heartbeat), `Lost`, with
    /// `,Cordoned`/`,Draining` appended when it takes nothing new.
    pub fn phase(&self) -> String {
        let base = if self.ready {
            "Ready"
        } else if self.lost_since.is_some() {
            "Lost"
        } else {
            "NotReady"
        };
        match (self.draining, self.unschedulable) {
            (true, _) => format!("{base},Draining"),
            (false, true) => format!("{base},Cordoned"),
            _ => base.to_string(),
        }
    }
}

fn ready_default() -> bool {
    true
}

impl Default for NodeStatus {
    /// A ready, schedulable node with nothing measured (what a hand-written node file means).
    fn default() -> Self {
        NodeStatus {
            ready: true,
            unschedulable: false,
            address: None,
            probe_address: None,
            heartbeat: None,
            rtt_ms: BTreeMap::new(),
            lost_since: None,
            draining: false,
            warnings: Vec::new(),
        }
    }
}

/// A plugin's actual record on a node (`actual/nodes/<node>/plugins/<plugin>`), written by its agent: a runtime's
/// (one per entity kind) or the network plugin's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRecord {
    /// Plugin type (`runtime`, `network`).
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The entity kind it runs.
    pub entity_kind: EntityKind,
    /// Its probe succeeded.
    pub ready: bool,
    /// Why the probe failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it found (e.g. cgroup support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_read_from_a_whole_status_record_and_from_one_without_an_address() {
        let status = NodeStatus {
            probe_address: Some("10.0.0.7:7999".into()),
            address: Some("10.0.0.7:7443".into()),
            heartbeat: Some(Utc::now()),
            rtt_ms: [("n2".to_string(), 1.5), ("n3".to_string(), 0.5)].into(),
            warnings: vec!["a warning".into()],
            ..NodeStatus::default()
        };
        let bytes = serde_json::to_vec(&status).unwrap();
        let probe: NodeProbe = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(probe.probe_address.as_deref(), Some("10.0.0.7:7999"));
        let bare = serde_json::to_vec(&NodeStatus { probe_address: None, ..status }).unwrap();
        assert_eq!(serde_json::from_slice::<NodeProbe>(&bare).unwrap(), NodeProbe::default());
    }

    #[test]
    fn haversine_is_sane() {
        let paris = Position { lat: 48.8566, lon: 2.3522 };
        let london = Position { lat: 51.5074, lon: -0.1278 };
        let d = paris.distance_m(&london);
        assert!((340_000.0..350_000.0).contains(&d), "{d}");
        assert_eq!(paris.distance_m(&paris), 0.0);
    }

    #[test]
    fn a_hand_written_node_reads_with_defaults() {
        let n: Node = serde_yaml_ng::from_str(
            "metadata: {name: gw-1, labels: {site: a}}\nspec:\n  arch: arm64\n  cpu: {count: 4}\n  memory: 2Gi\n  io: [{type: gpio, name: gpiochip0, lines: 32}]\n",
        )
        .unwrap();
        assert_eq!(n.spec.arch, Arch::Aarch64);
        assert_eq!(n.spec.os, "linux");
        assert!(n.status.ready);
        assert_eq!(n.spec.memory.bytes(), Ok(2 << 30));
    }
}
