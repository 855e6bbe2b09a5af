//! Rules for a network spec (a Network object's or one defined inline in an application): ids in range and on the
//! right kind, multicast group, CIDR range, gateway inside it, DHCP only with a range.

use std::net::{IpAddr, Ipv4Addr};

use super::net::parse_cidr;
use super::Report;
use crate::manifest::{NetworkKind, NetworkSpec};

/// The largest VxLAN network identifier (24 bits).
pub const MAX_VXLAN_ID: u32 = 16_777_215;
/// The largest usable VLAN id.
pub const MAX_VLAN_ID: u16 = 4094;

/// Checks a network spec found at `at` (e.g. `spec` or `spec.networks[0]`).
pub(crate) fn check(spec: &NetworkSpec, at: &str, report: &mut Report<'_>) {
    let kind = spec.kind;
    if let Some(id) = spec.vxlan_id {
        if kind != NetworkKind::Vxlan {
            report.push(format!("{at}.vxlanId"), format!("`vxlanId` is for vxlan networks, not {kind}"));
        } else if !(1..=MAX_VXLAN_ID).contains(&id) {
            report.push(format!("{at}.vxlanId"), format!("vxlanId {id} is out of range 1..{MAX_VXLAN_ID}"));
        }
    }
    if let Some(group) = &spec.multicast_address {
        let path = format!("{at}.multicastAddress");
        if kind != NetworkKind::Vxlan {
            report.push(path, format!("`multicastAddress` is for vxlan networks, not {kind}"));
        } else {
            match group.parse::<Ipv4Addr>() {
                Ok(a) if a.is_multicast() => {}
                Ok(_) => report.hint(
                    path,
                    format!("multicastAddress {group} is not a multicast address (224.0.0.0/4)"),
                    "use an administratively scoped group such as 239.0.0.5",
                ),
                Err(_) => report.push(path, format!("multicastAddress `{group}` is not an IPv4 address")),
            }
        }
    }
    if let Some(id) = spec.vlan_id {
        if kind != NetworkKind::Vlan {
            report.push(format!("{at}.vlanId"), format!("`vlanId` is for vlan networks, not {kind}"));
        } else if !(1..=MAX_VLAN_ID).contains(&id) {
            report.push(format!("{at}.vlanId"), format!("vlanId {id} is out of range 1..{MAX_VLAN_ID}"));
        }
    }
    let range = match &spec.ip_range {
        Some(text) => match parse_cidr(text) {
            Ok(c) => Some(c),
            Err(e) => {
                report.push(format!("{at}.ipRange"), e);
                None
            }
        },
        None => None,
    };
    if let Some(gw) = &spec.gateway {
        let path = format!("{at}.gateway");
        match (gw.parse::<IpAddr>(), &spec.ip_range, range) {
            (Err(_), _, _) => report.push(path, format!("gateway `{gw}` is not an IP address")),
            (Ok(_), None, _) => report.push(path, "a gateway needs an `ipRange` to be inside of"),
            (Ok(ip), Some(_), Some(c)) if !c.contains(ip) => {
                report.push(path, format!("gateway {ip} is outside ipRange {c}"))
            }
            (Ok(ip), Some(_), Some(c)) if c.is_network_address(ip) => {
                report.push(path, format!("gateway {ip} is the network address of {c}"))
            }
            _ => {}
        }
    }
    if spec.dhcp && spec.ip_range.is_none() {
        report.push(format!("{at}.dhcp"), "DHCP needs an `ipRange` to hand addresses out of");
    }
}
