//! The fog05 catalog of a tenant (`system/fog05/<tenant>/<collection>/<uuid>`): FDU descriptors onboarded,
//! flavors, images and connection points added through the fog05 REST API, kept as fog05 wrote them.

use fos_store::records::Fog05Catalog;
use serde_json::Value;

use super::{Caller, OpError};
use crate::Context;

/// The collections of the catalog.
pub const COLLECTIONS: [&str; 4] = ["fdus", "flavors", "images", "cps"];

fn check_id(collection: &str, uuid: &str) -> Result<(), OpError> {
    if !COLLECTIONS.contains(&collection) {
        return Err(OpError::invalid(format!("unknown fog05 catalog collection `{collection}`")));
    }
    if uuid.is_empty() || uuid.len() > 64 || !uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(OpError::invalid(format!("`{uuid}` is not a uuid (letters, digits, `-` and `_`, at most 64)")));
    }
    Ok(())
}

fn id(tenant: &str, collection: &str, uuid: &str) -> (String, String, String) {
    (tenant.to_string(), collection.to_string(), uuid.to_string())
}

/// Stores `value` as entry `uuid` of `collection` in `tenant`'s catalog.
pub async fn put(
    ctx: &Context,
    caller: &Caller,
    tenant: &str,
    collection: &str,
    uuid: &str,
    value: &Value,
) -> Result<(), OpError> {
    caller.check(tenant)?;
    check_id(collection, uuid)?;
    ctx.records().put::<Fog05Catalog>(&id(tenant, collection, uuid), value, None).await?;
    Ok(())
}

/// Entry `uuid` of `collection`.
pub async fn get(ctx: &Context, caller: &Caller, tenant: &str, collection: &str, uuid: &str) -> Result<Value, OpError> {
    caller.check_read(tenant, || format!("{collection} {uuid}"))?;
    check_id(collection, uuid)?;
    let found = ctx.records().get::<Fog05Catalog>(&id(tenant, collection, uuid)).await?;
    found.map(|v| v.value).ok_or_else(|| OpError::NotFound(format!("{} {uuid} not found", singular(collection))))
}

/// Every entry of `collection`, in uuid order.
pub async fn list(ctx: &Context, caller: &Caller, tenant: &str, collection: &str) -> Result<Vec<Value>, OpError> {
    caller.check_read(tenant, || format!("{collection} of {tenant}"))?;
    let (all, _) = ctx.records().list::<Fog05Catalog>().await?;
    Ok(all.into_iter().filter(|((t, c, _), _)| t == tenant && c == collection).map(|(_, v)| v.value).collect())
}

/// Removes entry `uuid` of `collection` (not found when it is not there).
pub async fn remove(ctx: &Context, caller: &Caller, tenant: &str, collection: &str, uuid: &str) -> Result<(), OpError> {
    caller.check_write(tenant, || format!("{collection} {uuid}"))?;
    check_id(collection, uuid)?;
    if ctx.records().delete::<Fog05Catalog>(&id(tenant, collection, uuid)).await? {
        Ok(())
    } else {
        Err(OpError::NotFound(format!("{} {uuid} not found", singular(collection))))
    }
}

fn singular(collection: &str) -> &str {
    match collection {
        "fdus" => "FDU",
        "flavors" => "flavor",
        "images" => "image",
        _ => "connection point",
    }
}
