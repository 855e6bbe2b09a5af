//! Virtual networks as nodes record them in the store: a network's identity ([`NetworkName`]), how its segment
//! spans nodes ([`Segment`]), one node's actual state of it ([`NodeNetwork`], `actual/nodes/<node>/networks/<net>`),
//! and the allocations the network plugins share: a network's segment id ([`SegmentRecord`],
//! `system/segments/<tenant>/<net>`, claimed with `system/vlans/<id>` or `system/vnis/<id>` naming the network) and
//! who holds each address ([`AddressHolder`], `system/ipam/<tenant>/<net>/<ip>`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A network's identity: its tenant and name. Displayed (and keyed in the store) as `<name>.<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetworkName {
    /// The tenant.
    pub tenant: String,
    /// The network's name.
    pub name: String,
}

impl NetworkName {
    /// The network `name` of `tenant`.
    pub fn new(tenant: &str, name: &str) -> Self {
        NetworkName { tenant: tenant.to_string(), name: name.to_string() }
    }
}

impl fmt::Display for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.tenant)
    }
}

/// A string that is not `<name>.<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a network name (<name>.<tenant>)")]
pub struct NetworkNameError(pub String);

impl FromStr for NetworkName {
    type Err = NetworkNameError;

    /// Parses `<name>.<tenant>` (names are DNS labels, so the first `.` separates them).
    fn from_str(s: &str) -> Result<Self, NetworkNameError> {
        match s.split_once('.') {
            Some((name, tenant)) if !name.is_empty() && !tenant.is_empty() && !tenant.contains('.') => {
                Ok(NetworkName::new(tenant, name))
            }
            _ => Err(NetworkNameError(s.to_string())),
        }
    }
}

/// How a network's segment spans nodes, with its id resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Segment {
    /// A VxLAN with this VNI; multicast to `group` when given, else unicast to the other nodes.
    Vxlan {
        /// The VNI.
        vni: u32,
        /// The multicast group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<Ipv4Addr>,
    },
    /// An 802.1Q VLAN with this id.
    Vlan {
        /// The VLAN id.
        id: u16,
    },
    /// A bridge local to the node.
    Bridge,
}

/// A network's actual state on one node (`actual/nodes/<node>/networks/<net>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetwork {
    /// The network.
    pub network: NetworkName,
    /// The bridge.
    pub bridge: String,
    /// The VxLAN or VLAN device, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The segment and its id.
    pub segment: Segment,
    /// The MTU of the bridge and the instances' interfaces.
    pub mtu: u32,
    /// This node's VxLAN endpoint (its data-plane address), which other nodes send unicast VxLAN traffic to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep: Option<Ipv4Addr>,
    /// The gateway address, when this node's bridge holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Net>,
    /// Whether DHCP is served from this node.
    #[serde(default)]
    pub dhcp: bool,
}

/// A network's segment id allocation (`system/segments/<tenant>/<net>`): every node building the network uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The network.
    pub network: NetworkName,
    /// Its segment, id included.
    pub segment: Segment,
}

/// Who holds an address (`system/ipam/<tenant>/<net>/<ip>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressHolder {
    /// The node that allocated it.
    pub node: String,
    /// The instance, when an instance interface holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The interface's index in the instance's network list.
    #[serde(default)]
    pub nic: usize,
    /// The interface's MAC (DHCP serves the address to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// True when it is the network's gateway, on `node`'s bridge.
    #[serde(default)]
    pub gateway: bool,
    /// Allocated by the controller when it placed the instance (`node` is where it placed it): the address lives
    /// as long as the instance has a desired or actual record, and the controller releases it. Addresses an agent
    /// allocates itself (instances placed without one) are released by that agent when it detaches the instance.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub placed: bool,
}

impl AddressHolder {
    /// The holder in words (`the gateway on n1`, `db-0.wp.default (interface 0) on n1`).
    pub fn describe(&self) -> String {
        match (&self.instance, self.gateway) {
            (_, true) => format!("the gateway on {}", self.node),
            (Some(i), _) => format!("{i} (interface {}) on {}", self.nic, self.node),
            (None, false) => format!("node {}", self.node),
        }
    }

    /// Whether `other` is the same holder: the same instance interface (wherever it runs now), or the same node's
    /// gateway or node address.
    pub fn same_holder(&self, other: &AddressHolder) -> bool {
        self.instance == other.instance
            && self.nic == other.nic
            && self.gateway == other.gateway
            && (self.instance.is_some() || self.node == other.node)
    }
}

/// A stable 32-bit FNV-1a hash of `text`.
pub fn fnv1a32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |h: u32, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The MAC of an instance's `nic`-th interface when the manifest gives none: locally administered, unicast, and a
/// stable function of the instance and the interface (the controller and the agents derive the same one).
pub fn instance_mac(instance: &crate::InstanceId, nic: usize) -> [u8; 6] {
    let n = fnv1a32(&format!("{instance}#{nic}")).to_be_bytes();
    [0x02, 0xf0, n[0], n[1], n[2], n[3]]
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_display_and_parse_back() {
        let net = NetworkName::new("default", "net0");
        assert_eq!(net.to_string(), "net0.default");
        assert_eq!("net0.default".parse::<NetworkName>(), Ok(net));
        for bad in ["net0", ".default", "net0.", "a.b.c"] {
            assert!(bad.parse::<NetworkName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn records_keep_their_encoding() {
        let record = SegmentRecord { network: NetworkName::new("t", "n"), segment: Segment::Vlan { id: 100 } };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::json!({"network": {"tenant": "t", "name": "n"}, "segment": {"type": "vlan", "id": 100}})
        );
        let holder =
            AddressHolder { node: "n1".into(), instance: None, nic: 0, mac: None, gateway: true, placed: false };
        assert_eq!(
            serde_json::to_value(&holder).unwrap(),
            serde_json::json!({"node": "n1", "nic": 0, "gateway": true})
        );
        assert_eq!(holder.describe(), "the gateway on n1");
    }
}
