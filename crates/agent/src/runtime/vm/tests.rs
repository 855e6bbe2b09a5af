//! The VM runtime against libvirt's `test:///default` driver (an in-process hypervisor that keeps domains in
//! memory, shared by the connections of one process): the XML it defines and the lifecycle mapping.

use std::collections::BTreeMap;
use std::path::Path;

use fos_api::manifest::{EntitySpec, HttpProbe, NetworkAttachment, NetworkSpec, PortMapping};

use super::*;
use crate::cgroup::Cgroups;
use crate::network::names::Names;

const TEST_URI: &str = "test:///default";

fn env(data: &Path) -> RuntimeEnv {
    let names = Names::new("0", "n1", data);
    RuntimeEnv {
        node: "n1".into(),
        layout: NodeLayout::new(data, "/run/netns", Cgroups::default(), names),
        addresses: Vec::new(),
        stop_grace: Duration::from_millis(300),
        log_max_bytes: 1 << 20,
        images: Images::paths_only(),
        config: serde_json::json!({"uri": TEST_URI, "accel": "tcg"}),
    }
}

fn runtime(data: &Path) -> VmRuntime {
    let settings: VmSettings = serde_json::from_value(env(data).config).unwrap();
    VmRuntime::new(settings, &env(data)).unwrap()
}

fn vm_entity(dir: &Path) -> EntitySpec {
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    std::fs::write(&kernel, b"kernel").unwrap();
    std::fs::write(&initrd, b"initrd").unwrap();
    let mut e = EntitySpec::native(Vec::<String>::new());
    e.kind = EntityKind::Vm;
    e.kernel = Some(kernel.to_string_lossy().into_owned());
    e.initrd = Some(initrd.to_string_lossy().into_owned());
    e.cmdline = Some("quiet".into());
    e.cpu = Some(2);
    e.memory = Some("192Mi".into());
    e
}

fn desired(dir: &Path) -> DesiredInstance {
    DesiredInstance::new(InstanceId::new("default", "app", "guest", 0), "n1", vm_entity(dir))
}

#[tokio::test]
async fn the_domain_xml_says_what_the_entity_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut d = desired(dir.path());
    d.entity.networks = vec![NetworkAttachment { network: "lan".into(), ip: None, mac: None }];
    d.entity.ports = vec![PortMapping { port: 80, host_port: Some(8080), protocol: Default::default() }];
    let spec: NetworkSpec =
        serde_json::from_value(serde_json::json!({"type": "vxlan", "ipRange": "10.7.0.0/24", "gateway": "10.7.0.1"}))
            .unwrap();
    d.networks = BTreeMap::from([("lan".to_string(), spec)]);
    d.addresses = BTreeMap::from([("lan".to_string(), "10.7.0.9".to_string())]);
    let cx = rt.layout.context(&d);
    let spec = rt.domain_spec(&cx, &d).await.unwrap();
    let xml = spec.to_xml();
    assert!(xml.starts_with("<domain type='qemu'>"), "tcg: {xml}");
    let scope = rt.layout.names().scope().to_string();
    assert!(xml.contains(&format!("<name>fos-{scope}-guest-0.app.default</name>")), "{xml}");
    assert!(xml.contains("<vcpu>2</vcpu>") && xml.contains("<memory unit='MiB'>192</memory>"), "{xml}");
    assert!(xml.contains("<cmdline>console=ttyS0 quiet fos.ip=10.7.0.9/24 fos.gw=10.7.0.1</cmdline>"), "{xml}");
    let net = crate::network::NetworkName::new("default", "lan");
    assert!(xml.contains(&format!("<source bridge='{}'/>", rt.layout.names().bridge(&net))), "{xml}");
    assert!(xml.contains(&format!("<target dev='{}'/>", rt.layout.names().host_veth(&d.id, 0))), "{xml}");
    let mac = names::format_mac(&names::instance_mac(&d.id, 0));
    assert!(xml.contains(&format!("<mac address='{mac}'/>")), "the MAC the network manager reserves: {xml}");
    assert!(xml.contains(&format!("<source path='{}' append='on'/>", cx.logs.stdout.display())), "{xml}");
    assert_eq!(rt.addresses(&d.id), Vec::<String>::new(), "not defined yet");
}

