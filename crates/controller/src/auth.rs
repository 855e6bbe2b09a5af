//! Authentication: bearer tokens `fos.<id>.<secret>`, 256 random bits each, stored only as their SHA-256 in a
//! [`Tokens`] record under the id. A request's token is looked up by id and its hash compared in constant time;
//! an unknown, revoked or expired token is refused like a missing one. The [`Security`] settings say whether the
//! API asks for tokens at all (it does, except behind `--insecure-plaintext`), how this node calls the others, and
//! with which key Secrets are sealed.

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chrono::Utc;
use fos_api::auth::{token_id, Role, TokenRecord, TOKEN_PREFIX};
use fos_store::records::Tokens;
use fos_store::seal::{random_bytes, SealKey};
use subtle::ConstantTimeEq;

use crate::ops::{Caller, OpError, Tenants};
use crate::Context;

/// How this node reaches the API of another (log fetching, state transfer): over HTTPS with the cluster CA, with
/// the node's own token.
#[derive(Clone)]
pub struct Peer {
    /// A client trusting the cluster CA.
    pub http: reqwest::Client,
    /// `https` (or `http` for an insecure plaintext cluster).
    pub scheme: &'static str,
    /// The node's bearer token.
    pub token: String,
}

/// The security settings of the API and operations.
#[derive(Clone, Default)]
pub struct Security {
    /// Ask every request for a token (off only for an insecure plaintext API and in-process tests).
    pub require_tokens: bool,
    /// The key Secrets are sealed with (none: Secrets cannot be applied on this node).
    pub secrets: Option<Arc<SealKey>>,
    /// How to call other nodes.
    pub peer: Option<Peer>,
    /// The data directory whose free space applies must leave (none: not checked).
    pub data_dir: Option<PathBuf>,
    /// The free space (bytes) an apply must leave on the data directory's file system.
    pub free_margin: u64,
}

/// A new token: its id and the whole bearer string.
pub fn new_token() -> Result<(String, String), OpError> {
    let id = random_bytes::<6>().map_err(|e| OpError::Upstream(e.to_string()))?;
    let secret = random_bytes::<32>().map_err(|e| OpError::Upstream(e.to_string()))?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("{TOKEN_PREFIX}.{id}.{}", B64.encode(secret));
    Ok((id, token))
}

/// Hex SHA-256 of a token.
pub fn hash(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A token record for `token` (from [`new_token`]).
pub fn record(
    id: &str,
    token: &str,
    role: Role,
    tenant: Option<String>,
    description: &str,
    ttl: Option<std::time::Duration>,
) -> TokenRecord {
    let created = Utc::now();
    TokenRecord {
        id: id.to_string(),
        hash: hash(token),
        role,
        tenant,
        description: description.to_string(),
        created,
        expires: ttl.and_then(|t| chrono::Duration::from_std(t).ok()).map(|t| created + t),
    }
}

/// The caller a token record stands for.
pub fn caller_of(rec: &TokenRecord) -> Caller {
    let principal = if rec.description.is_empty() { format!("token {}", rec.id) } else { rec.description.clone() };
    let tenants = match (&rec.tenant, rec.role) {
        (_, Role::Admin | Role::Node) | (None, _) => Tenants::All,
        (Some(t), _) => Tenants::Only([t.clone()].into()),
    };
    // A view or edit token without a tenant is refused when made; read as acting on nothing if one is found.
    let tenants = match (&rec.tenant, rec.role) {
        (None, Role::View | Role::Edit) => Tenants::Only(Default::default()),
        _ => tenants,
    };
    Caller { principal, tenants, role: rec.role }
}

/// The caller a request's `Authorization` header stands for.
pub async fn authenticate(ctx: &Context, authorization: Option<&str>) -> Result<Caller, OpError> {
    if !ctx.security.require_tokens {
        return Ok(Caller::local_admin());
    }
    let refuse = |why: &str| OpError::Unauthenticated(format!("{why}: send `Authorization: Bearer <token>`"));
    let header = authorization.ok_or_else(|| refuse("no credentials"))?;
    let token = header.strip_prefix("Bearer ").map(str::trim).ok_or_else(|| refuse("not a bearer token"))?;
    let id = token_id(token).ok_or_else(|| refuse("malformed token"))?;
    let rec = ctx.records().get::<Tokens>(&id.to_string()).await?.map(|v| v.value);
    let rec = match rec {
        Some(r) if bool::from(r.hash.as_bytes().ct_eq(hash(token).as_bytes())) => r,
        _ => return Err(refuse("unknown or revoked token")),
    };
    if rec.expires.is_some_and(|e| e <= Utc::now()) {
        return Err(refuse("expired token"));
    }
    Ok(caller_of(&rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (id, token) = new_token().unwrap();
        let (id2, token2) = new_token().unwrap();
        assert_ne!((&id, &token), (&id2, &token2));
        assert_eq!(token_id(&token), Some(id.as_str()));
        let rec = record(&id, &token, Role::Edit, Some("alpha".into()), "ci", None);
        assert_eq!(rec.hash.len(), 64);
        assert!(!rec.hash.contains(&token[8..]));
        let caller = caller_of(&rec);
        assert!(caller.may_act_on("alpha") && !caller.may_act_on("beta"));
        assert!(caller.check("alpha").is_ok());
        let view = caller_of(&record(&id, &token, Role::View, Some("alpha".into()), "", None));
        assert!(matches!(view.check("alpha"), Err(OpError::Forbidden(_))));
        assert!(matches!(view.check_read("beta", || "application beta/x".into()), Err(OpError::NotFound(_))));
        assert!(caller_of(&record(&id, &token, Role::Admin, None, "", None)).is_admin());
    }
}
