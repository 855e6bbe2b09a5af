//! The Network spec: an L2 segment spanning the nodes that need it — VxLAN (multicast or unicast), VLAN, or a
//! node-local bridge — with an optional IP range, gateway and DHCP.

use serde::{Deserialize, Serialize};

use super::application::string_enum;
use std::fmt;
use std::str::FromStr;

string_enum!(
    /// How a virtual network spans nodes.
    NetworkKind {
        /// A VxLAN overlay over the nodes' data-plane interface.
        Vxlan = "vxlan",
        /// An 802.1Q VLAN on the nodes' VLAN interface.
        Vlan = "vlan",
        /// A bridge local to each node (no traffic between nodes).
        Bridge = "bridge",
    }
);

/// A virtual network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// How the network spans nodes.
    #[serde(rename = "type")]
    pub kind: NetworkKind,
    /// vxlan: the VNI, 1..16777215 (default: allocated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_id: Option<u32>,
    /// vxlan: a multicast group in 224.0.0.0/4 (default: unicast with one FDB entry per node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multicast_address: Option<String>,
    /// vlan: the VLAN id, 1..4094 (default: allocated from the network plugin's range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
    /// The subnet addresses are allocated from, as a CIDR (`10.10.0.0/24`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// The gateway address, inside `ipRange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Serve DHCP on the network (for VMs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dhcp: bool,
}
