//! The cluster harness: N `fosd` (all roles), each in its own network namespace with a veth to a bridge in a hub
//! namespace, on a real 3-member etcd in the hub namespace; and the faults of the cluster tests: kill -9 a node (with
//! every process of its namespace, as a machine dying), partition a node (its veth down), stop, pause and restart
//! etcd members, restart a node. A [`Checker`] samples every process of the machine and records any instance
//! running on two nodes at once. Dropping the cluster restores every node, deletes what was applied, stops every
//! process and removes the namespaces, links and instance cgroups it made.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::processes::{instance_processes, instance_processes_on, netns_inode, netns_pids, Checker, Seen, Twice};
use crate::{bin_dir, Run};

/// The subnet of the cluster's bridge (its own namespaces only).
const NET: &str = "10.77.0";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn sh(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

fn ip_tc(args: &[&str]) {
    let out = Command::new("tc").args(args).output().expect("running tc");
    assert!(out.status.success(), "tc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// One `fosd` of the cluster.
pub struct ClusterNode {
    /// Its name (`n0`, `n1`, …).
    pub name: String,
    /// Its network namespace (`/run/netns/<ns>`).
    pub ns: String,
    /// Its address on the bridge.
    pub ip: String,
    /// Its data directory.
    pub data: PathBuf,
    /// The running `fosd`, when it runs.
    pub fosd: Option<Child>,
}

/// An etcd member.
pub struct Member {
    /// Its name.
    pub name: String,
    /// Its address.
    pub ip: String,
    data: PathBuf,
    process: Option<Child>,
}

/// A cluster of `fosd` on a 3-member etcd, each node in its own namespace.
pub struct Cluster {
    /// Temp dir: data directories, logs, marks.
    pub dir: tempfile::TempDir,
    /// The hub namespace holding the bridge and etcd.
    pub hub: String,
    /// The nodes.
    pub nodes: Vec<ClusterNode>,
    /// The etcd members.
    pub etcd: Vec<Member>,
    /// `--node-lost-after` of every node.
    pub lost_after: Duration,
    /// Applications to delete on drop.
    pub apps: Mutex<BTreeSet<String>>,
    /// Extra arguments of each node's `fosd` (by index; kept across restarts).
    pub node_args: Vec<Vec<String>>,
}

impl Cluster {
    /// Starts etcd and `n` nodes with `--node-lost-after lost_after`; returns once every node is Ready.
    pub fn start(n: usize, lost_after: Duration) -> Cluster {
        Cluster::start_with(n, lost_after, Vec::new())
    }

    /// [`Cluster::start`], node `i`'s `fosd` with the extra arguments `node_args[i]` (when there are).
    pub fn start_with(n: usize, lost_after: Duration, node_args: Vec<Vec<String>>) -> Cluster {
        Cluster::start_prepared(n, lost_after, |i, _| node_args.get(i).cloned().unwrap_or_default())
    }

    /// [`Cluster::start_with`], each node's extra arguments made by `setup` once its namespace exists (to start
    /// what the node needs beside it there, e.g. a libvirtd).
    pub fn start_prepared(
        n: usize,
        lost_after: Duration,
        setup: impl Fn(usize, &ClusterNode) -> Vec<String>,
    ) -> Cluster {
        use std::os::unix::fs::PermissionsExt;
        crate::build();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("temp dir mode");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("fc{}-{seq}", std::process::id() % 100000);
        let hub = format!("{tag}-hub");
        let mut cluster = Cluster {
            dir,
            hub: hub.clone(),
            nodes: Vec::new(),
            etcd: Vec::new(),
            lost_after,
            apps: Mutex::new(BTreeSet::new()),
            node_args: Vec::new(),
        };
        sh("ip", &["netns", "del", &hub]);
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "set", "lo", "up"]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "addr", "add", &format!("{NET}.1/24"), "dev", "br0"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for i in 0..3 {
            let member_ip = format!("{NET}.{}", 251 + i);
            ip(&["-n", &hub, "addr", "add", &format!("{member_ip}/24"), "dev", "br0"]);
            let data = cluster.dir.path().join(format!("etcd{i}"));
            cluster.etcd.push(Member { name: format!("e{i}"), ip: member_ip, data, process: None });
        }
        for i in 0..3 {
            cluster.start_member(i, true);
        }
        for i in 0..n {
            let ns = format!("{tag}-n{i}");
            let node_ip = format!("{NET}.{}", 11 + i);
            sh("ip", &["netns", "del", &ns]);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &hub, "link", "add", &format!("v{i}"), "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip(&["-n", &hub, "link", "set", &format!("v{i}"), "master", "br0", "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{node_ip}/24"), "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", &format!("{NET}.1")]);
            let data = cluster.dir.path().join(format!("n{i}"));
            cluster.nodes.push(ClusterNode { name: format!("n{i}"), ns, ip: node_ip, data, fosd: None });
        }
        cluster.wait_etcd();
        cluster.node_args = cluster.nodes.iter().enumerate().map(|(i, node)| setup(i, node)).collect();
        for i in 0..n {
            cluster.start_node(i);
            if i == 0 {
                let token = cluster.nodes[0].data.join("join-token");
                let deadline = Instant::now() + Duration::from_secs(60);
                while !token.exists() {
                    assert!(Instant::now() < deadline, "the first node wrote no join token:\n{}", cluster.log(0));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        cluster.wait_ready(&(0..n).collect::<Vec<_>>(), Duration::from_secs(60));
        cluster
    }

    fn etcd_endpoints(&self) -> String {
        self.etcd.iter().map(|m| format!("http://{}:2379", m.ip)).collect::<Vec<_>>().join(",")
    }

    /// Starts etcd member `i` (`new`: first start of the cluster).
    pub fn start_member(&mut self, i: usize, new: bool) {
        let initial: Vec<String> = self.etcd.iter().map(|m| format!("{}=http://{}:2380", m.name, m.ip)).collect();
        let m = &self.etcd[i];
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name))).expect("etcd log");
        let client = format!("http://{}:2379", m.ip);
        let peer = format!("http://{}:2380", m.ip);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hub, "etcd", "--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(","), "--initial-cluster-token", &self.hub])
            .args(["--initial-cluster-state", if new { "new" } else { "existing" }])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting etcd");
        self.etcd[i].process = Some(child);
    }

    /// Stops etcd member `i` (SIGKILL).
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut c) = self.etcd[i].process.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) every etcd member: the store is unreachable while paused.
    pub fn pause_etcd(&self, paused: bool) {
        for m in &self.etcd {
            if let Some(c) = &m.process {
                unsafe { libc::kill(c.id() as i32, if paused { libc::SIGSTOP } else { libc::SIGCONT }) };
            }
        }
    }

    fn wait_etcd(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.hub, "etcdctl", "--endpoints", &self.etcd_endpoints()])
                .args(["endpoint", "health"])
                .output()
                .expect("etcdctl");
            if out.status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not come up: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts (or restarts) node `i`'s `fosd`.
    pub fn start_node(&mut self, i: usize) {
        let lost = format!("{}ms", self.lost_after.as_millis());
        let endpoints = self.etcd_endpoints();
        let first_token = self.nodes[0].data.join("join-token");
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", node.name)))
            .expect("log file");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", node.ns)).arg("--").arg(bin_dir().join("fosd"));
        cmd.arg("--data-dir").arg(&node.data);
        cmd.args(["--listen", &format!("{}:7887", node.ip), "--node-name", &node.name, "--etcd", &endpoints]);
        cmd.args(["--node-lost-after", &lost, "--log", "info"]);
        cmd.args(self.node_args.get(i).into_iter().flatten());
        if i > 0 || node.data.join("join-token").exists() {
            cmd.arg("--join-token-file").arg(if node.data.join("join-token").exists() {
                node.data.join("join-token")
            } else {
                first_token
            });
        }
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().expect("starting fosd");
        self.nodes[i].fosd = Some(child);
    }

    /// Waits until every node of `which` is Ready (as node 0, or the first of `which`, sees it).
    pub fn wait_ready(&self, which: &[usize], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let via = which.first().copied().unwrap_or(0);
        loop {
            let nodes = self.nodes_json(via);
            let ready = which.iter().all(|&i| {
                nodes
                    .iter()
                    .any(|n| n["metadata"]["name"] == self.nodes[i].name.as_str() && n["status"]["ready"] == true)
            });
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "nodes {which:?} not ready:\n{:?}\n{}", nodes, self.log(via));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every node has measured the round trip to every other node: each then knows its peers, whom it
    /// asks before fencing itself when the store stops answering.
    pub fn wait_peers_known(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let nodes = self.nodes_json(0);
            let known = self.nodes.iter().all(|me| {
                nodes.iter().filter(|n| n["metadata"]["name"] == me.name.as_str()).any(|n| {
                    self.nodes
                        .iter()
                        .filter(|other| other.name != me.name)
                        .all(|other| n["status"]["rttMs"].get(other.name.as_str()).is_some())
                })
            });
            if known {
                return;
            }
            assert!(Instant::now() < deadline, "nodes do not know each other yet:\n{nodes:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every node as node `via`'s API answers.
    pub fn nodes_json(&self, via: usize) -> Vec<serde_json::Value> {
        json_items(&self.fosctl(via, &["node", "list", "-o", "json"]).stdout)
    }

    /// Runs `fosctl` as the administrator against node `i`'s API, from inside its namespace.
    pub fn fosctl(&self, i: usize, args: &[&str]) -> Run {
        let node = &self.nodes[i];
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", node.ns))
            .arg("--")
            .arg(bin_dir().join("fosctl"))
            .arg("--config")
            .arg(self.nodes[0].data.join("fosctl.yaml"))
            .args(["--server", &format!("https://{}:7887", node.ip)])
            .args(args)
            .output()
            .expect("running fosctl")
            .into()
    }

    /// Applies `manifest` through node `via`; remembers `app` for cleanup.
    pub fn apply(&self, via: usize, app: &str, manifest: &str) -> Run {
        self.apps.lock().unwrap_or_else(|p| p.into_inner()).insert(app.to_string());
        let path = self.dir.path().join(format!("{app}.yaml"));
        std::fs::write(&path, manifest).expect("manifest");
        self.fosctl(via, &["apply", "-f", &path.display().to_string()])
    }

    /// The application's view (record + status) through node `via`.
    pub fn app(&self, via: usize, app: &str) -> serde_json::Value {
        let run = self.fosctl(via, &["get", "apps", app, "-o", "json"]);
        json_items(&run.stdout).into_iter().next().unwrap_or_default()
    }

    /// The application's instances (`EntityView`s) through node `via`.
    pub fn entities(&self, via: usize, app: &str) -> Vec<serde_json::Value> {
        let run = self.fosctl(via, &["get", "entities", "-o", "json"]);
        json_items(&run.stdout)
            .into_iter()
            .filter(|e| e["id"].as_str().is_some_and(|id| id.split('.').nth(1) == Some(app)))
            .collect()
    }

    /// Kills node `i` as a machine dies: SIGKILL to its `fosd` and every process in its namespace.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].fosd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in netns_pids(&self.nodes[i].ns) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    /// Kills node `i`'s `fosd` alone (SIGKILL), as a crash of the daemon does: its instances (and its fence guard)
    /// keep running.
    pub fn kill_fosd(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].fosd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Cuts node `i` off (its veth down) or heals it.
    pub fn partition(&self, i: usize, cut: bool) {
        ip(&["-n", &self.hub, "link", "set", &format!("v{i}"), if cut { "down" } else { "up" }]);
    }

    /// Limits what reaches node `i` to `rate` (a `tc` rate, e.g. `100mbit`), as a slow link does; `None` lifts it.
    pub fn throttle(&self, i: usize, rate: Option<&str>) {
        let dev = format!("v{i}");
        let hub = self.hub.as_str();
        match rate {
            Some(rate) => {
                let args = ["-n", hub, "qdisc", "replace", "dev", &dev, "root", "tbf", "rate", rate, "burst", "256kb"];
                ip_tc(&[&args[..], &["latency", "200ms"]].concat());
            }
            None => sh("tc", &["-n", hub, "qdisc", "del", "dev", &dev, "root"]),
        }
    }

    /// Watches store key `key` (`etcdctl watch`): every value written to it, parsed as JSON, comes on the channel
    /// as soon as etcd has it. The watch ends with the returned process (killed on drop of [`KeyWatch`]).
    pub fn watch_key(&self, key: &str) -> KeyWatch {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.hub, "etcdctl", "--endpoints", &self.etcd_endpoints(), "watch", key])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl watch");
        let out = child.stdout.take().expect("watch output");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        KeyWatch { child, values: rx }
    }

    /// Whether node `i`'s `fosd` runs.
    pub fn running(&mut self, i: usize) -> bool {
        self.nodes[i].fosd.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Node `i`'s log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.nodes[i].name))).unwrap_or_default()
    }

    /// A directory entities may write marks to.
    pub fn marks(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join("marks");
        std::fs::create_dir_all(&p).expect("marks dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).expect("marks dir mode");
        p
    }

    /// A checker of this cluster's instances of `apps`.
    pub fn checker(&self, apps: &[&str]) -> Checker {
        let nodes = self.nodes.iter().filter_map(|n| Some((netns_inode(&n.ns)?, n.name.clone()))).collect();
        Checker::start(apps.iter().map(|a| a.to_string()).collect(), nodes)
    }
}

/// A watch of a store key: the values written to it.
pub struct KeyWatch {
    child: Child,
    /// Each value written, as JSON.
    pub values: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Drop for KeyWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Everything back: etcd running, links up, nodes started; then delete what was applied and stop.
        self.pause_etcd(false);
        for i in 0..self.etcd.len() {
            if self.etcd[i].process.is_none() {
                self.start_member(i, false);
            }
        }
        for i in 0..self.nodes.len() {
            self.partition(i, false);
            if !self.running(i) {
                self.start_node(i);
            }
        }
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && self.nodes_json(0).iter().filter(|n| n["status"]["ready"] == true).count() < all.len()
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        let apps: Vec<String> = self.apps.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        for app in &apps {
            self.fosctl(0, &["delete", app, "--wait", "--timeout", "60s"]);
        }
        for node in &mut self.nodes {
            if let Some(c) = node.fosd.take() {
                stop(c);
            }
        }
        for node in &self.nodes {
            for pid in netns_pids(&node.ns) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        remove_cgroups(&apps);
        for m in &mut self.etcd {
            if let Some(mut c) = m.process.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(keep) = std::env::var_os("FOS_CLUSTER_LOGS") {
            let to = PathBuf::from(keep).join(&self.hub);
            let _ = std::fs::create_dir_all(&to);
            for e in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().ends_with(".log") {
                    let _ = std::fs::copy(e.path(), to.join(e.file_name()));
                }
            }
        }
        for node in &self.nodes {
            sh("ip", &["netns", "del", &node.ns]);
        }
        sh("ip", &["netns", "del", &self.hub]);
    }
}

/// SIGTERM, then SIGKILL after 10 s.
fn stop(mut child: Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes the (empty) instance cgroups of `apps` that killed nodes left behind.
fn remove_cgroups(apps: &[String]) {
    for root in
        ["/sys/fs/cgroup/fos", "/sys/fs/cgroup/cpu/fos", "/sys/fs/cgroup/memory/fos", "/sys/fs/cgroup/freezer/fos"]
    {
        let Ok(entries) = std::fs::read_dir(root) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let instance = name.split('@').next().unwrap_or("");
            if apps.iter().any(|a| instance.split('.').nth(1) == Some(a.as_str())) {
                let _ = std::fs::remove_dir(Path::new(root).join(&name));
            }
        }
    }
}

/// The objects of `fosctl … -o json` output: the items of a `kind: List`, or the one object printed alone (none
/// when the output is not JSON).
pub fn json_items(stdout: &str) -> Vec<serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(stdout) {
        Ok(v) if v["kind"] == "List" => v["items"].as_array().cloned().unwrap_or_default(),
        Ok(serde_json::Value::Array(items)) => items,
        Ok(v) if v.is_object() => vec![v],
        _ => Vec::new(),
    }
}
