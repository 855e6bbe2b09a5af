//! Allocations through the store, each a compare-and-swap on a key that exists only while the thing is taken
//! (`Compare::absent`), so concurrent allocators on any nodes never hand out the same VLAN id, VNI or address:
//! a network's segment id (`system/segments/...` + `system/vlans/<id>` or `system/vnis/<id>`), and addresses
//! (`system/ipam/<tenant>/<net>/<ip>`, the value saying who holds it).

use std::net::Ipv4Addr;

use fos_api::manifest::{NetworkKind, NetworkSpec};
use fos_api::Keys;
use fos_store::{Compare, Store, Txn, TxnOp};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::names::short_hash;
use super::{NetworkError, NetworkName, Segment};

/// The VLAN ids used when the plugin configuration gives no `vlanRange`.
pub const DEFAULT_VLAN_RANGE: [u16; 2] = [100, 4000];

/// The largest VNI.
const MAX_VNI: u32 = 16_777_215;

/// How many VNIs an allocation tries before giving up.
const VNI_TRIES: u32 = 4096;

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressHolder {
    /// The node that allocated it.
    pub node: String,
    /// The instance, when an instance interface holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The interface's index in the instance's network list.
    #[serde(default)]
    pub nic: usize,
    /// The interface's MAC (DHCP serves the address to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// True when it is the network's gateway, on `node`'s bridge.
    #[serde(default)]
    pub gateway: bool,
}

impl AddressHolder {
    fn describe(&self) -> String {
        match (&self.instance, self.gateway) {
            (_, true) => format!("the gateway on {}", self.node),
            (Some(i), _) => format!("{i} (interface {}) on {}", self.nic, self.node),
            (None, false) => format!("node {}", self.node),
        }
    }

