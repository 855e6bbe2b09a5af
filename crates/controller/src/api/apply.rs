//! Server-side apply: admission of every object, then the whole set written in one store transaction or nothing.
//! Unchanged objects are not rewritten (applying twice is a no-op); `--prune` marks the applications of the same
//! source that the set no longer holds for deletion; a dry run answers the changes and the plan and stores nothing.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::Json;
use fos_api::wire::{
    AppPlan, AppRecord, ApplyResponse, Change, ObjectChange, PlannedInstance, Unplaced, SOURCE_ANNOTATION,
};
use fos_api::{Application, Object, ObjectKind};
use fos_store::{Compare, KeyValue, Txn, TxnOp};
use serde::Deserialize;

use super::admission;
use super::error::ApiError;
use crate::view::ClusterView;
use crate::{graph, Context};

/// The body of `POST /v1/apply`: objects are decoded one by one so errors can name their index.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyBody {
    /// The objects as JSON.
    pub objects: Vec<serde_json::Value>,
    /// Store nothing; answer changes and plans.
    #[serde(default)]
    pub dry_run: bool,
    /// Prune the applications of this source that `objects` no longer holds.
    #[serde(default)]
    pub prune_source: Option<String>,
}

/// One key an apply writes.
struct Write {
    key: String,
    value: Vec<u8>,
}

/// How many times an apply is retried when the store changed under it.
const ATTEMPTS: usize = 5;

/// `POST /v1/apply`.
pub async fn apply(State(ctx): State<Context>, Json(body): Json<ApplyBody>) -> Result<Json<ApplyResponse>, ApiError> {
    let mut objects = Vec::with_capacity(body.objects.len());
    for (i, v) in body.objects.into_iter().enumerate() {
        let obj = admission::decode(i, v)?;
        admission::check(i, &obj)?;
        objects.push(obj);
    }
    let networks = ctx.store.list(&ctx.keys.desired_networks_prefix()).await?;
    let stored = networks.kvs.iter().filter_map(|kv| match ctx.keys.parse(&kv.key) {
        Some(fos_api::keys::KeyRef::DesiredNetwork { tenant, net }) => {
            serde_json::from_slice(&kv.value).ok().map(|v| (tenant, net, v))
        }
        _ => None,
    });
    admission::validate(&objects, &admission::existing(stored))?;
    if body.prune_source.is_some() && !objects.iter().any(|o| o.as_application().is_some()) {
        return Err(ApiError::invalid(
            "refusing to prune with no application in the set: that would delete everything from this source",
        ));
    }
    for _ in 0..ATTEMPTS {
        if let Some(resp) = attempt(&ctx, &objects, body.dry_run, body.prune_source.as_deref()).await? {
            return Ok(Json(resp));
        }
    }
    Err(ApiError::Conflict("the store kept changing during the apply; try again".into()))
}

/// The keys an object is stored under.
fn keys_of(ctx: &Context, obj: &Object, nodes: &[String]) -> Vec<String> {
    let md = obj.metadata();
    match obj {
        Object::Application(_) | Object::Entity(_) => vec![ctx.keys.desired_app(md.tenant(), &md.name)],
        Object::Network(_) => vec![ctx.keys.desired_network(md.tenant(), &md.name)],
        Object::Image(_) => vec![ctx.keys.desired_image(&md.name)],
        Object::Plugin(p) => {
            let targets = if p.spec.nodes.is_empty() { nodes.to_vec() } else { p.spec.nodes.clone() };
            targets.iter().map(|n| ctx.keys.desired_node_plugin(n, &md.name)).collect()
        }
        Object::Node(_) => Vec::new(),
    }
}

