//! The vocabulary of fos: what users write (manifests), what the system records (node info, desired and actual
//! instance records, plugin and network records), the one entity lifecycle state machine, and the store's key
//! layout with the seed's `afos://` / `dfos://` URIs. This crate does no I/O; every other crate depends on it.
//! Reading manifest files with positions belongs to `fosctl` (`fos_apply::source`); converting fog05's formats to
//! the fog05 codec (`fos_fog05`).

pub mod auth;
pub mod cluster;
pub mod granularity;
pub mod graph;
pub mod image;
pub mod keys;
pub mod lifecycle;
pub mod limits;
pub mod manifest;
pub mod migration;
pub mod names;
pub mod network;
pub mod node;
pub mod plan;
pub mod quantity;
pub mod record;
pub mod validate;
pub mod wire;

pub use keys::{Keys, StoreUri, UriError};
pub use lifecycle::{Action, Lifecycle, State, TransitionError};
pub use manifest::{
    Application, ApplicationSpec, Component, Constraints, EntityKind, EntitySpec, Image, ImageSpec, Metadata,
    NetworkSpec, Object, ObjectKind, Plugin, PluginSpec, API_VERSION,
};
pub use names::{validate_name, NameError};
pub use node::{Node, NodeInfo, NodeStatus, PluginRecord};
pub use quantity::{ByteSize, CpuQuantity, QuantityError};
pub use record::{ActualInstance, DesiredInstance, InstanceId};
pub use validate::{validate, validate_with, Existing, ObjectRef, Violation};
