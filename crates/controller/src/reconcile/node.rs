//! The node reconciler: a node's lifecycle (Ready → NotReady → Lost) and drains.
//!
//! - **NotReady.** A node whose heartbeat record is gone (its lease expired) is NotReady; its instances count as
//!   Unknown (neither running nor ready) in their applications' statuses.
//! - **Lost.** Once the record has been gone for `--node-lost-after` minus the lease TTL (so at the earliest
//!   `--node-lost-after` after the node's last renewal, when it has fenced its instances), the node is marked lost
//!   (`system/nodes/<node>/lost`) and the desired and actual records of its instances are removed, except those of
//!   components with `onNodeLoss: keep`; the application reconciler then places them again elsewhere, in `need`
//!   order. The addresses the node held for itself (a network's gateway) or reserved for those instances are
//!   released; its network records expire with its lease, and its peers remove their forwarding entries to it. When
//!   the node's heartbeat returns, the mark goes; the node tears down the copies it no longer has desired records
//!   for.
//! - **Drain.** A node cordoned with `drain` has its instances moved off (migrated when their entity says
//!   `migration: cold|live`, else by stop-and-place-again): dependents before
//!   what they need (reverse `need` order), at most `maxUnavailable` unavailable instances per component at a time.
//!   An instance is placed again only once its copy on the drained node is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fos_api::cluster::{NodeLoss, NodeTiming};
use fos_api::graph::NeedGraph;
use fos_api::manifest::{EntityKind, MigrationKind, OnNodeLoss};
use fos_api::migration::{Migration, MigrationMode, MigrationPhase};
use fos_api::InstanceId;

use super::app::status::running_ready;
use super::{Actions, Event, Guard, Reconciler, Write};
use crate::view::{ClusterView, Touched};

/// How often a drain looks again while instances are moving.
const DRAIN_POLL: Duration = Duration::from_millis(300);

/// The reconciler of nodes.
pub struct NodeReconciler {
    timing: NodeTiming,
}

impl NodeReconciler {
    /// A reconciler declaring nodes lost with `timing`.
    pub fn new(timing: NodeTiming) -> Self {
        NodeReconciler { timing }
    }
}

impl Reconciler for NodeReconciler {
    type Key = String;

    fn name(&self) -> &'static str {
        "nodes"
    }

    fn wakes(&self, touched: &Touched, _view: &ClusterView) -> Vec<String> {
        match touched {
            Touched::Node { name, placement: true } | Touched::NodeMark(name) => vec![name.clone()],
            _ => Vec::new(),
        }
    }

    fn all(&self, view: &ClusterView) -> Vec<String> {
        let mut all: BTreeSet<String> = view.nodes.keys().cloned().collect();
        all.extend(view.losses.keys().cloned());
        all.extend(view.cordons.keys().cloned());
        all.into_iter().collect()
    }

    fn reconcile(&self, node: &String, view: &ClusterView, now: DateTime<Utc>) -> Actions {
        let mut out = Actions::default();
        if view.node_ready(node) || !view.nodes.contains_key(node) {
            if view.losses.contains_key(node) {
                tracing::info!(node, "node is back: no longer lost");
                out.writes.push(Write::DeleteLoss(node.clone()));
            }
        } else {
            let recorded = view.losses.get(node);
            let since = recorded.map(|l| l.since).or_else(|| view.not_ready_since.get(node).copied()).unwrap_or(now);
            let lost_at = since + chrono::Duration::from_std(self.timing.lost_after_expiry()).unwrap_or_default();
            if now < lost_at {
                if recorded.is_none() {
                    tracing::info!(node, "node not ready: no heartbeat");
                    out.writes.push(Write::PutLoss(node.clone(), NodeLoss { since, lost_at: None }));
                }
                out.requeue_after = Some((lost_at - now).to_std().unwrap_or_default() + Duration::from_millis(10));
                return out;
            }
            forget_instances(view, node, &mut out);
            if recorded.is_none_or(|l| l.lost_at.is_none()) {
                // Once, with the mark written last: a commit cut short is done again by the next pass.
                release_holds(view, node, &mut out);
                tracing::warn!(node, "node lost: no heartbeat for {:?}", self.timing.lost_after);
                out.writes.push(Write::PutLoss(node.clone(), NodeLoss { since, lost_at: Some(now) }));
            }
        }
        if view.cordons.get(node).is_some_and(|c| c.drain) {
            drain(view, node, now, &mut out);
        }
        out
    }
}

