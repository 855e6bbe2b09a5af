//! The cluster as the control plane sees it: applications, desired and actual instances, nodes (info plus heartbeat
//! status), application statuses, Network objects and address allocations, decoded through the typed records, and beside them the
//! scheduler's snapshot (nodes and what every placed instance holds), kept in step so that placing one application
//! does not rebuild it. The API reads one with
//! [`ClusterView::read`]; the controller keeps one up to date from its watch ([`crate::reconcile::cache`]) with
//! [`ClusterView::apply`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use fos_api::cluster::{Cordon, NodeLoss};
use fos_api::keys::KeyRef;
use fos_api::manifest::{NetworkSpec, Object};
use fos_api::migration::Migration;
use fos_api::network::{AddressHolder, NetworkName};
use fos_api::node::{NodeStatus, CRIU_PLUGIN};
use fos_api::wire::{AppRecord, AppStatus};
use fos_api::{ActualInstance, DesiredInstance, InstanceId, Node};
use fos_scheduler::{Allocation, ClusterSnapshot, SnapshotError};
use fos_store::records::{
    with_status, ActualInstances, ActualPlugins, Addresses, AppStatuses, Apps, Cordons, DesiredInstances, Kind,
    Migrations, NodeInfos, NodeLosses, NodeStatuses, Scoped,
};
use fos_store::{KeyValue, Records, Revision, StoreError};

/// `(tenant, app)`.
pub type AppKey = Scoped;

/// A stored application with the revision it was last changed at.
#[derive(Debug, Clone)]
pub struct StoredApp {
    /// The record.
    pub record: AppRecord,
    /// The key's mod revision (for compare-and-swap).
    pub mod_revision: Revision,
}

/// The cluster as read from the store.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Applications by `(tenant, app)`.
    pub apps: BTreeMap<AppKey, StoredApp>,
    /// Desired instance records (sorted by tenant, application, component, replica).
    pub desired: BTreeMap<InstanceId, DesiredInstance>,
    /// Actual instance records.
    pub actual: BTreeMap<InstanceId, ActualInstance>,
    /// Nodes by name, with their status; a node without a live heartbeat record is not ready.
    pub nodes: BTreeMap<String, Node>,
    /// Aggregated application statuses.
    pub statuses: BTreeMap<AppKey, AppStatus>,
    /// Network objects by `(tenant, network)`.
    pub networks: BTreeMap<Scoped, NetworkSpec>,
    /// Address allocations (`system/ipam/...`): who holds each address of each network.
    pub addresses: BTreeMap<(NetworkName, Ipv4Addr), AddressHolder>,
    /// Cordoned (and draining) nodes.
    pub cordons: BTreeMap<String, Cordon>,
    /// Nodes declared lost.
    pub losses: BTreeMap<String, NodeLoss>,
    /// Nodes whose CRIU works (their `criu` plugin record says ready): a native process migrates live between two.
    pub live_capable: BTreeSet<String>,
    /// The last migration of each instance that has one (`system/migrations/<instance>`).
    pub migrations: BTreeMap<InstanceId, Migration>,
    /// Since when (by this process's clock) each node known without a live heartbeat has been seen so: when its
    /// status record went away, or when this view first saw it without one.
    pub not_ready_since: BTreeMap<String, DateTime<Utc>>,
    /// Node info records waiting for their node's status (and statuses waiting for their info), by node.
    node_statuses: BTreeMap<String, NodeStatus>,
    /// What the scheduler sees: the nodes and what every desired instance holds, kept in step with `nodes` and
    /// `desired` (or why it cannot be built).
    snapshot: Result<ClusterSnapshot, SnapshotError>,
    /// A node changed in a way placement looks at: the snapshot is rebuilt before it is used next.
    nodes_changed: bool,
}

