//! `apply --prune` beyond applications: the Network objects, Images and Plugins applied earlier from the same source
//! (their `fos/source` annotation) that the set no longer holds are deleted in the apply's transaction, unless an
//! application that stays still uses them (the apply is then refused, naming the users). Secrets are stored sealed
//! without their annotations, so they are deleted by name only.

use std::collections::{BTreeMap, BTreeSet};

use fos_api::wire::{Change, ObjectChange, SOURCE_ANNOTATION};
use fos_api::{Object, ObjectKind};
use fos_store::records::{DesiredPlugins, Images, Networks};
use fos_store::{Compare, Records, TxnOp};

use super::remove::users_of;
use super::OpError;

/// Whether `object` was applied from `source`.
pub fn from_source(object: &Object, source: &str) -> bool {
    object.metadata().annotations.get(SOURCE_ANNOTATION).map(String::as_str) == Some(source)
}

/// `object` without its source annotation (an apply that only adds or moves the source changes nothing else).
pub fn without_source(object: &Object) -> Object {
    let mut o = object.clone();
    let md = match &mut o {
        Object::Application(x) => &mut x.metadata,
        Object::Entity(x) => &mut x.metadata,
        Object::Network(x) => &mut x.metadata,
        Object::Plugin(x) => &mut x.metadata,
        Object::Image(x) => &mut x.metadata,
        Object::Node(x) => &mut x.metadata,
        Object::Secret(x) => &mut x.metadata,
    };
    md.annotations.remove(SOURCE_ANNOTATION);
    o
}

/// One pruned object: its change, the guards that it is unchanged since read, and its deletes.
pub type Pruned = (ObjectChange, Vec<Compare>, Vec<TxnOp>);

/// The Networks, Images and Plugins of `source` missing from `given` (kind, tenant, name), to delete; refused when
/// one of `remaining` (the applications left after the apply) uses one.
pub async fn others(
    records: &Records,
    source: &str,
    given: &BTreeSet<(ObjectKind, String, String)>,
    remaining: &[((String, String), Object)],
) -> Result<Vec<Pruned>, OpError> {
    let (networks, images, plugins) =
        tokio::try_join!(records.list::<Networks>(), records.list::<Images>(), records.list::<DesiredPlugins>())?;
    let gone = |kind: ObjectKind, tenant: &str, o: &Object| {
        from_source(o, source) && !given.contains(&(kind, tenant.to_string(), o.name().to_string()))
    };
    let mut out = Vec::new();
    let refuse = |kind: ObjectKind, tenant: &str, name: &str| -> Result<(), OpError> {
        let users = users_of(kind, tenant, name, remaining.iter().map(|(k, o)| (k, o)));
        if users.is_empty() {
            return Ok(());
        }
        Err(OpError::Conflict(format!(
            "cannot prune {} {name}: it is still used by {}",
            kind.as_str().to_ascii_lowercase(),
            users.join(", ")
        )))
    };
    let change = |kind: ObjectKind, tenant: Option<String>, name: &str| ObjectChange {
        kind,
        tenant,
        name: name.to_string(),
        change: Change::Deleted,
        fields: Vec::new(),
    };
    for (key, v) in &networks.0 {
        if gone(ObjectKind::Network, &key.0, &v.value) {
            refuse(ObjectKind::Network, &key.0, &key.1)?;
            out.push((
                change(ObjectKind::Network, Some(key.0.clone()), &key.1),
                vec![records.unchanged::<Networks>(key, v.mod_revision)],
                vec![records.delete_op::<Networks>(key)],
            ));
        }
    }
    for (key, v) in &images.0 {
        if gone(ObjectKind::Image, fos_api::manifest::DEFAULT_TENANT, &v.value) {
            refuse(ObjectKind::Image, "", key)?;
            out.push((
                change(ObjectKind::Image, None, key),
                vec![records.unchanged::<Images>(key, v.mod_revision)],
                vec![records.delete_op::<Images>(key)],
            ));
        }
    }
    // A plugin has one copy per node: every copy goes, each guarded.
    let mut by_name: BTreeMap<&str, Pruned> = BTreeMap::new();
    for (key, v) in &plugins.0 {
        let tenant = v.value.metadata().tenant();
        if gone(ObjectKind::Plugin, tenant, &v.value) {
            let entry = by_name.entry(key.1.as_str()).or_insert_with(|| {
                (change(ObjectKind::Plugin, Some(tenant.to_string()), &key.1), Vec::new(), Vec::new())
            });
            entry.1.push(records.unchanged::<DesiredPlugins>(key, v.mod_revision));
            entry.2.push(records.delete_op::<DesiredPlugins>(key));
        }
    }
    out.extend(by_name.into_values());
    Ok(out)
}
