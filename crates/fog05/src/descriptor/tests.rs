//! fog05 0.2 descriptors convert field by field; what a standalone entity cannot carry is refused with a reason.

use serde_json::{json, Value};

use super::{convert, kind_of, network_name, DescriptorKind};
use crate::manifest::SeedError;

fn one(desc: Value) -> Value {
    let m = desc.as_object().unwrap();
    let kind = kind_of(m).expect("a descriptor");
    let out = convert(kind, m).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(out.len(), 1);
    out[0].value.clone()
}

fn errors(desc: Value) -> Vec<SeedError> {
    let m = desc.as_object().unwrap();
    convert(kind_of(m).expect("a descriptor"), m).unwrap_err()
}

fn seed(name: &str) -> Value {
    let path = format!("{}/../../manifests/seeds/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_bare_fdu_is_a_native_entity_with_its_command_and_reserved_resources() {
    let e = one(seed("fdu-bare-helloworld.json"));
    assert_eq!(e["kind"], "Entity");
    assert_eq!(e["metadata"]["name"], "helloworld");
    assert_eq!(e["metadata"]["annotations"]["fog05/uuid"], "3c7d5b3e-6d0c-4f5a-9a1e-5a2b8f0c1d01");
    assert_eq!(e["metadata"]["annotations"]["fog05/cpu-arch"], "x86_64");
    assert_eq!(e["spec"]["kind"], "native");
    assert_eq!(e["spec"]["command"], json!(["/bin/sh", "-c", "while true; do date; sleep 2; done"]));
    assert_eq!(e["spec"]["resources"], json!({"cpu": 1.0, "memory": "64Mi", "disk": "1Gi"}));
    assert_eq!(e["spec"]["migration"], "cold");
}

#[test]
fn hypervisors_map_to_runtimes() {
    for (hv, kind) in [("BARE", "native"), ("LXD", "container"), ("DOCKER", "container"), ("KVM", "vm"), ("XEN", "vm")]
    {
        let mut d = seed("fdu-bare-helloworld.json");
        d["hypervisor"] = hv.into();
        if kind != "native" {
            d["image"] = json!({"uri": "http://x/y.img", "checksum": "", "format": "qcow2"});
        }
        assert_eq!(one(d)["spec"]["kind"], kind, "{hv}");
    }
    let mut d = seed("fdu-bare-helloworld.json");
    d["hypervisor"] = "MCU".into();
    let e = errors(d);
    assert_eq!((e.len(), e[0].path.as_str()), (1, "hypervisor"), "{e:#?}");
    assert!(e[0].message.contains("`MCU` has no runtime"));
}

#[test]
fn a_kvm_fdu_is_a_vm_with_vcpus_memory_disk_cloud_init_and_its_network() {
    let e = one(seed("fdu-kvm-cirros.json"));
    assert_eq!(e["spec"]["kind"], "vm");
    assert_eq!(
        (&e["spec"]["cpu"], &e["spec"]["memory"], &e["spec"]["disk"]),
        (&json!(1), &json!("128Mi"), &json!("1Gi"))
    );
    assert_eq!(e["spec"]["image"], "http://192.168.1.142/cirros-0.4.0-x86_64-disk.img");
    assert_eq!(e["spec"]["userData"], "#cloud-config\npassword: fog05\n");
    assert_eq!(e["spec"]["migration"], "live");
    assert_eq!(e["spec"]["networks"], json!([{"network": network_name("6cc2aa30-1dcf-4c93-a57e-433fd0bd498e")}]));
}

#[test]
fn an_lxd_fdu_attaches_its_interface_with_its_mac() {
    let e = one(seed("fdu-lxd-alpine.json"));
    assert_eq!(e["spec"]["kind"], "container");
    assert_eq!(e["spec"]["resources"]["memory"], "128Mi");
    assert_eq!(
        e["spec"]["networks"],
        json!([{"network": "net-6cc2aa30-1dcf-4c93-a57e-433fd0bd498e", "mac": "be:ef:be:ef:00:01"}])
    );
}

#[test]
fn an_image_named_by_uuid_only_refers_to_the_added_image() {
    let mut d = seed("fdu-lxd-alpine.json");
    d["image"] = json!({"uuid": "92274e2e-129f-40a3-be7e-a35ea596d439", "uri": "", "checksum": "", "format": "tar.gz"});
    assert_eq!(one(d.clone())["spec"]["image"], "img-92274e2e-129f-40a3-be7e-a35ea596d439");
    // As `image.get` answers it (what OSM's connector puts in the FDU): the uploaded content's uri.
    d["image"]["uri"] = format!("fos:sha256:{}", "a".repeat(64)).into();
    assert_eq!(one(d.clone())["spec"]["image"], "img-92274e2e-129f-40a3-be7e-a35ea596d439");
    d["image"]["uri"] = "http://x/y.tar.gz".into();
    assert_eq!(one(d)["spec"]["image"], "http://x/y.tar.gz", "a remote uri is fetched as it is");
}

#[test]
fn what_a_standalone_entity_cannot_carry_is_refused_with_what_to_do() {
    let mut d = seed("fdu-bare-helloworld.json");
    d["io_ports"] = json!([{"address": "/dev/gpiochip0", "io_kind": "GPIO", "min_io_ports": 1}]);
    d["depends_on"] = json!(["db"]);
    d["command"] = Value::Null;
    d["image"] = json!({"uri": "file:///x.tar.gz", "checksum": "", "format": "tar.gz"});
    d["colour"] = "blue".into();
    let e = errors(d);
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["colour", "image", "", "depends_on", "io_ports"], "{e:#?}");
    assert!(e[1].message.contains("BARE FDU runs its `command`"));
    assert!(e[3].hint.as_deref().unwrap().contains("`need`"));
    let mut d = seed("fdu-lxd-alpine.json");
    d["connection_points"] = json!([]);
    let e = errors(d);
    assert_eq!(e[0].path, "interfaces[0].cp_id", "{e:#?}");
}

#[test]
fn a_virtual_network_is_a_vxlan_with_its_ip_configuration_or_a_vlan() {
    let n = one(seed("vnet-elan.json"));
    assert_eq!(n["kind"], "Network");
    assert_eq!(n["metadata"]["name"], "net-6cc2aa30-1dcf-4c93-a57e-433fd0bd498e");
    assert_eq!(n["metadata"]["annotations"]["fog05/name"], "net1");
    assert_eq!(
        n["spec"],
        json!({"type": "vxlan", "ipRange": "192.168.234.0/24", "gateway": "192.168.234.1", "dhcp": true})
    );
    let n = one(json!({"uuid": "u1", "name": "v", "net_type": "ELAN", "vlan_id": 100}));
    assert_eq!(n["spec"], json!({"type": "vlan", "vlanId": 100}));
    let e = errors(json!({"uuid": "u1", "name": "v", "net_type": "ELAN",
        "ip_configuration": {"ip_version": "IPV6", "subnet": "fd00::/64"}}));
    assert_eq!(e[0].path, "ip_configuration.ip_version");
}

#[test]
fn a_flavor_is_checked_and_names_no_object() {
    let d = seed("flavor-small.json");
    let m = d.as_object().unwrap();
    assert_eq!(kind_of(m), Some(DescriptorKind::Flavor));
    assert_eq!(convert(DescriptorKind::Flavor, m).unwrap(), vec![]);
    let e = errors(json!({"name": "f", "cpu_min_count": "two", "ram_size_mb": -1, "cpu_arch": "sparc"}));
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["cpu_min_count", "ram_size_mb", "cpu_arch"], "{e:#?}");
}
