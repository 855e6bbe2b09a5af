//! Test hosts for the network tests: two "nodes" as network namespaces joined by a veth (their physical network),
//! each with its own network manager, a TCP round trip between processes in instance namespaces, and cleanup that
//! runs even when a test fails.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use fos_agent::network::names::Names;
use fos_agent::network::{netns, LinuxNetworks, NetworkPluginConfig, StoreNetworkManager};
use fos_api::Keys;
use fos_store::{EmbeddedConfig, EmbeddedStore, Store};

/// The name of the hosts' physical interface.
pub const PHYS: &str = "phys";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The embedded store in a temporary directory (removed when the test ends).
pub struct TestStore {
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl TestStore {
    /// Opens a fresh store.
    pub fn new() -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("open store"));
        TestStore { store, _dir: dir }
    }
}

/// Runs `ip` with `args`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Two test hosts `<tag>a` and `<tag>b`, joined by a veth `phys` with 192.168.<subnet>.1/24 and .2/24. Dropping
/// it removes both namespaces and every instance namespace the managers made.
pub struct TestHosts {
    pub names: [String; 2],
    pub addrs: [Ipv4Addr; 2],
    pub dir: tempfile::TempDir,
}

impl TestHosts {
    /// Creates the hosts. `default_route`: also give each host a default route via its peer (so the data-plane
    /// interface can be found without configuration).
    pub fn new(default_route: bool) -> TestHosts {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id() % 100_000;
        let names = [format!("fth{pid}-{n}a"), format!("fth{pid}-{n}b")];
        let subnet = 100 + (pid + n) % 100;
        let addrs = [Ipv4Addr::new(192, 168, subnet as u8, 1), Ipv4Addr::new(192, 168, subnet as u8, 2)];
        let hosts = TestHosts { names: names.clone(), addrs, dir: tempfile::tempdir().expect("tempdir") };
        for name in &names {
            ip(&["netns", "add", name]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", "fthtmp0", "netns", &names[0], "type", "veth", "peer", "name", "fthtmp1", "netns", &names[1],
        ]);
        for (i, name) in names.iter().enumerate() {
            ip(&["-n", name, "link", "set", &format!("fthtmp{i}"), "name", PHYS]);
            ip(&["-n", name, "addr", "add", &format!("{}/24", addrs[i]), "dev", PHYS]);
            ip(&["-n", name, "link", "set", PHYS, "up"]);
            if default_route {
                ip(&["-n", name, "route", "add", "default", "via", &addrs[1 - i].to_string()]);
            }
        }
        hosts
    }

    /// The namespace of host `i`.
    pub fn ns(&self, i: usize) -> File {
        File::open(format!("/run/netns/{}", self.names[i])).expect("open host namespace")
    }

    /// The directory instance namespaces of host `i` are named in.
    pub fn netns_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("netns{i}"))
    }

    /// The plugin configuration of host `i`.
    pub fn config(&self, i: usize) -> NetworkPluginConfig {
        NetworkPluginConfig {
            dataplane_interface: Some(PHYS.into()),
            vlan_interface: Some(PHYS.into()),
            vlan_range: Some([200, 210]),
            netns_dir: Some(self.netns_dir(i)),
            run_dir: Some(self.dir.path().join(format!("run{i}"))),
        }
    }

    /// The names of what the agent of host `i` (node `node<i>`, data in the test's directory) makes.
    pub fn kernel_names(&self, i: usize) -> Names {
        Names::new("0", &format!("node{i}"), self.dir.path())
    }

    /// The kernel side of host `i`.
    pub fn linux(&self, i: usize, config: NetworkPluginConfig) -> LinuxNetworks {
        LinuxNetworks::new(config, Some(self.ns(i)), self.kernel_names(i)).expect("netlink in host namespace")
    }

    /// The network manager of host `i` (node `node<i>`) on `store`.
    pub fn manager(&self, i: usize, store: Arc<dyn Store>) -> StoreNetworkManager {
        StoreNetworkManager::new(store, Keys::default(), &format!("node{i}"), self.linux(i, self.config(i)))
    }

    /// The links of host `i`: sorted `name kind` lines.
    pub fn links(&self, i: usize) -> Vec<String> {
        let out = ip(&["-n", &self.names[i], "-d", "-o", "link", "show"]);
        let mut links: Vec<String> = out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect();
        links.sort();
        links
    }

    /// The IPv4 addresses on host `i` (`dev addr/prefix`).
    pub fn addresses(&self, i: usize) -> Vec<String> {
        let out = ip(&["-n", &self.names[i], "-4", "-o", "addr", "show"]);
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .map(|w| format!("{} {}", w[1], w[3]))
            .collect();
        v.sort();
        v
    }

    /// The named instance namespaces left on host `i`.
    pub fn instance_namespaces(&self, i: usize) -> Vec<String> {
        std::fs::read_dir(self.netns_dir(i))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default()
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        for i in 0..2 {
            for name in self.instance_namespaces(i) {
                let _ = netns::remove_named(&self.netns_dir(i), &name);
            }
            // dnsmasq pid files: stop whatever is left.
            if let Ok(dir) = std::fs::read_dir(self.dir.path().join(format!("run{i}"))) {
                for e in dir.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if name.ends_with(".pid") {
                        if let Ok(pid) = std::fs::read_to_string(e.path()).unwrap_or_default().trim().parse::<i32>() {
                            let _ = Command::new("kill").arg(pid.to_string()).status();
                        }
                    }
                }
            }
        }
        for i in 0..2 {
            // The bind mount of the namespace directory on itself, made when the first namespace was named there.
            let _ = netns::release_dir(&self.netns_dir(i));
        }
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A TCP server inside the namespace `netns` on `port`: answers one line with `reply`, for `count` connections.
pub fn serve_in(netns: &Path, port: u16, reply: &'static str, count: usize) -> std::thread::JoinHandle<Vec<String>> {
    let ns = File::open(netns).expect("open instance namespace");
    let listener =
        netns::run_in(&ns, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))).expect("enter").expect("bind");
    std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..count {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            got.push(line.trim().to_string());
            let mut stream = stream;
            writeln!(stream, "{reply}").expect("write");
        }
        got
    })
}

/// Runs a real process inside the namespace `netns` (through the runtime's hook) that connects to `addr:port`,
/// sends `message` and prints the reply; returns the reply.
pub fn tcp_client_process(netns: &Path, addr: Ipv4Addr, port: u16, message: &str) -> String {
    let script = format!("exec 3<>/dev/tcp/{addr}/{port} && echo {message} >&3 && read -r line <&3 && echo \"$line\"");
    let mut cmd = Command::new("timeout");
    cmd.args(["10", "bash", "-c", &script]);
    netns::enter_on_spawn(&mut cmd, netns).expect("enter namespace on spawn");
    let out = cmd.output().expect("run client");
    assert!(out.status.success(), "client to {addr}:{port} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
