//! A VM migrated live between two nodes' libvirt daemons on the cluster harness (`make test-vm`): each node's `fosd`
//! drives a libvirtd of its own started in the node's network namespace (`fos_e2e::libvirt`), and QEMU guests run
//! under TCG. The test guest (booted from its kernel and initrd, with a 16 MiB volume as its disk) counts seconds
//! on its console and serves it over HTTP on a fos VxLAN network; `fosctl migrate --live --wait` moves it from one
//! node to the other while it runs (the destination attached to the network first). Checked: the migration record
//! (live, Completed, libvirt's downtime in its ticket), the guest running in the destination's libvirtd only (the
//! source's domain gone), its counter carrying on in the destination's console with no second boot, the same
//! address answering on the destination's side with the counter going on, and the volume's disk at the destination
//! holding what the guest wrote to it at boot (copied by the move).
//! Beside it, in the same run, the same guest migrated by hand with `virsh migrate --live --p2p --copy-storage-inc`
//! between the same daemons, for the downtime figure.

use std::path::Path;
use std::time::{Duration, Instant};

use fos_e2e::cluster::{json_items, Cluster};
use fos_e2e::libvirt::{guest, Libvirtd};

const APP: &str = "vm-move";

fn instance() -> String {
    format!("guest-0.{APP}.default")
}

fn manifest(kernel: &Path, initrd: &Path) -> String {
    format!(
        "apiVersion: fos/v1\nkind: Application\nmetadata: {{name: {APP}}}\nspec:\n  networks:\n    - {{name: lan, type: \
         vxlan, ipRange: 10.203.9.0/24, gateway: 10.203.9.1}}\n  components:\n    - name: guest\n      entity:\n        \
         kind: vm\n        kernel: {}\n        initrd: {}\n        cmdline: quiet\n        cpu: 1\n        \
         memory: 128Mi\n        migration: live\n        networks: [{{network: lan}}]\n        \
         volumes: [{{name: data, size: 16Mi}}]\n",
        kernel.display(),
        initrd.display()
    )
}

/// The guest's address on `lan`, as its entity record says.
fn address(cluster: &Cluster) -> Option<String> {
    let entities = json_items(&cluster.fosctl(0, &["get", "entities", "-o", "json"]).stdout);
    let e = entities.into_iter().find(|e| e["id"] == instance().as_str())?;
    e["actual"]["addresses"].as_array()?.first()?.as_str().map(str::to_string)
}

/// The guest's HTTP counter, asked from inside node `ns`'s namespace (through the network's bridge there).
fn http_counter(ns: &str, ip: &str) -> Option<u64> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "-f", "-m", "2", &format!("http://{ip}/counter")])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The counter values the guest printed on a console (`fos-guest counter N`).
fn counters(console: &str) -> Vec<u64> {
    console.lines().filter_map(|l| l.trim().strip_prefix("fos-guest counter ")?.trim().parse().ok()).collect()
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `key=N` in the ticket `moved:libvirt downtimeMs=N …`.
fn ticket_value(ticket: &str, key: &str) -> Option<u64> {
    ticket.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Whether `file` holds `needle` anywhere (a qcow2 keeps the guest's data clusters as they are).
fn holds(file: &Path, needle: &[u8]) -> bool {
    std::fs::read(file).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
}

/// Every `disk.qcow2` under `dir`.
fn disks_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(disks_under(&p));
        } else if p.file_name().is_some_and(|n| n == "disk.qcow2") {
            out.push(p);
        }
    }
    out
}

