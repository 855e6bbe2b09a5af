//! Deleting the objects that are not applications: Network objects, Images, Plugins and Secrets, by name. A network
//! or image some application still uses is refused with the names of its users, and the delete is guarded: the
//! object and every application read for the check must be unchanged when it is removed, so no application can
//! start using it in between. The users check is shared with `apply --prune` ([`users_of`]).

use fos_api::wire::{Change, ObjectChange};
use fos_api::{Object, ObjectKind};
use fos_store::records::{Apps, DesiredPlugins, Images, Networks, Secrets};
use fos_store::{Compare, Records, Txn, TxnOp};

use super::{Caller, OpError};
use crate::Context;

/// The applications (and standalone entities) not being deleted that use `kind`/`name` (`kind` Network: in the
/// same tenant; Image: in any tenant), as `kind tenant/name` for a refusal message.
pub fn users_of<'a>(
    kind: ObjectKind,
    tenant: &str,
    name: &str,
    apps: impl IntoIterator<Item = (&'a (String, String), &'a Object)>,
) -> Vec<String> {
    let mut users = Vec::new();
    for ((t, app), object) in apps {
        let Some(spec) = object.as_application() else { continue };
        let uses = match kind {
            ObjectKind::Network => {
                let inline = spec
                    .spec
                    .networks
                    .iter()
                    .any(|n| matches!(n, fos_api::manifest::NetworkRef::Inline { name: n, .. } if n == name));
                t == tenant
                    && !inline
                    && (spec.spec.networks.iter().any(|n| n.name() == name)
                        || spec.spec.components.iter().any(|c| c.entity.networks.iter().any(|a| a.network == name)))
            }
            ObjectKind::Image => spec.spec.components.iter().any(|c| {
                let e = &c.entity;
                [&e.image, &e.kernel, &e.initrd].into_iter().any(|r| r.as_deref() == Some(name))
            }),
            _ => false,
        };
        if uses {
            users.push(format!("{} {t}/{app}", object.kind().as_str().to_ascii_lowercase()));
        }
    }
    users
}

/// Deletes the object `kind`/`name` (in `tenant`, for tenant-scoped kinds); applications and entities go through
/// [`super::delete::delete`]. Answers the change made.
pub async fn remove(
    ctx: &Context,
    caller: &Caller,
    kind: ObjectKind,
    tenant: &str,
    name: &str,
) -> Result<ObjectChange, OpError> {
    let records = ctx.records();
    let what = format!("{} {tenant}/{name}", kind.as_str().to_ascii_lowercase());
    let scoped = (tenant.to_string(), name.to_string());
    let mut compare: Vec<Compare> = Vec::new();
    let mut deletes: Vec<TxnOp> = Vec::new();
    let change_tenant = match kind {
        ObjectKind::Network => {
            caller.check_write(tenant, || what.clone())?;
            let Some(found) = records.get::<Networks>(&scoped).await? else {
                return Err(OpError::NotFound(format!("{what} not found")));
            };
            compare.push(records.unchanged::<Networks>(&scoped, found.mod_revision));
            deletes.push(records.delete_op::<Networks>(&scoped));
            Some(tenant.to_string())
        }
        ObjectKind::Image => {
            caller.check_admin(&format!("delete image {name}: it is shared by every tenant, so only"))?;
            let Some(found) = records.get::<Images>(&name.to_string()).await? else {
                return Err(OpError::NotFound(format!("image {name} not found")));
            };
            compare.push(records.unchanged::<Images>(&name.to_string(), found.mod_revision));
            deletes.push(records.delete_op::<Images>(&name.to_string()));
            None
        }
        ObjectKind::Plugin => {
            caller.check_admin(&format!("delete plugin {name}: it is shared by every tenant, so only"))?;
            let (copies, _) = records.list::<DesiredPlugins>().await?;
            for ((node, plugin), v) in copies.into_iter().filter(|((_, p), _)| p == name) {
                compare.push(records.unchanged::<DesiredPlugins>(&(node.clone(), plugin.clone()), v.mod_revision));
                deletes.push(records.delete_op::<DesiredPlugins>(&(node, plugin)));
            }
            if deletes.is_empty() {
                return Err(OpError::NotFound(format!("plugin {name} not found")));
            }
            None
        }
        ObjectKind::Secret => {
            caller.check_write(tenant, || what.clone())?;
            let Some(found) = records.get::<Secrets>(&scoped).await? else {
                return Err(OpError::NotFound(format!("{what} not found")));
            };
            compare.push(records.unchanged::<Secrets>(&scoped, found.mod_revision));
            deletes.push(records.delete_op::<Secrets>(&scoped));
            Some(tenant.to_string())
        }
        ObjectKind::Application | ObjectKind::Entity | ObjectKind::Node => {
            return Err(OpError::invalid(format!(
                "{} objects are not deleted here: delete an application or entity by name, and a node leaves \
                 when its agent stops",
                kind.as_str()
            )))
        }
    };
    if matches!(kind, ObjectKind::Network | ObjectKind::Image) {
        let (apps, _) = records.list::<Apps>().await?;
        let live: Vec<_> = apps.iter().filter(|(_, v)| !v.value.deleting).collect();
        let users = users_of(kind, tenant, name, live.iter().map(|(k, v)| (k, &v.value.object)));
        if !users.is_empty() {
            return Err(OpError::Conflict(format!(
                "{} {name} is in use by {}; delete or change them first",
                kind.as_str().to_ascii_lowercase(),
                users.join(", ")
            )));
        }
        // Every application read must still be as read (and no new one may appear unseen: guarded by the list's
        // members; a new application naming the object is refused by validation once it is gone).
        compare.extend(live.iter().map(|(k, v)| records.unchanged::<Apps>(k, v.mod_revision)));
    }
    commit(&records, compare, deletes, &what).await?;
    Ok(ObjectChange {
        kind,
        tenant: change_tenant,
        name: name.to_string(),
        change: Change::Deleted,
        fields: Vec::new(),
    })
}

async fn commit(records: &Records, compare: Vec<Compare>, deletes: Vec<TxnOp>, what: &str) -> Result<(), OpError> {
    let result = records.store().txn(Txn { compare, success: deletes, failure: Vec::new() }).await?;
    if !result.succeeded {
        return Err(OpError::Conflict(format!("{what} or an application using it changed meanwhile; try again")));
    }
    Ok(())
}
