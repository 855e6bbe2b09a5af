//! Reads and deletes: applications (with status), entities (instances: desired + actual), nodes, networks,
//! plugins, images, and events.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use fos_api::wire::{AppView, EntityView, EventRecord};
use fos_api::{InstanceId, Node};
use serde::Deserialize;

use super::app_record::update_app;
use super::error::ApiError;
use crate::view::ClusterView;
use crate::Context;

/// Filters of list calls.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this application.
    pub app: Option<String>,
    /// At most this many (events).
    pub limit: Option<usize>,
}

fn app_views(view: &ClusterView, q: &ListQuery) -> Vec<AppView> {
    view.apps
        .iter()
        .filter(|((t, a), _)| q.tenant.as_ref().is_none_or(|x| x == t) && q.app.as_ref().is_none_or(|x| x == a))
        .map(|(k, s)| AppView { record: s.record.clone(), status: view.statuses.get(k).cloned() })
        .collect()
}

/// `GET /v1/apps`.
pub async fn list_apps(State(ctx): State<Context>, Query(q): Query<ListQuery>) -> Result<Json<Vec<AppView>>, ApiError> {
    let view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    Ok(Json(app_views(&view, &q)))
}

/// `GET /v1/apps/{tenant}/{name}`.
pub async fn get_app(
    State(ctx): State<Context>,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<AppView>, ApiError> {
    let view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    let q = ListQuery { tenant: Some(tenant.clone()), app: Some(name.clone()), limit: None };
    app_views(&view, &q)
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("application {tenant}/{name} not found")))
}