/// The same guest moved by hand between the same daemons: its downtime as libvirt reports it (ms).
fn by_hand(dir: &Path, from: &Libvirtd, to: &Libvirtd, to_ip: &str, kernel: &Path, initrd: &Path) -> u64 {
    let qemu_img = |path: &Path| {
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(path)
            .arg("16M")
            .output()
            .expect("qemu-img");
        assert!(out.status.success(), "qemu-img: {}", String::from_utf8_lossy(&out.stderr));
    };
    let xml = |disk: &Path, console: &Path| {
        format!(
            "<domain type='qemu'><name>by-hand</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel><initrd>{}</initrd>\
             <cmdline>console=ttyS0 quiet</cmdline></os>\
             <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/>\
             <target dev='vda' bus='virtio'/></disk>\
             <serial type='file'><source path='{}' append='on'/><target port='0'/></serial>\
             <console type='file'><source path='{}' append='on'/><target type='serial'/></console>\
             </devices></domain>",
            kernel.display(),
            initrd.display(),
            disk.display(),
            console.display(),
            console.display()
        )
    };
    let (src_disk, dst_disk) = (dir.join("src.qcow2"), dir.join("dst.qcow2"));
    let (src_console, dst_console) = (dir.join("src.console"), dir.join("dst.console"));
    qemu_img(&src_disk);
    qemu_img(&dst_disk);
    let src_xml = dir.join("src.xml");
    std::fs::write(&src_xml, xml(&src_disk, &src_console)).expect("src.xml");
    from.virsh(&["create", &src_xml.display().to_string()]);
    wait_for("the by-hand guest's counter", Duration::from_secs(180), || {
        let c = counters(&std::fs::read_to_string(&src_console).unwrap_or_default());
        c.last().is_some_and(|n| *n >= 10).then_some(())
    });
    let uuid = from.virsh(&["domuuid", "by-hand"]);
    let dst_xml = dir.join("dst.xml");
    let text = xml(&dst_disk, &dst_console)
        .replace("<name>by-hand</name>", &format!("<name>by-hand</name><uuid>{uuid}</uuid>"));
    std::fs::write(&dst_xml, text).expect("dst.xml");
    let out = std::process::Command::new("virsh")
        .args(["-q", "-c", &from.uri(), "migrate", "--live", "--p2p", "--copy-storage-inc", "--xml"])
        .arg(&dst_xml)
        .args(["by-hand", &to.uri(), &format!("tcp://{to_ip}")])
        .output()
        .expect("virsh migrate");
    assert!(out.status.success(), "virsh migrate: {}", String::from_utf8_lossy(&out.stderr));
    let info = from.virsh(&["domjobinfo", "--completed", "by-hand"]);
    // A transient domain is gone from the source once moved: its completed job is read on the destination.
    let info = if info.is_empty() { to.virsh(&["domjobinfo", "--completed", "by-hand"]) } else { info };
    to.virsh(&["destroy", "by-hand"]);
    let downtime = info.lines().find_map(|l| {
        let rest = l.strip_prefix("Total downtime:")?;
        rest.split_whitespace().next()?.parse().ok()
    });
    downtime.unwrap_or_else(|| panic!("no downtime in virsh domjobinfo --completed:\n{info}"))
}

