//! The fog05 REST API's catalog: the FDU descriptors onboarded and the flavors added, per tenant, kept as fog05
//! wrote them (they are not fos objects until an FDU is defined on a node).

use fos_api::Keys;

use super::Kind;

/// `(tenant, collection, uuid)`: one catalog entry (`collection` is `fdus` or `flavors`).
pub type CatalogId = (String, String, String);

kind!(
    /// `system/fog05/<tenant>/<collection>/<uuid>`: a fog05 descriptor in the catalog, as JSON.
    Fog05Catalog, CatalogId, serde_json::Value, "fog05 catalog entry",
    key: |k, id| format!("{}{}/{}/{}", k.system_prefix("fog05"), id.0, id.1, id.2),
    prefix: |k| k.system_prefix("fog05"),
    parse_rest: |rest| match rest.as_slice() {
        [t, c, u] if !t.is_empty() && !c.is_empty() && !u.is_empty() => {
            Some((t.to_string(), c.to_string(), u.to_string()))
        }
        _ => None,
    }
);