impl Default for ClusterView {
    fn default() -> Self {
        ClusterView {
            apps: BTreeMap::new(),
            desired: BTreeMap::new(),
            actual: BTreeMap::new(),
            nodes: BTreeMap::new(),
            statuses: BTreeMap::new(),
            networks: BTreeMap::new(),
            addresses: BTreeMap::new(),
            cordons: BTreeMap::new(),
            losses: BTreeMap::new(),
            live_capable: BTreeSet::new(),
            migrations: BTreeMap::new(),
            not_ready_since: BTreeMap::new(),
            node_statuses: BTreeMap::new(),
            snapshot: ClusterSnapshot::new([], []),
            nodes_changed: false,
        }
    }
}

/// What a change to the view touched, for deciding who must look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// An application record.
    App(AppKey),
    /// An application's status.
    Status(AppKey),
    /// A desired instance record.
    Desired(InstanceId),
    /// An actual instance record.
    Actual(InstanceId),
    /// A node's info or status; `placement` is false when only the heartbeat time or round-trip times moved.
    Node {
        /// The node.
        name: String,
        /// Its readiness, cordon, address or hardware changed (or it appeared or went away).
        placement: bool,
    },
    /// A Network object.
    Network(Scoped),
    /// A node's cordon or loss record (the node named).
    NodeMark(String),
    /// An instance's migration record.
    Migration(InstanceId),
    /// A key the view does not hold.
    Nothing,
}

impl ClusterView {
    /// Reads everything the control plane looks at.
    pub async fn read(records: &Records) -> Result<(ClusterView, Revision), StoreError> {
        let (store, keys) = (records.store(), records.keys());
        let (p_apps, p_desired, p_actual) = (keys.desired_apps_prefix(), keys.desired_nodes_prefix(), keys.actual());
        let (p_networks, p_ipam, p_marks) = (keys.desired_networks_prefix(), keys.ipam_prefix(), Cordons::prefix(keys));
        let p_migrations = Migrations::prefix(keys);
        let (apps, desired, actual, networks, ipam, marks, migrations) = tokio::try_join!(
            store.list(&p_apps),
            store.list(&p_desired),
            store.list(&p_actual),
            store.list(&p_networks),
            store.list(&p_ipam),
            store.list(&p_marks),
            store.list(&p_migrations)
        )?;
        let revisions = [
            apps.revision,
            desired.revision,
            actual.revision,
            networks.revision,
            ipam.revision,
            marks.revision,
            migrations.revision,
        ];
        let revision = revisions.into_iter().min();
        let mut view = ClusterView::default();
        let all = apps.kvs.iter().chain(&desired.kvs).chain(&actual.kvs).chain(&networks.kvs);
        for kv in all.chain(&ipam.kvs).chain(&marks.kvs).chain(&migrations.kvs) {
            view.put(records, kv);
        }
        view.refresh_snapshot();
        Ok((view, revision.unwrap_or_default()))
    }

    /// Applies a put of `kv` (decoded with the typed records); an unreadable record is left out with a warning.
    pub fn put(&mut self, records: &Records, kv: &KeyValue) -> Touched {
        if let Some(decoded) = records.decode::<Addresses>(kv) {
            match decoded {
                Ok((id, holder)) => {
                    self.addresses.insert(id, holder.value);
                }
                Err(e) => tracing::warn!("ignoring an unreadable address allocation: {e}"),
            }
            return Touched::Nothing;
        }
        if let Some(node) = records.parse::<Cordons>(&kv.key) {
            match records.decode::<Cordons>(kv) {
                Some(Ok((_, c))) => self.cordons.insert(node.clone(), c.value),
                _ => self.cordons.remove(&node),
            };
            return self.mark_changed(node);
        }
        if let Some(id) = records.parse::<Migrations>(&kv.key) {
            match records.decode::<Migrations>(kv) {
                Some(Ok((_, m))) => self.migrations.insert(id.clone(), m.value),
                _ => self.migrations.remove(&id),
            };
            return Touched::Migration(id);
        }
        if let Some((node, plugin)) = records.parse::<ActualPlugins>(&kv.key) {
            if plugin == CRIU_PLUGIN {
                match records.decode::<ActualPlugins>(kv) {
                    Some(Ok((_, p))) if p.value.ready => self.live_capable.insert(node),
                    _ => self.live_capable.remove(&node),
                };
            }
            return Touched::Nothing;
        }
        if let Some(node) = records.parse::<NodeLosses>(&kv.key) {
            match records.decode::<NodeLosses>(kv) {
                Some(Ok((_, l))) => self.losses.insert(node.clone(), l.value),
                _ => self.losses.remove(&node),
            };
            return self.mark_changed(node);
        }
        let Some(what) = records.keys().parse(&kv.key) else { return Touched::Nothing };
        match decode(records, kv, &what) {
            Ok(decoded) => decoded.apply_to(self),
            Err(e) => {
                tracing::warn!("ignoring an unreadable record: {e}");
                self.remove(what)
            }
        }
    }

