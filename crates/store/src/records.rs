//! Typed records: the one place that knows, for each kind of record the control plane and the agents share, its key
//! (from the [`Keys`] layout), its Rust type and its encoding. Everything else reads and writes records through
//! [`Records`] (get, list, put, delete, compare-and-swap update, transaction operations) or decodes watched
//! key-values with [`Records::decode`], so no caller builds keys or JSON by hand.
//!
//! A kind is a zero-sized type implementing [`Kind`]: `Records::get::<Apps>(&(tenant, app))`,
//! `Records::list::<DesiredInstances>()`, `Records::put_op::<AppStatuses>(&id, &status)`.

use std::fmt::Debug;
use std::sync::Arc;

use fos_api::keys::KeyRef;
use fos_api::manifest::Object;
use fos_api::node::{NodeProbe, NodeStatus, PluginRecord};
use fos_api::wire::{AppRecord, AppStatus, EventRecord};
use fos_api::{ActualInstance, DesiredInstance, InstanceId, Keys, Metadata, Node, NodeInfo};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::typed::Versioned;
use crate::{Compare, KeyValue, LeaseId, Revision, Store, StoreError, Txn, TxnOp};

pub use fog05::{CatalogId, Fog05Catalog};
pub use images::ImageCopies;
pub use network::{Addresses, NetAddress, NodeNet, NodeNetworks, Segments, Vlans, Vnis};
pub use nodes::{Cordons, Migrations, NodeLosses};
pub use security::{
    Bootstrap, BootstrapRecord, BootstrapSecrets, SealedSecret, Secrets, TenantPolicies, Tokens, CLUSTER,
};

/// `(tenant, name)`: how tenant-scoped objects (applications, networks) are named.
pub type Scoped = (String, String);

/// `(node, instance)`: where an instance record lives.
pub type OnNode = (String, InstanceId);

/// One kind of record: its identity, its type, where it lives and how it is encoded.
pub trait Kind: Send + Sync + 'static {
    /// What names one record of this kind.
    type Id: Clone + Debug + Send + Sync;
    /// The record.
    type Value: Serialize + DeserializeOwned + Clone + Debug + Send + Sync;
    /// The kind's name in errors (`application record`).
    const NAME: &'static str;
    /// The key of record `id`.
    fn key(keys: &Keys, id: &Self::Id) -> String;
    /// A prefix holding every record of this kind (and possibly others, which [`Kind::parse`] refuses).
    fn prefix(keys: &Keys) -> String;
    /// The id of the record at `key`, when `key` is one of this kind's.
    fn parse(keys: &Keys, key: &str) -> Option<Self::Id>;
    /// Decodes a stored value.
    fn decode(_id: &Self::Id, bytes: &[u8]) -> Result<Self::Value, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Defines a record kind: its name, id, value, what it is called in errors, its key, the prefix holding all of its
/// records, and how an id is read back from a key: a [`KeyRef`] pattern (`parse:`) for the keys [`Keys::parse`]
/// names, or (`parse_rest:`) a function of the key's segments after the prefix, for keys under `system/`; such a
/// key is the kind's only when the id read from it builds the same key back.
macro_rules! kind {
    ($(#[$doc:meta])* $name:ident, $id:ty, $value:ty, $what:literal,
     key: |$k:ident, $i:ident| $key:expr, prefix: |$pk:ident| $prefix:expr, $($parse:tt)+) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl Kind for $name {
            type Id = $id;
            type Value = $value;
            const NAME: &'static str = $what;
            fn key($k: &Keys, $i: &Self::Id) -> String {
                $key
            }
            fn prefix($pk: &Keys) -> String {
                $prefix
            }
            kind!(@parse $($parse)+);
        }
    };
    (@parse parse: $pat:pat => $out:expr) => {
        fn parse(keys: &Keys, key: &str) -> Option<Self::Id> {
            match keys.parse(key)? {
                $pat => Some($out),
                _ => None,
            }
        }
    };
    (@parse parse_rest: |$rest:ident| $parse:expr) => {
        fn parse(keys: &Keys, key: &str) -> Option<Self::Id> {
            let $rest: Vec<&str> = key.strip_prefix(&Self::prefix(keys))?.split('/').collect();
            let id: Self::Id = $parse?;
            (Self::key(keys, &id) == key).then_some(id)
        }
    };
}

mod fog05;
mod images;
mod network;
mod nodes;
mod security;

