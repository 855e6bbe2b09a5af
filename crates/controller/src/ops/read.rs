//! Reads: applications (with status), entities (instances: desired + actual), nodes, networks, plugins, images,
//! events, and the store by `afos://`/`dfos://` URI. Everything tenant-scoped is limited to the caller's tenants;
//! the store view and watch show a non-administrator only its tenants' keys.

use std::collections::BTreeMap;

use fos_api::wire::{AppView, EntityView, EventRecord, ListQuery, StoreEntry, SystemInfo, WatchEvent};
use fos_api::{InstanceId, Node, StoreUri};
use fos_store::records::{ActualPlugins, Addresses, AppStatuses, Apps, DesiredPlugins, Images, Networks, NodeNetworks};
use fos_store::{EventKind, KeyValue, StoreError};
use futures::{Stream, StreamExt};

use super::{Caller, OpError};
use crate::view::ClusterView;
use crate::Context;

fn wanted(caller: &Caller, q: &ListQuery, tenant: &str, app: &str) -> bool {
    caller.may_act_on(tenant)
        && q.tenant.as_deref().is_none_or(|t| t == tenant)
        && q.app.as_deref().is_none_or(|a| a == app)
}

/// The applications (record and status) the caller may see that match `q`.
pub async fn apps(ctx: &Context, caller: &Caller, q: &ListQuery) -> Result<Vec<AppView>, OpError> {
    let records = ctx.records();
    let (apps, statuses) = tokio::try_join!(records.list::<Apps>(), records.list::<AppStatuses>())?;
    let mut statuses: BTreeMap<_, _> = statuses.0.into_iter().map(|(k, v)| (k, v.value)).collect();
    Ok(apps
        .0
        .into_iter()
        .filter(|((t, a), _)| wanted(caller, q, t, a))
        .map(|(k, v)| AppView { record: v.value, status: statuses.remove(&k) })
        .collect())
}

/// One application.
pub async fn app(ctx: &Context, caller: &Caller, tenant: &str, name: &str) -> Result<AppView, OpError> {
    caller.check_read(tenant, || format!("application {tenant}/{name}"))?;
    let records = ctx.records();
    let key = (tenant.to_string(), name.to_string());
    let (record, status) = tokio::try_join!(records.get::<Apps>(&key), records.get::<AppStatuses>(&key))?;
    let record = record.ok_or_else(|| OpError::NotFound(format!("application {tenant}/{name} not found")))?;
    Ok(AppView { record: record.value, status: status.map(|s| s.value) })
}

/// Every instance of `view`, desired and actual side by side.
pub fn entity_views(view: &ClusterView) -> Vec<EntityView> {
    let mut out: BTreeMap<InstanceId, EntityView> = BTreeMap::new();
    for (id, d) in &view.desired {
        out.insert(
            id.clone(),
            EntityView { id: id.clone(), node: d.node.clone(), desired: Some(d.clone()), actual: None, unknown: false },
        );
    }
    for (id, a) in &view.actual {
        out.entry(id.clone())
            .or_insert_with(|| EntityView {
                id: id.clone(),
                node: a.node.clone(),
                desired: None,
                actual: None,
                unknown: false,
            })
            .actual = Some(a.clone());
    }
    for e in out.values_mut() {
        e.unknown = view.node_down(&e.node);
    }
    out.into_values().collect()
}

/// The instances the caller may see that match `q`.
pub async fn entities(ctx: &Context, caller: &Caller, q: &ListQuery) -> Result<Vec<EntityView>, OpError> {
    let (view, _) = ClusterView::read(&ctx.records()).await?;
    Ok(entity_views(&view).into_iter().filter(|e| wanted(caller, q, &e.id.tenant, &e.id.app)).collect())
}

/// One instance: by full id (`db-0.wp.default`), by short id within the caller's view (`db-0`), or by application
/// name for a standalone entity.
pub async fn entity(ctx: &Context, caller: &Caller, id: &str) -> Result<EntityView, OpError> {
    let all = entities(ctx, caller, &ListQuery::default()).await?;
    all.into_iter()
        .find(|e| e.id.to_string() == id || e.id.short() == id || e.id.app == id)
        .ok_or_else(|| OpError::NotFound(format!("entity {id} not found")))
}

