//! Addresses allocated at placement: an instance attached to a network with an `ipRange` gets its address when the
//! controller places it, written in the same transaction as its desired record (which names it in `addresses`), so
//! the address is known before the instance, or anything needing it, is configured (`FOS_NEED_<N>_HOST` never
//! changes once the instance starts). The address stays allocated as long as the instance has a desired or an actual
//! record; then the controller releases it. Addresses an agent allocated itself (instances placed before, fixed
//! addresses) are reused as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use fos_api::manifest::{Component, NetworkSpec};
use fos_api::network::{format_mac, instance_mac, AddressHolder, NetworkName};
use fos_api::{ApplicationSpec, InstanceId};
use ipnet::Ipv4Net;

use super::super::Write;
use crate::view::ClusterView;

/// The addresses of an application's instances, by instance and network name, and the allocations to write.
#[derive(Debug, Default)]
pub struct Assigned {
    /// Each placed instance's address on each of its networks that has one.
    pub addresses: BTreeMap<InstanceId, BTreeMap<String, String>>,
    /// The allocations to write ([`Write::TakeAddress`]), before the desired records naming them.
    pub takes: Vec<Write>,
}

/// The subnet of a network spec (`None`: no `ipRange`, or one that does not parse, which admission refuses).
fn subnet(spec: &NetworkSpec) -> Option<Ipv4Net> {
    spec.ip_range.as_deref()?.parse::<Ipv4Net>().ok().map(|n| n.trunc())
}

/// Allocates the addresses of `placed` (each instance with its node and component) of the application `spec` in
/// `tenant`: the address its desired record names while nobody else holds it, else the one it holds already, else
/// the lowest free host address of the network that is neither its gateway nor an address fixed in the manifest.
/// `networks` gives each component's network specs.
pub fn assign(
    view: &ClusterView,
    tenant: &str,
    spec: &ApplicationSpec,
    placed: &[(InstanceId, String, &Component)],
    networks: &dyn Fn(&Component) -> BTreeMap<String, NetworkSpec>,
) -> Assigned {
    let mut out = Assigned::default();
    let mut picked: BTreeSet<(NetworkName, Ipv4Addr)> = BTreeSet::new();
    for (id, node, c) in placed {
        let specs = networks(c);
        let id_text = id.to_string();
        for (nic, a) in c.entity.networks.iter().enumerate() {
            let (Some(net_spec), None) = (specs.get(&a.network), &a.ip) else { continue };
            let Some(subnet) = subnet(net_spec) else { continue };
            let net = NetworkName::new(tenant, &a.network);
            let mine = |h: &AddressHolder| h.instance.as_deref() == Some(id_text.as_str()) && h.nic == nic;
            let free =
                |ip: Ipv4Addr| !view.addresses.contains_key(&(net.clone(), ip)) && !picked.contains(&(net.clone(), ip));
            let recorded = view
                .desired
                .get(id)
                .and_then(|d| d.addresses.get(&a.network))
                .and_then(|t| t.parse::<Ipv4Addr>().ok())
                .filter(|ip| subnet.contains(ip));
            let held = view
                .addresses
                .range((net.clone(), Ipv4Addr::UNSPECIFIED)..=(net.clone(), Ipv4Addr::BROADCAST))
                .find(|(_, h)| mine(h))
                .map(|((_, ip), _)| *ip);
            let ip = match (recorded, held) {
                (Some(ip), Some(h)) if ip == h => ip,
                (_, Some(h)) => h,
                (Some(ip), None) if free(ip) => {
                    out.takes.push(take(&net, ip, node, id, nic, a.mac.as_deref()));
                    ip
                }
                _ => {
                    let gateway = net_spec.gateway.as_deref().and_then(|g| g.parse::<Ipv4Addr>().ok());
                    let fixed = fixed_addresses(spec, &a.network);
                    let Some(ip) = subnet.hosts().find(|ip| Some(*ip) != gateway && !fixed.contains(ip) && free(*ip))
                    else {
                        // Exhausted: the agent reports it when it attaches the instance.
                        continue;
                    };
                    out.takes.push(take(&net, ip, node, id, nic, a.mac.as_deref()));
                    ip
                }
            };
            picked.insert((net, ip));
            out.addresses.entry(id.clone()).or_default().insert(a.network.clone(), ip.to_string());
        }
    }
    out
}

/// The allocation of `ip` on `net` to interface `nic` of `id`, placed on `node`.
fn take(net: &NetworkName, ip: Ipv4Addr, node: &str, id: &InstanceId, nic: usize, mac: Option<&str>) -> Write {
    let mac =
        mac.map(|m| m.to_ascii_lowercase().replace('-', ":")).unwrap_or_else(|| format_mac(&instance_mac(id, nic)));
    let holder = AddressHolder {
        node: node.to_string(),
        instance: Some(id.to_string()),
        nic,
        mac: Some(mac),
        gateway: false,
        placed: true,
    };
    Write::TakeAddress { network: net.clone(), ip, holder }
}

/// The addresses the manifest fixes on `network` (never handed out by allocation).
fn fixed_addresses(spec: &ApplicationSpec, network: &str) -> BTreeSet<Ipv4Addr> {
    spec.components
        .iter()
        .flat_map(|c| c.entity.networks.iter())
        .filter(|a| a.network == network)
        .filter_map(|a| a.ip.as_deref()?.parse().ok())
        .collect()
}

/// Releases the addresses allocated at placement to instances of `tenant`/`app` that are not in `keep` (the
/// instances with a desired record once the pass's writes are in) and have no actual record.
pub fn releases(view: &ClusterView, (tenant, app): (&str, &str), keep: &BTreeSet<&InstanceId>) -> Vec<Write> {
    view.addresses
        .iter()
        .filter(|(_, h)| h.placed)
        .filter_map(|((net, ip), h)| {
            let id: InstanceId = h.instance.as_deref()?.parse().ok()?;
            let gone = id.tenant == tenant && id.app == app && !keep.contains(&id) && !view.actual.contains_key(&id);
            gone.then(|| Write::ReleaseAddress { network: net.clone(), ip: *ip })
        })
        .collect()
}
