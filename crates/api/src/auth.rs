//! Who may do what: the roles a bearer token carries, the token record kept (hashed) in the store, the per-tenant
//! policy an administrator sets (may its entities run as root), and the wire shapes of the token and tenant
//! operations. The hashing and checking live in the control plane; this module only names things.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read the objects of its tenant.
    View,
    /// Read and change the objects of its tenant.
    Edit,
    /// Everything, in every tenant: tokens, tenant policies, nodes, plugins, images, the raw store view.
    Admin,
    /// A node of the cluster calling another one (log fetching, state transfer): reads in every tenant.
    Node,
}

impl Role {
    /// The role's name as written on the command line and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Edit => "edit",
            Role::Admin => "admin",
            Role::Node => "node",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "view" => Ok(Role::View),
            "edit" => Ok(Role::Edit),
            "admin" => Ok(Role::Admin),
            "node" => Ok(Role::Node),
            other => Err(format!("unknown role `{other}`: expected view, edit or admin")),
        }
    }
}

/// The prefix of every fos bearer token (`fos.<id>.<secret>`).
pub const TOKEN_PREFIX: &str = "fos";

/// A token as stored (`system/tokens/<id>`): never the secret itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The token's public id (the middle part of `fos.<id>.<secret>`).
    pub id: String,
    /// Hex SHA-256 of the whole token.
    pub hash: String,
    /// What it may do.
    pub role: Role,
    /// The tenant it acts on (`None`: every tenant; admin and node tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Who or what it is for (shown in lists and as the caller's principal).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it stops working (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

/// A token as listed: the record without its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// The token's public id.
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// The tenant it acts on (`None`: every tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Who or what it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

impl From<&TokenRecord> for TokenInfo {
    fn from(r: &TokenRecord) -> Self {
        TokenInfo {
            id: r.id.clone(),
            role: r.role,
            tenant: r.tenant.clone(),
            description: r.description.clone(),
            created: r.created,
            expires: r.expires,
        }
    }
}

/// `POST /v1/tokens`: a token to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// What it may do (view, edit, admin).
    pub role: Role,
    /// The tenant of a view or edit token (admin tokens act on every tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Who or what it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Lifetime in seconds (`None`: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// The answer to a token request: the secret, shown this once, and what was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated {
    /// The bearer token (`fos.<id>.<secret>`): not stored anywhere, keep it.
    pub token: String,
    /// The record, without its hash.
    pub info: TokenInfo,
}

/// What an administrator allows a tenant (`system/tenants/<tenant>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantPolicy {
    /// Entities of this tenant may run as root (`runAs: root`).
    #[serde(default)]
    pub allow_root: bool,
}

/// A tenant's policy as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// The tenant.
    pub tenant: String,
    /// Its policy.
    pub policy: TenantPolicy,
}

/// The client configuration file `fosctl` reads (`--config`, `FOS_CONFIG`, `~/.config/fos/config.yaml`) and
/// `fosd` writes for its administrator (`<data-dir>/fosctl.yaml`, mode 0600).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConfig {
    /// The API's URL (`https://host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The CA to trust: PEM text, or the path of a PEM file (relative to the configuration file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// The bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("ca", &self.ca.as_ref().map(|_| ".."))
            .field("token", &self.token.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Splits a bearer token `fos.<id>.<secret>` into its id, or `None` when it does not have that shape.
pub fn token_id(token: &str) -> Option<&str> {
    let mut parts = token.splitn(3, '.');
    let (prefix, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (prefix == TOKEN_PREFIX && ok(id, 64) && ok(secret, 128)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids() {
        assert_eq!(token_id("fos.ab12.s3cr3t-_x"), Some("ab12"));
        assert_eq!(token_id("fos.ab12"), None);
        assert_eq!(token_id("xyz.ab12.secret"), None);
        assert_eq!(token_id("fos.a/b.secret"), None);
        assert_eq!(token_id("fos..secret"), None);
        assert_eq!(token_id("fos.id.sec.ret"), None, "a secret holds no dot");
    }

    #[test]
    fn roles_parse() {
        for r in [Role::View, Role::Edit, Role::Admin, Role::Node] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().unwrap_err().contains("unknown role"));
    }
}
