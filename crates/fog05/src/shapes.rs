//! fos's records in the shapes fog05 clients read (`fog05rest`, OSM's fos connector): a node's info (the seed's
//! schema: a `cpu` list with `arch`, `frequency` and `model`, `ram.size`, `disks` with `local_address`, `dimension`
//! and `mount_point`, network interfaces, I/O, accelerators, position), runtime plugins by fog05 hypervisor name,
//! and FDU instance records with fog05's `status` and `hypervisor_info.network`.

use fos_api::manifest::EntityKind;
use fos_api::{ActualInstance, DesiredInstance, Node, State};
use serde_json::{json, Map, Value};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = MIB * 1024.0;

/// The fog05 status of an instance in `state` (`None`: not reported yet, so only defined).
pub fn status(state: Option<State>) -> &'static str {
    match state {
        None | Some(State::Defined) => "DEFINE",
        Some(State::Configured) => "CONFIGURE",
        Some(State::Running) => "RUN",
        Some(State::Paused) => "PAUSE",
        Some(State::TakingOff | State::Landing) => "MIGRATE",
        Some(State::Error) => "ERROR",
    }
}

/// The fog05 hypervisor name a runtime plugin is known by.
pub fn hypervisor(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Native => "BARE",
        EntityKind::Container => "LXD",
        EntityKind::Vm => "KVM",
    }
}

/// Node `node`, known to fog05 as `uuid`, in fog05's node-info shape.
pub fn node_info(uuid: &str, node: &Node) -> Value {
    let info = &node.spec;
    let cpu = json!({
        "model": info.cpu.model,
        "frequency": info.cpu.frequency_mhz.unwrap_or(0),
        "arch": info.arch.as_str(),
    });
    let bytes = |b: &fos_api::ByteSize| b.bytes().unwrap_or(0) as f64;
    let disks: Vec<Value> = info
        .disks
        .iter()
        .map(|d| {
            json!({
                "local_address": d.device,
                "dimension": (bytes(&d.total) / GIB * 100.0).round() / 100.0,
                "mount_point": d.mount_point,
                "filesystem": d.filesystem,
            })
        })
        .collect();
    let network: Vec<Value> = info
        .interfaces
        .iter()
        .map(|i| {
            let v4: Vec<&String> = i.addresses.iter().filter(|a| !a.contains(':')).collect();
            json!({
                "intf_name": i.name,
                "intf_mac_address": i.mac.clone().unwrap_or_default(),
                "intf_speed": i.speed_mbps.unwrap_or(0),
                "type": format!("{:?}", i.kind).to_ascii_lowercase(),
                "available": true,
                "default_gw": false,
                "intf_configuration": {
                    "ipv4_address": v4.first().map(|a| a.split('/').next().unwrap_or(a)).unwrap_or(""),
                    "ipv4_netmask": "",
                    "ipv4_gateway": "",
                    "ipv6_address": "",
                },
            })
        })
        .collect();
    let io: Vec<Value> = info
        .io
        .iter()
        .map(|d| json!({"name": d.name, "io_type": d.kind.as_str(), "io_file": d.path, "available": true}))
        .collect();
    let accelerator: Vec<Value> = info
        .accelerators
        .iter()
        .map(|a| {
            json!({"hw_address": a.path, "name": a.name, "supported_library": [a.kind.as_str()], "available": true})
        })
        .collect();
    let mut out = json!({
        "uuid": uuid,
        "name": node.metadata.name,
        "os": info.os,
        "cpu": vec![cpu; info.cpu.count.max(1) as usize],
        "ram": {"size": (bytes(&info.memory) / MIB).round()},
        "disks": disks,
        "network": network,
        "io": io,
        "accelerator": accelerator,
    });
    if let Some(p) = &info.position {
        out["position"] = json!({"lat": p.lat, "lon": p.lon});
    }
    out
}

/// A runtime plugin (`uuid`) of a node, in fog05's plugin-info shape.
pub fn plugin_info(uuid: &str, kind: EntityKind, ready: bool) -> Value {
    json!({
        "uuid": uuid,
        "name": hypervisor(kind),
        "type": "runtime",
        "version": 1,
        "status": if ready { "running" } else { "error" },
        "description": format!("fos {} runtime", kind.as_str()),
    })
}

/// What an instance record is made of: its fog05 ids, its FDU descriptor, and what fos knows of it.
pub struct InstanceParts<'a> {
    /// The instance's uuid.
    pub uuid: &'a str,
    /// The FDU's uuid.
    pub fdu_uuid: &'a str,
    /// The uuid of the node it is on.
    pub node_uuid: &'a str,
    /// The FDU descriptor, as onboarded.
    pub fdu: &'a Value,
    /// The desired record, while there is one.
    pub desired: Option<&'a DesiredInstance>,
    /// The actual record, once the node has reported.
    pub actual: Option<&'a ActualInstance>,
}

/// An FDU instance record (fog05's `InfraFDU`): `status`, `fdu_uuid`, `node`, the FDU's fields, `connection_points`
/// and `hypervisor_info.network` (each interface's `hwaddr` and `addresses`).
pub fn instance_record(p: &InstanceParts<'_>) -> Value {
    let mut out = match p.fdu {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    out.remove("uuid");
    let state = p.actual.and_then(ActualInstance::state);
    out.insert("uuid".into(), p.uuid.into());
    out.insert("fdu_uuid".into(), p.fdu_uuid.into());
    out.insert("fdu_id".into(), p.fdu_uuid.into());
    out.insert("node".into(), p.node_uuid.into());
    out.insert("status".into(), status(state).into());
    if let Some(e) = p.actual.and_then(|a| a.error.as_ref()) {
        out.insert("error_msg".into(), e.clone().into());
    }
    let mut network = Map::new();
    if let Some(d) = p.desired {
        let names: Vec<String> = interface_names(p.fdu);
        for (i, a) in d.entity.networks.iter().enumerate() {
            let hwaddr = a
                .mac
                .clone()
                .unwrap_or_else(|| fos_api::network::format_mac(&fos_api::network::instance_mac(&d.id, i)));
            let address = p.actual.and_then(|x| x.networks.get(&a.network)).or_else(|| d.addresses.get(&a.network));
            let addresses: Vec<Value> = address
                .map(|a| {
                    let (ip, prefix) = a.split_once('/').unwrap_or((a, "24"));
                    vec![json!({"address": ip, "prefix": prefix, "family": "inet"})]
                })
                .unwrap_or_default();
            let name = names.get(i).cloned().unwrap_or_else(|| format!("eth{i}"));
            network.insert(name, json!({"hwaddr": hwaddr, "addresses": addresses, "network": a.network}));
        }
    }
    out.insert("hypervisor_info".into(), json!({"network": network}));
    let cps = p.fdu.get("connection_points").cloned().unwrap_or_else(|| json!([]));
    out.insert("connection_points".into(), cps);
    Value::Object(out)
}

/// The names of an FDU's interfaces bound to a connection point, in order (the attachments' order).
fn interface_names(fdu: &Value) -> Vec<String> {
    let list = fdu.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    list.iter()
        .filter(|i| i.get("cp_id").and_then(Value::as_str).is_some())
        .map(|i| i.get("name").and_then(Value::as_str).unwrap_or("eth").to_string())
        .collect()
}