/// Removes the records of a lost node's instances (all but `onNodeLoss: keep`), so they are placed again.
fn forget_instances(view: &ClusterView, node: &str, out: &mut Actions) {
    let keep = |id: &InstanceId| view.desired.get(id).is_some_and(|d| d.on_node_loss == OnNodeLoss::Keep);
    for d in view.desired.values().filter(|d| d.node == node) {
        if d.on_node_loss == OnNodeLoss::Keep {
            continue;
        }
        let app = (d.id.tenant.clone(), d.id.app.clone());
        let message = format!("{} was on lost node {node}: placing it again", d.id.short());
        out.events.push(Event::new(&app, "NodeLost", message));
        out.writes.push(Write::DeleteDesired { node: node.to_string(), id: d.id.clone() });
    }
    for a in view.actual.values().filter(|a| a.node == node) {
        if !keep(&a.id) {
            out.writes.push(Write::DeleteActual { node: node.to_string(), id: a.id.clone() });
        }
    }
}

/// Releases, when a node is declared lost, the addresses it held for itself (a network's gateway, which another node
/// then takes over with its DHCP server) and those its agent reserved for instances that are placed again, guarded by
/// the node still being gone, so a release never races the node bringing the same network up again. (Once placed
/// again, an instance's hold names its new node, which the lost node can no longer release.) Addresses the control plane
/// allocated at placement stay with their instance wherever it runs next; the node's own network records expire with
/// its heartbeat lease, and its peers then remove its forwarding entries.
fn release_holds(view: &ClusterView, node: &str, out: &mut Actions) {
    let kept: BTreeSet<String> =
        view.desired.values().filter(|d| d.on_node_loss == OnNodeLoss::Keep).map(|d| d.id.to_string()).collect();
    let held = view.addresses.iter().filter(|(_, h)| h.node == node).filter(|(_, h)| match &h.instance {
        None => true,
        Some(id) => !h.placed && !kept.contains(id),
    });
    let releases: Vec<Write> =
        held.map(|((network, ip), _)| Write::ReleaseAddress { network: network.clone(), ip: *ip }).collect();
    if !releases.is_empty() {
        out.guards.push(Guard::NodeGone(node.to_string()));
        out.writes.extend(releases);
    }
}

/// A drain's migration of `d` off its node (the destination left to the application reconciler's scheduler): live
/// when its entity says `migration: live` and it is a VM (moved by libvirt), or a native process or a container on
/// a node whose CRIU works (cold again if the destination's does not: see `reconcile/app/migrate.rs`), cold otherwise.
fn drain_migration(view: &ClusterView, d: &fos_api::DesiredInstance, now: DateTime<Utc>) -> Migration {
    let live = d.entity.migration_kind() == MigrationKind::Live
        && match d.entity.kind {
            EntityKind::Vm => true,
            EntityKind::Native | EntityKind::Container => view.live_capable.contains(&d.node),
        };
    Migration {
        id: uuid::Uuid::new_v4().to_string(),
        instance: d.id.clone(),
        source: d.node.clone(),
        destination: String::new(),
        mode: if live { MigrationMode::Live } else { MigrationMode::Cold },
        phase: MigrationPhase::Preparing,
        from_epoch: d.epoch.clone(),
        epoch: uuid::Uuid::new_v4().to_string(),
        bytes_moved: 0,
        bytes_total: 0,
        abort: false,
        message: None,
        requested_by: "drain".into(),
        started: now,
        stopped_at: None,
        finished: None,
        ticket: None,
    }
}