    /// Applies a delete of `key`.
    pub fn delete(&mut self, records: &Records, key: &str) -> Touched {
        if let Some(id) = records.parse::<Addresses>(key) {
            self.addresses.remove(&id);
            return Touched::Nothing;
        }
        if let Some(node) = records.parse::<Cordons>(key) {
            self.cordons.remove(&node);
            return self.mark_changed(node);
        }
        if let Some(node) = records.parse::<NodeLosses>(key) {
            self.losses.remove(&node);
            return self.mark_changed(node);
        }
        if let Some((node, plugin)) = records.parse::<ActualPlugins>(key) {
            if plugin == CRIU_PLUGIN {
                self.live_capable.remove(&node);
            }
            return Touched::Nothing;
        }
        if let Some(id) = records.parse::<Migrations>(key) {
            self.migrations.remove(&id);
            return Touched::Migration(id);
        }
        match records.keys().parse(key) {
            Some(what) => self.remove(what),
            None => Touched::Nothing,
        }
    }

    fn remove(&mut self, what: KeyRef) -> Touched {
        match what {
            KeyRef::DesiredApp { tenant, app } => {
                let key = (tenant, app);
                self.apps.remove(&key);
                Touched::App(key)
            }
            KeyRef::ActualApp { tenant, app } => {
                let key = (tenant, app);
                self.statuses.remove(&key);
                Touched::Status(key)
            }
            KeyRef::DesiredInstance { id, .. } => {
                self.remove_desired(&id);
                Touched::Desired(id)
            }
            KeyRef::ActualInstance { id, node } => {
                // Only the record of that node: another node's copy of the same instance stays.
                if self.actual.get(&id).is_some_and(|a| a.node == node) {
                    self.actual.remove(&id);
                }
                Touched::Actual(id)
            }
            KeyRef::NodeInfo { node } => {
                let placement = self.nodes.remove(&node).is_some();
                self.nodes_changed |= placement;
                Touched::Node { name: node, placement }
            }
            KeyRef::NodeStatus { node } => {
                self.node_statuses.remove(&node);
                self.not_ready_since.entry(node.clone()).or_insert_with(Utc::now);
                let placement = match self.nodes.get_mut(&node) {
                    Some(n) => std::mem::replace(&mut n.status.ready, false),
                    None => false,
                };
                self.decorate(&node);
                self.nodes_changed |= placement;
                Touched::Node { name: node, placement }
            }
            KeyRef::DesiredNetwork { tenant, net } => {
                let key = (tenant, net);
                self.networks.remove(&key);
                Touched::Network(key)
            }
            _ => Touched::Nothing,
        }
    }

    /// Sets or clears a node's lost mark (the controller's own write).
    pub fn set_loss(&mut self, node: &str, loss: Option<NodeLoss>) {
        match loss {
            Some(l) => self.losses.insert(node.to_string(), l),
            None => self.losses.remove(node),
        };
        self.mark_changed(node.to_string());
    }

    /// Re-applies the control plane's marks (cordon, drain, lost) to a node's status after a change of them.
    fn mark_changed(&mut self, node: String) -> Touched {
        let placement = self.nodes.contains_key(&node);
        self.decorate(&node);
        self.nodes_changed |= placement;
        Touched::NodeMark(node)
    }

