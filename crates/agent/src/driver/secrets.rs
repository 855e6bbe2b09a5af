//! Secret values for an instance's environment: each `env` entry `{secretRef: <secret>/<key>}` is read from the
//! tenant's sealed Secret record and opened with the cluster's secrets key, right before a step that starts
//! processes. The values live only in memory (the step's context and the process's environment).

use std::collections::BTreeMap;

use fos_api::record::DesiredInstance;
use fos_store::records::Secrets;
use fos_store::seal::SealKey;
use fos_store::Records;

use crate::runtime::SecretEnv;

/// The values of `desired`'s Secret references, by variable name; an error names the reference that failed.
pub async fn resolve(records: &Records, key: Option<&SealKey>, desired: &DesiredInstance) -> Result<SecretEnv, String> {
    let mut out = BTreeMap::new();
    let mut opened: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (var, value) in &desired.entity.env {
        let Some(r) = value.secret_ref() else { continue };
        let key = key.ok_or_else(|| format!("env {var}: this node has no secrets key to open secret {}", r.secret))?;
        if !opened.contains_key(&r.secret) {
            let id = (desired.id.tenant.clone(), r.secret.clone());
            let sealed = records
                .get::<Secrets>(&id)
                .await
                .map_err(|e| format!("env {var}: reading secret {}: {e}", r.secret))?
                .ok_or_else(|| format!("env {var}: no secret {} in tenant {}", r.secret, desired.id.tenant))?;
            let plain = key
                .open(&sealed.value.sealed, &records.key::<Secrets>(&id))
                .map_err(|e| format!("env {var}: secret {}: {e}", r.secret))?;
            let data: BTreeMap<String, String> =
                serde_json::from_slice(&plain).map_err(|e| format!("env {var}: secret {}: {e}", r.secret))?;
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
