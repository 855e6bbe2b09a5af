//! The fog05 REST API driven by fog05's own client: a Python virtual environment with `fog05rest==0.0.4` from PyPI
//! (what OSM's fos VIM connector imports) runs `tests/fog05/drive.py` against a real `fosd` started with
//! `--fog05-rest`: check, nodes, plugins, a flavor, an image with its sha256 (a wrong one refused), a network, a
//! BARE FDU onboarded, instantiated and really running, stop/start/pause/resume, terminate, the define … undefine
//! verbs, offload and removals; then an LXD-style FDU as a container (`runc`) from an OCI layout archive added as an
//! image. Afterwards nothing is left on the node. Skipped, saying so, only when PyPI cannot be reached.

use std::path::Path;
use std::process::Command;

use fos_e2e::{free_port, Fos};

/// A node serving the fog05 REST API on loopback for tenant `osm`, its address, and a Python with `fog05rest`
/// (`None`, saying so, where PyPI is unreachable).
fn fos_with_client() -> Option<(Fos, String, std::path::PathBuf)> {
    let address = format!("127.0.0.1:{}", free_port());
    let fos = Fos::start_with(None, &["--fog05-rest", &address, "--fog05-rest-tenant", "osm"]);
    let python = fos_e2e::fog05::venv(fos.dir.path())?;
    Some((fos, address, python))
}

#[test]
fn fog05rest_drives_a_bare_fdu_through_its_whole_life() {
    let Some((fos, address, python)) = fos_with_client() else { return };
    let marks = fos.marks();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fog05/drive.py");
    let run = Command::new(python)
        .arg(script)
        .args([&address, "osm"])
        .arg(&marks)
        .arg(fos.dir.path())
        .output()
        .expect("running drive.py");
    let (out, err) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success() && out.ends_with("ok\n"), "drive.py failed:\n{out}\n{err}\n{}", fos.log());

    // Nothing is left: no entity, no network, no process of the FDU.
    assert_eq!(fos.items(&["--tenant", "osm", "get", "entities"]), Vec::<serde_json::Value>::new());
    assert_eq!(fos.items(&["--tenant", "osm", "get", "networks"]), Vec::<serde_json::Value>::new());
    let pid: i32 = std::fs::read_to_string(marks.join("fdu.pid")).unwrap().trim().parse().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the FDU's last process is gone");
}

#[test]
fn fog05rest_drives_an_lxd_fdu_as_a_container() {
    let Some((fos, address, python)) = fos_with_client() else { return };
    let archive = fos.dir.path().join("busybox.tar");
    fos_e2e::oci::write_layout_tar(&fos_e2e::oci::busybox_image(8080, "fog05", 0), &archive);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fog05/drive_lxd.py");
    let run = Command::new(python).arg(script).arg(&address).arg(&archive).output().expect("running drive_lxd.py");
    let (out, err) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success() && out.ends_with("ok\n"), "drive_lxd.py failed:\n{out}\n{err}\n{}", fos.log());
    assert_eq!(fos.items(&["--tenant", "osm", "get", "entities"]), Vec::<serde_json::Value>::new());
    assert_eq!(fos.items(&["get", "images"]), Vec::<serde_json::Value>::new());
}

#[test]
fn an_insecure_listener_beyond_loopback_is_warned_of_by_get_nodes_and_one_on_loopback_is_not() {
    let port = free_port();
    let open = format!("0.0.0.0:{port}");
    let fos = Fos::start_with(None, &["--fog05-rest", &open, "--fog05-rest-tenant", "osm", "--fog05-rest-insecure"]);
    let run = fos.fosctl(&["get", "nodes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let warning = format!("the fog05 REST API on {open} has no authentication");
    assert!(run.stderr.contains("Warning: node ") && run.stderr.contains(&warning), "{}", run.stderr);
    assert!(!run.stdout.contains("Warning"), "the table stays clean for pipes: {}", run.stdout);
    let nodes = fos.items(&["get", "nodes"]);
    let warnings = &nodes[0]["status"]["warnings"];
    assert!(warnings[0].as_str().is_some_and(|w| w.contains(&warning)), "{warnings}");
    assert!(fos.log().contains(&warning), "fosd warns at start too");
    drop(fos);

    let fos =
        Fos::start_with(None, &["--fog05-rest", &format!("127.0.0.1:{}", free_port()), "--fog05-rest-tenant", "osm"]);
    let run = fos.fosctl(&["get", "nodes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("Warning"), "{}", run.stderr);
    assert!(fos.items(&["get", "nodes"])[0]["status"]["warnings"].is_null());
}
