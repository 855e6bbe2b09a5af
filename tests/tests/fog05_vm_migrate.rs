//! A KVM-style fog05 FDU (a VM) migrated live between two nodes' libvirt daemons, driven by fog05's own client
//! (`make test-vm`): the cluster harness (`fos_e2e::cluster`) with, per node, a libvirtd started in the node's
//! network namespace (`fos_e2e::libvirt`, QEMU guests under TCG, as `vm_migrate` has), node `n0` serving the fog05
//! REST API on its namespace's loopback (`--fog05-rest 127.0.0.1:PORT --fog05-rest-tenant osm`).
//! `tests/fog05/drive_migrate_kvm.py`, run in that namespace with `fog05rest==0.0.4` from PyPI, adds the bootable
//! test guest's disk as an image through `n0`, instantiates a KVM FDU (`migration_kind: LIVE`, one interface on a
//! fog05 network with DHCP) on `n0` and migrates it with `api.fdu.migrate`: the domain runs in `n1`'s libvirtd only,
//! the guest's console counter goes on on `n1` with no second boot, and it answers at the same address on `n1`'s
//! side of the network. Meanwhile the test checks the cluster: one live migration, completed from
//! `n0` to `n1` and moved by libvirt (its downtime in the ticket), the node pin on `n1`, the entity running there.
//! Then it is terminated and offloaded: nothing left in either libvirtd nor in the store. Skipped, saying so, only
//! when PyPI cannot be reached.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fos_e2e::cluster::{json_items, Cluster};
use fos_e2e::fog05;
use fos_e2e::libvirt::Libvirtd;

/// Where `n0` serves the fog05 REST API, inside its namespace.
const REST: &str = "127.0.0.1:8080";

