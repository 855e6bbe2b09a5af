//! VMs end to end: a real `fosd` whose VM runtime drives a libvirtd of the test's own (`scripts/libvirtd-sandbox.sh`:
//! its own mount namespace, stopped and removed at the end) running QEMU guests under TCG, booted from the test
//! guest `scripts/build-test-guest.sh` builds from Debian packages (a kernel and a busybox initramfs whose HTTP server
//! reports a counter). Images go in through `fosctl image upload`; the application is a VM and a native client that
//! `need`s it on a fos VxLAN network; the guest is also reached on its hostPort, paused and resumed, stopped,
//! adopted after `kill -9` of `fosd`, and deleted with nothing left (domain, overlay, taps, volume). Its volume is
//! its second disk, and what the guest writes there stays across restarts. Corrupted content, by
//! upload or by URI, is refused by its sha256 and nothing runs. A KVM FDU is driven through the fog05 REST API by
//! fog05's own client (`tests/fog05/drive_kvm.py`), booted from the guest's bootable disk added as an image. Run by
//! `make test-vm` (one at a time: TCG guests are heavy on two cores).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fos_e2e::libvirt::{guest, Libvirtd};
use fos_e2e::{bin_dir, free_port, Fos, Start};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A one-node fos whose VM runtime uses `libvirt` (TCG).
fn start_fos(scratch: &Path, libvirt: &Libvirtd) -> (Fos, String) {
    start_fos_with(scratch, libvirt, &[])
}

