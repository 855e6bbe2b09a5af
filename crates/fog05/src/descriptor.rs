//! fog05 0.2's descriptors, as `fog05rest` and OSM's connector send them and users wrote them:
//!
//! - an **FDU** (`computation_requirements`, `hypervisor`, `image`, `command`, `migration_kind`, `interfaces`,
//!   `connection_points`, `io_ports`, `storage`, `configuration`, `depends_on`) becomes a standalone Entity:
//!   BARE runs natively, LXD and DOCKER as containers, KVM and XEN (and their unikernel kinds) as VMs; the
//!   computation requirements are a VM's vcpus, memory and disk and the reserved `resources` of the others; every
//!   interface bound to a connection point attaches to that point's network (`pair_id`, or `vnet_id`);
//! - a **virtual network** (`net_type`, `ip_configuration`, `vlan_id`) becomes a Network: VLAN when it names a
//!   VLAN id, else a VxLAN overlay spanning the nodes that need it;
//! - a **flavor** (`cpu_arch`, `cpu_min_count`, `ram_size_mb`, `storage_size_gb`) is checked; it names no fos
//!   object of its own (an FDU carries its requirements).
//!
//! fog05 names networks and images by uuid; their fos names derive from it ([`network_name`], [`image_name`]) so an
//! FDU's references resolve to the objects its network and image descriptors became.

use serde_json::{json, Map, Value};

use crate::manifest::{at, dns_name, err, object, Converted, SeedError};

/// The fog05 0.2 descriptor kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorKind {
    /// A Function Deployment Unit.
    Fdu,
    /// A virtual network (a VLD).
    Network,
    /// A flavor: computation requirements by name.
    Flavor,
}

const FDU_FIELDS: [&str; 23] = [
    "uuid",
    "id",
    "name",
    "version",
    "fdu_version",
    "description",
    "computation_requirements",
    "image",
    "base_image",
    "hypervisor",
    "hypervisor_type",
    "hypervisor_specific",
    "command",
    "migration_kind",
    "interfaces",
    "io_ports",
    "connection_points",
    "depends_on",
    "storage",
    "configuration",
    "geographical_requirements",
    "energy_requirements",
    "replicas",
];

/// Which fog05 0.2 descriptor `m` is, if any.
pub fn kind_of(m: &Map<String, Value>) -> Option<DescriptorKind> {
    if m.contains_key("apiVersion") || m.contains_key("kind") || m.contains_key("entity_data") {
        return None;
    }
    if ["computation_requirements", "hypervisor", "hypervisor_type"].iter().any(|k| m.contains_key(*k)) {
        Some(DescriptorKind::Fdu)
    } else if ["net_type", "ip_configuration"].iter().any(|k| m.contains_key(*k)) {
        Some(DescriptorKind::Network)
    } else if ["cpu_min_count", "ram_size_mb", "storage_size_gb"].iter().any(|k| m.contains_key(*k)) {
        Some(DescriptorKind::Flavor)
    } else {
        None
    }
}

/// The fos name of the network fog05 knows by `uuid`.
pub fn network_name(uuid: &str) -> String {
    dns_name(&format!("net-{uuid}"))
}

/// The fos name of the image fog05 knows by `uuid`.
pub fn image_name(uuid: &str) -> String {
    dns_name(&format!("img-{uuid}"))
}

/// The runtime kind (`native`, `container`, `vm`) of a fog05 hypervisor name, or why there is none.
pub fn runtime_of(hypervisor: &str) -> Result<&'static str, String> {
    match hypervisor.to_ascii_uppercase().as_str() {
        "BARE" => Ok("native"),
        "LXD" | "DOCKER" => Ok("container"),
        "KVM" | "XEN" | "KVM_UK" | "XEN_UK" => Ok("vm"),
        other => Err(format!("hypervisor `{other}` has no runtime in fos (BARE, LXD, DOCKER, KVM and XEN have)")),
    }
}

/// Converts a fog05 0.2 descriptor of `kind`.
pub fn convert(kind: DescriptorKind, m: &Map<String, Value>) -> Result<Vec<Converted>, Vec<SeedError>> {
    let mut errors = Vec::new();
    let out = match kind {
        DescriptorKind::Fdu => vec![fdu(m, &mut errors)],
        DescriptorKind::Network => vec![net::network(m, &mut errors)],
        DescriptorKind::Flavor => {
            net::flavor(m, &mut errors);
            Vec::new()
        }
    };
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub(crate) fn unknown_fields(m: &Map<String, Value>, known: &[&str], what: &str, errors: &mut Vec<SeedError>) {
    for key in m.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(SeedError {
            path: key.clone(),
            message: format!("unknown field `{key}` in a fog05 {what} descriptor"),
            hint: Some(format!("known: {}", known.join(", "))),
        });
    }
}

