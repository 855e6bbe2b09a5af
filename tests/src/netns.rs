//! A network namespace made for one test: loopback up, a veth `dp0` with an address and the default route (the
//! data-plane interface fos's network manager picks), removed on drop. `fosd`, its entities and a browser run in
//! it, so ports such as the WordPress example's 8080 never meet the machine's own.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The namespace, deleted on drop.
pub struct TestNamespace {
    name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestNamespace {
    /// Makes namespace `name` (replacing a leftover of the same name).
    pub fn new(name: &str) -> Self {
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
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

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
