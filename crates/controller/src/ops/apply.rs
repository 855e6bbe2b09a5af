//! Server-side apply: admission of every object, then the whole set written in one store transaction or nothing.
//! Unchanged objects are not rewritten (applying twice is a no-op; an object whose only difference is its
//! `fos/source` annotation keeps its generation); `--prune` marks the applications of the same source that the set
//! no longer holds for deletion and deletes its Networks, Images and Plugins ([`super::prune`]); a dry run answers
//! the changes and the plan and stores nothing.
//! The plans come from [`super::plan::plan_changes`], the same planning the reconciler does.

use std::collections::{BTreeMap, BTreeSet};

use fos_api::wire::{AppRecord, ApplyRequest, ApplyResponse, Change, ObjectChange};
use fos_api::{Object, ObjectKind};
use fos_store::records::{Apps, DesiredPlugins, Images, Kind, Networks, Secrets};
use fos_store::{Compare, KeyValue, Records, Txn, TxnOp};

use super::prune::{self, from_source, without_source};
use super::{admission, plan, Caller, OpError};
use crate::view::ClusterView;
use crate::Context;

/// How many times an apply is retried when the store changed under it.
const ATTEMPTS: usize = 5;

/// Applies `req` for `caller`.
pub async fn apply(ctx: &Context, caller: &Caller, req: ApplyRequest) -> Result<ApplyResponse, OpError> {
    fos_api::limits::check_count(req.objects.len()).map_err(OpError::TooLarge)?;
    let mut objects = Vec::with_capacity(req.objects.len());
    for (i, v) in req.objects.into_iter().enumerate() {
        let obj = admission::decode(i, v)?;
        admission::check(i, &obj)?;
        authorize(caller, &obj)?;
        objects.push(obj);
    }
    if !req.dry_run {
        if let Some(dir) = &ctx.security.data_dir {
            crate::space::check(dir, ctx.security.free_margin)?;
        }
    }
    admission::check_run_as(ctx, &objects).await?;
    let records = ctx.records();
    let (networks, _) = records.list::<Networks>().await?;
    let stored = networks.into_iter().map(|(key, v)| (key, v.value));
    admission::validate(&objects, &admission::existing(stored))?;
    if req.prune_source.is_some() && !objects.iter().any(|o| o.as_application().is_some()) {
        return Err(OpError::invalid(
            "refusing to prune with no application in the set: that would delete everything from this source",
        ));
    }
    for _ in 0..ATTEMPTS {
        if let Some(resp) = attempt(ctx, &records, &objects, req.dry_run, req.prune_source.as_deref()).await? {
            return Ok(resp);
        }
    }
    Err(OpError::Conflict("the store kept changing during the apply; try again".into()))
}

/// Refuses an object the caller may not write: tenant-scoped ones outside its tenants, cluster-wide ones (images,
/// plugins) unless it acts on every tenant.
fn authorize(caller: &Caller, obj: &Object) -> Result<(), OpError> {
    match obj.kind() {
        ObjectKind::Image | ObjectKind::Plugin if !caller.is_admin() => Err(OpError::Forbidden(format!(
            "{} may not apply {} {}: it is shared by every tenant",
            caller.principal,
            obj.kind(),
            obj.name()
        ))),
        ObjectKind::Image | ObjectKind::Plugin | ObjectKind::Node => Ok(()),
        _ => caller.check(obj.metadata().tenant()),
    }
}

/// The keys an object is stored under.
fn keys_of(records: &Records, obj: &Object, nodes: &[String]) -> Vec<String> {
    let md = obj.metadata();
    let scoped = (md.tenant().to_string(), md.name.clone());
    match obj {
        Object::Application(_) | Object::Entity(_) => vec![records.key::<Apps>(&scoped)],
        Object::Network(_) => vec![records.key::<Networks>(&scoped)],
        Object::Secret(_) => vec![records.key::<Secrets>(&scoped)],
        Object::Image(_) => vec![records.key::<Images>(&md.name)],
        Object::Plugin(p) => {
            let targets = if p.spec.nodes.is_empty() { nodes.to_vec() } else { p.spec.nodes.clone() };
            targets.into_iter().map(|n| records.key::<DesiredPlugins>(&(n, md.name.clone()))).collect()
        }
        Object::Node(_) => Vec::new(),
    }
}

