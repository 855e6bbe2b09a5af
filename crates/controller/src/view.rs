//! A consistent-enough read of the cluster from the store: applications, desired and actual instances, nodes (info
//! plus heartbeat status) and application statuses, decoded once for the API and the controller.

use std::collections::BTreeMap;

use fos_api::keys::KeyRef;
use fos_api::node::NodeStatus;
use fos_api::wire::{AppRecord, AppStatus};
use fos_api::{ActualInstance, DesiredInstance, InstanceId, Keys, Metadata, Node, NodeInfo};
use fos_store::{Revision, Store, StoreError};

/// `(tenant, app)`.
pub type AppKey = (String, String);

/// A stored application with the revision it was last changed at.
#[derive(Debug, Clone)]
pub struct StoredApp {
    /// The record.
    pub record: AppRecord,
    /// The key's mod revision (for compare-and-swap).
    pub mod_revision: Revision,
}

/// The cluster as read from the store.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Applications by `(tenant, app)`.
    pub apps: BTreeMap<AppKey, StoredApp>,
    /// Desired instance records.
    pub desired: BTreeMap<InstanceId, DesiredInstance>,
    /// Actual instance records.
    pub actual: BTreeMap<InstanceId, ActualInstance>,
    /// Nodes by name; a node without a live heartbeat record is not ready.
    pub nodes: BTreeMap<String, Node>,
    /// Aggregated application statuses.
    pub statuses: BTreeMap<AppKey, AppStatus>,
}

/// Decodes a node's info record: a whole [`Node`], or only its [`NodeInfo`].
pub fn decode_node(name: &str, value: &[u8]) -> Option<Node> {
    if let Ok(node) = serde_json::from_slice::<Node>(value) {
        return Some(node);
    }
    let info: NodeInfo = serde_json::from_slice(value).ok()?;
    Some(Node { metadata: Metadata::named(name), spec: info, status: NodeStatus::default() })
}

impl ClusterView {
    /// Reads everything the control plane looks at.
    pub async fn read(store: &dyn Store, keys: &Keys) -> Result<ClusterView, StoreError> {
        let (p_apps, p_desired, p_actual) = (keys.desired_apps_prefix(), keys.desired_nodes_prefix(), keys.actual());
        let (apps, desired, actual) =
            tokio::try_join!(store.list(&p_apps), store.list(&p_desired), store.list(&p_actual))?;
        let mut view = ClusterView::default();
        for kv in apps.kvs {
            if let Some(KeyRef::DesiredApp { tenant, app }) = keys.parse(&kv.key) {
                match serde_json::from_slice::<AppRecord>(&kv.value) {
                    Ok(record) => {
                        view.apps.insert((tenant, app), StoredApp { record, mod_revision: kv.mod_revision });
                    }
                    Err(e) => tracing::warn!(key = kv.key, "unreadable application record: {e}"),
                }
            }
        }
        for kv in desired.kvs {
            if let Some(KeyRef::DesiredInstance { id, .. }) = keys.parse(&kv.key) {
                if let Ok(d) = serde_json::from_slice::<DesiredInstance>(&kv.value) {
                    view.desired.insert(id, d);
                }
            }
        }
        let mut statuses: BTreeMap<String, NodeStatus> = BTreeMap::new();
        for kv in actual.kvs {
            match keys.parse(&kv.key) {
                Some(KeyRef::ActualInstance { id, .. }) => {
                    if let Ok(a) = serde_json::from_slice::<ActualInstance>(&kv.value) {
                        view.actual.insert(id, a);
                    }
                }
                Some(KeyRef::NodeInfo { node }) => {
                    if let Some(n) = decode_node(&node, &kv.value) {
                        view.nodes.insert(node, n);
                    }
                }
                Some(KeyRef::NodeStatus { node }) => {
                    if let Ok(s) = serde_json::from_slice::<NodeStatus>(&kv.value) {
                        statuses.insert(node, s);
                    }
                }
                Some(KeyRef::ActualApp { tenant, app }) => {
                    if let Ok(s) = serde_json::from_slice::<AppStatus>(&kv.value) {
                        view.statuses.insert((tenant, app), s);
                    }
                }
                _ => {}
            }
        }
        for (name, node) in view.nodes.iter_mut() {
            match statuses.remove(name) {
                Some(s) => node.status = s,
                None => node.status.ready = false,
            }
        }
        Ok(view)
    }

    /// The instances (desired or actual) of `tenant`/`app`.
    pub fn instances_of<'a>(&'a self, tenant: &'a str, app: &'a str) -> impl Iterator<Item = &'a InstanceId> + 'a {
        let mut ids: Vec<&InstanceId> =
            self.desired.keys().chain(self.actual.keys()).filter(|id| id.tenant == tenant && id.app == app).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
    }
}