#[test]
fn a_vm_migrated_live_between_two_nodes_libvirt_daemons_carries_on_counting() {
    let (kernel, initrd) = guest();
    let daemons = tempfile::tempdir().expect("temp dir");
    let started: std::cell::RefCell<Vec<Libvirtd>> = std::cell::RefCell::new(Vec::new());
    let configs = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start_prepared(2, Duration::from_secs(10), |i, node| {
        let libvirt = Libvirtd::start_at(&daemons.path().join(format!("lv{i}")), Some(&node.ns));
        let config = configs.path().join(format!("{}.yaml", node.name));
        let text = format!(
            "runtimes:\n  vm:\n    config:\n      uri: \"{uri}\"\n      accel: tcg\n      migrationUri: \"{uri}\"\n      \
             migrationAddress: \"{}\"\n",
            node.ip,
            uri = libvirt.uri()
        );
        std::fs::write(&config, text).expect("node configuration");
        started.borrow_mut().push(libvirt);
        vec!["--config".into(), config.display().to_string()]
    });
    let libvirt = started.borrow();

    // On n0 (n1 cordoned while it is placed).
    assert_eq!(cluster.fosctl(0, &["node", "cordon", "n1"]).code, 0);
    let run = cluster.apply(0, APP, &manifest(&kernel, &initrd));
    assert!(run.code == 0, "apply: {}", run.stderr);
    assert_eq!(cluster.fosctl(0, &["node", "uncordon", "n1"]).code, 0);
    let logs = |via: usize| cluster.fosctl(via, &["logs", &instance()]).stdout;
    let before = wait_for("the guest counting on n0", Duration::from_secs(240), || {
        let c = counters(&logs(0));
        c.last().copied().filter(|n| *n >= 10)
    });
    let ip = wait_for("the guest's address", Duration::from_secs(30), || address(&cluster));
    let served =
        wait_for("the guest's HTTP counter on n0", Duration::from_secs(60), || http_counter(&cluster.nodes[0].ns, &ip));
    assert_eq!(libvirt[0].running().len(), 1, "the guest runs in n0's libvirtd");
    assert!(libvirt[1].domains().is_empty(), "and not in n1's");

    let started_at = Instant::now();
    let args = ["migrate", &instance(), "--to", "n1", "--live", "--wait", "--timeout", "300s"];
    let run = cluster.fosctl(0, &args);
    let total = started_at.elapsed();
    assert!(run.code == 0, "migrate: {}\n{}\n{}\n{}", run.stdout, run.stderr, cluster.log(0), cluster.log(1));

    let m = json_items(&cluster.fosctl(0, &["get", "migrations", "-o", "json"]).stdout)
        .into_iter()
        .find(|m| m["instance"] == instance().as_str())
        .unwrap_or_default();
    assert_eq!((m["phase"].as_str(), m["mode"].as_str()), (Some("Completed"), Some("live")), "{m}");
    let ticket = m["ticket"].as_str().unwrap_or_default().to_string();
    assert!(ticket.starts_with("moved:libvirt"), "moved by libvirt, nothing streamed: {m}");
    let downtime = ticket_value(&ticket, "downtimeMs").unwrap_or_else(|| panic!("libvirt's downtime: {m}"));

    // Running on n1 only, counting on from where it was: the same guest, not booted again.
    let running = libvirt[1].running();
    assert_eq!(running.len(), 1, "the guest runs in n1's libvirtd: {running:?}");
    wait_for("the source's domain removed", Duration::from_secs(60), || libvirt[0].domains().is_empty().then_some(()));
    let after = wait_for("the guest counting on n1", Duration::from_secs(60), || {
        let console = logs(0);
        let c = counters(&console);
        c.last().copied().filter(|n| *n > before).map(|n| (n, console))
    });
    let (first_on_n1, console) = (counters(&after.1)[0], after.1);
    assert!(first_on_n1 > before, "the counter carries on ({first_on_n1} after {before}):\n{console}");
    assert!(!console.contains("fos-guest up"), "the guest did not boot again on n1:\n{console}");

    // Reached at the same address on n1's side of the network, its HTTP counter going on.
    assert_eq!(address(&cluster).as_deref(), Some(ip.as_str()), "the guest keeps its address");
    let served_after =
        wait_for("the guest's HTTP counter on n1", Duration::from_secs(60), || http_counter(&cluster.nodes[1].ns, &ip));
    assert!(served_after > served, "its HTTP counter carries on ({served_after} after {served})");

    // The volume's disk on n1 holds what the guest wrote to it at boot on n0.
    let disks = disks_under(&cluster.nodes[1].data.join("volumes"));
    assert_eq!(disks.len(), 1, "{disks:?}");
    assert!(holds(&disks[0], b"fos-disk boots 1"), "the volume's data moved with the guest: {}", disks[0].display());

    let hand = tempfile::tempdir().expect("temp dir");
    let hand_ms = by_hand(hand.path(), &libvirt[0], &libvirt[1], &cluster.nodes[1].ip, &kernel, &initrd);
    println!(
        "figure: VM (128 MiB, TCG, 16 MiB volume) migrated live n0 → n1 by fos: libvirt downtime {downtime} ms, \
         total {} ms (fosctl migrate --wait; libvirt elapsed {} ms, disk {} bytes); by hand with virsh migrate in \
         the same run: downtime {hand_ms} ms; fos/hand {:.2}",
        total.as_millis(),
        ticket_value(&ticket, "elapsedMs").unwrap_or(0),
        ticket_value(&ticket, "diskBytes").unwrap_or(0),
        downtime as f64 / hand_ms.max(1) as f64
    );
    drop(libvirt);
    drop(cluster);
}
