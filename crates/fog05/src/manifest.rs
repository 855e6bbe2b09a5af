//! The fog05 manifest format (JSON without `apiVersion`): entity manifests (`type` + `entity_data`), network
//! manifests (`vxlan_id`, `multicast_address`, `ip_range`, …), application manifests (`components[{name, need,
//! proximity, manifest}]`) and plugin manifests, converted into fos/v1 objects; fog05 0.2's descriptors (FDU,
//! virtual network, flavor) go through [`crate::descriptor`]. Each conversion records which new path comes from
//! which old one, so errors in converted objects point into the original file.
//!
//! As users wrote them: a component's network attachment may name its network by `network_uuid` (resolved against
//! the application's networks), and `cpu`, `memory` and `disk_size` in the `entity_data` of a container or native
//! entity are its reserved `resources` (a VM's are its vcpus, guest memory and root disk).

use serde_json::{json, Map, Value};

/// One fos/v1 object converted from a fog05 manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The object, with `apiVersion` and `kind`.
    pub value: Value,
    /// `(new path, old path)` pairs: positions of the old paths serve the new ones.
    pub renames: Vec<(String, String)>,
}

/// Why a fog05 manifest does not convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedError {
    /// Where in the fog05 manifest.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Reads the fog05 entity manifest a component's `manifest` names (a file name, relative to the application's).
pub type Resolver<'a> = &'a dyn Fn(&str) -> Result<Value, String>;

const PLUGIN_TYPES: [&str; 4] = ["runtime", "network", "os", "monitoring"];
const NETWORK_FIELDS: [&str; 6] = ["vxlan_id", "vlan_id", "multicast_address", "ip_range", "has_dhcp", "gateway"];

/// True when `value` is a fog05 manifest: no `apiVersion`, and the fields of one of the fog05 kinds.
pub fn is_fog05(value: &Value) -> bool {
    let Some(m) = value.as_object() else { return false };
    if m.contains_key("apiVersion") || m.contains_key("kind") {
        return false;
    }
    crate::descriptor::kind_of(m).is_some()
        || m.contains_key("entity_data")
        || m.contains_key("components")
        || NETWORK_FIELDS.iter().any(|f| m.contains_key(*f))
        || m.get("type").and_then(Value::as_str).is_some_and(|t| PLUGIN_TYPES.contains(&t))
}

/// Converts a fog05 manifest into fos/v1 objects (an entity with `br_name` bridges also yields a `bridge` Network
/// per bridge).
pub fn convert(value: &Value, resolve: Resolver<'_>) -> Result<Vec<Converted>, Vec<SeedError>> {
    let mut cx = Cx { errors: Vec::new(), resolve, net_uuids: Vec::new() };
    let Some(m) = value.as_object() else {
        return Err(vec![err("", "a fog05 manifest must be a JSON object")]);
    };
    if let Some(kind) = crate::descriptor::kind_of(m) {
        return crate::descriptor::convert(kind, m);
    }
    let out = if m.contains_key("components") {
        cx.application(m)
    } else if m.contains_key("entity_data") {
        cx.standalone_entity(m)
    } else if m.contains_key("type") {
        cx.plugin(m)
    } else {
        let (spec, renames) = cx.network(m, "", "spec");
        vec![object("Network", cx.metadata(m, ""), spec, renames)]
    };
    if cx.errors.is_empty() {
        Ok(out)
    } else {
        Err(cx.errors)
    }
}

pub(crate) fn err(path: &str, message: impl Into<String>) -> SeedError {
    SeedError { path: path.to_string(), message: message.into(), hint: None }
}

pub(crate) fn at(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else {
        format!("{base}.{field}")
    }
}

/// A fog05 name (`cirros_example`, `KVMLibvirt`) as a DNS label (`cirros-example`, `kvmlibvirt`).
pub fn dns_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            '_' | '.' | ' ' | '/' => Some('-'),
            _ => None,
        })
        .collect();
    out.truncate(fos_api::names::MAX_NAME_LEN);
    out.trim_matches('-').to_string()
}

