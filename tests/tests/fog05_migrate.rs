//! A fog05 FDU migrated between two real `fosd` on the cluster harness (`fos_e2e::cluster`), driven by fog05's own
//! client: node `n0` serves the fog05 REST API (`--fog05-rest 127.0.0.1:PORT --fog05-rest-tenant osm`, loopback of
//! its namespace), and `tests/fog05/drive_migrate.py`, run inside that namespace with `fog05rest==0.0.4` from PyPI,
//! instantiates a BARE FDU on `n0`, migrates it to `n1` with `api.fdu.migrate` (the same instance uuid, reported
//! running on `n1`, its process in `n1`'s namespace, none left on `n0`), then terminates and offloads it. Meanwhile
//! the test checks the cluster: the migration completed cold from `n0` to `n1`, the instance's node pin moved to
//! `n1`, its processes are on `n1` only. Afterwards nothing is left on either node. Skipped, saying so, only when
//! PyPI cannot be reached.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fos_e2e::cluster::{instance_processes_on, json_items, netns_inode, Cluster};
use fos_e2e::fog05;

/// Where `n0` serves the fog05 REST API, inside its namespace.
const REST: &str = "127.0.0.1:8080";

#[test]
fn fog05rest_migrates_a_bare_fdu_to_a_second_node_keeping_its_instance() {
    let args = ["--fog05-rest", REST, "--fog05-rest-tenant", "osm"];
    let cluster = Cluster::start_with(2, Duration::from_secs(10), vec![args.iter().map(|a| a.to_string()).collect()]);
    let Some(python) = fog05::venv(cluster.dir.path()) else { return };
    let marks = cluster.marks();
    let (out, err) = (cluster.dir.path().join("drive.out"), cluster.dir.path().join("drive.err"));
    let mut drive = Command::new("ip")
        .args(["netns", "exec", &cluster.nodes[0].ns])
        .arg(&python)
        .arg(fog05::script("drive_migrate.py"))
        .arg(REST)
        .arg(&marks)
        .args([&cluster.nodes[0].ns, &cluster.nodes[1].ns])
        .stdout(Stdio::from(std::fs::File::create(&out).expect("drive.out")))
        .stderr(Stdio::from(std::fs::File::create(&err).expect("drive.err")))
        .spawn()
        .expect("running drive_migrate.py");
    let output = || {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}\n{}\n{}", read(&out), read(&err), cluster.log(0))
    };
    let started = Instant::now();

    // Once migrated (the script waits for the test to look): the cluster's view of it.
    let migrated = marks.join("migrated");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !migrated.exists() {
        let ended = drive.try_wait().expect("drive_migrate.py's status");
        assert!(ended.is_none(), "drive_migrate.py ended before the migration:\n{}", output());
        assert!(Instant::now() < deadline, "no migration within 300 s:\n{}", output());
        std::thread::sleep(Duration::from_millis(100));
    }
    let migrated_after = started.elapsed();
    let uuid = std::fs::read_to_string(&migrated).expect("the instance's uuid");
    let app = format!("i-{uuid}");
    cluster.apps.lock().unwrap_or_else(|p| p.into_inner()).insert(app.clone());
    let osm = |args: &[&str]| json_items(&cluster.fosctl(0, &[&["--tenant", "osm"], args].concat()).stdout);
    let m = osm(&["get", "migrations", "-o", "json"]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0]["phase"].as_str(), m[0]["mode"].as_str()), (Some("Completed"), Some("cold")), "{}", m[0]);
    assert_eq!((m[0]["source"].as_str(), m[0]["destination"].as_str()), (Some("n0"), Some("n1")), "{}", m[0]);
    let record = osm(&["get", "apps", &app, "-o", "json"]);
    let pin = record.first().map(|r| r["metadata"]["annotations"]["fos/node"].clone());
    assert_eq!(pin, Some("n1".into()), "the node pin followed the migration: {record:?}");
    let nodes: BTreeMap<u64, String> =
        cluster.nodes.iter().filter_map(|n| Some((netns_inode(&n.ns)?, n.name.clone()))).collect();
    let apps = BTreeSet::from([app.clone()]);
    let running = instance_processes_on(&apps, &nodes);
    let on: Vec<&String> = running.values().flat_map(|n| n.keys()).collect();
    assert_eq!(on, ["n1"], "its processes are on n1 only: {running:?}");
    std::fs::write(marks.join("checked"), "").expect("the checked mark");

    let status = drive.wait().expect("drive_migrate.py's status");
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(status.success() && printed.ends_with("ok\n"), "drive_migrate.py failed:\n{}", output());
    let total = started.elapsed().as_millis();
    let migrated_ms = migrated_after.as_millis();
    println!("figure: fog05 BARE FDU instantiated and migrated n0 → n1 in {migrated_ms} ms, whole drive {total} ms");

    // Nothing is left on either node: no entity, no application, no process of the FDU.
    assert_eq!(osm(&["get", "entities", "-o", "json"]), Vec::<serde_json::Value>::new());
    assert_eq!(osm(&["get", "apps", "-o", "json"]), Vec::<serde_json::Value>::new());
    assert!(instance_processes_on(&apps, &nodes).is_empty());
}
