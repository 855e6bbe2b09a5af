//! A node follows the store: when another node brings a unicast VxLAN network up, its forwarding entry to that
//! node appears without being asked; when that node's records go with its lease (the node died), the entries go.

mod network_support;

use std::sync::Arc;
use std::time::Duration;

use fos_agent::network::{NetworkManager, NetworkName};
use fos_api::manifest::{NetworkKind, NetworkSpec};
use network_support::{ip, TestHosts, TestStore};

fn fdb(hosts: &TestHosts, net: &NetworkName) -> String {
    ip(&["netns", "exec", &hosts.names[0], "bridge", "fdb", "show", "dev", &hosts.kernel_names(0).segment_device(net)])
}

/// Waits (up to 10 s) until `check` holds on host a's forwarding table.
async fn wait_fdb(hosts: &TestHosts, net: &NetworkName, what: &str, check: impl Fn(&str) -> bool) {
    for _ in 0..200 {
        if check(&fdb(hosts, net)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {}", fdb(hosts, net));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_entries_follow_nodes_coming_and_going() {
    let hosts = TestHosts::new(false);
    let test_store = TestStore::new();
    let store = test_store.store.clone();
    let net = NetworkName::new("default", "follow");
    let spec = NetworkSpec {
        kind: NetworkKind::Vxlan,
        vxlan_id: None,
        multicast_address: None,
        vlan_id: None,
        ip_range: Some("10.89.0.0/24".into()),
        gateway: None,
        dhcp: false,
    };
    let a = Arc::new(hosts.manager(0, store.clone()));
    a.ensure(&net, &spec).await.expect("up on a");
    let follower = {
        let a = a.clone();
        tokio::spawn(async move { a.follow().await })
    };
    let entry = format!("00:00:00:00:00:00 dst {}", hosts.addrs[1]);

    let lease = store.grant(Duration::from_secs(60)).await.expect("lease");
    let b = hosts.manager(1, store.clone()).with_lease(lease);
    b.ensure(&net, &spec).await.expect("up on b");
    wait_fdb(&hosts, &net, "entry to b once b has the network", |f| f.contains(&entry)).await;

    store.revoke(lease).await.expect("revoke b's lease");
    wait_fdb(&hosts, &net, "entry to b gone with b's lease", |f| !f.contains(&entry)).await;

    follower.abort();
    b.teardown(&net).await.expect("teardown b");
    a.teardown(&net).await.expect("teardown a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_takes_the_gateway_over_when_its_holder_leaves() {
    let hosts = TestHosts::new(false);
    let test_store = TestStore::new();
    let store = test_store.store.clone();
    let net = NetworkName::new("default", "gwfollow");
    let spec = NetworkSpec {
        kind: NetworkKind::Vxlan,
        vxlan_id: None,
        multicast_address: None,
        vlan_id: None,
        ip_range: Some("10.91.0.0/24".into()),
        gateway: Some("10.91.0.1".into()),
        dhcp: false,
    };
    let a = hosts.manager(0, store.clone());
    let b = Arc::new(hosts.manager(1, store.clone()));
    assert!(a.ensure(&net, &spec).await.expect("up on a").gateway.is_some(), "a came first and holds the gateway");
    assert!(b.ensure(&net, &spec).await.expect("up on b").gateway.is_none());
    let follower = {
        let b = b.clone();
        tokio::spawn(async move { b.follow().await })
    };
    a.teardown(&net).await.expect("a leaves");
    let bridge = hosts.kernel_names(1).bridge(&net);
    let mut took_over = false;
    for _ in 0..200 {
        let addrs = ip(&["-n", &hosts.names[1], "-4", "-o", "addr", "show", "dev", &bridge]);
        if addrs.contains("10.91.0.1/24") {
            took_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(took_over, "b put the gateway on its bridge");
    follower.abort();
    b.teardown(&net).await.expect("teardown b");
}
