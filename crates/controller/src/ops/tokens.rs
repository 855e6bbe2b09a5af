//! API tokens, for administrators: create one (its secret is in the answer and nowhere else), list them (never
//! their hashes), revoke one. Node tokens are made by the nodes themselves and are not listed for revoking here
//! unless asked by id.

use std::time::Duration;

use fos_api::auth::{Role, TokenCreated, TokenInfo, TokenRequest};
use fos_store::records::Tokens;

use super::{Caller, OpError};
use crate::{auth, Context};

/// Makes a token as `req` asks.
pub async fn create(ctx: &Context, caller: &Caller, req: TokenRequest) -> Result<TokenCreated, OpError> {
    caller.check_admin("create tokens")?;
    let tenant = match (req.role, req.tenant) {
        (Role::Node, _) => return Err(OpError::invalid("node tokens are made by the nodes themselves")),
        (Role::Admin, Some(t)) => {
            return Err(OpError::invalid(format!("an admin token acts on every tenant: drop --tenant {t}")))
        }
        (Role::Admin, None) => None,
        (_, None) => return Err(OpError::invalid("a view or edit token needs a tenant (--tenant)")),
        (_, Some(t)) => {
            fos_api::validate_name(&t).map_err(|e| OpError::invalid(format!("tenant `{t}`: {e}")))?;
            Some(t)
        }
    };
    if req.description.len() > 256 {
        return Err(OpError::invalid("a token's description is at most 256 bytes"));
    }
    let (id, token) = auth::new_token()?;
    let ttl = req.ttl_seconds.map(Duration::from_secs);
    let rec = auth::record(&id, &token, req.role, tenant, &req.description, ttl);
    ctx.records().put::<Tokens>(&id, &rec, None).await?;
    Ok(TokenCreated { token, info: TokenInfo::from(&rec) })
}

/// Every token, without its hash.
pub async fn list(ctx: &Context, caller: &Caller) -> Result<Vec<TokenInfo>, OpError> {
    caller.check_admin("list tokens")?;
    let (list, _) = ctx.records().list::<Tokens>().await?;
    Ok(list.iter().map(|(_, v)| TokenInfo::from(&v.value)).collect())
}

/// Revokes token `id` (it stops working at once).
pub async fn revoke(ctx: &Context, caller: &Caller, id: &str) -> Result<TokenInfo, OpError> {
    caller.check_admin("revoke tokens")?;
    let records = ctx.records();
    let rec = records
        .get::<Tokens>(&id.to_string())
        .await?
        .ok_or_else(|| OpError::NotFound(format!("token {id} not found")))?;
    records.delete::<Tokens>(&id.to_string()).await?;
    Ok(TokenInfo::from(&rec.value))
}
