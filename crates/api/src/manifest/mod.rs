//! The manifest model: the Kubernetes-style objects a user applies (`apiVersion: fos/v1`, `kind`, `metadata`,
//! `spec`). Field names are camelCase in YAML/JSON; unknown fields are refused. Semantic checks (names, references,
//! cycles, ranges) live in the validation module, not here.

mod application;
mod entity;
mod network;
mod plugin_image;
mod secret;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub(crate) use application::string_enum;
pub use application::{
    Accelerator, AcceleratorRequest, ApplicationSpec, Arch, Component, Constraints, DeviceRequest, InterfaceRequest,
    InterfaceType, IoType, NetworkRef, OnNodeLoss, Proximity, Within,
};
pub use entity::{
    EntityKind, EntitySpec, HttpProbe, MigrationKind, NetworkAttachment, PortMapping, Probe, Protocol, Resources,
    RestartPolicy, Volume, MAX_NETWORKS,
};
pub use network::{NetworkKind, NetworkSpec};
pub use plugin_image::{ImageFormat, ImageSpec, PluginSpec, PluginType};
pub use secret::{EnvValue, RunAs, RunAsUser, SecretRef, SecretSpec};

/// The only `apiVersion` this release reads and writes.
pub const API_VERSION: &str = "fos/v1";

/// The name of the tenant used when a manifest names none.
pub const DEFAULT_TENANT: &str = "default";

/// What every object carries besides its spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The object's name: a DNS label, unique per kind (and tenant).
    pub name: String,
    /// The tenant the object belongs to (`default` when absent). Ignored for nodes and images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations (not used for selection).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Metadata {
    /// Metadata with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Metadata { name: name.into(), ..Default::default() }
    }

    /// The tenant, defaulted.
    pub fn tenant(&self) -> &str {
        self.tenant.as_deref().unwrap_or(DEFAULT_TENANT)
    }
}

/// The kinds of object fos knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectKind {
    /// A graph of components.
    Application,
    /// A standalone entity, run as a one-component application.
    Entity,
    /// A virtual network.
    Network,
    /// A per-node plugin's enablement and configuration.
    Plugin,
    /// A VM or container image.
    Image,
    /// A node (published by its agent; also written by hand for offline planning).
    Node,
    /// Named values of one tenant, read by entities through `env` (`{secretRef: name/key}`).
    Secret,
}

impl ObjectKind {
    /// Every kind, in the order objects of one apply are stored.
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Node,
        ObjectKind::Secret,
        ObjectKind::Plugin,
        ObjectKind::Image,
        ObjectKind::Network,
        ObjectKind::Entity,
        ObjectKind::Application,
    ];

    /// The kind's name as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Application => "Application",
            ObjectKind::Entity => "Entity",
            ObjectKind::Network => "Network",
            ObjectKind::Plugin => "Plugin",
            ObjectKind::Image => "Image",
            ObjectKind::Node => "Node",
            ObjectKind::Secret => "Secret",
        }
    }

    /// Parses a `kind:` value (exact spelling).
    pub fn parse(s: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object of one kind: metadata plus the kind's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Typed<S> {
    /// Name, tenant, labels.
    pub metadata: Metadata,
    /// What the user asks for.
    pub spec: S,
}

/// An application object.
pub type Application = Typed<ApplicationSpec>;
/// A standalone entity object.
pub type Entity = Typed<EntitySpec>;
/// A network object.
pub type Network = Typed<NetworkSpec>;
/// A plugin object.
pub type Plugin = Typed<PluginSpec>;
/// An image object.
pub type Image = Typed<ImageSpec>;
/// A secret object.
pub type Secret = Typed<SecretSpec>;

