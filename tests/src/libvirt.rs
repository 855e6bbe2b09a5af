//! A libvirtd of the test's own (`scripts/libvirtd-sandbox.sh`: its own mount namespace, optionally inside a node's
//! network namespace, stopped with its guests and removed on drop), and the test guest
//! `scripts/build-test-guest.sh` builds from Debian packages (a kernel and a busybox initramfs that counts on its
//! console and serves its counter over HTTP).

use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A libvirtd of the test's own.
pub struct Libvirtd {
    /// Its directory (configuration copies, socket, pid files).
    pub dir: PathBuf,
}

impl Libvirtd {
    /// Starts one under `dir/libvirt`, in this network namespace.
    pub fn start(dir: &Path) -> Libvirtd {
        Libvirtd::start_at(&dir.join("libvirt"), None)
    }

    /// Starts one in `dir`, inside network namespace `netns` when given (its guests' taps and QEMU's migration
    /// sockets are then that namespace's).
    pub fn start_at(dir: &Path, netns: Option<&str>) -> Libvirtd {
        let script = format!("{REPO}/scripts/libvirtd-sandbox.sh");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, &script]);
                c
            }
            None => Command::new(&script),
        };
        let out = cmd.arg("start").arg(dir).output().expect("running libvirtd-sandbox.sh");
        assert!(out.status.success(), "starting libvirtd: {}", String::from_utf8_lossy(&out.stderr));
        Libvirtd { dir: dir.to_path_buf() }
    }

    /// Its URI.
    pub fn uri(&self) -> String {
        format!("qemu+unix:///system?socket={}/run/libvirt-sock", self.dir.display())
    }

    /// `virsh -q ARGS` against it; its standard output, trimmed.
    pub fn virsh(&self, args: &[&str]) -> String {
        let out = Command::new("virsh").args(["-q", "-c", &self.uri()]).args(args).output().expect("virsh");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Every domain it knows, defined or running.
    pub fn domains(&self) -> Vec<String> {
        self.virsh(&["list", "--all", "--name"]).lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
    }

    /// The domains running (or paused) in it.
    pub fn running(&self) -> Vec<String> {
        self.virsh(&["list", "--name"]).lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        let _ = Command::new(format!("{REPO}/scripts/libvirtd-sandbox.sh")).arg("stop").arg(&self.dir).status();
    }
}

/// The test guest's kernel and initrd (built once from Debian packages, then reused).
pub fn guest() -> (PathBuf, PathBuf) {
    let out = PathBuf::from(format!("{REPO}/target/test-guest"));
    let status = Command::new(format!("{REPO}/scripts/build-test-guest.sh")).arg(&out).status().expect("build script");
    assert!(status.success(), "building the test guest");
    (out.join("vmlinuz"), out.join("initrd.img"))
}