pub(crate) fn metadata(m: &Map<String, Value>, name: String, errors: &mut Vec<SeedError>) -> Value {
    let mut annotations = Map::new();
    if let Some(orig) = m.get("name").and_then(Value::as_str).filter(|o| **o != name) {
        annotations.insert("fog05/name".into(), orig.into());
    }
    for (field, key) in [("uuid", "fog05/uuid"), ("id", "fog05/id")] {
        match m.get(field) {
            Some(Value::String(s)) => {
                annotations.insert(key.into(), s.clone().into());
            }
            Some(Value::Null) | None => {}
            Some(_) => errors.push(err(field, format!("`{field}` must be a string"))),
        }
    }
    let mut meta = json!({ "name": name });
    if !annotations.is_empty() {
        meta["annotations"] = Value::Object(annotations);
    }
    meta
}

pub(crate) fn descriptor_name(m: &Map<String, Value>, errors: &mut Vec<SeedError>) -> String {
    match m.get("name").and_then(Value::as_str).map(dns_name) {
        Some(n) if !n.is_empty() => n,
        _ => {
            errors.push(err("name", "a fog05 descriptor needs a `name`"));
            String::new()
        }
    }
}

/// A number of `path`, or an error.
pub(crate) fn number(v: &Value, path: &str, errors: &mut Vec<SeedError>) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|f| *f >= 0.0),
        Value::Null => None,
        _ => {
            errors.push(err(path, format!("`{path}` must be a number")));
            None
        }
    }
    .or_else(|| {
        if matches!(v, Value::Number(_)) {
            errors.push(err(path, format!("`{path}` must not be negative")));
        }
        None
    })
}

/// `n` MiB or GiB as a fos size (whole units when it is whole, else in the next smaller unit).
fn size(n: f64, unit: &str) -> String {
    if n.fract() == 0.0 {
        format!("{}{unit}", n as u64)
    } else {
        let smaller = if unit == "Gi" { "Mi" } else { "Ki" };
        format!("{}{smaller}", (n * 1024.0).ceil() as u64)
    }
}

fn fdu(m: &Map<String, Value>, errors: &mut Vec<SeedError>) -> Converted {
    unknown_fields(m, &FDU_FIELDS, "FDU", errors);
    let name = descriptor_name(m, errors);
    let mut meta = metadata(m, name, errors);
    let mut renames: Vec<(String, String)> = vec![("spec".into(), String::new())];
    let hv_field = if m.contains_key("hypervisor") { "hypervisor" } else { "hypervisor_type" };
    let kind = match m.get(hv_field).and_then(Value::as_str) {
        Some(hv) => runtime_of(hv).unwrap_or_else(|e| {
            errors.push(err(hv_field, e));
            "unknown"
        }),
        None => {
            errors.push(SeedError {
                path: hv_field.into(),
                message: "an FDU needs its `hypervisor`".into(),
                hint: Some("BARE (a native process), LXD or DOCKER (a container), KVM or XEN (a VM)".into()),
            });
            "unknown"
        }
    };
    let vm = kind == "vm";
    let mut spec = Map::new();
    spec.insert("kind".into(), kind.into());
    renames.push(("spec.kind".into(), hv_field.into()));
    let mut resources = Map::new();
    if let Some(c) = m.get("computation_requirements") {
        let base = "computation_requirements";
        match c {
            Value::Object(c) => {
                for (key, v) in c {
                    let path = at(base, key);
                    match key.as_str() {
                        "cpu_min_count" => match number(v, &path, errors) {
                            Some(n) if n > 0.0 && vm => {
                                spec.insert("cpu".into(), json!(n.ceil() as u64));
                                renames.push(("spec.cpu".into(), path));
                            }
                            Some(n) if n > 0.0 => {
                                resources.insert("cpu".into(), json!(n));
                                renames.push(("spec.resources.cpu".into(), path));
                            }
                            _ => {}
                        },
                        "ram_size_mb" | "storage_size_gb" => {
                            let (field, unit) = if key == "ram_size_mb" { ("memory", "Mi") } else { ("disk", "Gi") };
                            if let Some(n) = number(v, &path, errors).filter(|n| *n > 0.0) {
                                let target = if vm { &mut spec } else { &mut resources };
                                target.insert(field.into(), size(n, unit).into());
                                let new = if vm { format!("spec.{field}") } else { format!("spec.resources.{field}") };
                                renames.push((new, path));
                            }
                        }
                        "cpu_arch" => {
                            match v.as_str().map(|a| serde_json::from_value::<fos_api::manifest::Arch>(json!(a))) {
                                Some(Ok(arch)) => {
                                    meta["annotations"]["fog05/cpu-arch"] = arch.as_str().into();
                                }
                                _ => errors.push(err(&path, format!("unknown cpu_arch {v}"))),
                            }
                        }
                        "gpu_min_count" | "fpga_min_count" => {
                            if number(v, &path, errors).is_some_and(|n| n > 0.0) {
                                errors.push(SeedError {
                                    path,
                                    message: format!("`{key}` needs a placement constraint on accelerators"),
                                    hint: Some(
                                        "make it a component of a fos application with `constraints.accelerators`"
                                            .into(),
                                    ),
                                });
                            }
                        }
                        "cpu_min_freq" | "duty_cycle" | "uuid" | "name" => {}
                        _ => errors.push(err(&path, format!("unknown computation requirement `{key}`"))),
                    }
                }
            }
            _ => errors.push(err(base, "`computation_requirements` must be an object")),
        }
    }
    if !resources.is_empty() {
        spec.insert("resources".into(), Value::Object(resources));
    }
    image(m, kind, &mut spec, &mut renames, errors);
    command(m, kind, &mut spec, &mut renames, errors);
    match m.get("migration_kind").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
        Some("LIVE") => {
            spec.insert("migration".into(), "live".into());
        }
        Some("COLD") => {
            spec.insert("migration".into(), "cold".into());
        }
        None => {}
        Some(other) => errors.push(err("migration_kind", format!("migration_kind `{other}` is not LIVE or COLD"))),
    }
    renames.push(("spec.migration".into(), "migration_kind".into()));
    let networks = crate::descriptor::attachments(m, errors);
    if !networks.is_empty() {
        spec.insert("networks".into(), Value::Array(networks));
        renames.push(("spec.networks".into(), "interfaces".into()));
    }
    configuration(m, vm, &mut spec, errors);
    storage(m, &mut spec, &mut renames, errors);
    refuse_unexpressed(m, errors);
    object("Entity", meta, Value::Object(spec), renames)
}