    /// Puts the control plane's marks into `node`'s status: cordoned or draining nodes are unschedulable.
    fn decorate(&mut self, node: &str) {
        let cordon = self.cordons.get(node);
        let (cordoned, draining) = (cordon.is_some(), cordon.is_some_and(|c| c.drain));
        let lost = self.losses.get(node).and_then(|l| l.lost_at);
        let Some(n) = self.nodes.get_mut(node) else { return };
        let agent = self.node_statuses.get(node).is_some_and(|s| s.unschedulable);
        n.status.unschedulable = agent || cordoned;
        n.status.draining = draining;
        n.status.lost_since = if n.status.ready { None } else { lost };
    }

    /// Whether `node` is known and has no live heartbeat (what its instances do is unknown).
    pub fn node_down(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| !n.status.ready)
    }

    /// Whether `node` has a live heartbeat (an unknown node has none).
    pub fn node_ready(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.status.ready)
    }

    /// Whether `node` was declared lost (and has not come back).
    pub fn node_lost(&self, node: &str) -> bool {
        self.losses.get(node).is_some_and(|l| l.lost_at.is_some()) && !self.node_ready(node)
    }

    /// Writes a desired record into the view (and what it holds into the snapshot).
    pub fn put_desired(&mut self, d: DesiredInstance) {
        if let Ok(s) = &mut self.snapshot {
            s.add_allocation(Allocation::from_desired(&d));
        }
        self.desired.insert(d.id.clone(), d);
    }

    /// Removes a desired record from the view (and frees what it held in the snapshot).
    pub fn remove_desired(&mut self, id: &InstanceId) {
        if let Ok(s) = &mut self.snapshot {
            s.release(id);
        }
        self.desired.remove(id);
    }

    /// Rebuilds the snapshot when a node changed in a way placement looks at since it was built. Round-trip times
    /// and heartbeat times alone do not count; `force` rebuilds anyway (a resync takes them in).
    pub fn refresh_snapshot_if(&mut self, force: bool) {
        if self.nodes_changed || force {
            self.snapshot =
                ClusterSnapshot::new(self.nodes.values().cloned(), self.desired.values().map(Allocation::from_desired));
            self.nodes_changed = false;
        }
    }

    /// Rebuilds the snapshot from the nodes and desired records.
    pub fn refresh_snapshot(&mut self) {
        self.refresh_snapshot_if(true);
    }

    /// What the scheduler sees: the nodes and what every desired instance holds.
    pub fn snapshot(&self) -> Result<&ClusterSnapshot, &SnapshotError> {
        self.snapshot.as_ref()
    }

    /// The ids of the instances (desired or actual) of `tenant`/`app`, in order.
    pub fn instances_of(&self, tenant: &str, app: &str) -> Vec<InstanceId> {
        let from = InstanceId::new(tenant, app, "", 0);
        let in_app = |id: &&InstanceId| id.tenant == tenant && id.app == app;
        let mut ids: Vec<InstanceId> =
            self.desired.range(&from..).map(|(id, _)| id).take_while(in_app).cloned().collect();
        ids.extend(self.actual.range(&from..).map(|(id, _)| id).take_while(in_app).cloned());
        ids.sort();
        ids.dedup();
        ids
    }

    /// The desired records of `tenant`/`app`.
    pub fn desired_of<'a>(&'a self, tenant: &'a str, app: &'a str) -> impl Iterator<Item = &'a DesiredInstance> + 'a {
        let from = InstanceId::new(tenant, app, "", 0);
        self.desired.range(from..).map(|(_, d)| d).take_while(move |d| d.id.tenant == tenant && d.id.app == app)
    }
}

/// A decoded record, ready to go into a view.
enum Decoded {
    App(AppKey, Box<StoredApp>),
    Status(AppKey, Box<AppStatus>),
    Desired(Box<DesiredInstance>),
    Actual(Box<ActualInstance>),
    NodeInfo(String, Box<Node>),
    NodeStatus(String, NodeStatus),
    Network(Scoped, NetworkSpec),
    Other,
}