/// `DELETE /v1/apps/{tenant}/{name}`: marks the application for teardown (the controller stops its components in
/// reverse dependency order, then removes it).
pub async fn delete_app(
    State(ctx): State<Context>,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<AppView>, ApiError> {
    let key = ctx.keys.desired_app(&tenant, &name);
    let what = format!("application {tenant}/{name}");
    let not_found = || ApiError::NotFound(format!("{what} not found"));
    let record = update_app(&ctx, &key, &what, not_found, |rec| {
        let changed = !rec.deleting;
        rec.deleting = true;
        Ok(changed)
    })
    .await?;
    Ok(Json(AppView { record, status: None }))
}

/// Every instance, desired and actual side by side.
pub fn entity_views(view: &ClusterView) -> Vec<EntityView> {
    let mut out: BTreeMap<InstanceId, EntityView> = BTreeMap::new();
    for (id, d) in &view.desired {
        out.insert(
            id.clone(),
            EntityView { id: id.clone(), node: d.node.clone(), desired: Some(d.clone()), actual: None },
        );
    }
    for (id, a) in &view.actual {
        out.entry(id.clone())
            .or_insert_with(|| EntityView { id: id.clone(), node: a.node.clone(), desired: None, actual: None })
            .actual = Some(a.clone());
    }
    out.into_values().collect()
}

/// `GET /v1/entities`.
pub async fn list_entities(
    State(ctx): State<Context>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<EntityView>>, ApiError> {
    let view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    let list = entity_views(&view)
        .into_iter()
        .filter(|e| {
            q.tenant.as_ref().is_none_or(|t| t == &e.id.tenant) && q.app.as_ref().is_none_or(|a| a == &e.id.app)
        })
        .collect();
    Ok(Json(list))
}

/// `GET /v1/entities/{id}`: by full id (`db-0.wp.default`), or by application name for a standalone entity.
pub async fn get_entity(State(ctx): State<Context>, Path(id): Path<String>) -> Result<Json<EntityView>, ApiError> {
    let view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    let found =
        entity_views(&view).into_iter().find(|e| e.id.to_string() == id || e.id.short() == id || e.id.app == id);
    found.map(Json).ok_or_else(|| ApiError::NotFound(format!("entity {id} not found")))
}

/// `GET /v1/nodes`.
pub async fn list_nodes(State(ctx): State<Context>) -> Result<Json<Vec<Node>>, ApiError> {
    let view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    Ok(Json(view.nodes.into_values().collect()))
}

/// `GET /v1/nodes/{name}`.
pub async fn get_node(State(ctx): State<Context>, Path(name): Path<String>) -> Result<Json<Node>, ApiError> {
    let mut view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    view.nodes.remove(&name).map(Json).ok_or_else(|| ApiError::NotFound(format!("node {name} not found")))
}

/// The JSON values stored under `prefix`.
async fn values_under(ctx: &Context, prefix: &str) -> Result<Vec<serde_json::Value>, ApiError> {
    let list = ctx.store.list(prefix).await?;
    Ok(list.kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

/// `GET /v1/networks`: the Network objects applied.
pub async fn list_networks(State(ctx): State<Context>) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    Ok(Json(values_under(&ctx, &ctx.keys.desired_networks_prefix()).await?))
}

/// `GET /v1/networks/nodes`: every node's actual state of every network it has up
/// (`actual/nodes/<node>/networks/<net>`: bridge, VxLAN/VLAN device and id, MTU, gateway), with `addresses`: the
/// addresses of the network allocated by that node.
pub async fn list_node_networks(State(ctx): State<Context>) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let (pa, pi) = (ctx.keys.actual_nodes_prefix(), ctx.keys.ipam_prefix());
    let (actual, ipam) = tokio::try_join!(ctx.store.list(&pa), ctx.store.list(&pi))?;
    // (tenant, network, node) -> addresses allocated there.
    let mut held: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for kv in &ipam.kvs {
        let Some(rest) = kv.key.strip_prefix(&pi) else { continue };
        let mut parts = rest.split('/');
        let (Some(tenant), Some(net), Some(ip)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let holder: serde_json::Value = serde_json::from_slice(&kv.value).unwrap_or(serde_json::Value::Null);
        let Some(node) = holder.get("node").and_then(|n| n.as_str()) else { continue };
        let what = match (holder.get("instance").and_then(|i| i.as_str()), holder.get("gateway")) {
            (Some(instance), _) => format!("{ip} ({instance})"),
            (None, Some(serde_json::Value::Bool(true))) => format!("{ip} (gateway)"),
            _ => ip.to_string(),
        };
        held.entry((tenant.to_string(), net.to_string(), node.to_string())).or_default().push(what);
    }
    let mut out = Vec::new();
    for kv in actual.kvs {
        let Some(fos_api::keys::KeyRef::ActualNetwork { node, .. }) = ctx.keys.parse(&kv.key) else { continue };
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&kv.value) else { continue };
        let tenant = value.pointer("/network/tenant").and_then(|t| t.as_str()).unwrap_or_default().to_string();
        let net = value.pointer("/network/name").and_then(|t| t.as_str()).unwrap_or_default().to_string();
        let addresses = held.remove(&(tenant, net, node.clone())).unwrap_or_default();
        value["node"] = serde_json::Value::String(node);
        value["addresses"] = serde_json::json!(addresses);
        out.push(value);
    }
    Ok(Json(out))
}

/// `GET /v1/images`: the Image objects applied.
pub async fn list_images(State(ctx): State<Context>) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    Ok(Json(values_under(&ctx, &ctx.keys.desired_images_prefix()).await?))
}

/// `GET /v1/plugins`: per node, the plugins configured (desired) and reported (actual).
pub async fn list_plugins(State(ctx): State<Context>) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let (pd, pa) = (ctx.keys.desired_nodes_prefix(), ctx.keys.actual_nodes_prefix());
    let (desired, actual) = tokio::try_join!(ctx.store.list(&pd), ctx.store.list(&pa))?;
    let mut out: BTreeMap<(String, String), serde_json::Value> = BTreeMap::new();
    for (side, list) in [("desired", desired), ("actual", actual)] {
        for kv in list.kvs {
            let (node, plugin) = match ctx.keys.parse(&kv.key) {
                Some(fos_api::keys::KeyRef::DesiredPlugin { node, plugin }) => (node, plugin),
                Some(fos_api::keys::KeyRef::ActualPlugin { node, plugin }) => (node, plugin),
                _ => continue,
            };
            let value = serde_json::from_slice(&kv.value).unwrap_or(serde_json::Value::Null);
            let entry = out
                .entry((node.clone(), plugin.clone()))
                .or_insert_with(|| serde_json::json!({ "node": node, "name": plugin }));
            entry[side] = value;
        }
    }
    Ok(Json(out.into_values().collect()))
}

/// `GET /v1/events`: the last events (default 100), optionally of one application.
pub async fn list_events(
    State(ctx): State<Context>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<EventRecord>>, ApiError> {
    let list = ctx.events().list(q.tenant.as_deref(), q.app.as_deref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(list))
}
