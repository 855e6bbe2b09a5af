//! Read-modify-write of one stored application record with compare-and-swap, shared by the handlers that change a
//! record in place (delete, the entity verbs).

use fos_api::wire::AppRecord;
use fos_store::{Compare, Txn, TxnOp};

use super::error::ApiError;
use crate::Context;

/// How many conflicting writes an update absorbs before giving up.
const ATTEMPTS: usize = 5;

/// Reads the application record at `key`, lets `change` modify it (`Ok(true)`: store it, `Ok(false)`: leave it as
/// it is), and writes it back only if nobody changed it in between, retrying on conflicts. `what` names the object
/// in errors (`application default/wp`); `not_found` is the error when the record does not exist.
pub async fn update_app(
    ctx: &Context,
    key: &str,
    what: &str,
    not_found: impl Fn() -> ApiError,
    mut change: impl FnMut(&mut AppRecord) -> Result<bool, ApiError>,
) -> Result<AppRecord, ApiError> {
    for _ in 0..ATTEMPTS {
        let kv = ctx.store.get(key).await?.ok_or_else(&not_found)?;
        let mut rec = crate::reconcile::decode_app(key, &kv.value)?;
        if !change(&mut rec)? {
            return Ok(rec);
        }
        let value = serde_json::to_vec(&rec).map_err(|e| ApiError::invalid(e.to_string()))?;
        let txn = Txn {
            compare: vec![Compare::mod_revision(key, kv.mod_revision)],
            success: vec![TxnOp::Put { key: key.to_string(), value, lease: None }],
            failure: Vec::new(),
        };
        if ctx.store.txn(txn).await?.succeeded {
            return Ok(rec);
        }
    }
    Err(ApiError::Conflict(format!("{what} kept changing; try again")))
}