/// Any object a manifest can hold. Serialized with `apiVersion` and `kind`.
#[allow(clippy::large_enum_variant)] // a handful per apply; boxing would only add noise at every use
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// `kind: Application`.
    Application(Application),
    /// `kind: Entity`.
    Entity(Entity),
    /// `kind: Network`.
    Network(Network),
    /// `kind: Plugin`.
    Plugin(Plugin),
    /// `kind: Image`.
    Image(Image),
    /// `kind: Node`.
    Node(Box<crate::node::Node>),
    /// `kind: Secret`.
    Secret(Secret),
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Object::Application(_) => ObjectKind::Application,
            Object::Entity(_) => ObjectKind::Entity,
            Object::Network(_) => ObjectKind::Network,
            Object::Plugin(_) => ObjectKind::Plugin,
            Object::Image(_) => ObjectKind::Image,
            Object::Node(_) => ObjectKind::Node,
            Object::Secret(_) => ObjectKind::Secret,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &Metadata {
        match self {
            Object::Application(o) => &o.metadata,
            Object::Entity(o) => &o.metadata,
            Object::Network(o) => &o.metadata,
            Object::Plugin(o) => &o.metadata,
            Object::Image(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// The object as a one-component application, for the kinds that run something (Application, Entity). A
    /// standalone entity pinned to a node ([`crate::wire::NODE_ANNOTATION`]) may only be placed there.
    pub fn as_application(&self) -> Option<std::borrow::Cow<'_, Application>> {
        match self {
            Object::Application(a) => Some(std::borrow::Cow::Borrowed(a)),
            Object::Entity(e) => {
                let mut spec = ApplicationSpec::single(&e.metadata.name, e.spec.clone());
                if let Some(node) = e.metadata.annotations.get(crate::wire::NODE_ANNOTATION) {
                    for c in &mut spec.components {
                        c.constraints.nodes = vec![node.clone()];
                    }
                }
                Some(std::borrow::Cow::Owned(Typed { metadata: e.metadata.clone(), spec }))
            }
            _ => None,
        }
    }

    /// Serializes the object as a JSON value with `apiVersion` and `kind` first.
    pub fn to_value(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("apiVersion".into(), API_VERSION.into());
        map.insert("kind".into(), self.kind().as_str().into());
        let body = match self {
            Object::Application(o) => serde_json::to_value(o),
            Object::Entity(o) => serde_json::to_value(o),
            Object::Network(o) => serde_json::to_value(o),
            Object::Plugin(o) => serde_json::to_value(o),
            Object::Image(o) => serde_json::to_value(o),
            Object::Node(o) => serde_json::to_value(o),
            Object::Secret(o) => serde_json::to_value(o),
        };
        if let Ok(serde_json::Value::Object(fields)) = body {
            map.extend(fields);
        }
        serde_json::Value::Object(map)
    }

    /// Reads an object from a JSON value with `apiVersion` and `kind`. Errors name the first field at fault as a
    /// path (`spec.components[0].need`); the manifest loader maps such paths to file positions.
    pub fn from_value(value: serde_json::Value) -> Result<Object, ObjectError> {
        let serde_json::Value::Object(mut map) = value else {
            return Err(ObjectError { path: String::new(), message: "an object must be a mapping".into() });
        };
        match map.remove("apiVersion") {
            Some(serde_json::Value::String(v)) if v == API_VERSION => {}
            Some(other) => {
                return Err(ObjectError {
                    path: "apiVersion".into(),
                    message: format!("unsupported apiVersion {other}: expected `{API_VERSION}`"),
                })
            }
            None => return Err(ObjectError { path: String::new(), message: "missing field `apiVersion`".into() }),
        }
        let kind = match map.remove("kind") {
            Some(serde_json::Value::String(k)) => ObjectKind::parse(&k).ok_or_else(|| ObjectError {
                path: "kind".into(),
                message: format!(
                    "unknown kind `{k}`: expected one of {}",
                    ObjectKind::ALL.map(|k| k.as_str()).join(", ")
                ),
            })?,
            _ => return Err(ObjectError { path: String::new(), message: "missing field `kind`".into() }),
        };
        let rest = serde_json::Value::Object(map);
        fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ObjectError> {
            serde_path_to_error_free(v)
        }
        Ok(match kind {
            ObjectKind::Application => Object::Application(typed(rest)?),
            ObjectKind::Entity => Object::Entity(typed(rest)?),
            ObjectKind::Network => Object::Network(typed(rest)?),
            ObjectKind::Plugin => Object::Plugin(typed(rest)?),
            ObjectKind::Image => Object::Image(typed(rest)?),
            ObjectKind::Node => Object::Node(Box::new(typed(rest)?)),
            ObjectKind::Secret => Object::Secret(typed(rest)?),
        })
    }
}

/// Deserializes, naming the first field at fault as a path (`spec.components[0].need`). The manifest loader
/// of `fosctl` (`fos_apply::source`) goes further: every error, each at its file position.
fn serde_path_to_error_free<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ObjectError> {
    serde_path_to_error::deserialize(&v).map_err(|e| {
        let mut path = String::new();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => path.push_str(&format!("[{index}]")),
                serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        ObjectError { path, message: e.into_inner().to_string() }
    })
}

/// An object that does not have the shape of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ObjectError {
    /// Where in the object (`spec.components[0]`), empty for the object itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Object::from_value(v).map_err(serde::de::Error::custom)
    }
}
