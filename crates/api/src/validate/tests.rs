//! One test per rule: a valid object passes, an object breaking the rule reports it at the right path.

use super::*;

fn objects(yaml: &str) -> Vec<Object> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| {
            let v: serde_json::Value = serde::Deserialize::deserialize(d).unwrap();
            Object::from_value(v).unwrap()
        })
        .collect()
}

fn violations(yaml: &str) -> Vec<(String, String)> {
    validate(&objects(yaml)).into_iter().map(|v| (v.path, v.message)).collect()
}

fn app(components: &str) -> String {
    format!("apiVersion: fos/v1\nkind: Application\nmetadata: {{name: app}}\nspec:\n  components:\n{components}")
}

const NATIVE: &str = "{kind: native, command: [sleep, '1']}";

fn assert_one(yaml: &str, path: &str, needle: &str) {
    let v = violations(yaml);
    assert!(v.iter().any(|(p, m)| p == path && m.contains(needle)), "expected `{needle}` at {path}, got {v:#?}");
}

#[test]
fn a_valid_application_has_no_violations() {
    let yaml = app(&format!(
        "  - {{name: db, entity: {NATIVE}}}\n  - {{name: web, need: [db], proximity: db, replicas: 2, entity: {NATIVE}}}\n"
    ));
    assert_eq!(violations(&yaml), vec![]);
}

#[test]
fn names_must_be_dns_labels() {
    let yaml = app(&format!("  - {{name: Web_1, entity: {NATIVE}}}\n")).replace("name: app", "name: a/b");
    assert_one(&yaml, "metadata.name", "contains `/`");
    assert_one(&yaml, "spec.components[0].name", "contains `W`");
}

#[test]
fn need_and_proximity_targets_must_exist() {
    let yaml = app(&format!(
        "  - {{name: db, entity: {NATIVE}}}\n  - {{name: web, need: [dbb], proximity: [cache, web], entity: {NATIVE}}}\n"
    ));
    let v = validate(&objects(&yaml));
    let need = v.iter().find(|v| v.path == "spec.components[1].need[0]").unwrap();
    assert_eq!(need.hint.as_deref(), Some("did you mean `db`?"));
    assert_one(&yaml, "spec.components[1].proximity[0].to", "`cache` is not a component");
    assert_one(&yaml, "spec.components[1].proximity[1].to", "cannot be near itself");
}

#[test]
fn need_cycles_are_reported_as_their_path_at_the_closing_entry() {
    let yaml = app(&format!(
        "  - {{name: a, need: [b], entity: {NATIVE}}}\n  - {{name: b, need: [c], entity: {NATIVE}}}\n  - {{name: c, need: [x, a], entity: {NATIVE}}}\n"
    ));
    assert_one(&yaml, "spec.components[2].need[1]", "dependency cycle: a -> b -> c -> a");
    let self_need = app(&format!("  - {{name: a, need: [a], entity: {NATIVE}}}\n"));
    assert_one(&self_need, "spec.components[0].need[0]", "needs itself");
}

#[test]
fn counts_must_be_at_least_one() {
    let yaml = app(&format!(
        "  - {{name: a, replicas: 0, constraints: {{io: [{{type: gpio, number: 0}}]}}, entity: {NATIVE}}}\n"
    ));
    assert_one(&yaml, "spec.components[0].replicas", "at least 1");
    assert_one(&yaml, "spec.components[0].constraints.io[0].number", "at least 1");
    assert_one(&app("").replace("components:\n", "components: []\n"), "spec.components", "at least one component");
}

#[test]
fn duplicate_names_in_one_apply() {
    let yaml = app(&format!("  - {{name: a, entity: {NATIVE}}}\n  - {{name: a, entity: {NATIVE}}}\n"));
    assert_one(&yaml, "spec.components[1].name", "duplicate component name `a`");
    let two = format!("{yaml}---\n{yaml}");
    let v = validate(&objects(&two));
    assert!(v.iter().any(|v| v.object.index == 1 && v.path == "metadata.name" && v.message.contains("duplicate")));
}