/// Moves instances off a draining node: those no instance on the node depends on, within `maxUnavailable`; an
/// instance whose entity says `migration: cold|live` is migrated with its volumes (once; placed again if that
/// fails), the others are stopped and placed again.
fn drain(view: &ClusterView, node: &str, now: DateTime<Utc>, out: &mut Actions) {
    let on_node: Vec<&InstanceId> = view.desired.values().filter(|d| d.node == node).map(|d| &d.id).collect();
    let left = on_node.len() + view.actual.values().filter(|a| a.node == node).count();
    let mut by_app: BTreeMap<(String, String), Vec<&InstanceId>> = BTreeMap::new();
    for id in on_node {
        by_app.entry((id.tenant.clone(), id.app.clone())).or_default().push(id);
    }
    for (key, ids) in by_app {
        let Some(app) = view.apps.get(&key).and_then(|a| a.record.object.as_application()) else { continue };
        let spec = &app.spec;
        let graph = NeedGraph::build(spec);
        // Components with a copy still on the node (desired or not yet stopped).
        let here: BTreeSet<&str> = view
            .instances_of(&key.0, &key.1)
            .iter()
            .filter(|id| {
                view.desired.get(*id).is_some_and(|d| d.node == node)
                    || view.actual.get(*id).is_some_and(|a| a.node == node)
            })
            .filter_map(|id| spec.component(&id.component).map(|c| c.name.as_str()))
            .collect();
        let mut unavailable: BTreeMap<&str, u32> = BTreeMap::new();
        for c in &spec.components {
            let down = (0..c.replicas)
                .filter(|&r| {
                    let id = InstanceId::new(&key.0, &key.1, &c.name, r);
                    !running_ready(view.desired.get(&id), view.actual.get(&id)).1
                })
                .count();
            unavailable.insert(c.name.as_str(), down as u32);
        }
        for id in ids {
            let Some((index, c)) = spec.components.iter().enumerate().find(|(_, c)| c.name == id.component) else {
                continue;
            };
            let blocked = graph.dependents(index).iter().any(|&d| here.contains(spec.components[d].name.as_str()));
            let down = unavailable.entry(c.name.as_str()).or_default();
            let ready = running_ready(view.desired.get(id), view.actual.get(id)).1;
            if blocked || (ready && *down >= c.max_unavailable) {
                continue;
            }
            if ready {
                *down += 1;
            }
            let Some(d) = view.desired.get(id) else { continue };
            let last = view.migrations.get(id).filter(|m| m.from_epoch == d.epoch);
            if last.is_some_and(|m| !m.phase.is_final()) {
                continue; // moving already
            }
            let migrates = matches!(d.entity.migration, Some(MigrationKind::Cold | MigrationKind::Live));
            if migrates && last.is_none() {
                // Its entity may move with its volumes: migrated (the application reconciler picks the node).
                out.events.push(Event::new(&key, "Draining", format!("migrating {} off {node}", id.short())));
                out.writes.push(Write::PutMigration(Box::new(drain_migration(view, d, now))));
                continue;
            }
            out.events.push(Event::new(&key, "Draining", format!("moving {} off {node}", id.short())));
            out.writes.push(Write::DeleteDesired { node: node.to_string(), id: id.clone() });
        }
    }
    if left > 0 {
        out.requeue_after = Some(DRAIN_POLL);
    }
}

#[cfg(test)]
mod tests {
    use fos_api::network::{AddressHolder, NetworkName};
    use fos_api::record::DesiredInstance;
    use fos_api::{EntitySpec, Node};

    use super::*;

    fn timing() -> NodeTiming {
        NodeTiming::derive(Duration::from_secs(6), None).expect("timing")
    }

    fn node(name: &str, ready: bool) -> Node {
        let yaml = format!(
            "metadata: {{name: {name}}}\nspec: {{arch: x86_64, os: linux, \
             cpu: {{count: 2}}, memory: 1Gi, disk: 10Gi}}\nstatus: {{ready: {ready}}}\n"
        );
        serde_yaml_ng::from_str(&yaml).expect("node")
    }

    fn desired(component: &str, node: &str, keep: bool) -> DesiredInstance {
        let mut d =
            DesiredInstance::new(InstanceId::new("default", "app", component, 0), node, EntitySpec::native(["true"]));
        if keep {
            d.on_node_loss = OnNodeLoss::Keep;
        }
        d
    }

