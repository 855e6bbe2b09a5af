//! Allocations through the store, each a compare-and-swap on a record that exists only while the thing is taken
//! ([`Records::absent`]), so concurrent allocators on any nodes never hand out the same VLAN id, VNI or address: a
//! network's segment id ([`Segments`] + [`Vlans`] or [`Vnis`]), and addresses ([`Addresses`], the record saying
//! who holds it). The records are `fos_store::records`' kinds.

use std::net::Ipv4Addr;

use fos_api::manifest::{NetworkKind, NetworkSpec};
pub use fos_api::network::AddressHolder;
use fos_api::network::SegmentRecord;
use fos_store::records::{Addresses, Segments, Vlans, Vnis};
use fos_store::{KeyValue, Kind, Records, StoreError, Txn};
use ipnet::Ipv4Net;

use super::names::short_hash;
use super::{NetworkError, NetworkName, Segment};

/// The VLAN ids used when the plugin configuration gives no `vlanRange`.
pub const DEFAULT_VLAN_RANGE: [u16; 2] = [100, 4000];

/// The largest VNI.
const MAX_VNI: u32 = 16_777_215;

/// How many VNIs an allocation tries before giving up.
const VNI_TRIES: u32 = 4096;

/// Decodes a transaction's read of a record of kind `K`.
fn decoded<K: Kind>(records: &Records, kv: &KeyValue) -> Result<K::Value, NetworkError> {
    match records.decode::<K>(kv) {
        Some(entry) => Ok(entry?.1.value),
        None => Err(StoreError::Codec { key: kv.key.clone(), message: format!("not a {} key", K::NAME) }.into()),
    }
}

/// The network a VLAN id or VNI record names.
fn id_owner(records: &Records, kv: &KeyValue) -> Option<NetworkName> {
    match records.decode::<Vlans>(kv) {
        Some(entry) => entry.ok().map(|(_, v)| v.value),
        None => records.decode::<Vnis>(kv)?.ok().map(|(_, v)| v.value),
    }
}

/// Adds to `txn` the claim of `segment`'s VLAN id or VNI for `net` (taken only if absent), and its read on failure.
fn claim_id(records: &Records, txn: &mut Txn, segment: Segment, net: &NetworkName) -> Result<(), NetworkError> {
    match segment {
        Segment::Vlan { id } => {
            txn.compare.push(records.absent::<Vlans>(&id));
            txn.success.push(records.put_op::<Vlans>(&id, net)?);
            txn.failure.push(records.get_op::<Vlans>(&id));
        }
        Segment::Vxlan { vni, .. } => {
            txn.compare.push(records.absent::<Vnis>(&vni));
            txn.success.push(records.put_op::<Vnis>(&vni, net)?);
            txn.failure.push(records.get_op::<Vnis>(&vni));
        }
        Segment::Bridge => {}
    }
    Ok(())
}