#[tokio::test]
async fn lifecycle_steps_map_onto_libvirt_calls() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let d = desired(dir.path());
    let cx = rt.layout.context(&d);
    let name = rt.domain_name(&d.id);
    let lv = rt.libvirt().clone();

    rt.define(&cx, &d).await.unwrap();
    assert_eq!(lv.state(&name).await.unwrap(), DomainState::Absent, "define only records the instance");
    rt.configure(&cx, &d).await.unwrap();
    assert_eq!(lv.state(&name).await.unwrap(), DomainState::Shutoff, "configure defines the domain");
    let xml = lv.xml(&name).await.unwrap().expect("defined");
    assert!(xml.contains("vmlinuz") && xml.contains("<vcpu placement='static'>2</vcpu>"), "{xml}");
    rt.configure(&cx, &d).await.unwrap();

    rt.run(&cx, &d).await.unwrap();
    assert_eq!(lv.state(&name).await.unwrap(), DomainState::Running);
    assert!(matches!(rt.status(&d.id).await.unwrap(), RunState::Running { .. }));
    assert!(rt.ready(&cx, &d).await, "no probe: ready once running");
    rt.pause(&cx).await.unwrap();
    assert_eq!(lv.state(&name).await.unwrap(), DomainState::Paused);
    rt.resume(&cx).await.unwrap();
    assert_eq!(lv.state(&name).await.unwrap(), DomainState::Running);
    rt.stop(&cx).await.unwrap();
    assert_eq!(lv.state(&name).await.unwrap(), DomainState::Shutoff, "shut down (destroyed after the grace)");
    assert_eq!(rt.status(&d.id).await.unwrap(), RunState::Idle);
    rt.stop(&cx).await.unwrap();
    rt.clean(&cx).await.unwrap();
    assert_eq!(lv.state(&name).await.unwrap(), DomainState::Absent, "clean undefines");
    rt.clean(&cx).await.unwrap();
    rt.undefine(&cx).await.unwrap();
    assert!(!cx.dir.exists(), "the instance's directory is gone");
    assert!(matches!(rt.status(&d.id).await, Err(RuntimeError::NotDefined(_))));
}

#[tokio::test]
async fn a_restarted_runtime_adopts_its_running_domains_and_sees_stopped_ones() {
    let dir = tempfile::tempdir().unwrap();
    let first = runtime(dir.path());
    let running = desired(dir.path());
    let mut stopped = desired(dir.path());
    stopped.id = InstanceId::new("default", "app", "guest", 1);
    for d in [&running, &stopped] {
        let cx = first.layout.context(d);
        first.define(&cx, d).await.unwrap();
        first.configure(&cx, d).await.unwrap();
        first.run(&cx, d).await.unwrap();
    }
    // The second guest is powered off while no agent watches.
    first.libvirt().destroy(&first.domain_name(&stopped.id)).await.unwrap();

    let second = runtime(dir.path());
    let mut found = second.recover().await.unwrap();
    found.sort_by_key(|r| r.desired.id.to_string());
    let states: Vec<(String, State)> = found.iter().map(|r| (r.desired.id.to_string(), r.state)).collect();
    assert_eq!(
        states,
        [("guest-0.app.default".to_string(), State::Running), ("guest-1.app.default".to_string(), State::Configured)]
    );
    assert!(matches!(second.status(&running.id).await.unwrap(), RunState::Running { .. }), "adopted");
    for d in [&running, &stopped] {
        let cx = second.layout.context(d);
        if d.id == running.id {
            second.stop(&cx).await.unwrap();
        }
        second.clean(&cx).await.unwrap();
        second.undefine(&cx).await.unwrap();
        assert_eq!(second.libvirt().state(&second.domain_name(&d.id)).await.unwrap(), DomainState::Absent);
    }
    drop(first);
}

#[tokio::test]
async fn a_guest_that_powers_off_by_itself_has_exited() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let d = desired(dir.path());
    let cx = rt.layout.context(&d);
    rt.define(&cx, &d).await.unwrap();
    rt.configure(&cx, &d).await.unwrap();
    rt.run(&cx, &d).await.unwrap();
    let mut rx = rt.subscribe(&d.id).unwrap();
    rt.libvirt().destroy(&rt.domain_name(&d.id)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| matches!(s, RunState::Exited { .. })))
        .await
        .expect("seen within the watch period")
        .unwrap();
    rt.clean(&cx).await.unwrap();
    rt.undefine(&cx).await.unwrap();
}

#[tokio::test]
async fn entities_the_runtime_cannot_run_are_refused_at_define() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut d = desired(dir.path());
    let cx = rt.layout.context(&d);
    d.entity.readiness = Some(Probe::Exec(vec!["true".into()]));
    assert!(matches!(rt.define(&cx, &d).await, Err(RuntimeError::Unsupported(_))));
    d.entity.readiness = Some(Probe::Http(HttpProbe { port: 80, path: "/".into() }));
    d.entity.ports = vec![PortMapping { port: 80, host_port: None, protocol: Default::default() }];
    assert!(matches!(rt.define(&cx, &d).await, Err(RuntimeError::Unsupported(_))), "a port needs a network");
    d.entity.ports.clear();
    d.entity.kernel = Some("/nonexistent/vmlinuz".into());
    rt.define(&cx, &d).await.unwrap();
    let err = rt.configure(&cx, &d).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Invalid(ref m) if m.contains("/nonexistent/vmlinuz")), "{err}");
    assert_eq!(rt.libvirt().state(&rt.domain_name(&d.id)).await.unwrap(), DomainState::Absent, "nothing defined");
    rt.undefine(&cx).await.unwrap();
}

