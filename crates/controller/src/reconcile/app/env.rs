//! What the controller injects into an instance's desired record besides its entity: the `FOS_NEED_<N>_*`
//! environment telling it where what it needs runs, and the specs of the virtual networks it attaches to.

use std::collections::{BTreeMap, HashMap};

use fos_api::manifest::{Component, NetworkRef, NetworkSpec, Probe};
use fos_api::{ApplicationSpec, EntitySpec, InstanceId};

use crate::view::ClusterView;

/// The port a component is reached at: its first exposed port, else its readiness probe's port.
pub fn service_port(entity: &EntitySpec) -> Option<u16> {
    if let Some(p) = entity.ports.first() {
        return Some(p.host_port.unwrap_or(p.port));
    }
    match &entity.readiness {
        Some(Probe::Tcp(port)) => Some(*port),
        Some(Probe::Http(h)) => Some(h.port),
        _ => None,
    }
}

/// `FOS_NEED_<NAME>_` for a component name.
fn env_prefix(component: &str) -> String {
    format!("FOS_NEED_{}_", component.to_ascii_uppercase().replace('-', "_"))
}

/// The environment of an instance of `c` placed on `node`: for each need `N`, `FOS_NEED_<N>_HOST` (its address on a
/// network both attach to, else the needed node's address, and then `_NODE` too) and `_PORT`. `components` are
/// the application's by name; `node_of` says where an instance is placed.
pub fn need_env(
    view: &ClusterView,
    components: &HashMap<&str, &Component>,
    c: &Component,
    node: &str,
    (tenant, name): (&str, &str),
    node_of: &dyn Fn(&InstanceId) -> Option<String>,
    assigned: &BTreeMap<InstanceId, BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for need in &c.need {
        let Some(nc) = components.get(need.as_str()) else { continue };
        let nid = InstanceId::new(tenant, name, need, 0);
        let Some(nnode) = node_of(&nid) else { continue };
        let p = env_prefix(need);
        let shared = shared_network_address(view, assigned, &c.entity, &nc.entity, &nid);
        // On a shared network the needed instance is reached at its own port, not at the one exposed on its node.
        let port = match (&shared, nc.entity.ports.first()) {
            (Some(_), Some(p)) => Some(p.port),
            _ => service_port(&nc.entity),
        };
        // On a shared network the needed instance keeps its address wherever it runs: the environment names no
        // node, so a migration of what is needed does not change it (and so does not restart this instance).
        match shared {
            Some(address) => env.insert(format!("{p}HOST"), address),
            None => {
                env.insert(format!("{p}NODE"), nnode.clone());
                env.insert(format!("{p}HOST"), need_host(view, node, &nnode))
            }
        };
        if let Some(port) = port {
            env.insert(format!("{p}PORT"), port.to_string());
        }
    }
    env
}

/// The specs of the networks `entity` attaches to: the application's inline definition, else the tenant's Network
/// object of that name (a network known in neither is left out; admission refuses such applications).
pub fn entity_networks(
    view: &ClusterView,
    tenant: &str,
    spec: &ApplicationSpec,
    entity: &EntitySpec,
) -> BTreeMap<String, NetworkSpec> {
    let mut out = BTreeMap::new();
    for attachment in &entity.networks {
        let name = &attachment.network;
        let inline = spec.networks.iter().find_map(|n| match n {
            NetworkRef::Inline { name: n, spec } if n == name => Some(spec.clone()),
            _ => None,
        });
        if let Some(net) = inline.or_else(|| view.networks.get(&(tenant.to_string(), name.clone())).cloned()) {
            out.insert(name.clone(), net);
        }
    }
    out
}

/// Whether `spec`'s components attach to the tenant's Network object `network` (not defined inline).
pub fn uses_network(spec: &ApplicationSpec, network: &str) -> bool {
    let inline = spec.networks.iter().any(|n| matches!(n, NetworkRef::Inline { name, .. } if name == network));
    !inline && spec.components.iter().any(|c| c.entity.networks.iter().any(|a| a.network == network))
}

/// The address of instance `needed` on the first network both `from` and `to` attach to: fixed in the manifest,
/// else allocated at placement (`assigned`), else as its agent reported it (`None`: no shared network, or no address
/// yet).
fn shared_network_address(
    view: &ClusterView,
    assigned: &BTreeMap<InstanceId, BTreeMap<String, String>>,
    from: &EntitySpec,
    to: &EntitySpec,
    needed: &InstanceId,
) -> Option<String> {
    let actual = view.actual.get(needed);
    from.networks.iter().find_map(|a| {
        let b = to.networks.iter().find(|b| b.network == a.network)?;
        b.ip.clone()
            .or_else(|| assigned.get(needed)?.get(&a.network).cloned())
            .or_else(|| actual?.networks.get(&a.network).cloned())
    })
}

/// The address an instance on `from` uses to reach one on `to`.
fn need_host(view: &ClusterView, from: &str, to: &str) -> String {
    if from == to {
        return "127.0.0.1".to_string();
    }
    let node = view.nodes.get(to);
    if let Some(addr) = node.and_then(|n| n.status.address.as_deref()) {
        if let Some((host, _port)) = addr.rsplit_once(':') {
            return host.trim_start_matches('[').trim_end_matches(']').to_string();
        }
    }
    node.and_then(|n| n.spec.hostname.clone()).unwrap_or_else(|| to.to_string())
}
