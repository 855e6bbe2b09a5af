//! Admission: the server's own checks of every object of an apply before anything is stored (the server is the
//! authority; `fosctl` checks the same locally for early feedback). Errors name the object's index and the field.

use std::collections::BTreeSet;

use fos_api::manifest::ObjectError;
use fos_api::wire::ErrorBody;
use fos_api::{validate_name, ApplicationSpec, EntityKind, EntitySpec, Object};

use super::error::ApiError;

fn fault(index: usize, kind: Option<&str>, name: Option<&str>, path: String, message: String) -> ApiError {
    ApiError::Invalid(ErrorBody {
        message,
        index: Some(index),
        kind: kind.map(str::to_string),
        name: name.map(str::to_string),
        path: if path.is_empty() { None } else { Some(path) },
    })
}

/// Decodes object `index` of a request.
pub fn decode(index: usize, value: serde_json::Value) -> Result<Object, ApiError> {
    let kind = value.get("kind").and_then(|k| k.as_str()).map(str::to_string);
    let name = value.pointer("/metadata/name").and_then(|k| k.as_str()).map(str::to_string);
    Object::from_value(value)
        .map_err(|ObjectError { path, message }| fault(index, kind.as_deref(), name.as_deref(), path, message))
}

/// Checks object `index`: names, and for what runs, the component graph and the entity.
pub fn check(index: usize, obj: &Object) -> Result<(), ApiError> {
    let kind = obj.kind().as_str();
    let name = obj.name();
    let err = |path: String, message: String| fault(index, Some(kind), Some(name), path, message);
    if let Object::Node(_) = obj {
        return Err(err(
            String::new(),
            "nodes are published by their agents; a Node object is only used for offline planning".into(),
        ));
    }
    validate_name(name).map_err(|e| err("metadata.name".into(), e.to_string()))?;
    if let Some(t) = &obj.metadata().tenant {
        validate_name(t).map_err(|e| err("metadata.tenant".into(), e.to_string()))?;
    }
    match obj {
        Object::Application(a) => check_app(&a.spec).map_err(|(p, m)| err(p, m)),
        Object::Entity(e) => check_entity(&e.spec).map_err(|(p, m)| err(format!("spec.{p}"), m)),
        _ => Ok(()),
    }
}

fn check_app(spec: &ApplicationSpec) -> Result<(), (String, String)> {
    if spec.components.is_empty() {
        return Err(("spec.components".into(), "an application needs at least one component".into()));
    }
    let mut seen = BTreeSet::new();
    for (i, c) in spec.components.iter().enumerate() {
        let at = format!("spec.components[{i}]");
        validate_name(&c.name).map_err(|e| (format!("{at}.name"), e.to_string()))?;
        if !seen.insert(c.name.as_str()) {
            return Err((format!("{at}.name"), format!("component `{}` is defined twice", c.name)));
        }
        if c.replicas == 0 {
            return Err((format!("{at}.replicas"), "replicas must be at least 1".into()));
        }
        for (j, n) in c.need.iter().enumerate() {
            if spec.component(n).is_none() {
                return Err((format!("{at}.need[{j}]"), format!("`{n}` is not a component of this application")));
            }
            if n == &c.name {
                return Err((format!("{at}.need[{j}]"), format!("`{n}` cannot need itself")));
            }
        }
        check_entity(&c.entity).map_err(|(p, m)| (format!("{at}.entity.{p}"), m))?;
    }
    let waves = crate::graph::start_waves(spec);
    for wave in &waves {
        for name in wave {
            if let Some(c) = spec.component(name) {
                if let Some(n) = c.need.iter().find(|n| wave.contains(n)) {
                    let i = spec.components.iter().position(|x| &x.name == name).unwrap_or(0);
                    return Err((
                        format!("spec.components[{i}].need"),
                        format!("`{name}` and `{n}` need each other (a dependency cycle)"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_entity(e: &EntitySpec) -> Result<(), (String, String)> {
    match e.kind {
        EntityKind::Native if e.command.is_empty() => {
            Err(("command".into(), "a native entity needs a command (an argv)".into()))
        }
        EntityKind::Vm | EntityKind::Container if e.image.is_none() => {
            Err(("image".into(), format!("a {} entity needs an image", e.kind)))
        }
        _ => Ok(()),
    }
}
