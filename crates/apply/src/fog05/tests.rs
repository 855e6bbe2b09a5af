//! The seed's own examples load, validate and convert; conversion keeps positions in the original file.

use crate::source::{check, load_str};
use fos_api::manifest::{EntityKind, NetworkKind, Object};

fn load(name: &str, text: &str) -> Vec<Object> {
    let loaded = load_str(name, text).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(check(&loaded), vec![], "{name} must validate");
    assert!(loaded.iter().all(|l| l.converted));
    loaded.into_iter().map(|l| l.object).collect()
}

#[test]
fn cirros_entity_converts_to_a_vm_and_its_bridge() {
    let objects = load("cirros.json", include_str!("../../../../manifests/seeds/cirros-entity.json"));
    let [Object::Network(net), Object::Entity(e)] = objects.as_slice() else { panic!("{objects:#?}") };
    assert_eq!(net.metadata.name, "virbr0");
    assert_eq!(net.spec.kind, NetworkKind::Bridge);
    assert_eq!(e.metadata.name, "cirros-example");
    assert_eq!(e.metadata.annotations["fog05/name"], "cirros_example");
    assert_eq!(e.spec.kind, EntityKind::Vm);
    assert_eq!(e.spec.memory_bytes(), 512 << 20);
    assert_eq!(e.spec.disk_bytes(), 5 << 30);
    assert_eq!(e.spec.networks[0].mac.as_deref(), Some("d2:e3:ed:6f:e3:ef"));
    assert_eq!(e.spec.user_data, None, "empty user-data is dropped");
}

#[test]
fn vxlan_network_and_plugin_convert() {
    let objects = load("net.json", include_str!("../../../../manifests/seeds/vxlan-network.json"));
    let [Object::Network(n)] = objects.as_slice() else { panic!("{objects:#?}") };
    assert_eq!(
        (n.spec.kind, n.spec.vxlan_id, n.spec.multicast_address.as_deref()),
        (NetworkKind::Vxlan, Some(5), Some("239.0.0.5"))
    );
    assert_eq!(n.metadata.name, "example-vxlan");
    let objects = load("plugin.json", include_str!("../../../../manifests/seeds/kvm-plugin.json"));
    assert!(matches!(&objects[..], [Object::Plugin(p)] if p.metadata.name == "kvmlibvirt"));
}

#[test]
fn application_with_components_converts() {
    let objects = load("wp.json", include_str!("../../../../manifests/seeds/wordpress-application.json"));
    let [Object::Application(a)] = objects.as_slice() else { panic!("{objects:#?}") };
    assert_eq!(a.metadata.name, "wordpress-blog");
    let web = a.spec.component("web").unwrap();
    assert_eq!(web.need, vec!["db".to_string()]);
    assert_eq!(web.proximity[0].to, "db");
    assert_eq!(a.spec.component("db").unwrap().entity.command[0], "/usr/sbin/mariadbd");
    assert!(a.spec.component("db").unwrap().proximity.is_empty());
}

#[test]
fn errors_in_converted_manifests_point_into_the_original_file() {
    let text = "{\n  \"name\": \"bad\",\n  \"vxlan_id\": 99999999,\n  \"multicast_address\": \"10.0.0.1\"\n}\n";
    let loaded = load_str("bad.json", text).unwrap();
    let d = check(&loaded);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert_eq!(d[0].position.line, 3, "{}", d[0]);
    assert!(d[0].message.contains("out of range"));
    assert_eq!(d[1].position.line, 4, "{}", d[1]);
    let text = "{\"name\": \"x\", \"type\": \"vm\",\n \"entity_data\": {\"cpus\": 1}}";
    let e = load_str("x.json", text).unwrap_err();
    assert_eq!((e[0].position.line, e[0].message.contains("`cpus`")), (2, true), "{e:#?}");
}

#[test]
fn attachments_by_network_uuid_and_container_resources_convert() {
    let objects = load("osm.json", include_str!("../../../../manifests/seeds/osm-application.json"));
    let [Object::Application(a)] = objects.as_slice() else { panic!("{objects:#?}") };
    let alpine = &a.spec.component("alpine").unwrap().entity;
    assert_eq!(alpine.kind, EntityKind::Container);
    assert_eq!(alpine.networks[0].network, "alpine-nsd-vld1");
    assert_eq!(alpine.networks[0].mac.as_deref(), Some("d2:e3:ed:6f:e3:10"));
    assert_eq!((alpine.cpu_millis(), alpine.memory_bytes(), alpine.disk_bytes()), (1000, 256 << 20, 1 << 30));
    assert_eq!(alpine.cpu, None, "cpu of a container is what it reserves");
    let probe = &a.spec.component("probe").unwrap().entity;
    assert_eq!((probe.kind, probe.networks[0].network.as_str()), (EntityKind::Native, "alpine-nsd-vld1"));
    let text = r#"{"name": "x", "type": "lxd", "entity_data": {"base_image": "i:1",
        "networks": [{"network_uuid": "u-1"}]}}"#;
    let e = load_str("x.json", text).unwrap_err();
    assert!(e[0].message.contains("network_uuid `u-1` names no network"), "{e:#?}");
}
