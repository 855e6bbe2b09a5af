//! Named network namespaces as iproute2 keeps them: the directory is made a shared mount point before the first one
//! is named in it, so that a namespace removed on the node is unmounted in the mount namespaces made since (where a
//! copy would otherwise keep it, and its veth ends on the node, alive), and the bind mount is undone at the end.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fos_agent::network::netns;

/// The line of `pid`'s mountinfo whose mount point is `at`, if mounted there.
fn mount_line(pid: &str, at: &Path) -> Option<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    info.lines().find(|l| l.split(' ').nth(4) == Some(at.to_str().unwrap())).map(str::to_string)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_removed_namespace_is_unmounted_in_mount_namespaces_made_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("netns");
    assert!(netns::share_dir(&dir).unwrap(), "not a mount point yet: bind-mounted on itself");
    let line = mount_line("self", &dir).expect("a mount point now");
    assert!(line.contains("shared:"), "a shared mount point: {line}");
    assert!(!netns::share_dir(&dir).unwrap(), "done once");

    let (_ns, created) = netns::create_named(&dir, "fos-test-shared").unwrap();
    assert!(created);
    let file = dir.join("fos-test-shared");
    // A mount namespace made now (as `ip netns exec` or a container runtime makes one) sees the namespace...
    let child =
        Killed(Command::new("unshare").args(["--mount", "--propagation", "unchanged", "sleep", "30"]).spawn().unwrap());
    let pid = child.0.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while mount_line(&pid, &file).is_none() {
        assert!(Instant::now() < deadline, "the new mount namespace never saw the namespace file");
        std::thread::sleep(Duration::from_millis(10));
    }
    // ...and no longer holds it once it is removed on the node.
    assert!(netns::remove_named(&dir, "fos-test-shared").unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while mount_line(&pid, &file).is_some() {
        assert!(Instant::now() < deadline, "a copy of the namespace stays mounted in the other mount namespace");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!file.exists());
    drop(child);
    assert!(netns::release_dir(&dir).unwrap(), "the bind mount is undone once nothing is mounted below it");
    assert!(mount_line("self", &dir).is_none());
}
