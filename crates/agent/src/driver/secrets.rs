//! Secret values for an instance: each `env` entry `{secretRef: <secret>/<key>}` and the Secret its
//! `imagePullSecret` names are read from the tenant's sealed Secret records and opened with the cluster's secrets key,
//! right before a step that starts processes. The values live only in memory (the step's context, the process's
//! environment, the registry request).

use std::collections::BTreeMap;

use fos_api::record::DesiredInstance;
use fos_store::records::Secrets;
use fos_store::seal::SealKey;
use fos_store::Records;

use crate::oci::auth::PullSecret;
use crate::runtime::SecretEnv;

/// The values of `desired`'s Secret references, by variable name; an error names the reference that failed.
pub async fn resolve(records: &Records, key: Option<&SealKey>, desired: &DesiredInstance) -> Result<SecretEnv, String> {
    let mut out = BTreeMap::new();
    let mut opened: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (var, value) in &desired.entity.env {
        let Some(r) = value.secret_ref() else { continue };
        if !opened.contains_key(&r.secret) {
            let data =
                open(records, key, &desired.id.tenant, &r.secret).await.map_err(|e| format!("env {var}: {e}"))?;
            opened.insert(r.secret.clone(), data);
        }
        let v = opened
            .get(&r.secret)
            .and_then(|d| d.get(&r.key))
            .ok_or_else(|| format!("env {var}: secret {} has no key {}", r.secret, r.key))?;
        out.insert(var.clone(), v.clone());
    }
    Ok(SecretEnv(out))
}

/// The Secret `desired`'s `imagePullSecret` names, opened (none when it names none).
pub async fn pull_secret(
    records: &Records,
    key: Option<&SealKey>,
    desired: &DesiredInstance,
) -> Result<Option<PullSecret>, String> {
    let Some(name) = &desired.entity.image_pull_secret else { return Ok(None) };
    let data = open(records, key, &desired.id.tenant, name).await.map_err(|e| format!("imagePullSecret: {e}"))?;
    Ok(Some(PullSecret { name: name.clone(), data }))
}

/// The values of Secret `name` of `tenant`.
async fn open(
    records: &Records,
    key: Option<&SealKey>,
    tenant: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, String> {
    let key = key.ok_or_else(|| format!("this node has no secrets key to open secret {name}"))?;
    let id = (tenant.to_string(), name.to_string());
    let sealed = records
        .get::<Secrets>(&id)
        .await
        .map_err(|e| format!("reading secret {name}: {e}"))?
        .ok_or_else(|| format!("no secret {name} in tenant {tenant}"))?;
    let plain =
        key.open(&sealed.value.sealed, &records.key::<Secrets>(&id)).map_err(|e| format!("secret {name}: {e}"))?;
    serde_json::from_slice(&plain).map_err(|e| format!("secret {name}: {e}"))
}