/// The system id store URIs name, and the version.
pub fn system(ctx: &Context, _caller: &Caller) -> SystemInfo {
    let root = ctx.keys.root().trim_matches('/');
    let system = root.rsplit('/').next().unwrap_or(root).to_string();
    SystemInfo { system, version: env!("CARGO_PKG_VERSION").to_string() }
}

/// Every node (info and status).
pub async fn nodes(ctx: &Context, _caller: &Caller) -> Result<Vec<Node>, OpError> {
    Ok(ctx.records().nodes().await?)
}

/// One node.
pub async fn node(ctx: &Context, caller: &Caller, name: &str) -> Result<Node, OpError> {
    nodes(ctx, caller)
        .await?
        .into_iter()
        .find(|n| n.metadata.name == name)
        .ok_or_else(|| OpError::NotFound(format!("node {name} not found")))
}

/// The Network objects applied in the caller's tenants.
pub async fn networks(ctx: &Context, caller: &Caller) -> Result<Vec<serde_json::Value>, OpError> {
    let (list, _) = ctx.records().list::<Networks>().await?;
    Ok(list.into_iter().filter(|((t, _), _)| caller.may_act_on(t)).map(|(_, v)| v.value.to_value()).collect())
}

/// Every node's state of every network of the caller's tenants it has up (`actual/nodes/<node>/networks/<net>`:
/// bridge, VxLAN/VLAN device and id, MTU, gateway), with `addresses`: the addresses of the network allocated by that
/// node.
pub async fn node_networks(ctx: &Context, caller: &Caller) -> Result<Vec<serde_json::Value>, OpError> {
    let records = ctx.records();
    let (states, addresses) = tokio::try_join!(records.list::<NodeNetworks>(), records.list::<Addresses>())?;
    // (tenant, network, node) -> addresses allocated there.
    let mut held: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for ((net, ip), holder) in addresses.0 {
        let holder = holder.value;
        let what = match (&holder.instance, holder.gateway) {
            (Some(instance), _) => format!("{ip} ({instance})"),
            (None, true) => format!("{ip} (gateway)"),
            _ => ip.to_string(),
        };
        held.entry((net.tenant, net.name, holder.node)).or_default().push(what);
    }
    let mut out = Vec::new();
    for ((node, _), state) in states.0 {
        let net = &state.value.network;
        if !caller.may_act_on(&net.tenant) {
            continue;
        }
        let addresses = held.remove(&(net.tenant.clone(), net.name.clone(), node.clone())).unwrap_or_default();
        let mut value = json(&state.key, &state.value)?;
        value["node"] = serde_json::Value::String(node);
        value["addresses"] = serde_json::json!(addresses);
        out.push(value);
    }
    Ok(out)
}

/// A typed record as JSON (it always is one; a failure is reported as the record's codec error).
fn json(key: &str, record: &impl serde::Serialize) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(record).map_err(|e| StoreError::Codec { key: key.to_string(), message: e.to_string() })
}

/// The Image objects applied (shared by every tenant).
pub async fn images(ctx: &Context, _caller: &Caller) -> Result<Vec<serde_json::Value>, OpError> {
    let (list, _) = ctx.records().list::<Images>().await?;
    Ok(list.into_iter().map(|(_, v)| v.value.to_value()).collect())
}

/// Per node, the plugins configured (desired) and reported (actual).
pub async fn plugins(ctx: &Context, _caller: &Caller) -> Result<Vec<serde_json::Value>, OpError> {
    let records = ctx.records();
    let (desired, actual) = tokio::try_join!(records.list::<DesiredPlugins>(), records.list::<ActualPlugins>())?;
    let mut out: BTreeMap<(String, String), serde_json::Value> = BTreeMap::new();
    let mut sides: Vec<_> = desired.0.into_iter().map(|(k, v)| ("desired", k, v.value.to_value())).collect();
    for (k, v) in actual.0 {
        sides.push(("actual", k, json(&v.key, &v.value)?));
    }
    for (side, (node, plugin), value) in sides {
        let entry = out
            .entry((node.clone(), plugin.clone()))
            .or_insert_with(|| serde_json::json!({ "node": node, "name": plugin }));
        entry[side] = value;
    }
    Ok(out.into_values().collect())
}

