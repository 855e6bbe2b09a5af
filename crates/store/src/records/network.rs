//! The kinds of the virtual-network records the nodes' network plugins share: each node's state of a network
//! ([`NodeNetworks`]) and the allocations made with compare-and-swap, each key existing only while the thing is
//! taken: a network's segment ([`Segments`]), the VLAN ids and VNIs claimed for it ([`Vlans`], [`Vnis`]), and who
//! holds each address ([`Addresses`]).

use std::net::Ipv4Addr;

use fos_api::keys::KeyRef;
use fos_api::network::{AddressHolder, NetworkName, NodeNetwork, SegmentRecord};
use fos_api::Keys;

use super::Kind;

/// `(node, network)`: where a node's state of a network lives.
pub type NodeNet = (String, NetworkName);

/// `(network, address)`: an address allocation.
pub type NetAddress = (NetworkName, Ipv4Addr);

kind!(
    /// `actual/nodes/<node>/networks/<name>.<tenant>`: a node's state of one virtual network (bridge, device,
    /// segment, MTU, VTEP, gateway).
    NodeNetworks, NodeNet, NodeNetwork, "node network record",
    key: |k, id| k.actual_node_network(&id.0, &id.1.to_string()), prefix: |k| k.actual_nodes_prefix(),
    parse: KeyRef::ActualNetwork { node, net } => (node, net.parse().ok()?)
);

fn network(tenant: &str, name: &str) -> Option<NetworkName> {
    (!tenant.is_empty() && !name.is_empty()).then(|| NetworkName::new(tenant, name))
}

kind!(
    /// `system/segments/<tenant>/<net>`: a network's segment with its VLAN id or VNI, as allocated.
    Segments, NetworkName, SegmentRecord, "network segment",
    key: |k, net| k.network_segment(&net.tenant, &net.name), prefix: |k| k.network_segments_prefix(),
    parse_rest: |rest| match rest.as_slice() {
        [tenant, name] => network(tenant, name),
        _ => None,
    }
);

kind!(
    /// `system/vlans/<id>`: the network a VLAN id is allocated to.
    Vlans, u16, NetworkName, "VLAN id allocation",
    key: |k, id| k.vlan(*id), prefix: |k| k.vlans_prefix(),
    parse_rest: |rest| match rest.as_slice() {
        [id] => id.parse().ok(),
        _ => None,
    }
);

kind!(
    /// `system/vnis/<id>`: the network a VxLAN VNI is allocated to.
    Vnis, u32, NetworkName, "VNI allocation",
    key: |k, id| k.vni(*id), prefix: |k| k.vnis_prefix(),
    parse_rest: |rest| match rest.as_slice() {
        [id] => id.parse().ok(),
        _ => None,
    }
);

kind!(
    /// `system/ipam/<tenant>/<net>/<ip>`: who holds an address of a network (an instance interface or a gateway).
    /// One network's addresses are under [`Keys::ipam_network_prefix`].
    Addresses, NetAddress, AddressHolder, "address allocation",
    key: |k, id| k.ipam_address(&id.0.tenant, &id.0.name, &id.1.to_string()), prefix: |k| k.ipam_prefix(),
    parse_rest: |rest| match rest.as_slice() {
        [tenant, name, ip] => network(tenant, name).zip(ip.parse().ok()),
        _ => None,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_keys_parse_back_to_their_ids() {
        let keys = Keys::new("3");
        let net = NetworkName::new("default", "net0");
        let node_net = ("n1".to_string(), net.clone());
        let key = NodeNetworks::key(&keys, &node_net);
        assert_eq!(key, "/fos/3/actual/nodes/n1/networks/net0.default");
        assert_eq!(NodeNetworks::parse(&keys, &key), Some(node_net));
        assert_eq!(NodeNetworks::parse(&keys, &keys.node_status("n1")), None);

        let key = Segments::key(&keys, &net);
        assert_eq!(key, "/fos/3/system/segments/default/net0");
        assert_eq!(Segments::parse(&keys, &key), Some(net.clone()));
        assert_eq!(Vlans::parse(&keys, &keys.vlan(100)), Some(100));
        assert_eq!(Vlans::parse(&keys, "/fos/3/system/vlans/0100"), None, "not a key the layout builds");
        assert_eq!(Vlans::parse(&keys, &keys.vni(100)), None);
        assert_eq!(Vnis::parse(&keys, &keys.vni(70_000)), Some(70_000));

        let address = (net.clone(), Ipv4Addr::new(10, 0, 0, 2));
        let key = Addresses::key(&keys, &address);
        assert_eq!(key, "/fos/3/system/ipam/default/net0/10.0.0.2");
        assert!(key.starts_with(&keys.ipam_network_prefix("default", "net0")));
        assert_eq!(Addresses::parse(&keys, &key), Some(address));
        assert_eq!(Addresses::parse(&keys, "/fos/3/system/ipam/default/net0/x"), None);
        assert_eq!(Addresses::parse(&keys, "/fos/3/system/ipam/default/net0"), None);
    }
}
