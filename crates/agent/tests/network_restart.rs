//! A restarted agent finds what exists and fixes only the difference: a bridge that is right is kept (same
//! interface index), a VxLAN device with the wrong VNI is replaced, a stray address on the bridge and a stale
//! forwarding entry are removed, and an instance whose interface vanished gets it back.

mod network_support;

use fos_agent::network::{NetworkManager, NetworkName, NicRequest, Segment};
use fos_api::manifest::{NetworkKind, NetworkSpec};
use fos_api::record::InstanceId;
use network_support::{ip, TestHosts, TestStore};

fn index_of(hosts: &TestHosts, dev: &str) -> String {
    ip(&["-n", &hosts.names[0], "-o", "link", "show", "dev", dev]).split(':').next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_fixes_only_the_difference() {
    let hosts = TestHosts::new(false);
    let before = hosts.links(0);
    let test_store = TestStore::new();
    let store = test_store.store.clone();
    let net = NetworkName::new("default", "restart");
    let spec = NetworkSpec {
        kind: NetworkKind::Vxlan,
        vxlan_id: Some(4242),
        multicast_address: None,
        vlan_id: None,
        ip_range: Some("10.92.0.0/24".into()),
        gateway: None,
        dhcp: false,
    };
    let bridge = hosts.kernel_names(0).bridge(&net);
    let device = hosts.kernel_names(0).segment_device(&net);
    let h = &hosts.names[0];

    // What a previous run (or a hand) left: the bridge, a VxLAN device with another VNI, a stray address, a stale
    // forwarding entry.
    ip(&["-n", h, "link", "add", &bridge, "type", "bridge"]);
    ip(&["-n", h, "link", "add", &device, "type", "vxlan", "id", "99", "dstport", "4789", "dev", "phys"]);
    ip(&["-n", h, "addr", "add", "10.92.0.200/24", "dev", &bridge]);
    let bridge_index = index_of(&hosts, &bridge);

    let manager = hosts.manager(0, store.clone());
    let state = manager.ensure(&net, &spec).await.expect("ensure over leftovers");
    assert_eq!(state.segment, Segment::Vxlan { vni: 4242, group: None });
    assert_eq!(index_of(&hosts, &bridge), bridge_index, "the right bridge is kept");
    let details = ip(&["-n", h, "-d", "link", "show", "dev", &device]);
    assert!(details.contains("vxlan id 4242") && details.contains(&format!("master {bridge}")), "{details}");
    assert!(hosts.addresses(0).iter().all(|a| !a.contains("10.92.0.200")), "stray address removed");

    let fdb = |h: &str| ip(&["netns", "exec", h, "bridge", "fdb", "show", "dev", &device]);
    ip(&["netns", "exec", h, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", &device, "dst", "192.0.2.99"]);
    assert!(fdb(h).contains("192.0.2.99"));
    manager.sync(&net).await.expect("sync");
    assert!(!fdb(h).contains("192.0.2.99"), "stale forwarding entry removed: {}", fdb(h));

    // An instance whose interface disappeared gets it back, with the same address.
    let id = InstanceId::new("default", "app", "svc", 0);
    let nic = NicRequest { network: net.clone(), ip: None, mac: None };
    let first = manager.attach(&id, std::slice::from_ref(&nic), &[]).await.expect("attach");
    let host_end = first.interfaces[0].host_interface.clone();
    ip(&["-n", h, "link", "del", &host_end]);
    let again = hosts.manager(0, store.clone());
    again.ensure(&net, &spec).await.expect("ensure after restart");
    let second = again.attach(&id, std::slice::from_ref(&nic), &[]).await.expect("attach after restart");
    assert_eq!(second, first);
    let link = ip(&["-n", h, "-o", "link", "show", "dev", &host_end]);
    assert!(link.contains(&format!("master {bridge}")), "{link}");

    again.detach(&id).await.expect("detach");
    again.teardown(&net).await.expect("teardown");
    assert_eq!(hosts.links(0), before);
}
