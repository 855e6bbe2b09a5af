//! The agent with its network manager, in a test host (a network namespace with a veth as its physical network): an
//! instance whose entity has `networks` is attached at configure and its process runs in its own namespace with its
//! address on the network, its exposed port answers on the host, a restarted agent adopts it and exposes the port
//! again, and deleting it leaves the host's links and the instance namespaces as they were.

mod common;
mod network_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::Env;
use fos_agent::network::{netns, NetworkPluginConfig};
use fos_api::lifecycle::State;
use fos_api::manifest::{NetworkAttachment, NetworkKind, NetworkSpec, PortMapping, Probe};
use network_support::{tcp_client_process, TestHosts, TestStore};

const SERVER: &str = "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', 7000))\ns.listen()\nwhile True:\n    c, _ = s.accept()\n    c.recv(100)\n    c.sendall(b'pong\\n')\n    c.close()\n";

fn configure(hosts: &TestHosts, config: &mut fos_agent::AgentConfig) {
    config.network_namespace = Some(PathBuf::from("/run/netns").join(&hosts.names[0]));
    config.node.network = NetworkPluginConfig { vlan_range: None, ..hosts.config(0) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_networked_instance_is_attached_adopted_and_cleaned() {
    let hosts = TestHosts::new(false);
    let links_before = hosts.links(0);
    let test_store = TestStore::new();
    let store_dir = tempfile::tempdir().unwrap();
    let mut env = Env::start_configured("netnode", test_store.store.clone(), store_dir, |c| configure(&hosts, c)).await;

    let mut d = env.desired("srv", &["/usr/bin/python3", "-c", SERVER]);
    d.entity.networks = vec![NetworkAttachment { network: "tnet".into(), ip: None, mac: None }];
    d.entity.ports = vec![PortMapping { port: 7000, host_port: Some(17000), protocol: Default::default() }];
    d.entity.readiness = Some(Probe::Tcp(7000));
    let spec = NetworkSpec {
        kind: NetworkKind::Vxlan,
        vxlan_id: None,
        multicast_address: None,
        vlan_id: None,
        ip_range: Some("10.93.0.0/24".into()),
        gateway: None,
        dhcp: false,
    };
    d.networks = BTreeMap::from([("tnet".to_string(), spec)]);
    let mut w = env.watch_actual(&d.id).await;
    env.put(&d).await;
    let running =
        w.until("running and ready", |a| a.is_some_and(|a| a.state() == Some(State::Running) && a.ready)).await;
    let running = running.expect("an actual record");
    let address = running.networks.get("tnet").cloned().expect("its address on the network");
    assert!(address.starts_with("10.93.0."), "{address}");
    assert_eq!(running.addresses, vec![address.clone()]);
    let pid = running.pid.expect("a pid");
    let instance_ns = hosts.netns_dir(0).join(env.agent.as_ref().unwrap().names().instance_netns(&d.id));
    let process_ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let expected_ns = std::process::Command::new("stat").args(["-L", "-c", "%i"]).arg(&instance_ns).output().unwrap();
    let inode = String::from_utf8_lossy(&expected_ns.stdout).trim().to_string();
    assert!(process_ns.to_string_lossy().contains(&inode), "the process runs in the instance namespace");

    let host_ns = PathBuf::from("/run/netns").join(&hosts.names[0]);
    assert_eq!(tcp_client_process(&host_ns, hosts.addrs[0], 17000, "ping"), "pong", "exposed port");
    let ip: std::net::Ipv4Addr = address.parse().unwrap();
    assert_eq!(tcp_client_process(&instance_ns, ip, 7000, "ping"), "pong", "its own address");

    // Restart: the process is adopted, keeps its address, and the exposed port answers again.
    env.shutdown().await;
    env.restart(|c| configure(&hosts, c)).await;
    let mut w = env.watch_actual(&d.id).await;
    let adopted = w.until("adopted", |a| a.is_some_and(|a| a.pid == Some(pid) && a.ready)).await.unwrap();
    assert_eq!(adopted.networks.get("tnet"), Some(&address));
    // The adopted instance is re-attached in the background: wait for its port to be exposed again.
    let host = std::fs::File::open(&host_ns).unwrap();
    let target = std::net::SocketAddr::from((hosts.addrs[0], 17000));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !netns::run_in(&host, || std::net::TcpStream::connect(target).is_ok()).unwrap() {
        assert!(std::time::Instant::now() < deadline, "the port is not exposed again after the restart");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(tcp_client_process(&host_ns, hosts.addrs[0], 17000, "ping"), "pong", "exposed again");
    assert!(common::proc_exists(pid), "the same process still runs");

    env.delete(&d.id).await;
    w.deleted().await;
    assert_eq!(hosts.links(0), links_before, "no stray links");
    assert!(hosts.instance_namespaces(0).is_empty(), "no stray namespaces");
    env.shutdown().await;
}