pub(crate) fn object(kind: &str, metadata: Value, spec: Value, mut renames: Vec<(String, String)>) -> Converted {
    renames.push(("metadata".into(), "name".into()));
    renames.push(("metadata.name".into(), "name".into()));
    Converted {
        value: json!({"apiVersion": fos_api::API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}),
        renames,
    }
}

struct Cx<'a> {
    errors: Vec<SeedError>,
    resolve: Resolver<'a>,
    /// The application's networks by fog05 uuid: `(uuid, name)`.
    net_uuids: Vec<(String, String)>,
}

impl Cx<'_> {
    fn name(&mut self, m: &Map<String, Value>, base: &str) -> String {
        match m.get("name").and_then(Value::as_str) {
            Some(n) if !dns_name(n).is_empty() => dns_name(n),
            _ => {
                self.errors.push(err(&at(base, "name"), "a fog05 manifest needs a `name`"));
                String::new()
            }
        }
    }

    fn metadata(&mut self, m: &Map<String, Value>, base: &str) -> Value {
        let name = self.name(m, base);
        let mut annotations = Map::new();
        if let Some(orig) = m.get("name").and_then(Value::as_str).filter(|o| *o != name) {
            annotations.insert("fog05/name".into(), orig.into());
        }
        if let Some(uuid) = m.get("uuid").and_then(Value::as_str) {
            annotations.insert("fog05/uuid".into(), uuid.into());
        }
        let mut meta = json!({"name": name});
        if !annotations.is_empty() {
            meta["annotations"] = Value::Object(annotations);
        }
        meta
    }

    fn plugin(&mut self, m: &Map<String, Value>) -> Vec<Converted> {
        let mut configuration = m.get("configuration").and_then(Value::as_object).cloned().unwrap_or_default();
        for key in ["version", "url", "description"] {
            if let Some(v) = m.get(key) {
                configuration.insert(key.into(), v.clone());
            }
        }
        let spec = json!({"type": m.get("type").cloned().unwrap_or(Value::Null), "configuration": configuration});
        vec![object("Plugin", self.metadata(m, ""), spec, vec![("spec.type".into(), "type".into())])]
    }

    /// A network manifest at `base` as a network spec at `new`.
    fn network(&mut self, m: &Map<String, Value>, base: &str, new: &str) -> (Value, Vec<(String, String)>) {
        let mut spec = Map::new();
        let mut renames = vec![(new.to_string(), base.to_string())];
        let kind = if m.contains_key("vlan_id") {
            "vlan"
        } else if m.contains_key("vxlan_id") || m.contains_key("multicast_address") {
            "vxlan"
        } else {
            "bridge"
        };
        spec.insert("type".into(), kind.into());
        for (old, field) in [
            ("vxlan_id", "vxlanId"),
            ("vlan_id", "vlanId"),
            ("multicast_address", "multicastAddress"),
            ("ip_range", "ipRange"),
            ("gateway", "gateway"),
            ("has_dhcp", "dhcp"),
        ] {
            let Some(v) = m.get(old) else { continue };
            let value = match (field, v) {
                ("vxlanId" | "vlanId", Value::String(s)) => match s.trim().parse::<u64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        self.errors.push(err(&at(base, old), format!("{old} `{s}` is not a number")));
                        continue;
                    }
                },
                ("dhcp", Value::String(s)) => {
                    Value::Bool(matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"))
                }
                ("gateway" | "ipRange", Value::String(s)) if s.is_empty() => continue,
                _ => v.clone(),
            };
            spec.insert(field.into(), value);
            renames.push((at(new, field), at(base, old)));
        }
        (Value::Object(spec), renames)
    }

    fn standalone_entity(&mut self, m: &Map<String, Value>) -> Vec<Converted> {
        let meta = self.metadata(m, "");
        let (entity, constraints, bridges, renames) = self.entity(m, "", "spec");
        if constraints.as_object().is_some_and(|c| !c.is_empty()) {
            self.errors.push(SeedError {
                path: "constraints".into(),
                message: "a standalone entity has no constraints in fos".into(),
                hint: Some("make it a component of an application, whose components take constraints".into()),
            });
        }
        let mut out: Vec<Converted> = bridges
            .into_iter()
            .map(|(name, path)| Converted {
                value: json!({"apiVersion": fos_api::API_VERSION, "kind": "Network", "metadata": {"name": name},
                    "spec": {"type": "bridge"}}),
                renames: vec![
                    ("metadata".into(), path.clone()),
                    ("metadata.name".into(), path.clone()),
                    ("spec".into(), path),
                ],
            })
            .collect();
        out.push(object("Entity", meta, entity, renames));
        out
    }

    /// An entity manifest at `base` as an entity spec at `new`; also its constraints and the bridges it names
    /// (name, path of the `br_name`).
    #[allow(clippy::type_complexity)]
    fn entity(
        &mut self,
        m: &Map<String, Value>,
        base: &str,
        new: &str,
    ) -> (Value, Value, Vec<(String, String)>, Vec<(String, String)>) {
        let mut renames = vec![(new.to_string(), at(base, "entity_data"))];
        let kind = match m.get("type").and_then(Value::as_str).unwrap_or("") {
            "vm" | "kvm" | "xen" | "uk" | "unikernel" => "vm",
            "native" | "be" | "binary" | "ros" => "native",
            "container" | "lxd" | "docker" | "oci" => "container",
            other => {
                self.errors.push(SeedError {
                    path: at(base, "type"),
                    message: format!("unknown fog05 entity type `{other}`"),
                    hint: Some("use vm (or uk), native (or be), or container".into()),
                });
                "native"
            }
        };
        let data_path = at(base, "entity_data");
        let empty = Map::new();
        let data = match m.get("entity_data") {
            Some(Value::Object(d)) => d,
            _ => {
                self.errors.push(err(&data_path, "`entity_data` must be an object"));
                &empty
            }
        };
        let mut spec = Map::new();
        spec.insert("kind".into(), kind.into());
        // A container's or native process's cpu, memory and disk are what it reserves; a VM's are its own fields.
        let res = |field: &str| if kind == "vm" { field.to_string() } else { format!("resources.{field}") };
        let mut bridges = Vec::new();
        let mut command: Vec<Value> = Vec::new();
        for (key, v) in data {
            let old = at(&data_path, key);
            let mut put = |spec: &mut Map<String, Value>, field: &str, value: Value| {
                match field.split_once('.') {
                    Some((outer, inner)) => {
                        let slot = spec.entry(outer).or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(o) = slot {
                            o.insert(inner.into(), value);
                        }
                        renames.push((at(new, outer), old.clone()));
                    }
                    None => {
                        spec.insert(field.into(), value);
                    }
                }
                renames.push((at(new, field), old.clone()));
            };
            match (key.as_str(), v) {
                ("name" | "uuid", _) => {}
                ("cpu", _) => put(&mut spec, &res("cpu"), v.clone()),
                ("memory", Value::Number(n)) => put(&mut spec, &res("memory"), format!("{n}Mi").into()),
                ("disk_size" | "disk", Value::Number(n)) => put(&mut spec, &res("disk"), format!("{n}Gi").into()),
                ("memory", _) => put(&mut spec, &res("memory"), v.clone()),
                ("disk_size" | "disk", _) => put(&mut spec, &res("disk"), v.clone()),
                ("base_image" | "image", _) => put(&mut spec, "image", v.clone()),
                ("kernel" | "initrd" | "env", _) => put(&mut spec, key, v.clone()),
                ("user-data" | "user_data", Value::String(s)) if !s.is_empty() => put(&mut spec, "userData", v.clone()),
                ("ssh-key" | "ssh_key", Value::String(s)) if !s.is_empty() => put(&mut spec, "sshKey", v.clone()),
                ("user-data" | "user_data" | "ssh-key" | "ssh_key", _) => {}
                ("working_dir" | "workingDir", _) => put(&mut spec, "workingDir", v.clone()),
                ("command" | "cmd", Value::String(s)) => command.insert(0, s.clone().into()),
                ("command" | "cmd", Value::Array(a)) => command.splice(0..0, a.iter().cloned()).for_each(drop),
                ("args", Value::Array(a)) => command.extend(a.iter().cloned()),
                ("networks", Value::Array(nets)) => {
                    let list =
                        nets.iter().enumerate().map(|(i, n)| self.attachment(n, &format!("{old}[{i}]"), &mut bridges));
                    let list: Vec<Value> = list.collect();
                    spec.insert("networks".into(), Value::Array(list));
                    renames.push((at(new, "networks"), old.clone()));
                    for i in 0..nets.len() {
                        renames.push((format!("{}[{i}]", at(new, "networks")), format!("{old}[{i}]")));
                    }
                }
                _ => self.errors.push(SeedError {
                    path: old.clone(),
                    message: format!("unknown fog05 entity_data field `{key}`"),
                    hint: Some(
                        "known: name, uuid, cpu, memory, disk_size, base_image, kernel, initrd, networks, user-data, \
                         ssh-key, command, args, env, working_dir"
                            .into(),
                    ),
                }),
            }
        }
        if !command.is_empty() {
            spec.insert("command".into(), Value::Array(command));
        }
        let constraints = self.constraints(m.get("constraints"), &at(base, "constraints"));
        (Value::Object(spec), constraints, bridges, renames)
    }

    fn attachment(&mut self, n: &Value, path: &str, bridges: &mut Vec<(String, String)>) -> Value {
        let Some(n) = n.as_object() else {
            self.errors.push(err(path, "a network attachment must be an object"));
            return Value::Null;
        };
        let mut out = Map::new();
        if let Some(br) = n.get("br_name").and_then(Value::as_str) {
            let name = dns_name(br);
            if !bridges.iter().any(|(b, _)| *b == name) {
                bridges.push((name.clone(), at(path, "br_name")));
            }
            out.insert("network".into(), name.into());
        } else if let Some(net) = n.get("network").or_else(|| n.get("network_name")).and_then(Value::as_str) {
            out.insert("network".into(), dns_name(net).into());
        } else if let Some(uuid) = n.get("network_uuid").and_then(Value::as_str) {
            match self.net_uuids.iter().find(|(u, _)| u == uuid) {
                Some((_, name)) => {
                    out.insert("network".into(), name.clone().into());
                }
                None if self.net_uuids.is_empty() => self.errors.push(SeedError {
                    path: at(path, "network_uuid"),
                    message: format!("network_uuid `{uuid}` names no network: this manifest declares none"),
                    hint: Some(
                        "a network_uuid is resolved against the networks of the application the entity is a                          component of; outside an application name the network with `network`"
                            .into(),
                    ),
                }),
                None => self.errors.push(SeedError {
                    path: at(path, "network_uuid"),
                    message: format!("network_uuid `{uuid}` is not the uuid of one of the application's networks"),
                    hint: Some(format!(
                        "the application's networks: {}",
                        self.net_uuids.iter().map(|(u, n)| format!("{n} ({u})")).collect::<Vec<_>>().join(", ")
                    )),
                }),
            }
        } else {
            self.errors.push(err(path, "a network attachment needs `br_name`, `network` or `network_uuid`"));
        }
        for key in ["mac", "ip"] {
            if let Some(v) = n.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        Value::Object(out)
    }

    fn constraints(&mut self, c: Option<&Value>, path: &str) -> Value {
        let Some(c) = c else { return Value::Object(Map::new()) };
        let Some(c) = c.as_object() else {
            self.errors.push(err(path, "`constraints` must be an object"));
            return Value::Object(Map::new());
        };
        let mut out = Map::new();
        for (key, v) in c {
            let field = match key.as_str() {
                "i/o" | "io" => "io",
                "networks" | "accelerators" | "arch" | "os" => key.as_str(),
                _ => {
                    self.errors.push(err(&at(path, key), format!("unknown fog05 constraint `{key}`")));
                    continue;
                }
            };
            out.insert(field.into(), v.clone());
        }
        Value::Object(out)
    }

    fn application(&mut self, m: &Map<String, Value>) -> Vec<Converted> {
        let meta = self.metadata(m, "");
        let mut renames = vec![("spec".to_string(), String::new())];
        let mut networks: Vec<Value> = Vec::new();
        for (i, n) in m.get("networks").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let old = format!("networks[{i}]");
            let new = format!("spec.networks[{i}]");
            match n {
                Value::String(name) => networks.push(dns_name(name).into()),
                Value::Object(net) => {
                    let (mut spec, r) = self.network(net, &old, &new);
                    let name = self.name(net, &old);
                    if let Some(uuid) = net.get("uuid").and_then(Value::as_str) {
                        self.net_uuids.push((uuid.to_string(), name.clone()));
                    }
                    spec["name"] = name.into();
                    renames.extend(r);
                    networks.push(spec);
                }
                _ => self.errors.push(err(&old, "a network is a name or a fog05 network manifest")),
            }
            renames.push((new, old));
        }
        let mut components = Vec::new();
        for (i, c) in m.get("components").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let old = format!("components[{i}]");
            let new = format!("spec.components[{i}]");
            let Some(c) = c.as_object() else {
                self.errors.push(err(&old, "a component must be an object"));
                continue;
            };
            renames.push((new.clone(), old.clone()));
            let names = |v: Option<&Value>| -> Vec<Value> {
                match v {
                    Some(Value::String(s)) if !s.is_empty() => vec![dns_name(s).into()],
                    Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(|s| dns_name(s).into()).collect(),
                    _ => Vec::new(),
                }
            };
            let name = self.name(c, &old);
            let mut comp = json!({"name": name, "need": names(c.get("need")), "proximity": names(c.get("proximity"))});
            for (field, list) in [("need", c.get("need")), ("proximity", c.get("proximity"))] {
                renames.push((format!("{new}.{field}"), format!("{old}.{field}")));
                if let Some(Value::Array(a)) = list {
                    for j in 0..a.len() {
                        renames.push((format!("{new}.{field}[{j}]"), format!("{old}.{field}[{j}]")));
                    }
                }
            }
            let manifest_path = format!("{old}.manifest");
            let manifest = match c.get("manifest") {
                Some(Value::Object(e)) => Some(e.clone()),
                Some(Value::String(file)) => match (self.resolve)(file) {
                    Ok(Value::Object(e)) => Some(e),
                    Ok(_) => {
                        self.errors.push(err(&manifest_path, format!("`{file}` is not a fog05 entity manifest")));
                        None
                    }
                    Err(e) => {
                        self.errors.push(err(&manifest_path, e));
                        None
                    }
                },
                _ => {
                    self.errors.push(err(&old, "a component needs a `manifest` (an entity manifest or its file name)"));
                    None
                }
            };
            if let Some(e) = manifest {
                let inline = matches!(c.get("manifest"), Some(Value::Object(_)));
                let base = if inline { manifest_path.clone() } else { String::new() };
                let (entity, constraints, bridges, r) = self.entity(&e, &base, &format!("{new}.entity"));
                if inline {
                    renames.extend(r);
                } else {
                    renames.push((format!("{new}.entity"), manifest_path.clone()));
                }
                comp["entity"] = entity;
                comp["constraints"] = constraints;
                for (b, _) in bridges {
                    if !networks.iter().any(|n| n.as_str() == Some(&b) || n["name"].as_str() == Some(&b)) {
                        networks.push(json!({"name": b, "type": "bridge"}));
                    }
                }
            }
            components.push(comp);
        }
        let mut spec = json!({"networks": networks, "components": components});
        if let Some(d) = m.get("description") {
            spec["description"] = d.clone();
        }
        vec![object("Application", meta, spec, renames)]
    }
}