kind!(
    /// `desired/apps/<tenant>/<app>`: an applied Application or standalone Entity ([`AppRecord`]).
    Apps, Scoped, AppRecord, "application record",
    key: |k, id| k.desired_app(&id.0, &id.1), prefix: |k| k.desired_apps_prefix(),
    parse: KeyRef::DesiredApp { tenant, app } => (tenant, app)
);

kind!(
    /// `actual/apps/<tenant>/<app>`: an application's aggregated status, written by the controller.
    AppStatuses, Scoped, AppStatus, "application status",
    key: |k, id| k.actual_app(&id.0, &id.1), prefix: |k| format!("{}apps/", k.actual()),
    parse: KeyRef::ActualApp { tenant, app } => (tenant, app)
);

kind!(
    /// `desired/nodes/<node>/instances/<id>`: where an instance runs and what it should be, written by the controller.
    DesiredInstances, OnNode, DesiredInstance, "desired instance",
    key: |k, id| k.desired_instance(&id.0, &id.1), prefix: |k| k.desired_nodes_prefix(),
    parse: KeyRef::DesiredInstance { node, id } => (node, id)
);

kind!(
    /// `actual/nodes/<node>/instances/<id>`: what the node's agent reports of an instance.
    ActualInstances, OnNode, ActualInstance, "actual instance",
    key: |k, id| k.actual_instance(&id.0, &id.1), prefix: |k| k.actual_nodes_prefix(),
    parse: KeyRef::ActualInstance { node, id } => (node, id)
);

kind!(
    /// `actual/heartbeats/<node>`: a node's heartbeat, on its agent's lease.
    NodeStatuses, String, NodeStatus, "node status",
    key: |k, node| k.node_status(node), prefix: |k| k.node_statuses_prefix(),
    parse: KeyRef::NodeStatus { node } => node
);

kind!(
    /// `actual/heartbeats/<node>` as a node's peers read it: only its probe address ([`NodeProbe`]). Read-only:
    /// the record is written as [`NodeStatuses`].
    NodeProbes, String, NodeProbe, "node probe address",
    key: |k, node| k.node_status(node), prefix: |k| k.node_statuses_prefix(),
    parse: KeyRef::NodeStatus { node } => node
);

kind!(
    /// `desired/networks/<tenant>/<net>`: an applied Network object.
    Networks, Scoped, Object, "network object",
    key: |k, id| k.desired_network(&id.0, &id.1), prefix: |k| k.desired_networks_prefix(),
    parse: KeyRef::DesiredNetwork { tenant, net } => (tenant, net)
);

kind!(
    /// `desired/images/<image>`: an applied Image object.
    Images, String, Object, "image object",
    key: |k, image| k.desired_image(image), prefix: |k| k.desired_images_prefix(),
    parse: KeyRef::DesiredImage { image } => image
);

kind!(
    /// `desired/nodes/<node>/plugins/<plugin>`: a Plugin object, one copy per node it configures.
    DesiredPlugins, Scoped, Object, "plugin object",
    key: |k, id| k.desired_node_plugin(&id.0, &id.1), prefix: |k| k.desired_nodes_prefix(),
    parse: KeyRef::DesiredPlugin { node, plugin } => (node, plugin)
);

kind!(
    /// `actual/nodes/<node>/plugins/<plugin>`: what a node's plugin reports ([`PluginRecord`]: ready, error, detail).
    ActualPlugins, Scoped, PluginRecord, "plugin record",
    key: |k, id| k.actual_node_plugin(&id.0, &id.1), prefix: |k| k.actual_nodes_prefix(),
    parse: KeyRef::ActualPlugin { node, plugin } => (node, plugin)
);

/// `actual/nodes/<node>/info`: what a node's agent discovered (a [`Node`]; a bare [`NodeInfo`] is read too). Its
/// status is the default until merged with the node's [`NodeStatuses`] record.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfos;

impl Kind for NodeInfos {
    type Id = String;
    type Value = Node;
    const NAME: &'static str = "node info";
    fn key(keys: &Keys, node: &String) -> String {
        keys.node_info(node)
    }
    fn prefix(keys: &Keys) -> String {
        keys.actual_nodes_prefix()
    }
    fn parse(keys: &Keys, key: &str) -> Option<String> {
        match keys.parse(key)? {
            KeyRef::NodeInfo { node } => Some(node),
            _ => None,
        }
    }
    fn decode(node: &String, bytes: &[u8]) -> Result<Node, serde_json::Error> {
        serde_json::from_slice::<Node>(bytes).or_else(|whole| match serde_json::from_slice::<NodeInfo>(bytes) {
            Ok(info) => Ok(Node { metadata: Metadata::named(node), spec: info, status: NodeStatus::default() }),
            Err(_) => Err(whole),
        })
    }
}

