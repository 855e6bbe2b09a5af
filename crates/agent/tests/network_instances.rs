//! Instances on networks: exposed ports reachable from the other host (TCP and UDP), the gateway on one node's
//! bridge with the instance's default route via it, fixed addresses and MACs, several networks per instance, a
//! restarted agent finding what exists, and DHCP served by dnsmasq on the bridge, stopped at teardown.

mod network_support;

use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fos_agent::network::{dhcp, names, netns, NetworkManager, NetworkName, NicRequest};
use fos_api::manifest::{NetworkKind, NetworkSpec, PortMapping, Protocol};
use fos_api::record::InstanceId;
use network_support::{serve_in, tcp_client_process, TestHosts, TestStore};

fn local(range: &str, gateway: Option<&str>, dhcp: bool) -> NetworkSpec {
    NetworkSpec {
        kind: NetworkKind::Bridge,
        vxlan_id: None,
        multicast_address: None,
        vlan_id: None,
        ip_range: Some(range.into()),
        gateway: gateway.map(str::to_string),
        dhcp,
    }
}

/// `ip <args>` run inside the namespace file `ns`.
fn ip_in(ns: &Path, args: &[&str]) -> String {
    let out = Command::new("nsenter").arg(format!("--net={}", ns.display())).arg("ip").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposed_ports_are_reachable_from_another_host() {
    let hosts = TestHosts::new(false);
    let test_store = TestStore::new();
    let store = test_store.store.clone();
    let manager = hosts.manager(0, store.clone());
    let net = NetworkName::new("default", "web");
    manager.ensure(&net, &local("10.85.0.0/24", None, false)).await.unwrap();
    let web = InstanceId::new("default", "wp", "web", 0);
    let ports = [
        PortMapping { port: 8080, host_port: Some(18080), protocol: Protocol::Tcp },
        PortMapping { port: 5353, host_port: Some(15353), protocol: Protocol::Udp },
    ];
    let attached =
        manager.attach(&web, &[NicRequest { network: net.clone(), ip: None, mac: None }], &ports).await.unwrap();

    let server = serve_in(&attached.netns, 8080, "hello-from-web", 1);
    let host_b = Path::new("/run/netns").join(&hosts.names[1]);
    assert_eq!(tcp_client_process(&host_b, hosts.addrs[0], 18080, "get"), "hello-from-web");
    assert_eq!(server.join().unwrap(), vec!["get".to_string()]);

    let inside = File::open(&attached.netns).unwrap();
    let echo = netns::run_in(&inside, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5353))).unwrap().unwrap();
    let echo_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = echo.recv_from(&mut buf).unwrap();
        echo.send_to(&buf[..n], from).unwrap();
    });
    let target = (hosts.addrs[0], 15353);
    let reply = netns::run_in(&hosts.ns(1), move || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.send_to(b"udp-ping", target).unwrap();
        let mut buf = [0u8; 64];
        let n = s.recv(&mut buf).unwrap();
        buf[..n].to_vec()
    })
    .unwrap();
    assert_eq!(reply, b"udp-ping");
    echo_thread.join().unwrap();

    manager.detach(&web).await.unwrap();
    let refused = netns::run_in(&hosts.ns(1), move || {
        std::net::TcpStream::connect_timeout(&(hosts.addrs[0], 18080).into(), Duration::from_secs(5)).is_err()
    })
    .unwrap();
    assert!(refused, "the port is closed once the instance is detached");
    manager.teardown(&net).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_fixed_addresses_several_networks_and_restart() {
    let hosts = TestHosts::new(false);
    let test_store = TestStore::new();
    let store = test_store.store.clone();
    let before = hosts.links(0);
    let front = NetworkName::new("default", "front");
    let back = NetworkName::new("default", "back");
    let front_spec = local("10.86.0.0/24", Some("10.86.0.1"), false);
    let back_spec = local("10.87.0.0/24", None, false);
    let web = InstanceId::new("default", "wp", "web", 0);
    let mac = names::parse_mac("02:aa:bb:cc:dd:01").unwrap();
    let nics = [
        NicRequest { network: front.clone(), ip: Some("10.86.0.50".parse().unwrap()), mac: Some(mac) },
        NicRequest { network: back.clone(), ip: None, mac: None },
    ];

    let first = {
        let manager = hosts.manager(0, store.clone());
        let state = manager.ensure(&front, &front_spec).await.unwrap();
        assert_eq!(state.gateway, Some("10.86.0.1/24".parse().unwrap()), "this node holds the gateway");
        manager.ensure(&back, &back_spec).await.unwrap();
        manager.attach(&web, &nics, &[]).await.unwrap()
    };
    assert_eq!(first.interfaces[0].interface, "eth0");
    assert_eq!(first.interfaces[0].address, Some("10.86.0.50/24".parse().unwrap()));
    assert_eq!(first.interfaces[0].mac, "02:aa:bb:cc:dd:01");
    assert_eq!(first.interfaces[1].interface, "eth1");
    assert_eq!(first.interfaces[1].address, Some("10.87.0.1/24".parse().unwrap()));
    let link = ip_in(&first.netns, &["-o", "link", "show", "eth0"]);
    assert!(link.contains("02:aa:bb:cc:dd:01") && link.contains("state UP"), "{link}");
    let lo = ip_in(&first.netns, &["-o", "link", "show", "lo"]);
    assert!(lo.contains(",UP"), "{lo}");
    let routes = ip_in(&first.netns, &["route", "show", "default"]);
    assert!(routes.contains("via 10.86.0.1 dev eth0"), "{routes}");
    // Through the gateway the instance reaches the node's own addresses.
    let listener =
        netns::run_in(&hosts.ns(0), || std::net::TcpListener::bind((hosts.addrs[0], 9000))).unwrap().unwrap();
    let accept = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap()).read_line(&mut line).unwrap();
        writeln!(s, "node-{}", line.trim()).unwrap();
    });
    assert_eq!(tcp_client_process(&first.netns, hosts.addrs[0], 9000, "hi"), "node-hi");
    accept.join().unwrap();

    // A restarted agent (new manager, new netlink connection) finds everything and changes nothing.
    let links_up = hosts.links(0);
    let manager = hosts.manager(0, store.clone());
    manager.ensure(&front, &front_spec).await.unwrap();
    manager.ensure(&back, &back_spec).await.unwrap();
    let second = manager.attach(&web, &nics, &[]).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(hosts.links(0), links_up, "no link made or lost by the restart");

    manager.detach(&web).await.unwrap();
    manager.teardown(&front).await.unwrap();
    manager.teardown(&back).await.unwrap();
    assert_eq!(hosts.links(0), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcp_runs_dnsmasq_on_the_gateway_bridge_and_stops_it() {
    let hosts = TestHosts::new(false);
    let test_store = TestStore::new();
    let store = test_store.store.clone();
    let net = NetworkName::new("default", "vms");
    let spec = local("10.88.0.0/24", Some("10.88.0.1"), true);
    let run_dir = hosts.config(0).run_dir.unwrap();
    let bridge = hosts.kernel_names(0).bridge(&net);

    let manager = hosts.manager(0, store.clone());
    let state = manager.ensure(&net, &spec).await.unwrap();
    assert!(state.dhcp);
    let pid = dhcp::running(&run_dir, &bridge).expect("dnsmasq runs");
    // Idempotent: a second ensure (or a restarted agent) keeps the same dnsmasq.
    hosts.manager(0, store.clone()).ensure(&net, &spec).await.unwrap();
    assert_eq!(dhcp::running(&run_dir, &bridge), Some(pid));

    let vm = InstanceId::new("default", "app", "vm", 0);
    let lease = manager.reserve(&vm, 0, &NicRequest { network: net.clone(), ip: None, mac: None }).await.unwrap();
    assert_eq!(lease.bridge, bridge);
    let ip = lease.address.unwrap().addr();
    assert_ne!(ip, "10.88.0.1".parse::<Ipv4Addr>().unwrap());
    let hosts_file = run_dir.join(format!("dhcp-hosts-{bridge}")).join(lease.mac.replace(':', ""));
    assert_eq!(std::fs::read_to_string(&hosts_file).unwrap(), format!("{},{ip}\n", lease.mac));

    // A client with the reserved MAC (on a veth into the bridge, as a VM's tap would be) is offered its address.
    let client = manager
        .attach(&vm, &[NicRequest { network: net.clone(), ip: None, mac: names::parse_mac(&lease.mac) }], &[])
        .await
        .unwrap();
    let mac = names::parse_mac(&lease.mac).unwrap();
    let offered = netns::run_in(&File::open(&client.netns).unwrap(), || dhcp_discover(mac)).unwrap();
    assert_eq!(offered, ip, "dnsmasq offers the store's reservation");

    manager.detach(&vm).await.unwrap();
    manager.sync(&net).await.unwrap();
    assert!(!hosts_file.exists(), "released reservations leave dnsmasq's hosts");
    manager.teardown(&net).await.unwrap();
    assert_eq!(dhcp::running(&run_dir, &bridge), None);
    assert!(Path::new(&format!("/proc/{pid}"))
        .exists()
        .then(|| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .is_none_or(|c| !c.contains("dnsmasq")));
}

/// Broadcasts a DHCPDISCOVER for `mac` and returns the address of the first DHCPOFFER.
fn dhcp_discover(mac: [u8; 6]) -> Ipv4Addr {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).unwrap();
    socket.set_broadcast(true).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut packet = vec![0u8; 240];
    packet[0] = 1; // BOOTREQUEST
    packet[1] = 1; // Ethernet
    packet[2] = 6;
    packet[4..8].copy_from_slice(&0x0f05_1234u32.to_be_bytes());
    packet[10] = 0x80; // answer by broadcast
    packet[28..34].copy_from_slice(&mac);
    packet[236..240].copy_from_slice(&[99, 130, 83, 99]);
    packet.extend_from_slice(&[53, 1, 1, 255]); // DHCPDISCOVER
    let mut buf = [0u8; 1500];
    for _ in 0..5 {
        socket.send_to(&packet, (Ipv4Addr::BROADCAST, 67)).unwrap();
        while let Ok(n) = socket.recv(&mut buf) {
            let offer =
                n > 243 && buf[0] == 2 && buf[4..8] == packet[4..8] && buf[240..n].windows(3).any(|w| w == [53, 1, 2]);
            if offer {
                return Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
            }
        }
    }
    panic!("no DHCPOFFER for {}", names::format_mac(&mac));
}