/// One try: `None` when the store changed between read and write.
async fn attempt(
    ctx: &Context,
    objects: &[Object],
    dry_run: bool,
    prune: Option<&str>,
) -> Result<Option<ApplyResponse>, ApiError> {
    let view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    let node_names: Vec<String> = view.nodes.keys().cloned().collect();
    let per_object: Vec<Vec<String>> = objects.iter().map(|o| keys_of(ctx, o, &node_names)).collect();
    let all_keys: Vec<String> = per_object.iter().flatten().cloned().collect();
    let read = ctx
        .store
        .txn(Txn {
            compare: Vec::new(),
            success: all_keys.iter().map(|k| TxnOp::Get { key: k.clone() }).collect(),
            failure: Vec::new(),
        })
        .await?;
    let current: BTreeMap<&str, Option<&KeyValue>> =
        all_keys.iter().map(String::as_str).zip(read.gets.iter().map(Option::as_ref)).collect();

    let mut writes: Vec<Write> = Vec::new();
    let mut changes = Vec::new();
    for (obj, keys) in objects.iter().zip(&per_object) {
        let md = obj.metadata();
        let tenant = match obj.kind() {
            ObjectKind::Image | ObjectKind::Node => None,
            _ => Some(md.tenant().to_string()),
        };
        let mut change = ObjectChange {
            kind: obj.kind(),
            tenant,
            name: md.name.clone(),
            change: Change::Unchanged,
            fields: Vec::new(),
        };
        for key in keys {
            let prior = current.get(key.as_str()).copied().flatten();
            let (c, value, fields) = compare(key, obj, prior)?;
            if c != Change::Unchanged {
                change.change = if change.change == Change::Updated { Change::Updated } else { c };
                change.fields = fields;
                writes.push(Write { key: key.clone(), value });
            }
        }
        changes.push(change);
    }
    let wanted: BTreeSet<(String, String)> = objects
        .iter()
        .filter(|o| o.as_application().is_some())
        .map(|o| (o.metadata().tenant().to_string(), o.name().to_string()))
        .collect();
    let mut pruned = Vec::new();
    if let Some(source) = prune {
        for ((tenant, name), stored) in &view.apps {
            let from_source =
                stored.record.object.metadata().annotations.get(SOURCE_ANNOTATION).map(String::as_str) == Some(source);
            if from_source && !stored.record.deleting && !wanted.contains(&(tenant.clone(), name.clone())) {
                let mut rec = stored.record.clone();
                rec.deleting = true;
                let key = ctx.keys.desired_app(tenant, name);
                let change = ObjectChange {
                    kind: rec.object.kind(),
                    tenant: Some(tenant.clone()),
                    name: name.clone(),
                    change: Change::Deleted,
                    fields: Vec::new(),
                };
                pruned.push((key.clone(), stored.mod_revision));
                changes.push(change);
                writes.push(Write { value: encode(&key, &rec)?, key });
            }
        }
    }

    let plans = objects
        .iter()
        .zip(&changes)
        .filter(|(_, c)| dry_run || matches!(c.change, Change::Created | Change::Updated))
        .filter_map(|(o, _)| o.as_application())
        .map(|a| plan(ctx, &view, &a))
        .collect();

    if dry_run || writes.is_empty() {
        return Ok(Some(ApplyResponse { changes, plans, dry_run, revision: read.revision }));
    }
    let mut compare: Vec<Compare> = all_keys
        .iter()
        .map(|k| match current.get(k.as_str()).copied().flatten() {
            Some(kv) => Compare::mod_revision(k.clone(), kv.mod_revision),
            None => Compare::absent(k.clone()),
        })
        .collect();
    compare.extend(pruned.into_iter().map(|(k, rev)| Compare::mod_revision(k, rev)));
    let success = writes.into_iter().map(|w| TxnOp::Put { key: w.key, value: w.value, lease: None }).collect();
    let result = ctx.store.txn(Txn { compare, success, failure: Vec::new() }).await?;
    if !result.succeeded {
        return Ok(None);
    }
    Ok(Some(ApplyResponse { changes, plans, dry_run, revision: result.revision }))
}

