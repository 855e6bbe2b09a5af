//! The instances this node's runtimes hold, each with its runtime and the context it was last set up with: what
//! the agent answers questions about a local instance from (e.g. its output) without knowing any runtime's layout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fos_api::record::InstanceId;

use crate::runtime::{InstanceContext, Runtime};

/// One instance held by a runtime of this node.
#[derive(Clone)]
pub struct Local {
    /// The runtime holding it.
    pub runtime: Arc<dyn Runtime>,
    /// The context it was last defined, configured or run with.
    pub context: InstanceContext,
}

/// The instances held by this node's runtimes (shared by the driver, which keeps it current, and the agent's
/// handle, which reads it). Cheap to clone.
#[derive(Clone, Default)]
pub struct LocalInstances(Arc<Mutex<HashMap<InstanceId, Local>>>);

impl LocalInstances {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Local>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `runtime` holds the instance of `context`.
    pub fn insert(&self, runtime: Arc<dyn Runtime>, context: InstanceContext) {
        self.map().insert(context.id.clone(), Local { runtime, context });
    }

    /// Forgets an instance (undefined).
    pub fn remove(&self, id: &InstanceId) {
        self.map().remove(id);
    }

    /// Every instance held, with its runtime and context.
    pub fn all(&self) -> Vec<Local> {
        self.map().values().cloned().collect()
    }

    /// The runtime and context of an instance, when a runtime of this node holds it.
    pub fn get(&self, id: &InstanceId) -> Option<Local> {
        self.map().get(id).cloned()
    }
}
