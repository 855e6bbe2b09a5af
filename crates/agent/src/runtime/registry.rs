//! The node's runtimes: a list of factories, one per entity kind, registered in one place
//! ([`RuntimeRegistry::builtin`]). At start the agent hands the registry the node's [`RuntimeEnv`] and the node
//! configuration's `runtimes` section; the registry builds and probes every runtime not disabled there, publishes
//! each one's plugin record (`actual/nodes/<node>/plugins/<kind>`), and returns the runtimes that probed ready:
//! those are the ones the driver uses and the node's info record lists.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use fos_api::manifest::EntityKind;
pub use fos_api::node::PluginRecord;
use fos_store::records::ActualPlugins;
use fos_store::{Records, StoreError};
use serde::{Deserialize, Serialize};

use super::context::NodeLayout;
use super::{container, native, vm, Runtime, RuntimeError};
use crate::images::Images;

/// The runtimes available on this node, by entity kind.
pub type Runtimes = HashMap<EntityKind, Arc<dyn Runtime>>;

/// Builds one runtime from the node's environment.
pub type RuntimeFactory = Arc<dyn Fn(&RuntimeEnv) -> Result<Arc<dyn Runtime>, RuntimeError> + Send + Sync>;

/// What a runtime factory gets from the node.
#[derive(Debug, Clone)]
pub struct RuntimeEnv {
    /// This node's name.
    pub node: String,
    /// How the node lays out instances (data directory, namespaces, cgroups): builds every [`super::InstanceContext`].
    pub layout: NodeLayout,
    /// The node's addresses (reported for instances that share the node's network).
    pub addresses: Vec<String>,
    /// Time between asking an instance to stop and forcing it.
    pub stop_grace: Duration,
    /// Size at which an instance's output file is rotated.
    pub log_max_bytes: u64,
    /// The node's images: an Image name or a path made local ([`Images::ensure`]).
    pub images: Images,
    /// The runtime's own settings (`runtimes.<kind>.config` of the node configuration; null when absent), which
    /// its factory decodes into its typed configuration.
    pub config: serde_json::Value,
}

/// One runtime's section of the node configuration (`runtimes: {<kind>: {enabled, config}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Whether the runtime is started on this node (default true).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Settings of the runtime itself, handed to its factory as [`RuntimeEnv::config`].
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub config: serde_json::Value,
}

fn enabled() -> bool {
    true
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings { enabled: true, config: serde_json::Value::Null }
    }
}

/// Writes the actual record of plugin `plugin` on `node` (`actual/nodes/<node>/plugins/<plugin>`).
pub async fn publish(records: &Records, node: &str, plugin: &str, record: &PluginRecord) -> Result<(), StoreError> {
    records.put::<ActualPlugins>(&(node.to_string(), plugin.to_string()), record, None).await?;
    Ok(())
}

/// The runtimes a node started.
pub struct NodeRuntimes {
    /// The runtimes that probed ready, by kind.
    pub runtimes: Runtimes,
    /// Their kinds, in registration order (the node info's `runtimes`).
    pub ready: Vec<EntityKind>,
}

/// The runtime factories of a node, one per entity kind.
#[derive(Clone)]
pub struct RuntimeRegistry {
    factories: Vec<(EntityKind, RuntimeFactory)>,
}

impl fmt::Debug for RuntimeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.kinds()).finish()
    }
}

impl Default for RuntimeRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl RuntimeRegistry {
    /// A registry without runtimes.
    pub fn empty() -> Self {
        RuntimeRegistry { factories: Vec::new() }
    }

    /// The runtimes fos ships: one registration line each.
    pub fn builtin() -> Self {
        let mut registry = Self::empty();
        registry.register(EntityKind::Native, native::factory);
        registry.register(EntityKind::Vm, vm::factory);
        registry.register(EntityKind::Container, container::factory);
        registry
    }

    /// Registers the factory of `kind`'s runtime (replacing the one registered before, if any).
    pub fn register(
        &mut self,
        kind: EntityKind,
        factory: impl Fn(&RuntimeEnv) -> Result<Arc<dyn Runtime>, RuntimeError> + Send + Sync + 'static,
    ) -> &mut Self {
        let factory: RuntimeFactory = Arc::new(factory);
        match self.factories.iter_mut().find(|(k, _)| *k == kind) {
            Some(slot) => slot.1 = factory,
            None => self.factories.push((kind, factory)),
        }
        self
    }

    /// The kinds registered, in registration order.
    pub fn kinds(&self) -> Vec<EntityKind> {
        self.factories.iter().map(|(k, _)| *k).collect()
    }

    /// Builds and probes every runtime `settings` does not disable, and publishes each one's plugin record. A
    /// runtime that cannot be built or does not probe ready is left out (its record says why); only the store
    /// failing is an error.
    pub async fn start(
        &self,
        env: &RuntimeEnv,
        settings: &BTreeMap<EntityKind, RuntimeSettings>,
        records: &Records,
    ) -> Result<NodeRuntimes, StoreError> {
        for kind in settings.keys().filter(|k| !self.factories.iter().any(|(f, _)| f == *k)) {
            tracing::warn!(%kind, "the node configuration names a runtime this agent does not have; ignored");
        }
        let mut started = NodeRuntimes { runtimes: Runtimes::new(), ready: Vec::new() };
        for (kind, factory) in &self.factories {
            let section = settings.get(kind).cloned().unwrap_or_default();
            let (runtime, record) = if section.enabled {
                let env = RuntimeEnv { config: section.config, ..env.clone() };
                build(*kind, factory, &env).await
            } else {
                (None, record(*kind, Err("disabled in the node configuration".into()), None))
            };
            publish(records, &env.node, kind.as_str(), &record).await?;
            match runtime {
                Some(rt) => {
                    tracing::info!(%kind, detail = record.detail.as_deref().unwrap_or(""), "runtime ready");
                    started.ready.push(*kind);
                    started.runtimes.insert(*kind, rt);
                }
                None => tracing::warn!(%kind, reason = record.error.as_deref().unwrap_or(""), "runtime not started"),
            }
        }
        Ok(started)
    }
}

fn record(kind: EntityKind, outcome: Result<(), String>, detail: Option<String>) -> PluginRecord {
    PluginRecord {
        plugin_type: "runtime".into(),
        entity_kind: kind,
        ready: outcome.is_ok(),
        error: outcome.err(),
        detail,
    }
}

/// Builds and probes one runtime; the runtime when it is ready, and its plugin record.
async fn build(
    kind: EntityKind,
    factory: &RuntimeFactory,
    env: &RuntimeEnv,
) -> (Option<Arc<dyn Runtime>>, PluginRecord) {
    let rt = match factory(env) {
        Ok(rt) if rt.kind() == kind => rt,
        Ok(rt) => {
            let message = format!("the factory registered for {kind} built a {} runtime", rt.kind());
            return (None, record(kind, Err(message), None));
        }
        Err(e) => return (None, record(kind, Err(format!("cannot start: {e}")), None)),
    };
    let probed = rt.probe().await.map_err(|e| e.to_string());
    let ready = probed.is_ok();
    let record = record(kind, probed, rt.detail());
    (ready.then_some(rt), record)
}