#[test]
fn kind_specific_fields_are_refused_on_other_kinds() {
    let yaml = app("  - {name: a, entity: {kind: native, command: [x], memory: 512Mi, image: cirros}}\n");
    let v = validate(&objects(&yaml));
    let mem = v.iter().find(|v| v.path == "spec.components[0].entity.memory").unwrap();
    assert_eq!(mem.hint.as_deref(), Some("use `resources.memory`"));
    assert_one(&yaml, "spec.components[0].entity.image", "vm and container");
    assert_one(&app("  - {name: a, entity: {kind: vm, cpu: 1}}\n"), "spec.components[0].entity", "needs an `image`");
    assert_one(&app("  - {name: a, entity: {kind: native}}\n"), "spec.components[0].entity", "needs a `command`");
    let vm = app("  - {name: a, entity: {kind: vm, image: i, imagePullSecret: reg}}\n");
    assert_one(&vm, "spec.components[0].entity.imagePullSecret", "of container entities");
    let bad = app("  - {name: a, entity: {kind: container, image: r:5000/i:1, imagePullSecret: Not_A_Name}}\n");
    assert_one(&bad, "spec.components[0].entity.imagePullSecret", "not a secret name");
    assert!(violations(&app("  - {name: a, entity: {kind: container, image: r:5000/i:1, imagePullSecret: reg}}\n"))
        .is_empty());
}

#[test]
fn sizes_parse_and_tiny_memory_gets_a_hint() {
    let yaml = app("  - {name: a, entity: {kind: vm, image: c, memory: 512, disk: 5X}}\n");
    let v = validate(&objects(&yaml));
    let mem = v.iter().find(|v| v.path == "spec.components[0].entity.memory").unwrap();
    assert_eq!(mem.hint.as_deref(), Some("did you mean 512Mi?"));
    assert_one(&yaml, "spec.components[0].entity.disk", "is not a size");
    let cpu = app("  - {name: a, entity: {kind: native, command: [x], resources: {cpu: lots}}}\n");
    assert_one(&cpu, "spec.components[0].entity.resources.cpu", "not a cpu amount");
}

fn network(spec: &str) -> String {
    format!("apiVersion: fos/v1\nkind: Network\nmetadata: {{name: net}}\nspec: {spec}\n")
}

#[test]
fn network_ids_ranges_and_addresses() {
    assert_eq!(violations(&network("{type: vxlan, vxlanId: 5, multicastAddress: 239.0.0.5}")), vec![]);
    assert_one(&network("{type: vxlan, vxlanId: 16777216}"), "spec.vxlanId", "out of range");
    assert_one(&network("{type: vxlan, vxlanId: 0}"), "spec.vxlanId", "out of range");
    assert_one(&network("{type: vxlan, multicastAddress: 10.0.0.1}"), "spec.multicastAddress", "not a multicast");
    assert_one(&network("{type: vlan, vlanId: 4095}"), "spec.vlanId", "out of range");
    assert_one(&network("{type: bridge, vlanId: 5}"), "spec.vlanId", "for vlan networks");
    assert_one(&network("{type: bridge, ipRange: 10.0.0.1/24}"), "spec.ipRange", "did you mean 10.0.0.0/24");
    assert_one(&network("{type: bridge, ipRange: 10.0.0.0/24, gateway: 10.0.1.1}"), "spec.gateway", "outside");
    assert_one(&network("{type: bridge, gateway: 10.0.1.1}"), "spec.gateway", "needs an `ipRange`");
    assert_one(&network("{type: bridge, dhcp: true}"), "spec.dhcp", "needs an `ipRange`");
}

#[test]
fn attachments_reference_declared_networks_with_valid_addresses() {
    let entity = |att: &str| {
        format!(
            "{}---\napiVersion: fos/v1\nkind: Entity\nmetadata: {{name: e}}\nspec: {{kind: native, command: [x], networks: [{att}]}}\n",
            network("{type: bridge, ipRange: 10.0.0.0/24}")
        )
    };
    assert_eq!(violations(&entity("{network: net, ip: 10.0.0.5, mac: 52:54:00:12:34:56}")), vec![]);
    assert_one(&entity("{network: other}"), "spec.networks[0].network", "not a Network object");
    assert_one(&entity("{network: net, ip: 10.0.1.5}"), "spec.networks[0].ip", "outside");
    assert_one(&entity("{network: net, mac: 52:54:00:12:34}"), "spec.networks[0].mac", "not a MAC");
    assert_one(&entity("{network: net, mac: 01:00:5e:00:00:01}"), "spec.networks[0].mac", "multicast");
    let inline = app("  - {name: a, entity: {kind: native, command: [x], networks: [{network: wp}]}}\n")
        .replace("  components:", "  networks: [{name: wp, type: vxlan, vxlanId: 7}]\n  components:");
    assert_eq!(violations(&inline), vec![]);
}

#[test]
fn images_need_a_sha256_checksum() {
    let image = |sum: &str| {
        format!("apiVersion: fos/v1\nkind: Image\nmetadata: {{name: cirros}}\nspec: {{uri: 'file:///i.img', checksum: '{sum}', format: qcow2}}\n")
    };
    assert_eq!(violations(&image(&"ab".repeat(32))), vec![]);
    assert_one(&image("abc"), "spec.checksum", "not a sha256");
}

