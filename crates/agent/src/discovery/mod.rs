//! Node discovery from the running system (`/proc`, `/sys`, uname), completed by the node configuration file
//! (declared devices, position) and filtered by it (hidden devices), into the node's info record.

pub mod devices;
pub mod net;
pub mod system;

use std::path::Path;

use fos_api::manifest::{EntityKind, Metadata};
use fos_api::node::{Node, NodeInfo, NodeStatus};
use fos_api::quantity::ByteSize;
use thiserror::Error;

use crate::config::NodeConfig;

/// Discovery failures.
#[derive(Debug, Error)]
pub enum DiscoveryError {
    /// The cpu architecture is not one fos knows.
    #[error("unsupported cpu architecture `{0}`")]
    UnsupportedArch(String),
}

/// Discovers the node's hardware and software; `data_dir` is where entity disk space is measured. Runtimes are
/// left empty: the agent fills them in with the runtimes whose probe succeeds.
pub fn discover(data_dir: &Path) -> Result<NodeInfo, DiscoveryError> {
    let u = system::uname();
    let arch = system::arch_of(&u.machine).ok_or_else(|| DiscoveryError::UnsupportedArch(u.machine.clone()))?;
    let (interfaces, can) = net::interfaces();
    let mut io = devices::io_devices();
    io.extend(can);
    let disk = system::statvfs(data_dir).or_else(|| data_dir.parent().and_then(system::statvfs));
    Ok(NodeInfo {
        arch,
        os: u.sysname.to_lowercase(),
        os_release: system::os_release(),
        kernel: Some(u.release),
        hostname: Some(u.nodename),
        cpu: system::cpu(),
        memory: ByteSize::from_bytes(system::memory_total()),
        disk: ByteSize::from_bytes(disk.map(|(_, avail)| avail).unwrap_or(0)),
        disks: system::disks(),
        interfaces,
        io,
        accelerators: devices::accelerators(),
        runtimes: Vec::<EntityKind>::new(),
        position: None,
    })
}

/// Adds what the configuration declares (devices, position) and removes what it hides.
pub fn apply_config(info: &mut NodeInfo, config: &NodeConfig) {
    for d in &config.devices.io {
        info.io.retain(|x| x.name != d.name);
        info.io.push(d.clone());
    }
    for d in &config.devices.accelerators {
        info.accelerators.retain(|x| x.name != d.name);
        info.accelerators.push(d.clone());
    }
    let hidden = |name: &str| config.hide.iter().any(|h| h == name);
    info.io.retain(|d| !hidden(&d.name));
    info.accelerators.retain(|d| !hidden(&d.name));
    info.interfaces.retain(|i| !hidden(&i.name));
    if config.position.is_some() {
        info.position = config.position;
    }
}

/// The node's name: the configured one, else the host name.
pub fn node_name(config: &NodeConfig, info: &NodeInfo) -> String {
    config.name.clone().or_else(|| info.hostname.clone()).unwrap_or_else(|| "localhost".to_string())
}

/// The info record published under `Keys::node_info`: a `Node` with name, labels and spec (its status lives in the
/// separate, lease-bound status record).
pub fn node_record(name: &str, config: &NodeConfig, info: NodeInfo) -> Node {
    let mut metadata = Metadata::named(name);
    metadata.labels = config.labels.clone();
    Node { metadata, spec: info, status: NodeStatus::default() }
}
