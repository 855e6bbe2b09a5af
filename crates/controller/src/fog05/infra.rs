//! The index, nodes and plugins: `GET /` (name, version, system, tenant), `/node/list` (node uuids),
//! `/node/info/{node}` (the seed's node-info schema), `/node/status/{node}`, `/node/plugins/{node}` (the uuids of
//! its runtime plugins) and `/plugin/info/{plugin}/{node}` (a runtime by its fog05 hypervisor name).

use axum::extract::{Path, State};
use fos_api::Node;
use fos_fog05::shapes;
use serde_json::{json, Value};

use super::{derived_uuid, node_uuid, Fog05State, Plain};
use crate::ops::{self, OpError};

/// `GET /`.
pub async fn index(State(s): State<Fog05State>) -> Plain {
    let info = ops::read::system(&s.ctx, &s.caller);
    Plain(Ok(json!({
        "name": "fos fog05 REST API",
        "version": info.version,
        "system": info.system,
        "tenant": s.tenant,
    })))
}

/// Every node with its fog05 uuid.
pub async fn nodes(s: &Fog05State) -> Result<Vec<(String, Node)>, OpError> {
    let system = s.system();
    let nodes = ops::read::nodes(&s.ctx, &s.caller).await?;
    Ok(nodes.into_iter().map(|n| (node_uuid(&system, &n.metadata.name), n)).collect())
}

/// The node fog05 knows as `uuid`.
pub async fn node(s: &Fog05State, uuid: &str) -> Result<Node, OpError> {
    nodes(s)
        .await?
        .into_iter()
        .find(|(u, _)| u == uuid)
        .map(|(_, n)| n)
        .ok_or_else(|| OpError::NotFound(format!("node {uuid} not found")))
}

fn plugin_uuid(system: &str, node: &str, kind: fos_api::EntityKind) -> String {
    derived_uuid(&["plugin", system, node, kind.as_str()])
}

/// `GET /node/list`.
pub async fn node_list(State(s): State<Fog05State>) -> Plain {
    Plain(nodes(&s).await.map(|all| json!(all.into_iter().map(|(u, _)| u).collect::<Vec<_>>())))
}

/// `GET /node/info/{node}`.
pub async fn node_info(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Plain {
    Plain(node(&s, &uuid).await.map(|n| shapes::node_info(&uuid, &n)))
}

/// `GET /node/status/{node}`.
pub async fn node_status(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Plain {
    Plain(node(&s, &uuid).await.map(|n| {
        json!({
            "uuid": uuid,
            "name": n.metadata.name,
            "status": if n.status.ready { "online" } else { "offline" },
            "ram": {"total": n.spec.memory.bytes().unwrap_or(0) / (1 << 20)},
            "address": n.status.address,
            "neighbors": n.status.rtt_ms.keys().collect::<Vec<_>>(),
        })
    }))
}

/// `GET /node/plugins/{node}`.
pub async fn node_plugins(State(s): State<Fog05State>, Path(uuid): Path<String>) -> Plain {
    let system = s.system();
    Plain(node(&s, &uuid).await.map(|n| {
        let ids: Vec<String> = n.spec.runtimes.iter().map(|k| plugin_uuid(&system, &n.metadata.name, *k)).collect();
        json!(ids)
    }))
}

/// `GET /plugin/info/{plugin}/{node}`.
pub async fn plugin_info(State(s): State<Fog05State>, Path((plugin, uuid)): Path<(String, String)>) -> Plain {
    let system = s.system();
    let found = node(&s, &uuid).await.and_then(|n| {
        n.spec
            .runtimes
            .iter()
            .find(|k| plugin_uuid(&system, &n.metadata.name, **k) == plugin)
            .map(|k| shapes::plugin_info(&plugin, *k, n.status.ready))
            .ok_or_else(|| OpError::NotFound(format!("plugin {plugin} not found on node {uuid}")))
    });
    Plain(found.map(|v: Value| v))
}