fn image(
    m: &Map<String, Value>,
    kind: &str,
    spec: &mut Map<String, Value>,
    renames: &mut Vec<(String, String)>,
    errors: &mut Vec<SeedError>,
) {
    let field = if m.contains_key("image") { "image" } else { "base_image" };
    let Some(img) = m.get(field).filter(|v| !v.is_null()) else { return };
    let Some(img) = img.as_object() else {
        errors.push(err(field, "an FDU's image is an object (`uri`, `checksum`, `format`)"));
        return;
    };
    if kind == "native" {
        errors.push(SeedError {
            path: field.into(),
            message: "a BARE FDU runs its `command` on the node; fos fetches no image for it".into(),
            hint: Some("remove the image, or run the FDU as a container (LXD) or a VM (KVM)".into()),
        });
        return;
    }
    let uri = img.get("uri").and_then(Value::as_str).filter(|u| !u.is_empty());
    let uuid = img.get("uuid").and_then(Value::as_str).filter(|u| !u.is_empty());
    let reference = match (uri, uuid) {
        // An image added through the fog05 REST API: the Image named from its uuid.
        (Some(uri), Some(uuid)) if uri.starts_with(fos_api::image::UPLOADED_URI_PREFIX) => image_name(uuid),
        (Some(uri), _) => uri.to_string(),
        (None, Some(uuid)) => image_name(uuid),
        (None, None) => {
            errors.push(err(field, "an FDU's image needs its `uri` (or the `uuid` of an added image)"));
            return;
        }
    };
    spec.insert("image".into(), reference.into());
    renames.push(("spec.image".into(), format!("{field}.uri")));
}

fn command(
    m: &Map<String, Value>,
    kind: &str,
    spec: &mut Map<String, Value>,
    renames: &mut Vec<(String, String)>,
    errors: &mut Vec<SeedError>,
) {
    match m.get("command") {
        Some(Value::Object(c)) => {
            let Some(binary) = c.get("binary").and_then(Value::as_str).filter(|b| !b.is_empty()) else {
                errors.push(err("command.binary", "an FDU's command needs its `binary`"));
                return;
            };
            let mut argv = vec![Value::from(binary)];
            match c.get("args") {
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => argv.extend(a.iter().cloned()),
                None | Some(Value::Null) => {}
                Some(_) => errors.push(err("command.args", "`args` must be a list of strings")),
            }
            spec.insert("command".into(), Value::Array(argv));
            renames.push(("spec.command".into(), "command".into()));
        }
        None | Some(Value::Null) if kind == "native" => {
            errors.push(err("", "a BARE FDU needs its `command` (`binary` and `args`)"));
        }
        None | Some(Value::Null) => {}
        Some(_) => errors.push(err("command", "`command` must be an object (`binary`, `args`)")),
    }
}

