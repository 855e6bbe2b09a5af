//! The record kinds of access control and secrets, all under `system/` (never shown by the store view): API tokens
//! (hashed), tenant policies, Secret objects (sealed with the cluster's secrets key) and the cluster bootstrap
//! record (the CA and keys every node needs, sealed with a key derived from the join token).

use fos_api::auth::{TenantPolicy, TokenRecord};
use fos_api::Keys;
use serde::{Deserialize, Serialize};

use super::{Kind, Scoped};
use crate::seal::Sealed;

kind!(
    /// `system/tokens/<id>`: an API token ([`TokenRecord`]: role, tenant, expiry and the SHA-256 of the token).
    Tokens, String, TokenRecord, "token",
    key: |k, id| format!("{}{id}", k.system_prefix("tokens")), prefix: |k| k.system_prefix("tokens"),
    parse_rest: |rest| match rest.as_slice() {
        [id] if !id.is_empty() => Some(id.to_string()),
        _ => None,
    }
);

kind!(
    /// `system/tenants/<tenant>`: what an administrator allows a tenant ([`TenantPolicy`]).
    TenantPolicies, String, TenantPolicy, "tenant policy",
    key: |k, t| format!("{}{t}", k.system_prefix("tenants")), prefix: |k| k.system_prefix("tenants"),
    parse_rest: |rest| match rest.as_slice() {
        [t] if !t.is_empty() => Some(t.to_string()),
        _ => None,
    }
);

/// A Secret as stored: its keys in the clear (for lists), a keyed digest of its data (to tell an unchanged apply),
/// and the data sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// The keys of its data.
    pub keys: Vec<String>,
    /// HMAC-SHA256 of the data's JSON, with the secrets key.
    pub digest: String,
    /// The data's JSON (`{key: value}`), sealed for this record's key.
    pub sealed: Sealed,
}

kind!(
    /// `system/secrets/<tenant>/<name>`: a Secret object, sealed ([`SealedSecret`]).
    Secrets, Scoped, SealedSecret, "secret",
    key: |k, id| format!("{}{}/{}", k.system_prefix("secrets"), id.0, id.1), prefix: |k| k.system_prefix("secrets"),
    parse_rest: |rest| match rest.as_slice() {
        [t, n] if !t.is_empty() && !n.is_empty() => Some((t.to_string(), n.to_string())),
        _ => None,
    }
);

/// What every node of a cluster needs to join it: the CA certificate in the clear, and sealed with a key derived
/// from the join token, the CA's private key and the secrets key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapRecord {
    /// The cluster CA certificate (PEM).
    pub ca_cert: String,
    /// A digest of the join token (so a node with a wrong token is told so, not handed garbage).
    pub token_check: String,
    /// [`BootstrapSecrets`] as JSON, sealed.
    pub sealed: Sealed,
}

/// The sealed part of the bootstrap record.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSecrets {
    /// The CA's private key (PEM).
    pub ca_key: String,
    /// The secrets key (hex).
    pub secrets_key: String,
}

impl std::fmt::Debug for BootstrapSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootstrapSecrets(..)")
    }
}

kind!(
    /// `system/bootstrap/<name>` (`cluster`): the cluster's CA and keys ([`BootstrapRecord`]).
    Bootstrap, String, BootstrapRecord, "bootstrap record",
    key: |k, n| format!("{}{n}", k.system_prefix("bootstrap")), prefix: |k| k.system_prefix("bootstrap"),
    parse_rest: |rest| match rest.as_slice() {
        [n] if !n.is_empty() => Some(n.to_string()),
        _ => None,
    }
);

/// The id of the one bootstrap record.
pub const CLUSTER: &str = "cluster";