/// The network's segment, allocating its VLAN id / VNI when the spec leaves it open. Every node asking for the same
/// network gets the same answer; two networks never get the same id.
pub async fn segment(
    records: &Records,
    net: &NetworkName,
    spec: &NetworkSpec,
    vlan_range: Option<[u16; 2]>,
) -> Result<Segment, NetworkError> {
    let group = match &spec.multicast_address {
        Some(text) => {
            Some(text.parse::<Ipv4Addr>().ok().filter(|g| g.is_multicast()).ok_or_else(|| NetworkError::Config {
                network: net.to_string(),
                message: format!("multicastAddress {text} is not an IPv4 multicast group"),
            })?)
        }
        None => None,
    };
    let fits = |seg: &Segment| match (spec.kind, seg) {
        (NetworkKind::Vxlan, Segment::Vxlan { vni, group: g }) => {
            spec.vxlan_id.is_none_or(|v| v == *vni) && *g == group
        }
        (NetworkKind::Vlan, Segment::Vlan { id }) => spec.vlan_id.is_none_or(|v| v == *id),
        (NetworkKind::Bridge, Segment::Bridge) => true,
        _ => false,
    };
    if let Some(record) = records.get::<Segments>(net).await? {
        if fits(&record.value.segment) {
            return Ok(record.value.segment);
        }
        return Err(NetworkError::Config {
            network: net.to_string(),
            message: format!(
                "already built as {:?}; delete the network before changing its type or id",
                record.value.segment
            ),
        });
    }
    let candidates: Vec<Segment> = match spec.kind {
        NetworkKind::Bridge => vec![Segment::Bridge],
        NetworkKind::Vlan => {
            let ids: Vec<u16> = match spec.vlan_id {
                Some(id) => vec![id],
                None => {
                    let [lo, hi] = vlan_range.unwrap_or(DEFAULT_VLAN_RANGE);
                    (lo.max(1)..=hi.min(4094)).collect()
                }
            };
            ids.into_iter().map(|id| Segment::Vlan { id }).collect()
        }
        NetworkKind::Vxlan => {
            let vnis: Vec<u32> = match spec.vxlan_id {
                Some(id) => vec![id],
                None => {
                    let start = u32::from_str_radix(&short_hash(&net.to_string()), 16).unwrap_or(1) % MAX_VNI;
                    (0..VNI_TRIES).map(|i| (start + i) % MAX_VNI + 1).collect()
                }
            };
            vnis.into_iter().map(|vni| Segment::Vxlan { vni, group }).collect()
        }
    };
    let fixed = spec.vlan_id.is_some() || spec.vxlan_id.is_some();
    for segment in candidates {
        let mut txn = Txn::default();
        txn.compare.push(records.absent::<Segments>(net));
        txn.success.push(records.put_op::<Segments>(net, &SegmentRecord { network: net.clone(), segment })?);
        txn.failure.push(records.get_op::<Segments>(net));
        claim_id(records, &mut txn, segment, net)?;
        let result = records.store().txn(txn).await?;
        if result.succeeded {
            return Ok(segment);
        }
        if let Some(Some(kv)) = result.gets.first() {
            return Ok(decoded::<Segments>(records, kv)?.segment);
        }
        if fixed {
            let owner = match result.gets.get(1) {
                Some(Some(kv)) => id_owner(records, kv).map(|n| n.to_string()).unwrap_or_default(),
                _ => String::from("another network"),
            };
            return Err(NetworkError::Taken { what: format!("{segment:?}"), owner: format!("network {owner}") });
        }
    }
    Err(NetworkError::Exhausted(format!("{} ids for network {net}", spec.kind)))
}

/// Releases a network's segment id (when no node uses the network any more).
pub async fn release_segment(records: &Records, net: &NetworkName) -> Result<(), NetworkError> {
    let Some(record) = records.get::<Segments>(net).await? else {
        return Ok(());
    };
    let mut txn = Txn::default();
    txn.compare.push(records.unchanged::<Segments>(net, record.mod_revision));
    txn.success.push(records.delete_op::<Segments>(net));
    match record.value.segment {
        Segment::Vlan { id } => txn.success.push(records.delete_op::<Vlans>(&id)),
        Segment::Vxlan { vni, .. } => txn.success.push(records.delete_op::<Vnis>(&vni)),
        Segment::Bridge => {}
    }
    records.store().txn(txn).await?;
    Ok(())
}

/// Takes `ip` for `holder` unless someone else holds it. Returns whether `holder` holds it now.
async fn try_take(
    records: &Records,
    net: &NetworkName,
    ip: Ipv4Addr,
    holder: &AddressHolder,
) -> Result<Result<(), AddressHolder>, NetworkError> {
    let id = (net.clone(), ip);
    let txn = Txn {
        compare: vec![records.absent::<Addresses>(&id)],
        success: vec![records.put_op::<Addresses>(&id, holder)?],
        failure: vec![records.get_op::<Addresses>(&id)],
    };
    let result = records.store().txn(txn).await?;
    if result.succeeded {
        return Ok(Ok(()));
    }
    match result.gets.first() {
        Some(Some(kv)) => {
            let current = decoded::<Addresses>(records, kv)?;
            if !current.same_holder(holder) {
                return Ok(Err(current));
            }
            if current.node != holder.node {
                // The instance runs here now (placed again after its node was lost, or moved): the hold follows it,
                // so the node it left can no longer release it.
                let moved = AddressHolder { placed: current.placed, ..holder.clone() };
                let txn = Txn {
                    compare: vec![records.unchanged::<Addresses>(&id, kv.mod_revision)],
                    success: vec![records.put_op::<Addresses>(&id, &moved)?],
                    failure: Vec::new(),
                };
                if !records.store().txn(txn).await?.succeeded {
                    return Err(NetworkError::Store(StoreError::Conflict(format!(
                        "address {ip} of {net} changed hands"
                    ))));
                }
            }
            Ok(Ok(()))
        }
        _ => Ok(Err(AddressHolder {
            node: "?".into(),
            instance: None,
            nic: 0,
            mac: None,
            gateway: false,
            placed: false,
        })),
    }
}

