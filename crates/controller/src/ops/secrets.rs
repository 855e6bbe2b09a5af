//! Secrets: sealing an applied Secret object for the store (with the cluster's secrets key, bound to its record's
//! key), telling whether an apply changes one (a keyed digest, never the values), and listing the Secrets of the
//! caller's tenants by name and keys. No operation answers a secret value: the nodes open them to start processes.

use fos_api::manifest::Secret;
use fos_api::wire::SecretView;
use fos_store::records::{SealedSecret, Secrets};

use super::{Caller, OpError};
use crate::Context;

/// The Secret as it is stored under `key`.
pub fn seal(ctx: &Context, key: &str, secret: &Secret) -> Result<SealedSecret, OpError> {
    let sealer = ctx.security.secrets.as_ref().ok_or_else(|| {
        OpError::invalid("this node has no secrets key, so it cannot store Secrets (start fosd with its data dir key)")
    })?;
    let data = serde_json::to_vec(&secret.spec.data).map_err(|e| OpError::invalid(e.to_string()))?;
    let sealed = sealer.seal(&data, key).map_err(|e| OpError::Upstream(e.to_string()))?;
    Ok(SealedSecret { keys: secret.spec.data.keys().cloned().collect(), digest: sealer.digest(&data), sealed })
}

/// Whether the stored `prior` holds the same data as `secret`.
pub fn unchanged(ctx: &Context, prior: &SealedSecret, secret: &Secret) -> bool {
    let Some(sealer) = ctx.security.secrets.as_ref() else { return false };
    serde_json::to_vec(&secret.spec.data).map(|d| sealer.digest(&d) == prior.digest).unwrap_or(false)
}

/// The Secrets of the caller's tenants: names and keys.
pub async fn list(ctx: &Context, caller: &Caller) -> Result<Vec<SecretView>, OpError> {
    let (list, _) = ctx.records().list::<Secrets>().await?;
    Ok(list
        .into_iter()
        .filter(|((t, _), _)| caller.may_act_on(t))
        .map(|((tenant, name), v)| SecretView { tenant, name, keys: v.value.keys })
        .collect())
}
