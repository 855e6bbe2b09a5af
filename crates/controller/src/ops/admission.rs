//! Admission: every object of an apply is decoded and validated with the api crate's rules before anything is
//! stored (the server is the authority; `fosctl` runs the same rules locally for early feedback). Errors name the
//! object's index, kind and name and the field's path.

use fos_api::manifest::ObjectError;
use fos_api::wire::ErrorBody;
use fos_api::{Existing, Object};

use super::OpError;
use crate::Context;

fn fault(index: usize, kind: Option<&str>, name: Option<&str>, path: String, message: String) -> OpError {
    OpError::Invalid(ErrorBody {
        message,
        index: Some(index),
        kind: kind.map(str::to_string),
        name: name.map(str::to_string),
        path: if path.is_empty() { None } else { Some(path) },
    })
}

/// Decodes object `index` of a request.
pub fn decode(index: usize, value: serde_json::Value) -> Result<Object, OpError> {
    let kind = value.get("kind").and_then(|k| k.as_str()).map(str::to_string);
    let name = value.pointer("/metadata/name").and_then(|k| k.as_str()).map(str::to_string);
    Object::from_value(value)
        .map_err(|ObjectError { path, message }| fault(index, kind.as_deref(), name.as_deref(), path, message))
}

/// Refuses what cannot be applied at all: Node objects (nodes are published by their agents).
pub fn check(index: usize, obj: &Object) -> Result<(), OpError> {
    if let Object::Node(_) = obj {
        return Err(fault(
            index,
            Some(obj.kind().as_str()),
            Some(obj.name()),
            String::new(),
            "nodes are published by their agents; a Node object is only used for offline planning".into(),
        ));
    }
    if let Some(e) = fos_api::limits::check(obj) {
        return Err(fault(index, Some(obj.kind().as_str()), Some(obj.name()), e.path, e.message));
    }
    Ok(())
}

/// Refuses entities that ask to run as root in a tenant an administrator did not allow it
/// (`fosctl tenant allow-root <tenant>`).
pub async fn check_run_as(ctx: &Context, objects: &[Object]) -> Result<(), OpError> {
    for obj in objects {
        let Some(app) = obj.as_application() else { continue };
        let root = app.spec.components.iter().position(|c| c.entity.run_as.as_ref().is_some_and(|r| r.is_root()));
        let Some(component) = root else { continue };
        let tenant = obj.metadata().tenant();
        if !super::tenants::policy(ctx, tenant).await?.allow_root {
            let path = match obj {
                Object::Entity(_) => "spec.runAs".to_string(),
                _ => format!("spec.components[{component}].entity.runAs"),
            };
            return Err(OpError::Forbidden(format!(
                "{} {} ({path}): tenant {tenant} may not run entities as root (an administrator allows it with \
                 `fosctl tenant allow-root {tenant}`)",
                obj.kind(),
                obj.name()
            )));
        }
    }
    Ok(())
}

/// Validates the objects of one apply with the api crate's rules, against the networks already stored; the first
/// violation is the error.
pub fn validate(objects: &[Object], existing: &Existing) -> Result<(), OpError> {
    match fos_api::validate_with(objects, existing).into_iter().next() {
        None => Ok(()),
        Some(v) => {
            let message = match &v.hint {
                Some(h) => format!("{} ({h})", v.message),
                None => v.message.clone(),
            };
            Err(fault(v.object.index, Some(v.object.kind.as_str()), Some(&v.object.name), v.path, message))
        }
    }
}

/// The Network objects stored, for validating references to them.
pub fn existing(networks: impl IntoIterator<Item = ((String, String), Object)>) -> Existing {
    let mut out = Existing::default();
    for (key, object) in networks {
        if let Object::Network(n) = object {
            out.networks.insert(key, n.spec);
        }
    }
    out
}