kind!(
    /// `system/events/<time>-<seq>`: the control plane's event log (ids sort by time).
    Events, String, EventRecord, "event",
    key: |k, id| format!("{}{id}", k.events_prefix()), prefix: |k| k.events_prefix(),
    parse_rest: |rest| match rest.as_slice() {
        [id] if !id.is_empty() => Some(id.to_string()),
        _ => None,
    }
);

/// A decoded record with its id.
pub type Entry<K> = (<K as Kind>::Id, Versioned<<K as Kind>::Value>);

/// How many conflicting writes [`Records::update`] absorbs before giving up.
pub const UPDATE_ATTEMPTS: usize = 8;

/// What an update decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// Write this record.
    Put(T),
    /// Delete the record.
    Delete,
    /// Leave it as it is.
    Keep,
}

/// Typed access to the records of one system in a store.
#[derive(Clone)]
pub struct Records {
    store: Arc<dyn Store>,
    keys: Keys,
}

fn codec(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Codec { key: key.to_string(), message: e.to_string() }
}

impl Records {
    /// The records of `keys`' system in `store`.
    pub fn new(store: Arc<dyn Store>, keys: Keys) -> Self {
        Records { store, keys }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The key of record `id` of kind `K`.
    pub fn key<K: Kind>(&self, id: &K::Id) -> String {
        K::key(&self.keys, id)
    }

    /// Encodes a record of kind `K` for `key`.
    pub fn encode<K: Kind>(key: &str, value: &K::Value) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| codec(key, format_args!("{}: {e}", K::NAME)))
    }

    /// The id of the record of kind `K` at `key`, when `key` is one of `K`'s (e.g. for a watched delete).
    pub fn parse<K: Kind>(&self, key: &str) -> Option<K::Id> {
        K::parse(&self.keys, key)
    }

    /// Decodes a key-value as a record of kind `K`: `None` when the key is not one of `K`'s, else the record or the
    /// codec error naming the key.
    pub fn decode<K: Kind>(&self, kv: &KeyValue) -> Option<Result<Entry<K>, StoreError>> {
        let id = K::parse(&self.keys, &kv.key)?;
        Some(self.decode_as::<K>(id, kv))
    }

    fn decode_as<K: Kind>(&self, id: K::Id, kv: &KeyValue) -> Result<Entry<K>, StoreError> {
        let value = K::decode(&id, &kv.value).map_err(|e| codec(&kv.key, format_args!("{}: {e}", K::NAME)))?;
        let versioned = Versioned {
            key: kv.key.clone(),
            value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
        };
        Ok((id, versioned))
    }

    /// Record `id` of kind `K`, if present.
    pub async fn get<K: Kind>(&self, id: &K::Id) -> Result<Option<Versioned<K::Value>>, StoreError> {
        let Some(kv) = self.store.get(&K::key(&self.keys, id)).await? else { return Ok(None) };
        Ok(Some(self.decode_as::<K>(id.clone(), &kv)?.1))
    }

    /// Every record of kind `K`, in key order, and the revision they were read at. An undecodable record is
    /// skipped with a warning (one bad record must not hide the others).
    pub async fn list<K: Kind>(&self) -> Result<(Vec<Entry<K>>, Revision), StoreError> {
        self.list_in::<K>(&K::prefix(&self.keys)).await
    }

    /// The records of kind `K` under `prefix` (e.g. one node's instances), as [`Records::list`].
    pub async fn list_in<K: Kind>(&self, prefix: &str) -> Result<(Vec<Entry<K>>, Revision), StoreError> {
        let list = self.store.list(prefix).await?;
        let mut out = Vec::new();
        for kv in &list.kvs {
            match self.decode::<K>(kv) {
                Some(Ok(entry)) => out.push(entry),
                Some(Err(e)) => tracing::warn!("skipping an unreadable record: {e}"),
                None => {}
            }
        }
        Ok((out, list.revision))
    }

    /// Writes record `id` (on `lease` when given); returns the revision.
    pub async fn put<K: Kind>(
        &self,
        id: &K::Id,
        value: &K::Value,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        let key = K::key(&self.keys, id);
        let bytes = Self::encode::<K>(&key, value)?;
        self.store.put(&key, bytes, lease).await
    }

    /// Deletes record `id`; whether it existed.
    pub async fn delete<K: Kind>(&self, id: &K::Id) -> Result<bool, StoreError> {
        Ok(self.store.delete(&K::key(&self.keys, id)).await?.1)
    }

    /// The transaction operation writing record `id`.
    pub fn put_op<K: Kind>(&self, id: &K::Id, value: &K::Value) -> Result<TxnOp, StoreError> {
        let key = K::key(&self.keys, id);
        Ok(TxnOp::Put { value: Self::encode::<K>(&key, value)?, key, lease: None })
    }

    /// The transaction operation deleting record `id`.
    pub fn delete_op<K: Kind>(&self, id: &K::Id) -> TxnOp {
        TxnOp::Delete { key: K::key(&self.keys, id) }
    }

    /// The transaction operation reading record `id` (decode what it returns with [`Records::decode`]).
    pub fn get_op<K: Kind>(&self, id: &K::Id) -> TxnOp {
        TxnOp::Get { key: K::key(&self.keys, id) }
    }

    /// The comparison "record `id` does not exist" (to create it only if absent).
    pub fn absent<K: Kind>(&self, id: &K::Id) -> Compare {
        Compare::absent(K::key(&self.keys, id))
    }

    /// The comparison "record `id` is still at `mod_revision`" (0: still absent).
    pub fn unchanged<K: Kind>(&self, id: &K::Id, mod_revision: Revision) -> Compare {
        Compare::mod_revision(K::key(&self.keys, id), mod_revision)
    }

    /// Read-modify-write of record `id` with compare-and-swap: `change` gets the current record (or `None`) and
    /// decides; when another writer changed it in between, `change` runs again on the new record, up to
    /// [`UPDATE_ATTEMPTS`] times. Returns the record as left (`None`: absent) and the revision after the write.
    pub async fn update<K, E, F>(&self, id: &K::Id, mut change: F) -> Result<(Option<K::Value>, Revision), E>
    where
        K: Kind,
        E: From<StoreError>,
        F: FnMut(Option<&K::Value>) -> Result<Change<K::Value>, E>,
    {
        let key = K::key(&self.keys, id);
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get::<K>(id).await?;
            let mod_revision = current.as_ref().map_or(0, |v| v.mod_revision);
            let (op, after) = match change(current.as_ref().map(|v| &v.value))? {
                Change::Put(value) => (self.put_op::<K>(id, &value)?, Some(value)),
                Change::Delete => (TxnOp::Delete { key: key.clone() }, None),
                Change::Keep => return Ok((current.map(|v| v.value), mod_revision)),
            };
            let txn =
                Txn { compare: vec![Compare::mod_revision(&key, mod_revision)], success: vec![op], failure: vec![] };
            let result = self.store.txn(txn).await?;
            if result.succeeded {
                return Ok((after, result.revision));
            }
            tracing::debug!(key, "update conflicted, retrying");
        }
        Err(StoreError::Conflict(format!("{} {key} kept changing during the update", K::NAME)).into())
    }

    /// Every node: its info record merged with its status record (a node without a live status is not ready) and the
    /// control plane's marks (cordoned, draining, lost).
    pub async fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        let (infos, (statuses, _), (cordons, _), (losses, _)) = tokio::try_join!(
            self.list::<NodeInfos>(),
            self.list::<NodeStatuses>(),
            self.list::<Cordons>(),
            self.list::<NodeLosses>()
        )?;
        let cordons: std::collections::BTreeMap<_, _> = cordons.into_iter().collect();
        let losses: std::collections::BTreeMap<_, _> = losses.into_iter().collect();
        let nodes: Vec<(String, Node)> = infos.0.into_iter().map(|(name, v)| (name, v.value)).collect();
        let mut statuses: std::collections::BTreeMap<_, _> =
            statuses.into_iter().map(|(name, v)| (name, v.value)).collect();
        Ok(nodes
            .into_iter()
            .map(|(name, node)| {
                let mut node = with_status(node, statuses.remove(&name));
                if let Some(c) = cordons.get(&name) {
                    node.status.unschedulable = true;
                    node.status.draining = c.value.drain;
                }
                if !node.status.ready {
                    node.status.lost_since = losses.get(&name).and_then(|l| l.value.lost_at);
                }
                node
            })
            .collect())
    }
}

/// A node's info record with its status record (none: the node is not ready).
pub fn with_status(mut node: Node, status: Option<NodeStatus>) -> Node {
    match status {
        Some(s) => node.status = s,
        None => node.status.ready = false,
    }
    node
}
