//! The values the network manager speaks in: the plugin configuration, resolved plans for the kernel side, and the
//! errors. The network names, segments and the actual state recorded in the store are `fos_api::network`'s.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use fos_api::network::{NetworkName, NodeNetwork, Segment};
use fos_store::StoreError;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The network plugin's configuration on a node (`desired/nodes/<node>/plugins/<network plugin>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPluginConfig {
    /// The interface VxLAN traffic goes over (default: the interface of the default route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_interface: Option<String>,
    /// The interface VLAN sub-interfaces are made on (default: the data-plane interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_interface: Option<String>,
    /// The VLAN ids networks without a `vlanId` are given, inclusive (default: 100..=4000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_range: Option<[u16; 2]>,
    /// The directory instance namespaces are named in (default: `/run/netns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_dir: Option<PathBuf>,
    /// The directory `dnsmasq` state is kept in (default: `/run/fos/network`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
}

/// A network as the kernel side builds it on one node: everything resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The network.
    pub name: NetworkName,
    /// Its segment.
    pub segment: Segment,
    /// The gateway address (with the subnet's prefix) to put on this node's bridge, when this node holds it.
    pub gateway: Option<Ipv4Net>,
    /// Serve DHCP on this node's bridge (only where the gateway is).
    pub dhcp: bool,
}

/// One interface of an instance as the kernel side builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPlan {
    /// The network.
    pub network: NetworkName,
    /// The address with the subnet's prefix, if the network has addresses.
    pub address: Option<Ipv4Net>,
    /// The MAC.
    pub mac: [u8; 6],
    /// The default route's gateway, if any (only the first interface with one gets the default route).
    pub gateway: Option<Ipv4Addr>,
}

/// An instance's wish to be attached to a network (from `entity.networks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicRequest {
    /// The network.
    pub network: NetworkName,
    /// A fixed address (default: allocated from the network's `ipRange`).
    pub ip: Option<Ipv4Addr>,
    /// A fixed MAC (default: derived from the instance).
    pub mac: Option<[u8; 6]>,
}

/// A VM interface's reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The bridge to attach the VM's tap to.
    pub bridge: String,
    /// The address, if the network has addresses.
    pub address: Option<Ipv4Net>,
    /// The MAC the VM's interface must use.
    pub mac: String,
}

/// An instance's interface as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceState {
    /// The network.
    pub network: NetworkName,
    /// The interface name inside the namespace (`eth0`, ...).
    pub interface: String,
    /// The node end of the veth pair.
    pub host_interface: String,
    /// The address.
    pub address: Option<Ipv4Net>,
    /// The MAC.
    pub mac: String,
}

/// An attached instance's networking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceNetworking {
    /// The namespace file to start the instance's process in (see [`super::netns::enter_on_spawn`]).
    pub netns: PathBuf,
    /// One interface per network, in the order asked.
    pub interfaces: Vec<InterfaceState>,
}

/// What can go wrong building networks.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// A netlink request failed (`creating vxlan 5 on eth0: Operation not supported`).
    #[error("{doing}: {source}")]
    Kernel {
        /// What was being done.
        doing: String,
        /// The kernel's reason.
        #[source]
        source: io::Error,
    },
    /// A system call or file operation failed.
    #[error("{doing}: {source}")]
    Os {
        /// What was being done.
        doing: String,
        /// The reason.
        #[source]
        source: io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The network's spec or the plugin's configuration cannot be built.
    #[error("network {network}: {message}")]
    Config {
        /// The network.
        network: String,
        /// What is wrong.
        message: String,
    },
    /// Every address of the range, or every id of the VLAN/VNI range, is taken.
    #[error("{0}: nothing left to allocate")]
    Exhausted(String),
    /// A fixed address or id is already taken by someone else.
    #[error("{what} is already taken by {owner}")]
    Taken {
        /// The address or id.
        what: String,
        /// Who holds it.
        owner: String,
    },
    /// The network was not brought up on this node before use.
    #[error("network {0} is not up on this node")]
    NotUp(String),
}