    fn same_holder(&self, other: &AddressHolder) -> bool {
        self.instance == other.instance
            && self.nic == other.nic
            && self.gateway == other.gateway
            && (self.instance.is_some() || self.node == other.node)
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, NetworkError> {
    serde_json::to_vec(value)
        .map_err(|e| fos_store::StoreError::Codec { key: key.to_string(), message: e.to_string() }.into())
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> Result<T, NetworkError> {
    serde_json::from_slice(value)
        .map_err(|e| fos_store::StoreError::Codec { key: key.to_string(), message: e.to_string() }.into())
}

/// The record of a network's segment id allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SegmentRecord {
    network: NetworkName,
    segment: Segment,
}

/// The network's segment, allocating its VLAN id / VNI when the spec leaves it open. Every node asking for the same
/// network gets the same answer; two networks never get the same id.
pub async fn segment(
    store: &dyn Store,
    keys: &Keys,
    net: &NetworkName,
    spec: &NetworkSpec,
    vlan_range: Option<[u16; 2]>,
) -> Result<Segment, NetworkError> {
    let segment_key = keys.network_segment(&net.tenant, &net.name);
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
    if let Some(kv) = store.get(&segment_key).await? {
        let record: SegmentRecord = decode(&segment_key, &kv.value)?;
        if fits(&record.segment) {
            return Ok(record.segment);
        }
        return Err(NetworkError::Config {
            network: net.to_string(),
            message: format!(
                "already built as {:?}; delete the network before changing its type or id",
                record.segment
            ),
        });
    }
    let candidates: Vec<(Segment, Option<String>)> = match spec.kind {
        NetworkKind::Bridge => vec![(Segment::Bridge, None)],
        NetworkKind::Vlan => {
            let ids: Vec<u16> = match spec.vlan_id {
                Some(id) => vec![id],
                None => {
                    let [lo, hi] = vlan_range.unwrap_or(DEFAULT_VLAN_RANGE);
                    (lo.max(1)..=hi.min(4094)).collect()
                }
            };
            ids.into_iter().map(|id| (Segment::Vlan { id }, Some(keys.vlan(id)))).collect()
        }
        NetworkKind::Vxlan => {
            let vnis: Vec<u32> = match spec.vxlan_id {
                Some(id) => vec![id],
                None => {
                    let start = u32::from_str_radix(&short_hash(&net.to_string()), 16).unwrap_or(1) % MAX_VNI;
                    (0..VNI_TRIES).map(|i| (start + i) % MAX_VNI + 1).collect()
                }
            };
            vnis.into_iter().map(|vni| (Segment::Vxlan { vni, group }, Some(keys.vni(vni)))).collect()
        }
    };
    let record_value = |segment: Segment| encode(&segment_key, &SegmentRecord { network: net.clone(), segment });
    let fixed = spec.vlan_id.is_some() || spec.vxlan_id.is_some();
    for (segment, id_key) in candidates {
        let mut txn = Txn::default();
        txn.compare.push(Compare::absent(segment_key.clone()));
        txn.success.push(TxnOp::Put { key: segment_key.clone(), value: record_value(segment)?, lease: None });
        txn.failure.push(TxnOp::Get { key: segment_key.clone() });
        if let Some(id_key) = &id_key {
            txn.compare.push(Compare::absent(id_key.clone()));
            txn.success.push(TxnOp::Put { key: id_key.clone(), value: encode(id_key, net)?, lease: None });
            txn.failure.push(TxnOp::Get { key: id_key.clone() });
        }
        let result = store.txn(txn).await?;
        if result.succeeded {
            return Ok(segment);
        }
        if let Some(Some(kv)) = result.gets.first() {
            let record: SegmentRecord = decode(&segment_key, &kv.value)?;
            return Ok(record.segment);
        }
        if fixed {
            let owner = match result.gets.get(1) {
                Some(Some(kv)) => decode::<NetworkName>(&kv.key, &kv.value).map(|n| n.to_string()).unwrap_or_default(),
                _ => String::from("another network"),
            };
            return Err(NetworkError::Taken { what: format!("{segment:?}"), owner: format!("network {owner}") });
        }
    }
    Err(NetworkError::Exhausted(format!("{} ids for network {net}", spec.kind)))
}

/// Releases a network's segment id (when no node uses the network any more).
pub async fn release_segment(store: &dyn Store, keys: &Keys, net: &NetworkName) -> Result<(), NetworkError> {
    let segment_key = keys.network_segment(&net.tenant, &net.name);
    let Some(kv) = store.get(&segment_key).await? else {
        return Ok(());
    };
    let record: SegmentRecord = decode(&segment_key, &kv.value)?;
    let mut txn = Txn::default();
    txn.compare.push(Compare::mod_revision(segment_key.clone(), kv.mod_revision));
    txn.success.push(TxnOp::Delete { key: segment_key });
    match record.segment {
        Segment::Vlan { id } => txn.success.push(TxnOp::Delete { key: keys.vlan(id) }),
        Segment::Vxlan { vni, .. } => txn.success.push(TxnOp::Delete { key: keys.vni(vni) }),
        Segment::Bridge => {}
    }
    store.txn(txn).await?;
    Ok(())
}

/// Takes `ip` for `holder` unless someone else holds it. Returns whether `holder` holds it now.
async fn try_take(
    store: &dyn Store,
    keys: &Keys,
    net: &NetworkName,
    ip: Ipv4Addr,
    holder: &AddressHolder,
) -> Result<Result<(), AddressHolder>, NetworkError> {
    let key = keys.ipam_address(&net.tenant, &net.name, &ip.to_string());
    let txn = Txn {
        compare: vec![Compare::absent(key.clone())],
        success: vec![TxnOp::Put { key: key.clone(), value: encode(&key, holder)?, lease: None }],
        failure: vec![TxnOp::Get { key: key.clone() }],
    };
    let result = store.txn(txn).await?;
    if result.succeeded {
        return Ok(Ok(()));
    }
    match result.gets.first() {
        Some(Some(kv)) => {
            let current: AddressHolder = decode(&key, &kv.value)?;
            Ok(if current.same_holder(holder) { Ok(()) } else { Err(current) })
        }
        _ => Ok(Err(AddressHolder { node: "?".into(), instance: None, nic: 0, mac: None, gateway: false })),
    }
}

/// The address allocations of a network: (address, holder).
pub async fn addresses(
    store: &dyn Store,
    keys: &Keys,
    net: &NetworkName,
) -> Result<Vec<(Ipv4Addr, AddressHolder)>, NetworkError> {
    let prefix = keys.ipam_network_prefix(&net.tenant, &net.name);
    let listed = store.list(&prefix).await?;
    let mut out = Vec::with_capacity(listed.kvs.len());
    for kv in listed.kvs {
        let Some(ip) = kv.key.strip_prefix(&prefix).and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
            continue;
        };
        out.push((ip, decode(&kv.key, &kv.value)?));
    }
    Ok(out)
}

/// An address in `subnet` for `holder`: the one it already holds, else `fixed` when given, else the lowest free
/// host address (never the subnet's network or broadcast address).
pub async fn address(
    store: &dyn Store,
    keys: &Keys,
    net: &NetworkName,
    subnet: Ipv4Net,
    fixed: Option<Ipv4Addr>,
    holder: &AddressHolder,
) -> Result<Ipv4Addr, NetworkError> {
    let taken = addresses(store, keys, net).await?;
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
        return match try_take(store, keys, net, ip, holder).await? {
            Ok(()) => Ok(ip),
            Err(owner) => Err(NetworkError::Taken { what: format!("address {ip} of {net}"), owner: owner.describe() }),
        };
    }
    for ip in subnet.hosts() {
        if taken.iter().any(|(t, _)| *t == ip) {
            continue;
        }
        if try_take(store, keys, net, ip, holder).await?.is_ok() {
            return Ok(ip);
        }
    }
    Err(NetworkError::Exhausted(format!("addresses of {net} ({subnet})")))
}

/// Claims the network's gateway address for `node`. Returns whether `node` holds it (exactly one node does).
pub async fn claim_gateway(
    store: &dyn Store,
    keys: &Keys,
    net: &NetworkName,
    gateway: Ipv4Addr,
    node: &str,
) -> Result<bool, NetworkError> {
    let holder = AddressHolder { node: node.to_string(), instance: None, nic: 0, mac: None, gateway: true };
    match try_take(store, keys, net, gateway, &holder).await? {
        Ok(()) => Ok(true),
        Err(owner) if owner.gateway => Ok(false),
        Err(owner) => Err(NetworkError::Taken { what: format!("gateway {gateway} of {net}"), owner: owner.describe() }),
    }
}

/// Releases the address allocations under `prefix` (one network's, or [`Keys::ipam_prefix`] for all) that `release`
/// selects, each only if unchanged since read. Returns how many were released.
pub async fn release_where(
    store: &dyn Store,
    prefix: &str,
    release: impl Fn(&AddressHolder) -> bool,
) -> Result<usize, NetworkError> {
    let listed = store.list(prefix).await?;
    let mut released = 0;
    for kv in listed.kvs {
        let Ok(holder) = decode::<AddressHolder>(&kv.key, &kv.value) else {
            continue;
        };
        if !release(&holder) {
            continue;
        }
        let txn = Txn {
            compare: vec![Compare::mod_revision(kv.key.clone(), kv.mod_revision)],
            success: vec![TxnOp::Delete { key: kv.key.clone() }],
            failure: Vec::new(),
        };
        if store.txn(txn).await?.succeeded {
            released += 1;
        }
    }
    Ok(released)
}
