//! Deleting an application: it is marked for teardown (compare-and-swap on its record); the controller stops its
//! components in reverse `need` order, then removes it.

use fos_api::wire::AppView;
use fos_store::records::{Apps, Change};

use super::{Caller, OpError};
use crate::Context;

/// Marks `tenant`/`name` for deletion (again: nothing changes). Answers the record as marked.
pub async fn delete(ctx: &Context, caller: &Caller, tenant: &str, name: &str) -> Result<AppView, OpError> {
    caller.check_write(tenant, || format!("application {tenant}/{name}"))?;
    let what = format!("application {tenant}/{name}");
    let (record, _) = ctx
        .records()
        .update::<Apps, OpError, _>(&(tenant.to_string(), name.to_string()), |current| {
            let Some(rec) = current else { return Err(OpError::NotFound(format!("{what} not found"))) };
            if rec.deleting {
                return Ok(Change::Keep);
            }
            let mut rec = rec.clone();
            rec.deleting = true;
            Ok(Change::Put(rec))
        })
        .await?;
    let record = record.ok_or_else(|| OpError::NotFound(format!("application {tenant}/{name} not found")))?;
    Ok(AppView { record, status: None })
}