/// One try: `None` when the store changed between read and write.
async fn attempt(
    ctx: &Context,
    records: &Records,
    objects: &[Object],
    dry_run: bool,
    prune: Option<&str>,
) -> Result<Option<ApplyResponse>, OpError> {
    let (view, _) = ClusterView::read(records).await?;
    let node_names: Vec<String> = view.nodes.keys().cloned().collect();
    let per_object: Vec<Vec<String>> = objects.iter().map(|o| keys_of(records, o, &node_names)).collect();
    let all_keys: Vec<String> = per_object.iter().flatten().cloned().collect();
    let read = records
        .store()
        .txn(Txn {
            compare: Vec::new(),
            success: all_keys.iter().map(|k| TxnOp::Get { key: k.clone() }).collect(),
            failure: Vec::new(),
        })
        .await?;
    let current: BTreeMap<&str, Option<&KeyValue>> =
        all_keys.iter().map(String::as_str).zip(read.gets.iter().map(Option::as_ref)).collect();

    let mut writes: Vec<TxnOp> = Vec::new();
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
            let (c, value, fields) = compare(ctx, key, obj, prior)?;
            if let Some(value) = value {
                writes.push(TxnOp::Put { key: key.clone(), value, lease: None });
            }
            if c != Change::Unchanged {
                change.change = if change.change == Change::Updated { Change::Updated } else { c };
                change.fields = fields;
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
        for (key, stored) in &view.apps {
            if from_source(&stored.record.object, source) && !stored.record.deleting && !wanted.contains(key) {
                let mut rec = stored.record.clone();
                rec.deleting = true;
                changes.push(ObjectChange {
                    kind: rec.object.kind(),
                    tenant: Some(key.0.clone()),
                    name: key.1.clone(),
                    change: Change::Deleted,
                    fields: Vec::new(),
                });
                pruned.push(records.unchanged::<Apps>(key, stored.mod_revision));
                writes.push(records.put_op::<Apps>(key, &rec)?);
            }
        }
        let given: BTreeSet<(ObjectKind, String, String)> =
            objects.iter().map(|o| (o.kind(), o.metadata().tenant().to_string(), o.name().to_string())).collect();
        let mut remaining: Vec<((String, String), Object)> = view
            .apps
            .iter()
            .filter(|(k, a)| !a.record.deleting && !wanted.contains(*k) && !from_source(&a.record.object, source))
            .map(|(k, a)| (k.clone(), a.record.object.clone()))
            .collect();
        remaining.extend(
            objects
                .iter()
                .filter(|o| o.as_application().is_some())
                .map(|o| ((o.metadata().tenant().to_string(), o.name().to_string()), o.clone())),
        );
        for (change, guards, deletes) in prune::others(records, source, &given, &remaining).await? {
            changes.push(change);
            pruned.extend(guards);
            writes.extend(deletes);
        }
    }

    let plans = plan::plan_changes(ctx, &view, objects, &changes, dry_run);

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
    compare.extend(pruned);
    let result = records.store().txn(Txn { compare, success: writes, failure: Vec::new() }).await?;
    if !result.succeeded {
        return Ok(None);
    }
    Ok(Some(ApplyResponse { changes, plans, dry_run, revision: result.revision }))
}

/// What [`compare`] finds: the change, the value to write (none: nothing), and the fields that differ.
type Compared = (Change, Option<Vec<u8>>, Vec<String>);

/// Compares `obj` with what is stored at `key`: the change, the value to write (none: nothing to write), and the
/// fields that differ. An object that differs only in its `fos/source` annotation (the first `apply --prune`) is
/// unchanged: the annotation is recorded, its generation is kept and nothing restarts.
fn compare(ctx: &Context, key: &str, obj: &Object, prior: Option<&KeyValue>) -> Result<Compared, OpError> {
    match obj {
        Object::Secret(secret) => {
            let old = prior.and_then(|kv| Secrets::decode(&Default::default(), &kv.value).ok());
            let change = match &old {
                Some(o) if super::secrets::unchanged(ctx, o, secret) => {
                    return Ok((Change::Unchanged, None, Vec::new()))
                }
                Some(_) => Change::Updated,
                None => Change::Created,
            };
            let sealed = super::secrets::seal(ctx, key, secret)?;
            Ok((change, Some(Records::encode::<Secrets>(key, &sealed)?), Vec::new()))
        }
        Object::Application(_) | Object::Entity(_) => {
            let old: Option<AppRecord> = prior.and_then(|kv| Apps::decode(&Default::default(), &kv.value).ok());
            let (change, generation, fields, created) = match &old {
                Some(r) if !r.deleting && &r.object == obj => return Ok((Change::Unchanged, None, Vec::new())),
                Some(r) if !r.deleting && without_source(&r.object) == without_source(obj) => {
                    (Change::Unchanged, r.generation, Vec::new(), r.created)
                }
                Some(r) => (Change::Updated, r.generation + 1, differing_fields(&r.object, obj), r.created),
                None => (Change::Created, 1, Vec::new(), Some(chrono::Utc::now())),
            };
            let rec = AppRecord { object: obj.clone(), generation, deleting: false, created };
            Ok((change, Some(Records::encode::<Apps>(key, &rec)?), fields))
        }
        _ => {
            let old: Option<Object> = prior.and_then(|kv| Networks::decode(&Default::default(), &kv.value).ok());
            let value = Some(Records::encode::<Networks>(key, obj)?);
            match old {
                Some(o) if &o == obj => Ok((Change::Unchanged, None, Vec::new())),
                Some(o) if without_source(&o) == without_source(obj) => Ok((Change::Unchanged, value, Vec::new())),
                Some(_) => Ok((Change::Updated, value, Vec::new())),
                None => Ok((Change::Created, value, Vec::new())),
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
