//! VxLAN networks between two test hosts: unicast (forwarding entries learned from the store) and multicast, TCP
//! between processes in instance namespaces on either host, and nothing left behind after detach and teardown.

mod network_support;

use fos_agent::network::{NetworkManager, NetworkName, NicRequest};
use fos_api::manifest::{NetworkKind, NetworkSpec};
use fos_api::record::InstanceId;
use fos_api::Keys;
use network_support::{ip, serve_in, tcp_client_process, TestHosts, TestStore};

fn vxlan(range: &str, group: Option<&str>) -> NetworkSpec {
    NetworkSpec {
        kind: NetworkKind::Vxlan,
        vxlan_id: None,
        multicast_address: group.map(str::to_string),
        vlan_id: None,
        ip_range: Some(range.into()),
        gateway: None,
        dhcp: false,
    }
}

/// Brings `spec` up on both hosts, attaches one instance on each, checks TCP both ways, then removes everything
/// and checks both hosts are as before.
async fn two_hosts_talk(spec: NetworkSpec, net_name: &str, default_route: bool) -> (TestHosts, TestStore) {
    let hosts = TestHosts::new(default_route);
    let before = [hosts.links(0), hosts.links(1)];
    let addrs_before = [hosts.addresses(0), hosts.addresses(1)];
    let test_store = TestStore::new();
    let store = test_store.store.clone();
    let managers = [hosts.manager(0, store.clone()), hosts.manager(1, store.clone())];
    let net = NetworkName::new("default", net_name);

    let a = managers[0].ensure(&net, &spec).await.expect("network up on host a");
    let b = managers[1].ensure(&net, &spec).await.expect("network up on host b");
    managers[0].sync(&net).await.expect("sync a");
    assert_eq!(a.segment, b.segment, "both nodes use the same VNI");
    assert_eq!(a.mtu, 1500 - 50, "VxLAN MTU leaves room for the encapsulation");
    assert_eq!(a.vtep, Some(hosts.addrs[0]));

    let fdb = ip(&[
        "netns",
        "exec",
        &hosts.names[0],
        "bridge",
        "fdb",
        "show",
        "dev",
        &hosts.kernel_names(0).segment_device(&net),
    ]);
    if spec.multicast_address.is_none() {
        assert!(fdb.contains(&format!("00:00:00:00:00:00 dst {}", hosts.addrs[1])), "unicast flood entry: {fdb}");
    } else {
        assert!(
            !fdb.contains(&format!("00:00:00:00:00:00 dst {}", hosts.addrs[1])),
            "multicast needs no per-node entry: {fdb}"
        );
    }

    let web = InstanceId::new("default", "app", "web", 0);
    let db = InstanceId::new("default", "app", "db", 0);
    let nic = NicRequest { network: net.clone(), ip: None, mac: None };
    let on_a = managers[0].attach(&web, std::slice::from_ref(&nic), &[]).await.expect("attach web on a");
    let on_b = managers[1].attach(&db, std::slice::from_ref(&nic), &[]).await.expect("attach db on b");
    let addr_a = on_a.interfaces[0].address.expect("web has an address");
    let addr_b = on_b.interfaces[0].address.expect("db has an address");
    assert_ne!(addr_a.addr(), addr_b.addr(), "two instances, two addresses");

    let server = serve_in(&on_b.netns, 5432, "pong-from-db", 1);
    let reply = tcp_client_process(&on_a.netns, addr_b.addr(), 5432, "ping-from-web");
    assert_eq!(reply, "pong-from-db");
    assert_eq!(server.join().expect("server"), vec!["ping-from-web".to_string()]);

    let server = serve_in(&on_a.netns, 8080, "pong-from-web", 1);
    let reply = tcp_client_process(&on_b.netns, addr_a.addr(), 8080, "ping-from-db");
    assert_eq!(reply, "pong-from-web");
    assert_eq!(server.join().expect("server"), vec!["ping-from-db".to_string()]);

    // Attaching again (a restarted driver) changes nothing.
    let again = managers[0].attach(&web, std::slice::from_ref(&nic), &[]).await.expect("attach again");
    assert_eq!(again, on_a);

    managers[0].detach(&web).await.expect("detach web");
    managers[1].detach(&db).await.expect("detach db");
    // Host b leaves the network: host a's forwarding entries to it go at the next sync (unicast).
    managers[1].teardown(&net).await.expect("teardown b");
    managers[0].sync(&net).await.expect("sync a after b left");
    let fdb = ip(&[
        "netns",
        "exec",
        &hosts.names[0],
        "bridge",
        "fdb",
        "show",
        "dev",
        &hosts.kernel_names(0).segment_device(&net),
    ]);
    if spec.multicast_address.is_none() {
        assert!(!fdb.contains(&format!("dst {}", hosts.addrs[1])), "entry to a node that left: {fdb}");
    }
    managers[0].teardown(&net).await.expect("teardown a");
    assert_eq!([hosts.links(0), hosts.links(1)], before, "link lists as before");
    assert_eq!([hosts.addresses(0), hosts.addresses(1)], addrs_before, "addresses as before");
    assert!(hosts.instance_namespaces(0).is_empty() && hosts.instance_namespaces(1).is_empty());
    let left = store.list(Keys::default().root()).await.expect("list");
    assert!(left.kvs.is_empty(), "allocations and actual state released: {:?}", left.kvs);
    (hosts, test_store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicast_vxlan_carries_tcp_between_hosts() {
    two_hosts_talk(vxlan("10.77.0.0/24", None), "uni", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multicast_vxlan_carries_tcp_between_hosts() {
    two_hosts_talk(vxlan("10.78.0.0/24", Some("239.1.1.7")), "multi", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplane_defaults_to_the_default_route_interface() {
    let hosts = TestHosts::new(true);
    let mut config = hosts.config(0);
    config.dataplane_interface = None;
    let linux = hosts.linux(0, config);
    assert_eq!(linux.vtep().await.expect("vtep"), Some(hosts.addrs[0]));
}