/// Compares `obj` with what is stored at `key`: the change, the value to write, and the fields that differ.
fn compare(key: &str, obj: &Object, prior: Option<&KeyValue>) -> Result<(Change, Vec<u8>, Vec<String>), ApiError> {
    match obj {
        Object::Application(_) | Object::Entity(_) => {
            let old: Option<AppRecord> = prior.and_then(|kv| serde_json::from_slice(&kv.value).ok());
            let (change, generation, fields) = match &old {
                Some(r) if !r.deleting && &r.object == obj => return Ok((Change::Unchanged, Vec::new(), Vec::new())),
                Some(r) => (Change::Updated, r.generation + 1, differing_fields(&r.object, obj)),
                None => (Change::Created, 1, Vec::new()),
            };
            let rec = AppRecord { object: obj.clone(), generation, deleting: false };
            Ok((change, encode(key, &rec)?, fields))
        }
        _ => {
            let value = obj.to_value();
            let old: Option<serde_json::Value> = prior.and_then(|kv| serde_json::from_slice(&kv.value).ok());
            match old {
                Some(o) if o == value => Ok((Change::Unchanged, Vec::new(), Vec::new())),
                Some(_) => Ok((Change::Updated, encode(key, &value)?, Vec::new())),
                None => Ok((Change::Created, encode(key, &value)?, Vec::new())),
            }
        }
    }
}

/// The paths of the fields that differ between two objects (components by name, then top-level spec fields).
pub fn differing_fields(old: &Object, new: &Object) -> Vec<String> {
    let mut out = Vec::new();
    if old.metadata() != new.metadata() {
        out.push("metadata".to_string());
    }
    if old.kind() != new.kind() {
        out.push("kind".to_string());
        return out;
    }
    let (Some(a), Some(b)) = (old.as_application(), new.as_application()) else {
        out.push("spec".to_string());
        return out;
    };
    for c in &b.spec.components {
        match a.spec.component(&c.name) {
            None => out.push(format!("component {} added", c.name)),
            Some(o) if o != c => out.push(format!("component {} changed", c.name)),
            Some(_) => {}
        }
    }
    for c in &a.spec.components {
        if b.spec.component(&c.name).is_none() {
            out.push(format!("component {} removed", c.name));
        }
    }
    if a.spec.networks != b.spec.networks {
        out.push("spec.networks".to_string());
    }
    out
}

/// The plan for one application over the cluster as read: placements (existing kept), start order, unplaceable.
pub fn plan(ctx: &Context, view: &ClusterView, app: &Application) -> AppPlan {
    let tenant = app.metadata.tenant().to_string();
    let name = app.metadata.name.clone();
    let wanted = crate::reconcile::app::wanted_instances(&tenant, &name, &app.spec);
    let existing: BTreeMap<_, _> =
        view.desired.iter().filter(|(id, _)| wanted.contains(id)).map(|(id, d)| (id.clone(), d.node.clone())).collect();
    let nodes: Vec<_> = view.nodes.values().cloned().collect();
    let placed: Vec<_> = view
        .desired
        .values()
        .filter(|d| wanted.contains(&d.id) || d.id.app != name || d.id.tenant != tenant)
        .cloned()
        .collect();
    let placement = ctx.placer.place(&nodes, &placed, &tenant, &name, &app.spec);
    AppPlan {
        tenant,
        app: name,
        start_order: if placement.start_order.is_empty() {
            graph::start_waves(&app.spec)
        } else {
            placement.start_order.clone()
        },
        placements: placement
            .assigned
            .iter()
            .map(|(id, node)| PlannedInstance {
                instance: id.clone(),
                node: node.clone(),
                existing: existing.get(id) == Some(node),
            })
            .collect(),
        unschedulable: placement
            .unplaced
            .into_iter()
            .map(|(component, reason)| Unplaced { component, reason })
            .collect(),
    }
}

fn encode<T: serde::Serialize>(key: &str, v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::invalid(format!("{key}: {e}")))
}