/// The address allocations of a network: (address, holder).
pub async fn addresses(records: &Records, net: &NetworkName) -> Result<Vec<(Ipv4Addr, AddressHolder)>, NetworkError> {
    let prefix = records.keys().ipam_network_prefix(&net.tenant, &net.name);
    let (listed, _) = records.list_in::<Addresses>(&prefix).await?;
    Ok(listed.into_iter().map(|((_, ip), holder)| (ip, holder.value)).collect())
}

/// An address in `subnet` for `holder`: the one it already holds, else `fixed` when given, else the lowest free
/// host address (never the subnet's network or broadcast address).
pub async fn address(
    records: &Records,
    net: &NetworkName,
    subnet: Ipv4Net,
    fixed: Option<Ipv4Addr>,
    holder: &AddressHolder,
) -> Result<Ipv4Addr, NetworkError> {
    let taken = addresses(records, net).await?;
    if let Some((ip, _)) = taken.iter().find(|(ip, h)| h.same_holder(holder) && fixed.is_none_or(|f| f == *ip)) {
        return Ok(*ip);
    }
    if let Some(ip) = fixed {
        if !subnet.contains(&ip) {
            return Err(NetworkError::Config {
                network: net.to_string(),
                message: format!("address {ip} is outside {subnet}"),
            });
        }
        return match try_take(records, net, ip, holder).await? {
            Ok(()) => Ok(ip),
            Err(owner) => Err(NetworkError::Taken { what: format!("address {ip} of {net}"), owner: owner.describe() }),
        };
    }
    for ip in subnet.hosts() {
        if taken.iter().any(|(t, _)| *t == ip) {
            continue;
        }
        if try_take(records, net, ip, holder).await?.is_ok() {
            return Ok(ip);
        }
    }
    Err(NetworkError::Exhausted(format!("addresses of {net} ({subnet})")))
}

/// Claims the network's gateway address for `node`. Returns whether `node` holds it (exactly one node does).
pub async fn claim_gateway(
    records: &Records,
    net: &NetworkName,
    gateway: Ipv4Addr,
    node: &str,
) -> Result<bool, NetworkError> {
    let holder =
        AddressHolder { node: node.to_string(), instance: None, nic: 0, mac: None, gateway: true, placed: false };
    match try_take(records, net, gateway, &holder).await? {
        Ok(()) => Ok(true),
        Err(owner) if owner.gateway => Ok(false),
        Err(owner) => Err(NetworkError::Taken { what: format!("gateway {gateway} of {net}"), owner: owner.describe() }),
    }
}

/// Releases the address allocations under `prefix` (one network's, [`fos_api::Keys::ipam_network_prefix`], or
/// [`fos_api::Keys::ipam_prefix`] for all) that `release` selects, each only if unchanged since read. Returns how
/// many were released.
pub async fn release_where(
    records: &Records,
    prefix: &str,
    release: impl Fn(&AddressHolder) -> bool,
) -> Result<usize, NetworkError> {
    let (listed, _) = records.list_in::<Addresses>(prefix).await?;
    let mut released = 0;
    for (id, holder) in listed {
        if !release(&holder.value) {
            continue;
        }
        let txn = Txn {
            compare: vec![records.unchanged::<Addresses>(&id, holder.mod_revision)],
            success: vec![records.delete_op::<Addresses>(&id)],
            failure: Vec::new(),
        };
        if records.store().txn(txn).await?.succeeded {
            released += 1;
        }
    }
    Ok(released)
}
