//! The machine's side of the end-to-end tests: a network namespace made for one test (so what the network manager
//! builds stays out of the machine's own namespace), and listings of links, named namespaces and cgroups to compare
//! before and after.

use std::path::PathBuf;
use std::process::Command;

/// Runs `ip` with `args`; its output (panics when it fails).
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made for one test (loopback up, a veth `dp0` with an address and the default route),
/// removed on drop.
pub struct TestNamespace {
    /// Its name under `/run/netns`.
    pub name: String,
}

impl TestNamespace {
    /// Makes the namespace `name` (replacing one left by an earlier run).
    pub fn new(name: &str) -> Self {
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(std::process::Stdio::null()).status();
        ip(&["netns", "add", name]);
        let ns = TestNamespace { name: name.to_string() };
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ip(&["-n", name, "link", "add", "dp0", "type", "veth", "peer", "name", "dp1"]);
        ip(&["-n", name, "addr", "add", "192.0.2.10/24", "dev", "dp0"]);
        ip(&["-n", name, "link", "set", "dp1", "up"]);
        ip(&["-n", name, "link", "set", "dp0", "up"]);
        ip(&["-n", name, "route", "add", "default", "via", "192.0.2.1", "dev", "dp0"]);
        ns
    }

    /// Its path.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The namespace's links, by name (`ip -o link`, without counters).
    pub fn links(&self) -> Vec<String> {
        let mut links: Vec<String> = ip(&["-n", &self.name, "-o", "link"])
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
            .collect();
        links.sort();
        links
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Every named network namespace of the machine (`ip netns`) whose name contains `part`.
pub fn named_namespaces(part: &str) -> Vec<String> {
    let mut names: Vec<String> = ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n.contains(part))
        .collect();
    names.sort();
    names
}

/// Every cgroup directory of the machine (all hierarchies, two levels below each) whose name contains `part`.
pub fn cgroups(part: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().contains(part) {
                out.push(path.clone());
            }
            if depth < 3 {
                dirs.push((path, depth + 1));
            }
        }
    }
    out.sort();
    out
}