#[tokio::test]
async fn the_runtime_probes_its_libvirt() {
    let dir = tempfile::tempdir().unwrap();
    assert!(runtime(dir.path()).probe().await.is_ok());
    let mut settings: VmSettings = serde_json::from_value(env(dir.path()).config).unwrap();
    settings.uri = format!("qemu+unix:///system?socket={}/none.sock", dir.path().display());
    let err = VmRuntime::new(settings, &env(dir.path())).unwrap().probe().await.unwrap_err();
    assert!(err.to_string().contains("connecting to qemu+unix"), "{err}");
    assert_eq!(runtime(dir.path()).detail().unwrap(), format!("tcg on {TEST_URI}"));
}

#[tokio::test]
async fn volumes_become_disks_made_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut d = desired(dir.path());
    let volume = |name: &str, size: Option<&str>| -> fos_api::manifest::Volume {
        serde_json::from_value(serde_json::json!({"name": name, "size": size})).unwrap()
    };
    d.entity.volumes = vec![volume("data", Some("64Mi")), volume("given", None)];
    let cx = rt.layout.context(&d);
    for dir in cx.volumes.values() {
        std::fs::create_dir_all(dir).unwrap();
    }
    // A volume without a size and without a disk image: nothing to make.
    let err = rt.domain_spec(&cx, &d).await.unwrap_err().to_string();
    assert!(err.contains("volume given") && err.contains("`size`"), "{err}");
    // One that holds a raw image is used as it is.
    std::fs::write(cx.volumes["given"].join("disk.raw"), vec![0u8; 4096]).unwrap();
    let xml = rt.domain_spec(&cx, &d).await.unwrap().to_xml();
    let made = cx.volumes["data"].join("disk.qcow2");
    let info = std::process::Command::new("qemu-img").arg("info").arg(&made).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("file format: qcow2") && info.contains("64 MiB"), "{info}");
    let disk = |file: &Path, format: &str, dev: &str| {
        format!(
            "<driver name='qemu' type='{format}'/>\n      <source file='{}'/>\n      <target dev='{dev}' bus='virtio'/>",
            file.display()
        )
    };
    assert!(xml.contains(&disk(&made, "qcow2", "vda")), "no image: the first volume is vda\n{xml}");
    assert!(xml.contains(&disk(&cx.volumes["given"].join("disk.raw"), "raw", "vdb")), "{xml}");
    // Made once: what the guest wrote stays.
    std::fs::write(cx.volumes["data"].join("marker"), b"x").unwrap();
    let before = std::fs::metadata(&made).unwrap().modified().unwrap();
    rt.domain_spec(&cx, &d).await.unwrap();
    assert_eq!(std::fs::metadata(&made).unwrap().modified().unwrap(), before, "not made again");
}

#[tokio::test]
async fn user_data_and_an_ssh_key_become_a_nocloud_seed_cdrom() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut d = desired(dir.path());
    d.entity.user_data = Some("#cloud-config\npackages: [nginx]\n".into());
    d.entity.ssh_key = Some("ssh-ed25519 AAAAC3Nza fos@test".into());
    let cx = rt.layout.context(&d);
    std::fs::create_dir_all(&cx.dir).unwrap();
    let xml = rt.domain_spec(&cx, &d).await.unwrap().to_xml();
    let iso = cx.dir.join(seed::SEED_FILE);
    assert!(
        xml.contains(&format!(
            "<disk type='file' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>",
            iso.display()
        )) && xml.contains("<readonly/>"),
        "{xml}"
    );
    // The image: labelled cidata, user-data as given, meta-data with the instance and the key.
    let isoinfo = |args: &[&str]| {
        let out = std::process::Command::new("isoinfo").arg("-i").arg(&iso).args(args).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(isoinfo(&["-d"]).contains("Volume id: cidata"));
    assert_eq!(isoinfo(&["-R", "-x", "/user-data"]), "#cloud-config\npackages: [nginx]\n");
    let meta = isoinfo(&["-R", "-x", "/meta-data"]);
    assert!(meta.contains("instance-id: \"guest-0.app.default\""), "{meta}");
    assert!(meta.contains("public-keys:\n  - \"ssh-ed25519 AAAAC3Nza fos@test\""), "{meta}");

    // A key alone: a #cloud-config authorising it. Neither: no seed.
    d.entity.user_data = None;
    let (user, _) = seed::contents(&d).unwrap();
    assert!(user.starts_with("#cloud-config\nssh_authorized_keys:\n  - \"ssh-ed25519"), "{user}");
    d.entity.ssh_key = None;
    assert!(seed::contents(&d).is_none());
    let xml = rt.domain_spec(&cx, &d).await.unwrap().to_xml();
    assert!(!xml.contains("cdrom"), "{xml}");

    // Clean removes it.
    seed::remove(&cx.dir);
    assert!(!iso.exists() && !cx.dir.join("seed").exists());
}