#[test]
fn probes_ports_and_migration() {
    let yaml = app("  - {name: a, entity: {kind: native, command: [x], migration: live, ports: [{port: 80}, {port: 81, hostPort: 80}], readiness: {http: {port: 80, path: health}}}}\n");
    assert!(!violations(&yaml).iter().any(|(p, _)| p.ends_with("migration")), "live is for every kind (CRIU)");
    assert_one(&yaml, "spec.components[0].entity.ports[1]", "exposed twice");
    assert_one(&yaml, "spec.components[0].entity.readiness.http.path", "not absolute");
}

#[test]
fn volumes_are_named_once_and_mounted_only_in_containers() {
    let yaml = app("  - {name: a, entity: {kind: native, command: [x], volumes: [{name: data, size: 10Mi}, {name: data}, {name: Bad_Name}, {name: m, mountPath: /x}, {name: s, size: 0}]}}\n");
    assert_one(&yaml, "spec.components[0].entity.volumes[1].name", "declared twice");
    assert_one(&yaml, "spec.components[0].entity.volumes[2].name", "not a volume name");
    assert_one(&yaml, "spec.components[0].entity.volumes[3].mountPath", "for container entities");
    assert_one(&yaml, "spec.components[0].entity.volumes[4].size", "more than 0");
    let c =
        app("  - {name: a, entity: {kind: container, image: x, volumes: [{name: d}, {name: e, mountPath: rel}]}}\n");
    assert_one(&c, "spec.components[0].entity.volumes[0].mountPath", "needs a `mountPath`");
    assert_one(&c, "spec.components[0].entity.volumes[1].mountPath", "absolute path");
    let ok = app("  - {name: a, entity: {kind: native, command: [x], volumes: [{name: data, size: 100Mi}]}}\n");
    assert!(violations(&ok).is_empty(), "{:?}", violations(&ok));
    let vm = app("  - {name: a, entity: {kind: vm, image: i, volumes: [{name: d}, {name: e, size: 1Gi}]}}\n");
    assert_one(&vm, "spec.components[0].entity.volumes[0].size", "needs a `size`");
    assert_eq!(violations(&vm).len(), 1, "{:?}", violations(&vm));
}

#[test]
fn object_errors_name_the_field_at_fault() {
    let v = serde_json::json!({"apiVersion": "fos/v1", "kind": "Application", "metadata": {"name": "a"},
        "spec": {"components": [{"name": "c", "replicas": "x", "entity": {"kind": "native", "command": ["x"]}}]}});
    let e = Object::from_value(v).unwrap_err();
    assert_eq!(e.path, "spec.components[0].replicas");
    assert!(e.to_string().starts_with("spec.components[0].replicas: invalid type"), "{e}");
}

#[test]
fn entity_details_and_shared_fixed_addresses() {
    let yaml = app(
        "  - {name: a, replicas: 2, entity: {kind: native, command: [x], workingDir: ../up, setup: [[]], networks: [{network: n, ip: 10.0.0.2}]}}\n  - {name: b, constraints: {nodes: [Edge]}, entity: {kind: vm, image: i, initrd: /boot/initrd, cpu: 0}}\n",
    )
    .replace("  components:", "  networks: [{name: n, type: bridge, ipRange: 10.0.0.0/24}, {name: n, type: bridge}]\n  components:");
    assert_one(&yaml, "spec.networks[1]", "declared twice");
    assert_one(&yaml, "spec.components[0].entity.workingDir", "relative path");
    assert_one(&yaml, "spec.components[0].entity.setup[0]", "needs a program");
    assert_one(&yaml, "spec.components[0].entity.networks[0].ip", "shared by 2 replicas");
    assert_one(&yaml, "spec.components[1].constraints.nodes[0]", "invalid node name");
    assert_one(&yaml, "spec.components[1].entity.initrd", "needs a `kernel`");
    assert_one(&yaml, "spec.components[1].entity.cpu", "at least 1 cpu");
}

#[test]
fn existing_networks_satisfy_references() {
    let yaml = app("  - {name: a, entity: {kind: native, command: [x], networks: [{network: old, ip: 10.9.0.9}]}}\n")
        .replace("  components:", "  networks: [old]\n  components:");
    assert_eq!(violations(&yaml).len(), 1, "unknown without the store's networks");
    let mut existing = Existing::default();
    let spec: NetworkSpec =
        serde_json::from_value(serde_json::json!({"type": "bridge", "ipRange": "10.9.0.0/16"})).unwrap();
    existing.networks.insert(("default".into(), "old".into()), spec);
    assert_eq!(validate_with(&objects(&yaml), &existing), vec![]);
}
