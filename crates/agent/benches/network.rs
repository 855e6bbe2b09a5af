//! Time to bring a network up on a node and to attach an instance to it, on a test host made of network namespaces
//! (run as root): `cargo bench -p fos-agent --bench network`.
//!
//! - `kernel/*`: the kernel side alone ([`LinuxNetworks`]): bridge + VxLAN device + MTU; namespace + veth pair +
//!   address + MAC + routes.
//! - `manager/*`: the whole [`StoreNetworkManager`] with its store allocations (segment id, address) and actual
//!   state, on the embedded store (SQLite) in a temporary directory.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use fos_agent::network::{
    LinuxNetworks, NetworkManager, NetworkName, NetworkPlan, NetworkPluginConfig, NicPlan, NicRequest, Segment,
    StoreNetworkManager,
};
use fos_api::manifest::{NetworkKind, NetworkSpec};
use fos_api::record::InstanceId;
use fos_api::Keys;
use fos_store::{EmbeddedConfig, EmbeddedStore, Store};

/// A host namespace with a physical interface `phys` (a veth to a peer namespace), removed on drop.
struct BenchHost {
    names: [String; 2],
    dir: tempfile::TempDir,
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "ip {}", args.join(" "));
}

impl BenchHost {
    fn new() -> BenchHost {
        let pid = std::process::id();
        let names = [format!("fosbench{pid}a"), format!("fosbench{pid}b")];
        for n in &names {
            ip(&["netns", "add", n]);
        }
        ip(&[
            "link",
            "add",
            "fosbench0",
            "netns",
            &names[0],
            "type",
            "veth",
            "peer",
            "name",
            "fosbench1",
            "netns",
            &names[1],
        ]);
        for (i, n) in names.iter().enumerate() {
            ip(&["-n", n, "link", "set", &format!("fosbench{i}"), "name", "phys"]);
            ip(&["-n", n, "addr", "add", &format!("192.168.250.{}/24", i + 1), "dev", "phys"]);
            ip(&["-n", n, "link", "set", "phys", "up"]);
        }
        BenchHost { names, dir: tempfile::tempdir().expect("tempdir") }
    }

    fn linux(&self) -> LinuxNetworks {
        let config = NetworkPluginConfig {
            dataplane_interface: Some("phys".into()),
            netns_dir: Some(self.dir.path().join("netns")),
            run_dir: Some(self.dir.path().join("run")),
            ..NetworkPluginConfig::default()
        };
        let ns = File::open(format!("/run/netns/{}", self.names[0])).expect("host namespace");
        LinuxNetworks::new(
            config,
            Some(ns),
            fos_agent::network::names::Names::new("0", "bench", std::path::Path::new("/var/lib/fos")),
        )
        .expect("netlink")
    }
}

impl Drop for BenchHost {
    fn drop(&mut self) {
        if let Ok(dir) = std::fs::read_dir(self.dir.path().join("netns")) {
            for e in dir.flatten() {
                let _ = fos_agent::network::netns::remove_named(
                    &self.dir.path().join("netns"),
                    &e.file_name().to_string_lossy(),
                );
            }
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn spec() -> NetworkSpec {
    NetworkSpec {
        kind: NetworkKind::Vxlan,
        vxlan_id: None,
        multicast_address: None,
        vlan_id: None,
        ip_range: Some("10.90.0.0/16".into()),
        gateway: Some("10.90.0.1".into()),
        dhcp: false,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let host = BenchHost::new();
    let _entered = rt.enter();
    let linux = host.linux();
    let mut group = c.benchmark_group("network");
    group.sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));

    let mut n = 0u32;
    group.bench_function("kernel/network_up", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let plan = NetworkPlan {
                        name: NetworkName::new("bench", &format!("k{n}")),
                        segment: Segment::Vxlan { vni: 1000 + n, group: None },
                        gateway: Some("10.90.0.1/16".parse().expect("cidr")),
                        dhcp: false,
                    };
                    let start = Instant::now();
                    linux.ensure(&plan).await.expect("ensure");
                    total += start.elapsed();
                    linux.teardown(&plan.name).await.expect("teardown");
                }
                total
            })
        })
    });

    let net = NetworkName::new("bench", "attach");
    let plan =
        NetworkPlan { name: net.clone(), segment: Segment::Vxlan { vni: 77, group: None }, gateway: None, dhcp: false };
    rt.block_on(linux.ensure(&plan)).expect("ensure");
    group.bench_function("kernel/attach", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let id = InstanceId::new("bench", "app", "c", n);
                    let nic = NicPlan {
                        network: net.clone(),
                        address: Some(format!("10.90.{}.{}/16", (n >> 8) & 0xff, n & 0xff).parse().expect("cidr")),
                        mac: fos_agent::network::names::instance_mac(&id, 0),
                        gateway: Some(Ipv4Addr::new(10, 90, 0, 1)),
                    };
                    let start = Instant::now();
                    linux.attach(&id, &[nic], &[]).await.expect("attach");
                    total += start.elapsed();
                    linux.detach(&id).await.expect("detach");
                }
                total
            })
        })
    });
    rt.block_on(linux.teardown(&net)).expect("teardown");

    let store_dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(store_dir.path())).expect("store"));
    let manager = StoreNetworkManager::new(store, Keys::default(), "bench", host.linux());
    group.bench_function("manager/network_up", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let name = NetworkName::new("bench", &format!("m{n}"));
                    let start = Instant::now();
                    manager.ensure(&name, &spec()).await.expect("ensure");
                    total += start.elapsed();
                    manager.teardown(&name).await.expect("teardown");
                }
                total
            })
        })
    });
    let net = NetworkName::new("bench", "mattach");
    rt.block_on(manager.ensure(&net, &spec())).expect("ensure");
    group.bench_function("manager/attach", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let id = InstanceId::new("bench", "app", "m", n);
                    let nic = NicRequest { network: net.clone(), ip: None, mac: None };
                    let start = Instant::now();
                    manager.attach(&id, &[nic], &[]).await.expect("attach");
                    total += start.elapsed();
                    manager.detach(&id).await.expect("detach");
                }
                total
            })
        })
    });
    rt.block_on(manager.teardown(&net)).expect("teardown");
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
