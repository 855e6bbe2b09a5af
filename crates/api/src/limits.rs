//! The limits every request is held to, so no client can make `fosd` spend unbounded time or memory: the request
//! body, objects per apply, components per application, an entity's environment, a Secret's size and a store
//! URI. Each refusal names the limit and where it was exceeded; `fosctl` checks the same limits before sending.

use crate::manifest::{EntitySpec, Object};

/// Largest request body the API reads (bytes).
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Most objects in one apply.
pub const MAX_OBJECTS_PER_APPLY: usize = 1000;
/// Most components in one application.
pub const MAX_COMPONENTS: usize = 5000;
/// Most instances (components × replicas) one application asks for.
pub const MAX_INSTANCES: u64 = 20_000;
/// Most environment variables of one entity.
pub const MAX_ENV_VARS: usize = 1024;
/// Most bytes of one entity's environment (names and values).
pub const MAX_ENV_BYTES: usize = 64 << 10;
/// Most bytes of one Secret's data (keys and values).
pub const MAX_SECRET_BYTES: usize = 256 << 10;
/// Longest store URI (bytes).
pub const MAX_URI_BYTES: usize = 4096;
/// Most segments of a store URI.
pub const MAX_URI_SEGMENTS: usize = 256;
/// Largest manifest file `fosctl` reads.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// A limit exceeded: where (a field path in the object) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The field path (`spec.components`, `spec.components[3].entity.env`).
    pub path: String,
    /// What is over which limit.
    pub message: String,
}

fn env_check(spec: &EntitySpec, at: &str) -> Option<Exceeded> {
    if spec.env.len() > MAX_ENV_VARS {
        return Some(Exceeded {
            path: format!("{at}.env"),
            message: format!("{} environment variables, over the limit of {MAX_ENV_VARS} per entity", spec.env.len()),
        });
    }
    let bytes: usize = spec.env.iter().map(|(k, v)| k.len() + v.len()).sum();
    (bytes > MAX_ENV_BYTES).then(|| Exceeded {
        path: format!("{at}.env"),
        message: format!("environment of {bytes} bytes, over the limit of {MAX_ENV_BYTES} bytes per entity"),
    })
}

/// The first limit `obj` exceeds, if any.
pub fn check(obj: &Object) -> Option<Exceeded> {
    match obj {
        Object::Application(app) => {
            let n = app.spec.components.len();
            if n > MAX_COMPONENTS {
                return Some(Exceeded {
                    path: "spec.components".into(),
                    message: format!("{n} components, over the limit of {MAX_COMPONENTS} per application"),
                });
            }
            let instances: u64 = app.spec.components.iter().map(|c| u64::from(c.replicas)).sum();
            if instances > MAX_INSTANCES {
                return Some(Exceeded {
                    path: "spec.components".into(),
                    message: format!("{instances} instances, over the limit of {MAX_INSTANCES} per application"),
                });
            }
            app.spec
                .components
                .iter()
                .enumerate()
                .find_map(|(i, c)| env_check(&c.entity, &format!("spec.components[{i}].entity")))
        }
        Object::Entity(e) => env_check(&e.spec, "spec"),
        Object::Secret(s) => {
            let bytes: usize = s.spec.data.iter().map(|(k, v)| k.len() + v.len()).sum();
            (bytes > MAX_SECRET_BYTES).then(|| Exceeded {
                path: "spec.data".into(),
                message: format!("secret data of {bytes} bytes, over the limit of {MAX_SECRET_BYTES} bytes"),
            })
        }
        _ => None,
    }
}

/// Refuses a set of more than [`MAX_OBJECTS_PER_APPLY`] objects.
pub fn check_count(n: usize) -> Result<(), String> {
    if n > MAX_OBJECTS_PER_APPLY {
        Err(format!("{n} objects in one apply, over the limit of {MAX_OBJECTS_PER_APPLY}"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Application, ApplicationSpec, Component, EnvValue, Metadata, Typed};

    fn app(components: usize) -> Object {
        let spec = ApplicationSpec::single("c", EntitySpec::native(["true"]));
        let one = spec.components[0].clone();
        let components: Vec<Component> =
            (0..components).map(|i| Component { name: format!("c{i}"), ..one.clone() }).collect();
        Object::Application(Application {
            metadata: Metadata::named("a"),
            spec: ApplicationSpec { components, ..spec },
        })
    }

    #[test]
    fn components_over_the_limit_are_named() {
        assert_eq!(check(&app(MAX_COMPONENTS)), None);
        let e = check(&app(MAX_COMPONENTS + 1)).unwrap();
        assert_eq!(e.path, "spec.components");
        assert!(e.message.contains("over the limit of 5000"), "{}", e.message);
    }

    #[test]
    fn env_over_the_limit_is_named() {
        let mut spec = EntitySpec::native(["true"]);
        spec.env.insert("BIG".into(), EnvValue::Plain("x".repeat(MAX_ENV_BYTES)));
        let e = check(&Object::Entity(Typed { metadata: Metadata::named("e"), spec })).unwrap();
        assert_eq!(e.path, "spec.env");
        assert!(e.message.contains("limit of 65536 bytes"), "{}", e.message);
        assert!(check_count(MAX_OBJECTS_PER_APPLY).is_ok());
        assert!(check_count(MAX_OBJECTS_PER_APPLY + 1).unwrap_err().contains("limit of 1000"));
    }
}