    fn holder(node: &str, instance: Option<&InstanceId>, gateway: bool, placed: bool) -> AddressHolder {
        AddressHolder {
            node: node.into(),
            instance: instance.map(|i| i.to_string()),
            nic: 0,
            mac: None,
            gateway,
            placed,
        }
    }

    /// n1 without a heartbeat since `gone`, holding two instances (one `onNodeLoss: keep`) and four addresses.
    fn view(gone: DateTime<Utc>) -> ClusterView {
        let mut view = ClusterView::default();
        view.nodes.insert("n1".into(), node("n1", false));
        view.nodes.insert("n2".into(), node("n2", true));
        view.not_ready_since.insert("n1".into(), gone);
        let (moved, kept) = (desired("web", "n1", false), desired("edge", "n1", true));
        let net = NetworkName::new("default", "net0");
        let ip = |n| std::net::Ipv4Addr::new(10, 0, 0, n);
        view.addresses.insert((net.clone(), ip(1)), holder("n1", None, true, false));
        view.addresses.insert((net.clone(), ip(2)), holder("n1", Some(&moved.id), false, false));
        view.addresses.insert((net.clone(), ip(3)), holder("n1", Some(&moved.id), false, true));
        view.addresses.insert((net.clone(), ip(4)), holder("n1", Some(&kept.id), false, false));
        view.addresses.insert((net, ip(5)), holder("n2", None, true, false));
        view.desired.insert(moved.id.clone(), moved);
        view.desired.insert(kept.id.clone(), kept);
        view
    }

    fn released(actions: &Actions) -> Vec<u8> {
        let ips = actions.writes.iter().filter_map(|w| match w {
            Write::ReleaseAddress { ip, .. } => Some(ip.octets()[3]),
            _ => None,
        });
        ips.collect()
    }

    #[test]
    fn a_node_without_heartbeat_is_not_ready_until_lost_after_then_its_work_is_placed_again() {
        let now = Utc::now();
        let reconciler = NodeReconciler::new(timing());
        let early = reconciler.reconcile(&"n1".to_string(), &view(now), now);
        assert!(matches!(&early.writes[..], [Write::PutLoss(n, NodeLoss { lost_at: None, .. })] if n == "n1"));
        assert!(early.requeue_after.is_some_and(|d| d > Duration::ZERO), "looked at again when it is due");

        let long_ago = now - chrono::Duration::seconds(60);
        let lost = reconciler.reconcile(&"n1".to_string(), &view(long_ago), now);
        let forgotten: Vec<&str> = lost
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::DeleteDesired { id, .. } => Some(id.component.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(forgotten, ["web"], "onNodeLoss: keep stays where it is");
        // The gateway and what the agent reserved for the instance placed again; not what placement allocated (it
        // follows the instance), nor the kept instance's, nor another node's.
        assert_eq!(released(&lost), [1, 2]);
        assert!(lost.guards.contains(&Guard::NodeGone("n1".into())), "released only while the node is gone");
        assert!(
            matches!(lost.writes.last(), Some(Write::PutLoss(_, NodeLoss { lost_at: Some(_), .. }))),
            "the mark is written last, so a commit cut short is done again"
        );
    }

    #[test]
    fn holds_are_released_once_and_a_returning_node_loses_its_mark() {
        let now = Utc::now();
        let reconciler = NodeReconciler::new(timing());
        let mut view = view(now - chrono::Duration::seconds(60));
        view.losses.insert("n1".into(), NodeLoss { since: now, lost_at: Some(now) });
        let again = reconciler.reconcile(&"n1".to_string(), &view, now);
        assert!(released(&again).is_empty(), "already released when it was declared lost");
        assert!(!again.writes.iter().any(|w| matches!(w, Write::PutLoss(..))));

        view.nodes.insert("n1".into(), node("n1", true));
        let back = reconciler.reconcile(&"n1".to_string(), &view, now);
        assert_eq!(back.writes, [Write::DeleteLoss("n1".into())]);
    }
}