impl Decoded {
    fn apply_to(self, view: &mut ClusterView) -> Touched {
        match self {
            Decoded::App(key, app) => {
                view.apps.insert(key.clone(), *app);
                Touched::App(key)
            }
            Decoded::Status(key, status) => {
                view.statuses.insert(key.clone(), *status);
                Touched::Status(key)
            }
            Decoded::Desired(d) => {
                let id = d.id.clone();
                view.put_desired(*d);
                Touched::Desired(id)
            }
            Decoded::Actual(a) => {
                let id = a.id.clone();
                // Two nodes may report one instance for a moment (a migration's source leaving as its destination
                // starts): the record of the node the instance is desired on is the one kept.
                let on_desired = |node: &str| view.desired.get(&id).is_some_and(|d| d.node == node);
                let keep_old = view.actual.get(&id).is_some_and(|old| old.node != a.node && on_desired(&old.node));
                if !keep_old {
                    view.actual.insert(id.clone(), *a);
                }
                Touched::Actual(id)
            }
            Decoded::NodeInfo(name, node) => {
                let node = with_status(*node, view.node_statuses.get(&name).cloned());
                let placement = view.nodes.get(&name).is_none_or(|old| old.spec != node.spec);
                if !node.status.ready {
                    view.not_ready_since.entry(name.clone()).or_insert_with(Utc::now);
                }
                view.nodes.insert(name.clone(), node);
                view.decorate(&name);
                view.nodes_changed |= placement;
                Touched::Node { name, placement }
            }
            Decoded::NodeStatus(name, status) => {
                view.not_ready_since.remove(&name);
                let placement = match view.nodes.get_mut(&name) {
                    Some(node) => {
                        let old = std::mem::replace(&mut node.status, status.clone());
                        old.ready != status.ready
                            || old.unschedulable != status.unschedulable
                            || old.address != status.address
                    }
                    None => false,
                };
                view.node_statuses.insert(name.clone(), status);
                view.decorate(&name);
                view.nodes_changed |= placement;
                Touched::Node { name, placement }
            }
            Decoded::Network(key, spec) => {
                view.networks.insert(key.clone(), spec);
                Touched::Network(key)
            }
            Decoded::Other => Touched::Nothing,
        }
    }
}

fn decode(records: &Records, kv: &KeyValue, what: &KeyRef) -> Result<Decoded, StoreError> {
    fn one<K: Kind>(records: &Records, kv: &KeyValue) -> Result<(K::Id, K::Value, Revision), StoreError> {
        match records.decode::<K>(kv) {
            Some(Ok((id, v))) => Ok((id, v.value, v.mod_revision)),
            Some(Err(e)) => Err(e),
            None => Err(StoreError::Codec { key: kv.key.clone(), message: format!("not a {}", K::NAME) }),
        }
    }
    Ok(match what {
        KeyRef::DesiredApp { .. } => {
            let (key, record, mod_revision) = one::<Apps>(records, kv)?;
            Decoded::App(key, Box::new(StoredApp { record, mod_revision }))
        }
        KeyRef::ActualApp { .. } => {
            let (key, status, _) = one::<AppStatuses>(records, kv)?;
            Decoded::Status(key, Box::new(status))
        }
        KeyRef::DesiredInstance { .. } => Decoded::Desired(Box::new(one::<DesiredInstances>(records, kv)?.1)),
        KeyRef::ActualInstance { .. } => Decoded::Actual(Box::new(one::<ActualInstances>(records, kv)?.1)),
        KeyRef::NodeInfo { .. } => {
            let (name, node, _) = one::<NodeInfos>(records, kv)?;
            Decoded::NodeInfo(name, Box::new(node))
        }
        KeyRef::NodeStatus { .. } => {
            let (name, status, _) = one::<NodeStatuses>(records, kv)?;
            Decoded::NodeStatus(name, status)
        }
        KeyRef::DesiredNetwork { .. } => {
            let (key, object, _) = one::<fos_store::records::Networks>(records, kv)?;
            match object {
                Object::Network(n) => Decoded::Network(key, n.spec),
                other => {
                    return Err(StoreError::Codec {
                        key: kv.key.clone(),
                        message: format!("a {} where a Network belongs", other.kind()),
                    })
                }
            }
        }
        _ => Decoded::Other,
    })
}