/// `key=N` in the ticket `moved:libvirt downtimeMs=N …`.
fn ticket_value(ticket: &str, key: &str) -> Option<u64> {
    ticket.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

#[test]
fn fog05rest_migrates_a_kvm_fdu_live_between_two_nodes_libvirt_daemons() {
    let disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-guest/disk.img");
    assert!(disk.is_file(), "the test guest's disk (scripts/build-test-guest.sh): {}", disk.display());
    let daemons = tempfile::tempdir().expect("temp dir");
    let started: std::cell::RefCell<Vec<Libvirtd>> = std::cell::RefCell::new(Vec::new());
    let cluster = Cluster::start_prepared(2, Duration::from_secs(10), |i, node| {
        let libvirt = Libvirtd::start_at(&daemons.path().join(format!("lv{i}")), Some(&node.ns));
        let config = node.data.with_extension("yaml");
        let text = format!(
            "runtimes:\n  vm:\n    config:\n      uri: \"{uri}\"\n      accel: tcg\n      migrationUri: \"{uri}\"\n      \
             migrationAddress: \"{}\"\n",
            node.ip,
            uri = libvirt.uri()
        );
        std::fs::write(&config, text).expect("node configuration");
        started.borrow_mut().push(libvirt);
        let mut args = vec!["--config".to_string(), config.display().to_string()];
        if i == 0 {
            args.extend(["--fog05-rest", REST, "--fog05-rest-tenant", "osm"].map(String::from));
        }
        args
    });
    let libvirt = started.borrow();
    let Some(python) = fog05::venv(cluster.dir.path()) else { return };

    let marks = cluster.marks();
    let (out, err) = (cluster.dir.path().join("drive.out"), cluster.dir.path().join("drive.err"));
    let mut drive = Command::new("ip")
        .args(["netns", "exec", &cluster.nodes[0].ns])
        .arg(&python)
        .arg(fog05::script("drive_migrate_kvm.py"))
        .arg(REST)
        .arg(&marks)
        .arg(&disk)
        .args([libvirt[0].uri(), libvirt[1].uri(), cluster.nodes[1].ns.clone()])
        .stdout(Stdio::from(std::fs::File::create(&out).expect("drive.out")))
        .stderr(Stdio::from(std::fs::File::create(&err).expect("drive.err")))
        .spawn()
        .expect("running drive_migrate_kvm.py");
    let output = || {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}\n{}\n{}\n{}", read(&out), read(&err), cluster.log(0), cluster.log(1))
    };
    let begun = Instant::now();

    // Once migrated (the script waits for the test to look): the cluster's view of it.
    let migrated = marks.join("migrated");
    let deadline = Instant::now() + Duration::from_secs(600);
    while !migrated.exists() {
        let ended = drive.try_wait().expect("drive_migrate_kvm.py's status");
        assert!(ended.is_none(), "drive_migrate_kvm.py ended before the migration:\n{}", output());
        assert!(Instant::now() < deadline, "no migration within 600 s:\n{}", output());
        std::thread::sleep(Duration::from_millis(200));
    }
    let migrated_after = begun.elapsed();
    let uuid = std::fs::read_to_string(&migrated).expect("the instance's uuid");
    let app = format!("i-{uuid}");
    cluster.apps.lock().unwrap_or_else(|p| p.into_inner()).insert(app.clone());
    let osm = |args: &[&str]| json_items(&cluster.fosctl(0, &[&["--tenant", "osm"], args].concat()).stdout);
    let m = osm(&["get", "migrations", "-o", "json"]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0]["phase"].as_str(), m[0]["mode"].as_str()), (Some("Completed"), Some("live")), "{}", m[0]);
    assert_eq!((m[0]["source"].as_str(), m[0]["destination"].as_str()), (Some("n0"), Some("n1")), "{}", m[0]);
    let ticket = m[0]["ticket"].as_str().unwrap_or_default().to_string();
    assert!(ticket.starts_with("moved:libvirt"), "moved by libvirt, nothing streamed: {}", m[0]);
    let downtime = ticket_value(&ticket, "downtimeMs").unwrap_or_else(|| panic!("libvirt's downtime: {}", m[0]));
    let record = osm(&["get", "apps", &app, "-o", "json"]);
    let pin = record.first().map(|r| r["metadata"]["annotations"]["fos/node"].clone());
    assert_eq!(pin, Some("n1".into()), "the node pin followed the migration: {record:?}");
    let entities = osm(&["get", "entities", "-o", "json"]);
    assert_eq!(entities.len(), 1, "{entities:?}");
    let actual = &entities[0]["actual"];
    assert_eq!((actual["node"].as_str(), actual["state"].as_str()), (Some("n1"), Some("Running")), "{actual}");
    assert_eq!(libvirt[1].running().len(), 1, "the guest runs in n1's libvirtd");
    assert!(libvirt[0].domains().is_empty(), "and no domain is left in n0's");
    std::fs::write(marks.join("checked"), "").expect("the checked mark");

    let status = drive.wait().expect("drive_migrate_kvm.py's status");
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(status.success() && printed.ends_with("ok\n"), "drive_migrate_kvm.py failed:\n{}", output());
    println!(
        "figure: fog05 KVM FDU (128 MiB, TCG, booted from its image) instantiated, counting and migrated live \
         n0 → n1 in {} ms (libvirt downtime {downtime} ms, elapsed {} ms, disk {} bytes), whole drive {} ms",
        migrated_after.as_millis(),
        ticket_value(&ticket, "elapsedMs").unwrap_or(0),
        ticket_value(&ticket, "diskBytes").unwrap_or(0),
        begun.elapsed().as_millis()
    );

    // Nothing is left: no entity, no application, no domain in either daemon.
    assert_eq!(osm(&["get", "entities", "-o", "json"]), Vec::<serde_json::Value>::new());
    assert_eq!(osm(&["get", "apps", "-o", "json"]), Vec::<serde_json::Value>::new());
    assert!(libvirt[0].domains().is_empty() && libvirt[1].domains().is_empty());
    drop(libvirt);
    drop(cluster);
}
