//! Allocations through the store under races: concurrent allocators never hand out the same address, VLAN id or
//! gateway; every node asking for one network gets the same id; fixed values already taken are refused.

mod network_support;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use fos_agent::network::alloc::{self, AddressHolder};
use fos_agent::network::{NetworkError, NetworkName, Segment};
use fos_api::manifest::{NetworkKind, NetworkSpec};
use fos_api::Keys;
use fos_store::Records;
use ipnet::Ipv4Net;
use network_support::TestStore;

fn holder(node: usize, instance: usize) -> AddressHolder {
    AddressHolder {
        node: format!("node{node}"),
        instance: Some(format!("i{instance}")),
        nic: 0,
        mac: None,
        gateway: false,
        placed: false,
    }
}

fn vlan_spec(id: Option<u16>) -> NetworkSpec {
    NetworkSpec {
        kind: NetworkKind::Vlan,
        vxlan_id: None,
        multicast_address: None,
        vlan_id: id,
        ip_range: None,
        gateway: None,
        dhcp: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_address_allocations_never_collide() {
    let test_store = TestStore::new();
    let records = Records::new(test_store.store.clone(), Keys::default());
    let net = NetworkName::new("default", "race");
    let subnet: Ipv4Net = "10.80.0.0/26".parse().unwrap();
    let tasks: Vec<_> = (0..80)
        .map(|i| {
            let (records, net) = (records.clone(), net.clone());
            tokio::spawn(async move { alloc::address(&records, &net, subnet, None, &holder(i % 3, i)).await })
        })
        .collect();
    let mut got = Vec::new();
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(ip) => got.push(ip),
            Err(NetworkError::Exhausted(_)) => exhausted += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let distinct: HashSet<Ipv4Addr> = got.iter().copied().collect();
    assert_eq!(distinct.len(), got.len(), "an address handed out twice");
    assert_eq!(got.len(), 62, "every host address of a /26 handed out");
    assert_eq!(exhausted, 80 - 62);
    assert!(got.iter().all(|ip| subnet.contains(ip) && *ip != subnet.network() && *ip != subnet.broadcast()));
    let recorded = alloc::addresses(&records, &net).await.unwrap();
    assert_eq!(recorded.len(), 62);

    // Asking again for a holder that won the race returns its address; releasing frees it for someone else.
    let (won_ip, winner) = recorded.first().cloned().expect("62 recorded addresses");
    let again = alloc::address(&records, &net, subnet, None, &winner).await.unwrap();
    assert_eq!(again, won_ip, "a holder asking again gets the address it holds");
    let winner_instance = winner.instance.clone();
    let released =
        alloc::release_where(&records, &records.keys().ipam_prefix(), |h| h.instance == winner_instance).await.unwrap();
    assert_eq!(released, 1);
    let next = alloc::address(&records, &net, subnet, None, &holder(1, 1000)).await.unwrap();
    assert_eq!(next, again, "the released address is the free one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fixed_addresses_are_refused_when_taken() {
    let test_store = TestStore::new();
    let records = Records::new(test_store.store.clone(), Keys::default());
    let net = NetworkName::new("default", "fixed");
    let subnet: Ipv4Net = "10.81.0.0/24".parse().unwrap();
    let ip: Ipv4Addr = "10.81.0.10".parse().unwrap();
    assert_eq!(alloc::address(&records, &net, subnet, Some(ip), &holder(0, 1)).await.unwrap(), ip);
    assert_eq!(alloc::address(&records, &net, subnet, Some(ip), &holder(0, 1)).await.unwrap(), ip);
    let err = alloc::address(&records, &net, subnet, Some(ip), &holder(1, 2)).await.unwrap_err();
    assert!(matches!(err, NetworkError::Taken { .. }), "{err}");
    let outside = alloc::address(&records, &net, subnet, Some("10.9.9.9".parse().unwrap()), &holder(1, 3)).await;
    assert!(matches!(outside, Err(NetworkError::Config { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_vlan_allocations_give_each_network_its_own_id() {
    let test_store = TestStore::new();
    let records = Records::new(test_store.store.clone(), Keys::default());
    // Eight networks, each brought up by three nodes at once.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let records = records.clone();
            let net = NetworkName::new("default", &format!("net{}", i % 8));
            tokio::spawn(async move {
                let seg = alloc::segment(&records, &net, &vlan_spec(None), Some([300, 310])).await;
                (net, seg)
            })
        })
        .collect();
    let mut by_net = std::collections::HashMap::new();
    for t in tasks {
        let (net, seg) = t.await.unwrap();
        let seg = seg.expect("allocated");
        let prev = by_net.insert(net.clone(), seg);
        assert!(prev.is_none_or(|p| p == seg), "{net} got two ids");
    }
    let ids: HashSet<Segment> = by_net.values().copied().collect();
    assert_eq!(ids.len(), 8, "two networks share an id: {by_net:?}");
    assert!(ids.iter().all(|s| matches!(s, Segment::Vlan { id } if (300..=310).contains(id))));

    // The range holds 11 ids: three more networks get the rest, the twelfth finds none.
    for n in 8..11 {
        alloc::segment(&records, &NetworkName::new("default", &format!("net{n}")), &vlan_spec(None), Some([300, 310]))
            .await
            .unwrap();
    }
    let full =
        alloc::segment(&records, &NetworkName::new("default", "net11"), &vlan_spec(None), Some([300, 310])).await;
    assert!(matches!(full, Err(NetworkError::Exhausted(_))), "{full:?}");

    // A fixed id held by another network is refused; releasing a network frees its id.
    let Segment::Vlan { id } = by_net[&NetworkName::new("default", "net0")] else { unreachable!() };
    let clash = alloc::segment(&records, &NetworkName::new("other", "x"), &vlan_spec(Some(id)), None).await;
    assert!(matches!(clash, Err(NetworkError::Taken { .. })), "{clash:?}");
    alloc::release_segment(&records, &NetworkName::new("default", "net0")).await.unwrap();
    let reuse = alloc::segment(&records, &NetworkName::new("other", "x"), &vlan_spec(Some(id)), None).await;
    assert_eq!(reuse.unwrap(), Segment::Vlan { id });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_node_holds_the_gateway() {
    let test_store = TestStore::new();
    let records = Records::new(test_store.store.clone(), Keys::default());
    let net = NetworkName::new("default", "gw");
    let gw: Ipv4Addr = "10.82.0.1".parse().unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let (records, net) = (records.clone(), net.clone());
            tokio::spawn(async move { alloc::claim_gateway(&records, &net, gw, &format!("node{n}")).await })
        })
        .collect();
    let mut holders = 0;
    for t in tasks {
        holders += usize::from(t.await.unwrap().unwrap());
    }
    assert_eq!(holders, 1);
    let subnet: Ipv4Net = "10.82.0.0/24".parse().unwrap();
    let first = alloc::address(&records, &net, subnet, None, &holder(0, 1)).await.unwrap();
    assert_ne!(first, gw, "the gateway is never handed to an instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vxlan_vnis_are_shared_by_nodes_and_distinct_between_networks() {
    let test_store = TestStore::new();
    let records = Records::new(test_store.store.clone(), Keys::default());
    let spec = NetworkSpec {
        kind: NetworkKind::Vxlan,
        vxlan_id: None,
        multicast_address: None,
        vlan_id: None,
        ip_range: None,
        gateway: None,
        dhcp: false,
    };
    let a = NetworkName::new("default", "a");
    let b = NetworkName::new("default", "b");
    let a1 = alloc::segment(&records, &a, &spec, None).await.unwrap();
    let a2 = alloc::segment(&records, &a, &spec, None).await.unwrap();
    let b1 = alloc::segment(&records, &b, &spec, None).await.unwrap();
    assert_eq!(a1, a2);
    assert_ne!(a1, b1);
    let mut fixed = spec.clone();
    let Segment::Vxlan { vni, .. } = a1 else { unreachable!() };
    fixed.vxlan_id = Some(vni);
    let clash = alloc::segment(&records, &NetworkName::new("default", "c"), &fixed, None).await;
    assert!(matches!(clash, Err(NetworkError::Taken { .. })), "{clash:?}");
}
