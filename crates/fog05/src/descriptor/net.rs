//! fog05 0.2's virtual network (VLD) and flavor descriptors.

use serde_json::{json, Map, Value};

use super::{descriptor_name, metadata, network_name, number, unknown_fields};
use crate::manifest::{err, object, Converted, SeedError};

const NETWORK_FIELDS: [&str; 12] = [
    "uuid",
    "name",
    "net_type",
    "is_mgmt",
    "ip_configuration",
    "vlan_id",
    "port",
    "overlay",
    "face",
    "multicast_address",
    "status",
    "short_name",
];

const FLAVOR_FIELDS: [&str; 10] = [
    "uuid",
    "name",
    "cpu_arch",
    "cpu_min_freq",
    "cpu_min_count",
    "gpu_min_count",
    "fpga_min_count",
    "ram_size_mb",
    "storage_size_gb",
    "duty_cycle",
];

/// A virtual network: VLAN when it names a VLAN id, else a VxLAN overlay; `ip_configuration` gives its subnet,
/// gateway and DHCP.
pub(super) fn network(m: &Map<String, Value>, errors: &mut Vec<SeedError>) -> Converted {
    unknown_fields(m, &NETWORK_FIELDS, "virtual network", errors);
    let name = match m.get("uuid").and_then(Value::as_str) {
        Some(uuid) => network_name(uuid),
        None => descriptor_name(m, errors),
    };
    let mut meta = metadata(m, name, errors);
    let mut spec = Map::new();
    let mut renames = vec![("spec".to_string(), String::new())];
    match m.get("net_type").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
        None | Some("ELAN" | "E-LAN" | "ELINE" | "E-LINE") => {}
        Some(other) => errors.push(err("net_type", format!("net_type `{other}` is not ELAN or ELINE"))),
    }
    if let Some(t) = m.get("net_type").and_then(Value::as_str) {
        meta["annotations"]["fog05/net-type"] = t.into();
    }
    match m.get("vlan_id") {
        Some(Value::Null) | None => {
            spec.insert("type".into(), "vxlan".into());
            if let Some(group) = m.get("multicast_address").and_then(Value::as_str).filter(|g| !g.is_empty()) {
                spec.insert("multicastAddress".into(), group.into());
                renames.push(("spec.multicastAddress".into(), "multicast_address".into()));
            }
        }
        Some(v) => {
            spec.insert("type".into(), "vlan".into());
            spec.insert("vlanId".into(), v.clone());
            renames.push(("spec.vlanId".into(), "vlan_id".into()));
        }
    }
    match m.get("ip_configuration") {
        Some(Value::Object(ip)) => {
            if ip.get("ip_version").and_then(Value::as_str).is_some_and(|v| !v.eq_ignore_ascii_case("IPV4")) {
                errors.push(err("ip_configuration.ip_version", "fos networks are IPv4 (`ip_version: IPV4`)"));
            }
            for (old, new) in [("subnet", "ipRange"), ("gateway", "gateway")] {
                if let Some(v) = ip.get(old).and_then(Value::as_str).filter(|v| !v.is_empty()) {
                    spec.insert(new.into(), v.into());
                    renames.push((format!("spec.{new}"), format!("ip_configuration.{old}")));
                }
            }
            if ip.get("dhcp_enable").and_then(Value::as_bool) == Some(true) {
                spec.insert("dhcp".into(), true.into());
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => errors.push(err("ip_configuration", "`ip_configuration` must be an object")),
    }
    object("Network", meta, Value::Object(spec), renames)
}

/// A flavor: its fields checked; it names no fos object.
pub(super) fn flavor(m: &Map<String, Value>, errors: &mut Vec<SeedError>) {
    unknown_fields(m, &FLAVOR_FIELDS, "flavor", errors);
    for key in ["cpu_min_freq", "cpu_min_count", "gpu_min_count", "fpga_min_count", "ram_size_mb", "storage_size_gb"] {
        if let Some(v) = m.get(key) {
            number(v, key, errors);
        }
    }
    if let Some(a) = m.get("cpu_arch") {
        if a.as_str().map(|a| serde_json::from_value::<fos_api::manifest::Arch>(json!(a))).is_none_or(|r| r.is_err()) {
            errors.push(err("cpu_arch", format!("unknown cpu_arch {a}")));
        }
    }
}
