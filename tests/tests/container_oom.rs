//! Memory limits end to end: the real `fosd`, real `runc`, the node's real memory cgroup. A container limited to
//! 32 MiB that allocates 64 MiB is killed by the kernel's OOM killer; fos reports it (`exitReason: OOMKilled`, the
//! error says so) and its restart policy applies: restarted under `on-failure`, left down under `never`. A container
//! within its limit killed with SIGKILL by hand is reported as `Killed`, not as an OOM kill.

use std::time::Duration;

use fos_e2e::host::TestNamespace;
use fos_e2e::oci::{busybox_image, entity_of, wait_until};
use fos_e2e::Fos;

/// A container entity limited to `limit` running `dd` with a buffer of `buffer` (a 64M buffer is 64 MiB touched),
/// then sleeping.
fn entity(name: &str, limit: &str, buffer: &str, restart: &str) -> String {
    format!(
        "apiVersion: fos/v1\nkind: Entity\nmetadata: {{name: {name}}}\nspec:\n  kind: container\n  image: busybox\n  \
         command: [/bin/busybox, sh, -c, 'echo allocating {buffer}; /bin/busybox dd if=/dev/zero of=/dev/null \
         bs={buffer} count=1 && exec /bin/busybox sleep 1000']\n  resources: {{memory: {limit}}}\n  restart: {restart}\n"
    )
}

#[test]
fn a_container_past_its_memory_limit_is_oom_killed_reported_and_its_restart_policy_applies() {
    let ns = TestNamespace::new(&format!("fos-e2e-oom-{}", std::process::id()));
    let fos = Fos::start_in(Some(ns.path()));
    let archive = fos.dir.path().join("busybox.tar");
    fos_e2e::oci::write_layout_tar(&busybox_image(8080, "-", 0), &archive);
    let run =
        fos.fosctl(&["image", "upload", &archive.display().to_string(), "--name", "busybox", "--format", "tar.gz"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());

    for (name, text) in [
        ("hog", entity("hog", "32Mi", "64M", "on-failure")),
        ("once", entity("once", "32Mi", "64M", "never")),
        ("fits", entity("fits", "64Mi", "8M", "on-failure")),
    ] {
        let file = fos.file(&format!("{name}.yaml"), &text);
        let run = fos.fosctl(&["apply", "-f", &file]);
        assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    }

    // Past its limit: killed by the kernel, reported as such, restarted by its policy.
    wait_until("hog OOM-killed and restarted", &fos, Duration::from_secs(120), || {
        let e = entity_of(&fos, "default", "hog-0");
        e["actual"]["restarts"].as_u64() >= Some(1)
    });
    let e = entity_of(&fos, "default", "hog-0");
    assert_eq!(e["actual"]["exitReason"], "OOMKilled", "{e}");
    assert_eq!(e["actual"]["exitStatus"], 137, "{e}");
    let error = e["actual"]["error"].as_str().unwrap_or_default();
    assert!(error.is_empty() || error.contains("OOM killer"), "{error}");
    let logs = fos.fosctl(&["logs", "hog-0.hog.default"]);
    assert!(logs.stdout.contains("allocating 64M"), "it ran: {logs:?}");
    assert!(fos.log().contains("killed by the kernel's OOM killer"), "fosd's log says why");

    // Under `never`: left down with the reason.
    wait_until("once OOM-killed and left down", &fos, Duration::from_secs(60), || {
        entity_of(&fos, "default", "once-0")["actual"]["state"] == "Error"
    });
    let e = entity_of(&fos, "default", "once-0");
    assert_eq!(e["actual"]["exitReason"], "OOMKilled", "{e}");
    let error = e["actual"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("killed by the kernel's OOM killer") && error.contains("restart policy never"), "{error}");
    assert_eq!(e["actual"]["restarts"].as_u64().unwrap_or(0), 0, "{e}");
    assert!(e["actual"]["pid"].is_null(), "{e}");

    // Within its limit: runs; a SIGKILL by hand is no OOM kill.
    wait_until("fits running", &fos, Duration::from_secs(60), || {
        let e = entity_of(&fos, "default", "fits-0");
        e["actual"]["state"] == "Running" && e["actual"]["pid"].as_u64().is_some()
    });
    std::thread::sleep(Duration::from_secs(1));
    let e = entity_of(&fos, "default", "fits-0");
    assert!(e["actual"]["exitReason"].is_null(), "dd within the limit did not end it: {e}");
    let pid = e["actual"]["pid"].as_u64().expect("a pid") as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_until("fits restarted", &fos, Duration::from_secs(60), || {
        entity_of(&fos, "default", "fits-0")["actual"]["restarts"].as_u64() >= Some(1)
    });
    let e = entity_of(&fos, "default", "fits-0");
    assert_eq!(e["actual"]["exitReason"], "Killed", "{e}");

    let run = fos.fosctl(&["delete", "entity", "hog", "once", "fits", "--wait", "--timeout", "90s"]);
    assert_eq!(run.code, 0, "{run:?}");
    for name in ["hog", "once", "fits"] {
        let part = format!("-0.{name}.default");
        assert_eq!(fos_e2e::host::cgroups(&part), Vec::<std::path::PathBuf>::new(), "no cgroup of {name} left");
    }
}