fn configuration(m: &Map<String, Value>, vm: bool, spec: &mut Map<String, Value>, errors: &mut Vec<SeedError>) {
    let Some(c) = m.get("configuration").filter(|v| !v.is_null()) else { return };
    let Some(c) = c.as_object() else {
        errors.push(err("configuration", "`configuration` must be an object"));
        return;
    };
    if !vm {
        errors.push(err("configuration", "a `configuration` (cloud-init) applies to KVM and XEN FDUs only"));
        return;
    }
    if let Some(script) = c.get("script").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        spec.insert("userData".into(), script.into());
    }
    if let Some(key) = c.get("ssh_keys").and_then(Value::as_array).and_then(|k| k.first()).and_then(Value::as_str) {
        spec.insert("sshKey".into(), key.into());
    }
}

fn storage(
    m: &Map<String, Value>,
    spec: &mut Map<String, Value>,
    renames: &mut Vec<(String, String)>,
    errors: &mut Vec<SeedError>,
) {
    let Some(list) = m.get("storage").and_then(Value::as_array).filter(|l| !l.is_empty()) else { return };
    let mut volumes = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let path = format!("storage[{i}]");
        let id = s.get("id").and_then(Value::as_str).map(dns_name).filter(|n| !n.is_empty());
        let Some(id) = id else {
            errors.push(err(&path, "a storage descriptor needs its `id`"));
            continue;
        };
        let mut v = json!({ "name": id });
        if let Some(n) = s.get("size").and_then(|n| number(n, &at(&path, "size"), errors)).filter(|n| *n > 0.0) {
            v["size"] = size(n, "Gi").into();
        }
        renames.push((format!("spec.volumes[{i}]"), path));
        volumes.push(v);
    }
    spec.insert("volumes".into(), Value::Array(volumes));
}

/// Fields a standalone fos entity cannot carry: refused with what to do instead.
fn refuse_unexpressed(m: &Map<String, Value>, errors: &mut Vec<SeedError>) {
    let non_empty = |k: &str| match m.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    };
    for (field, instead) in [
        ("depends_on", "make the FDUs components of a fos application and list them in `need`"),
        ("io_ports", "make it a component of a fos application with `constraints.io`"),
        ("geographical_requirements", "make it a component of a fos application with `proximity`"),
        ("energy_requirements", "fos does not place by energy"),
        ("hypervisor_specific", "describe the entity with fos's own fields"),
    ] {
        if non_empty(field) {
            errors.push(SeedError {
                path: field.into(),
                message: format!("`{field}` cannot be expressed on a standalone fos entity"),
                hint: Some(instead.into()),
            });
        }
    }
    if m.get("replicas").and_then(Value::as_u64).is_some_and(|r| r > 1) {
        errors.push(SeedError {
            path: "replicas".into(),
            message: "an FDU instance is one instance; `replicas` cannot be expressed".into(),
            hint: Some("instantiate it several times, or use a fos application component's `replicas`".into()),
        });
    }
}

/// The network attachments of an FDU: each interface bound (`cp_id`) to a connection point joins that point's
/// network (`pair_id`, or `vnet_id`), with the interface's `mac_address`.
pub(crate) fn attachments(m: &Map<String, Value>, errors: &mut Vec<SeedError>) -> Vec<Value> {
    let empty = Vec::new();
    let cps = m.get("connection_points").and_then(Value::as_array).unwrap_or(&empty);
    let mut out = Vec::new();
    for (i, intf) in m.get("interfaces").and_then(Value::as_array).unwrap_or(&empty).iter().enumerate() {
        let path = format!("interfaces[{i}]");
        let Some(intf) = intf.as_object() else {
            errors.push(err(&path, "an interface must be an object"));
            continue;
        };
        let Some(cp_id) = intf.get("cp_id").and_then(Value::as_str) else { continue };
        let cp = cps.iter().find(|c| c.get("uuid").or_else(|| c.get("id")).and_then(Value::as_str) == Some(cp_id));
        let Some(cp) = cp else {
            errors.push(err(&at(&path, "cp_id"), format!("`{cp_id}` is not one of the FDU's connection_points")));
            continue;
        };
        let Some(net) = cp.get("pair_id").or_else(|| cp.get("vnet_id")).and_then(Value::as_str) else {
            errors.push(err(&at(&path, "cp_id"), format!("connection point `{cp_id}` names no network (`pair_id`)")));
            continue;
        };
        let mut a = json!({ "network": network_name(net) });
        if let Some(mac) = intf.get("mac_address").and_then(Value::as_str) {
            a["mac"] = mac.into();
        }
        out.push(a);
    }
    out
}

mod net;
#[cfg(test)]
mod tests;