/// The last events (default 100) of the caller's tenants, optionally of one application.
pub async fn events(ctx: &Context, caller: &Caller, q: &ListQuery) -> Result<Vec<EventRecord>, OpError> {
    let list = ctx.events().list(q.tenant.as_deref(), q.app.as_deref(), usize::MAX).await?;
    let mut list: Vec<EventRecord> =
        list.into_iter().filter(|e| e.tenant.as_deref().map_or(caller.is_admin(), |t| caller.may_act_on(t))).collect();
    let skip = list.len().saturating_sub(q.limit.unwrap_or(100));
    list.drain(..skip);
    Ok(list)
}

fn entry(kv: &KeyValue) -> StoreEntry {
    let value = serde_json::from_slice(&kv.value)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&kv.value).into_owned()));
    StoreEntry { key: kv.key.clone(), value, mod_revision: kv.mod_revision }
}

fn store_uri(uri: &str) -> Result<StoreUri, OpError> {
    StoreUri::parse(uri).map_err(|e| OpError::invalid(e.to_string()))
}

/// Whether `caller` may see the store key `key`: administrators see every key; anyone else only the keys of its
/// tenants' applications, networks and instances (never a node's, the system's or another tenant's).
fn visible(ctx: &Context, caller: &Caller, key: &str) -> bool {
    use fos_api::keys::KeyRef;
    if caller.is_admin() {
        return true;
    }
    let tenant = match ctx.keys.parse(key) {
        Some(KeyRef::DesiredApp { tenant, .. } | KeyRef::ActualApp { tenant, .. }) => tenant,
        Some(KeyRef::DesiredNetwork { tenant, .. }) => tenant,
        Some(KeyRef::DesiredInstance { id, .. } | KeyRef::ActualInstance { id, .. }) => id.tenant,
        _ => return false,
    };
    caller.may_act_on(&tenant)
}

/// The keys an `afos://`/`dfos://` URI (with `*` and `**`) matches, of those the caller may see. A URI without
/// wildcards names one key: not found when it is absent or not the caller's.
pub async fn store(ctx: &Context, caller: &Caller, uri: &str) -> Result<Vec<StoreEntry>, OpError> {
    let parsed = store_uri(uri)?;
    let list = ctx.store.list(&parsed.prefix()).await?;
    let out: Vec<StoreEntry> =
        list.kvs.iter().filter(|kv| parsed.matches(&kv.key) && visible(ctx, caller, &kv.key)).map(entry).collect();
    let exact = parsed.segments.iter().all(|s| matches!(s, fos_api::keys::Segment::Literal(_)));
    if exact && out.is_empty() {
        return Err(OpError::NotFound(format!("no key at {uri}")));
    }
    Ok(out)
}

/// The entries an URI matches as `put` events, then every change to them.
pub async fn watch(
    ctx: &Context,
    caller: &Caller,
    uri: &str,
) -> Result<impl Stream<Item = WatchEvent> + Send + 'static, OpError> {
    let uri = store_uri(uri)?;
    let list = ctx.store.list(&uri.prefix()).await?;
    let stream = ctx.store.watch(&uri.prefix(), list.revision + 1).await?;
    let initial: Vec<WatchEvent> = list
        .kvs
        .iter()
        .filter(|kv| uri.matches(&kv.key) && visible(ctx, caller, &kv.key))
        .map(|kv| WatchEvent { kind: "put".into(), entry: entry(kv) })
        .collect();
    let (ctx, caller) = (ctx.clone(), caller.clone());
    let changes = stream.filter_map(move |ev| {
        let out = match ev {
            Ok(ev) if uri.matches(&ev.kv.key) && visible(&ctx, &caller, &ev.kv.key) => {
                let mut e = entry(&ev.kv);
                let kind = match ev.kind {
                    EventKind::Put => "put",
                    EventKind::Delete => {
                        e.value = serde_json::Value::Null;
                        "delete"
                    }
                };
                Some(WatchEvent { kind: kind.into(), entry: e })
            }
            _ => None,
        };
        futures::future::ready(out)
    });
    Ok(futures::stream::iter(initial).chain(changes))
}