/// [`start_fos`] with extra arguments.
fn start_fos_with(scratch: &Path, libvirt: &Libvirtd, extra: &[&str]) -> (Fos, String) {
    let config = scratch.join("node.yaml");
    let text = format!("runtimes:\n  vm:\n    config:\n      uri: \"{}\"\n      accel: tcg\n", libvirt.uri());
    std::fs::write(&config, text).expect("node configuration");
    let config = config.display().to_string();
    let args = [&["--config", config.as_str()][..], extra].concat();
    let fos = Fos::start_opts(Start { extra: &args, ..Start::default() });
    (fos, config)
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let out = Command::new("curl").args(["-s", "-f", "-m", "2", &format!("http://{addr}{path}")]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn counter(addr: &str) -> Option<u64> {
    http_get(addr, "/counter")?.parse().ok()
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        if let Some(v) = f() {
            eprintln!("vm test: {what} after {:.1} s", started.elapsed().as_secs_f64());
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn upload(fos: &Fos, file: &Path, name: &str, extra: &[&str]) -> fos_e2e::Run {
    let mut args = vec!["image", "upload", file.to_str().expect("path"), "--name", name];
    args.extend(extra);
    fos.fosctl(&args)
}

fn sha256(file: &Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// A copy of `file` with one byte changed.
fn corrupted(file: &Path, to: &Path) {
    let mut bytes = std::fs::read(file).expect("reading");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(to, bytes).expect("writing");
}

fn application(host_port: u16, state: Option<&str>) -> String {
    let annotations = state.map(|s| format!(", annotations: {{fos/state: {s}}}")).unwrap_or_default();
    format!(
        r#"apiVersion: fos/v1
kind: Application
metadata: {{name: vmapp{annotations}}}
spec:
  networks:
    - {{name: lan, type: vxlan, ipRange: 10.203.7.0/24, gateway: 10.203.7.1}}
  components:
    - name: guest
      entity:
        kind: vm
        kernel: guest-kernel
        initrd: guest-initrd
        image: scratch-disk
        cmdline: quiet
        cpu: 1
        memory: 128Mi
        networks: [{{network: lan}}]
        ports: [{{port: 80, hostPort: {host_port}}}]
        readiness: {{http: {{port: 80, path: /counter}}}}
        volumes: [{{name: data, size: 64Mi}}]
    - name: client
      need: [guest]
      entity:
        kind: native
        networks: [{{network: lan}}]
        command: [sh, -c, 'while true; do c=$(busybox wget -q -O - http://$FOS_NEED_GUEST_HOST/counter) && echo "guest counter $c"; sleep 1; done']
"#
    )
}

/// The address of instance `short` (`guest-0`) on its first network.
fn address_of(fos: &Fos, short: &str) -> Option<String> {
    fos.try_items(&["get", "entities"])?.into_iter().find_map(|e| {
        let id = e["id"].as_str()?;
        if !id.starts_with(&format!("{short}.")) {
            return None;
        }
        e["actual"]["addresses"].as_array()?.first()?.as_str().map(str::to_string)
    })
}

fn entity_state(fos: &Fos, short: &str) -> Option<(String, bool)> {
    fos.try_items(&["get", "entities"])?.into_iter().find_map(|e| {
        let id = e["id"].as_str()?;
        id.starts_with(&format!("{short}.")).then(|| {
            let a = &e["actual"];
            let state = a["lifecycle"]["state"].as_str().or(a["state"].as_str()).unwrap_or("");
            let verified = !a["unverified"].as_bool().unwrap_or(false);
            (state.to_string(), a["ready"].as_bool().unwrap_or(false) && verified)
        })
    })
}

/// Links whose name starts with the agent's prefix (`fos<scope>`), found from the bridge of the network.
fn fos_links(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn a_vm_is_uploaded_booted_reached_paused_stopped_adopted_and_deleted() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    let (kernel, initrd) = guest();
    let libvirt = Libvirtd::start(scratch.path());
    eprintln!("vm test: libvirtd up after {:.1} s", t.elapsed().as_secs_f64());
    let (mut fos, config) = start_fos(scratch.path(), &libvirt);
    eprintln!("vm test: fosd up after {:.1} s", t.elapsed().as_secs_f64());
    let plugins = fos.fosctl(&["plugin", "list"]).stdout;
    assert!(plugins.lines().any(|l| l.contains("vm") && l.contains("runtime")), "{plugins}");
    let node = fos.items(&["get", "nodes"]).remove(0);
    assert!(node.to_string().contains("\"vm\""), "the node runs VMs: {node}");

    for (file, name) in [(&kernel, "guest-kernel"), (&initrd, "guest-initrd")] {
        let run = upload(&fos, file, name, &[]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let disk = scratch.path().join("scratch.raw");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("a scratch disk");
    assert_eq!(upload(&fos, &disk, "scratch-disk", &["--format", "raw"]).code, 0);
    let images = fos.fosctl(&["get", "images"]).stdout;
    assert!(
        images.contains("guest-kernel") && images.contains(&sha256(&kernel)[..12]) && images.contains("e2e"),
        "{images}"
    );

    let port = free_port();
    let hostport = format!("127.0.0.1:{port}");
    let app = fos.file("vmapp.yaml", &application(port, None));
    let applied = Instant::now();
    let run = fos.fosctl(&["apply", "-f", &app, "--wait", "--timeout", "180s"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", fos.log());
    let first = wait_for("the guest on its hostPort", Duration::from_secs(60), || counter(&hostport));
    eprintln!("figure: apply -> guest answering on its hostPort: {:.1} s", applied.elapsed().as_secs_f64());

    // One domain, with its overlay over the uploaded disk; the client reaches the guest over the VxLAN network.
    let domains = libvirt.domains();
    assert_eq!(domains.len(), 1, "{domains:?}");
    let domain = domains[0].clone();
    let xml = libvirt.virsh(&["dumpxml", &domain]);
    let overlay = fos.dir.path().join("data/vm/guest-0.vmapp.default/disk.qcow2");
    assert!(overlay.exists() && xml.contains(&overlay.display().to_string()), "{xml}");
    let interface = xml.split("<interface").nth(1).expect("an interface");
    let tap = interface.split("<target dev='").nth(1).and_then(|s| s.split('\'').next()).expect("a tap").to_string();
    let prefix = tap[..8].to_string();
    assert!(fos_links(&prefix).contains(&tap), "tap {tap} on the node");
    wait_for("the client reaching the guest", Duration::from_secs(30), || {
        let log = fos.fosctl(&["logs", "client-0.vmapp.default"]).stdout;
        log.contains("guest counter").then_some(())
    });
    let console = fos.fosctl(&["logs", "guest-0.vmapp.default"]).stdout;
    assert!(console.contains("fos-guest serving http"), "the serial console is the log: {console}");
    // The volume is the guest's second disk (vdb), a qcow2 image in the volume's directory; the guest counts its
    // boots on it.
    let volume = fos.dir.path().join("data/volumes/guest-0.vmapp.default/data/disk.qcow2");
    assert!(volume.exists() && xml.contains(&format!("<source file='{}'", volume.display())), "{xml}");
    assert!(xml.contains("<target dev='vdb' bus='virtio'/>"), "{xml}");
    let disks = http_get(&hostport, "/disks").unwrap_or_default();
    assert!(disks.contains("vdb boots=1 sectors=131072"), "the guest sees its 64 MiB volume: {disks}");

    // Paused: the guest stops answering and counting; resumed, it goes on from where it was.
    let paused = fos.file("paused.yaml", &application(port, Some("Paused")));
    assert_eq!(fos.fosctl(&["apply", "-f", &paused]).code, 0);
    wait_for("paused", Duration::from_secs(30), || (libvirt.virsh(&["domstate", &domain]) == "paused").then_some(()));
    assert!(counter(&hostport).is_none(), "a paused guest does not answer");
    let resume = fos.fosctl(&["apply", "-f", &app, "--wait", "--timeout", "60s"]);
    assert_eq!(resume.code, 0, "{resume:?}");
    let after = wait_for("resumed", Duration::from_secs(30), || counter(&hostport));
    assert!(after >= first, "the guest resumed where it was ({first} then {after})");

    // Stopped (held at Configured): the domain stays defined, shut off.
    let stopped = fos.file("stopped.yaml", &application(port, Some("Configured")));
    assert_eq!(fos.fosctl(&["apply", "-f", &stopped]).code, 0);
    wait_for("shut off", Duration::from_secs(60), || {
        (libvirt.virsh(&["domstate", &domain]) == "shut off").then_some(())
    });
    // The reference figure, in the same run: the same domain (its XML as fos defined it, on the same bridge) started
    // by hand with virsh, until its guest answers; then fos starting it again.
    let guest_ip = address_of(&fos, "guest-0").expect("the guest's address");
    assert!(guest_ip.starts_with("10.203.7."), "{guest_ip}");
    let by_hand = Instant::now();
    libvirt.virsh(&["start", &domain]);
    wait_for("the guest started by hand", Duration::from_secs(60), || counter(&guest_ip));
    eprintln!("figure: virsh start of the same domain -> guest answering: {:.1} s", by_hand.elapsed().as_secs_f64());
    libvirt.virsh(&["destroy", &domain]);
    let again = Instant::now();
    assert_eq!(fos.fosctl(&["apply", "-f", &app]).code, 0);
    let booted = wait_for("booted again", Duration::from_secs(60), || counter(&guest_ip));
    eprintln!("figure: apply (from stopped) -> guest answering: {:.1} s", again.elapsed().as_secs_f64());
    // Booted twice more (by hand, then by fos) on the same volume: what the guest wrote on it stayed.
    let disks = http_get(&guest_ip, "/disks").unwrap_or_default();
    assert!(disks.contains("vdb boots=3"), "the volume kept the guest's writes across restarts: {disks}");

    // kill -9 of fosd: the guest runs on (reached at its address on the network, through the node's gateway
    // address on the bridge), and the restarted agent adopts it (no reboot: its counter goes on).
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(fos.fosd.id() as i32, libc::SIGKILL) };
    let _ = fos.fosd.wait();
    let during = wait_for("the guest while fosd is down", Duration::from_secs(10), || counter(&guest_ip));
    assert!(during >= booted, "{booted} then {during}");
    let log = std::fs::OpenOptions::new().append(true).open(fos.dir.path().join("fosd.log")).expect("log");
    fos.fosd = Command::new(bin_dir().join("fosd"))
        .arg("--data-dir")
        .arg(fos.dir.path().join("data"))
        .args(["--listen", &fos.server, "--node-name", "e2e", "--log", "info", "--config", &config])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("restarting fosd");
    wait_for("adopted and ready", Duration::from_secs(60), || {
        (entity_state(&fos, "guest-0") == Some(("Running".into(), true))).then_some(())
    });
    assert!(fos.log().contains("adopted running domain"), "{}", fos.log());
    let adopted = wait_for("the adopted guest", Duration::from_secs(30), || counter(&hostport));
    assert!(adopted >= during, "not rebooted: {during} then {adopted}");
    assert_eq!(libvirt.domains(), vec![domain], "the same domain");

    // Deleted: no domain, no overlay, no tap, no instance directory.
    let run = fos.fosctl(&["delete", "vmapp", "--wait", "--timeout", "120s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(libvirt.domains().is_empty(), "{:?}", libvirt.domains());
    assert!(!overlay.exists(), "the overlay is gone");
    assert!(!fos.dir.path().join("data/vm/guest-0.vmapp.default").exists());
    assert!(!fos.dir.path().join("data/volumes/guest-0.vmapp.default").exists(), "the volume goes with the instance");
    assert_eq!(fos_links(&prefix), Vec::<String>::new(), "no tap, bridge or VxLAN device left");
    // Unused now, the images can go.
    assert_eq!(fos.fosctl(&["image", "delete", "guest-kernel"]).code, 0);
}

#[test]
fn corrupted_content_is_refused_by_its_sha256_and_nothing_runs() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let (kernel, initrd) = guest();
    let libvirt = Libvirtd::start(scratch.path());
    let (fos, _) = start_fos(scratch.path(), &libvirt);

    // An upload with one byte changed is refused: nothing stored, nothing recorded.
    let bad = scratch.path().join("initrd.bad");
    corrupted(&initrd, &bad);
    let run = upload(&fos, &bad, "guest-initrd", &["--sha256", &sha256(&initrd)]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("sha256 mismatch"), "{run:?}");
    assert!(fos.items(&["get", "images"]).is_empty(), "no Image recorded");
    let store = fos.dir.path().join("data/images/sha256");
    assert_eq!(std::fs::read_dir(&store).map(|d| d.count()).unwrap_or(0), 0, "no content kept");

    // An Image whose URI serves content with one byte changed: the node fetching it refuses it.
    let served = scratch.path().join("www");
    std::fs::create_dir_all(&served).expect("www");
    corrupted(&initrd, &served.join("initrd.img"));
    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(&served)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    assert_eq!(upload(&fos, &kernel, "guest-kernel", &[]).code, 0);
    let image = format!(
        "apiVersion: fos/v1\nkind: Image\nmetadata: {{name: guest-initrd}}\nspec: {{uri: 'http://127.0.0.1:{port}/initrd.img', checksum: '{}', format: raw}}\n",
        sha256(&initrd)
    );
    let entity = "apiVersion: fos/v1\nkind: Entity\nmetadata: {name: badvm}\nspec:\n  kind: vm\n  kernel: guest-kernel\n  initrd: guest-initrd\n  memory: 128Mi\n";
    let file = fos.file("bad.yaml", &format!("{image}---\n{entity}"));
    let run = fos.fosctl(&["apply", "-f", &file]);
    assert_eq!(run.code, 0, "{run:?}");
    let error = wait_for("the instance's error", Duration::from_secs(60), || {
        let e = fos.try_items(&["get", "entities"])?.into_iter().next()?;
        e["actual"]["error"].as_str().filter(|m| m.contains("sha256 mismatch")).map(str::to_string)
    });
    assert!(error.contains("guest-initrd"), "{error}");
    assert!(libvirt.domains().is_empty(), "nothing defined: {:?}", libvirt.domains());
    assert_eq!(std::fs::read_dir(fos.dir.path().join("data/images/incoming")).map(|d| d.count()).unwrap_or(0), 0);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn fog05rest_drives_a_kvm_fdu_booted_from_its_image_through_its_whole_life() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    guest();
    let disk = PathBuf::from(format!("{REPO}/target/test-guest/disk.img"));
    let libvirt = Libvirtd::start(scratch.path());
    let address = format!("127.0.0.1:{}", free_port());
    let (fos, _) = start_fos_with(scratch.path(), &libvirt, &["--fog05-rest", &address, "--fog05-rest-tenant", "osm"]);
    let Some(python) = fos_e2e::fog05::venv(fos.dir.path()) else { return };
    let run: fos_e2e::Run = Command::new(python)
        .arg(fos_e2e::fog05::script("drive_kvm.py"))
        .arg(&address)
        .arg(&disk)
        .arg(libvirt.uri())
        .output()
        .expect("running drive_kvm.py")
        .into();
    assert!(fos_e2e::fog05::passed(&run), "drive_kvm.py failed:\n{}\n{}\n{}", run.stdout, run.stderr, fos.log());
    eprintln!("figure: fog05 KVM FDU driven through its whole life: {:.1} s", started.elapsed().as_secs_f64());

    // Nothing is left: no domain, no entity, no image, no network, no instance directory.
    assert!(libvirt.domains().is_empty(), "{:?}", libvirt.domains());
    assert_eq!(fos.items(&["--tenant", "osm", "get", "entities"]), Vec::<serde_json::Value>::new());
    assert_eq!(fos.items(&["get", "images"]), Vec::<serde_json::Value>::new());
    assert_eq!(fos.items(&["--tenant", "osm", "get", "networks"]), Vec::<serde_json::Value>::new());
    let left = std::fs::read_dir(fos.dir.path().join("data/vm")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no instance directory left");
}
