//! The migrations of an application's instances, moved forward by the application reconciler (the one writer of
//! desired records, so a migration's move of a record never races another change of it). For each instance whose
//! last migration is not over, from its record, the instance's desired and actual records and the nodes:
//!
//! - **Preparing → TakingOff → Transferring**: the source keeps the instance, its desired record naming the
//!   migration (`migration: Source`); the phase follows what the source reports (stopping, sending; bytes moved).
//! - **→ Landing**: once the source reports everything `Sent`, the desired record moves to the destination under the
//!   migration's new epoch (`migration: Destination`, with the source's checkpoint ticket when live) in one
//!   transaction with the source's removal: the source, its copy stopped already, departs; the destination starts
//!   the instance on the volumes it received (live: restores the checkpoint that came with them).
//! - **→ Completed**: the destination runs it at the desired generation; the role is cleared.
//! - **→ Failed / Aborted** before Landing (the destination's node is not ready, the source's record went, or
//!   `--abort`): the role is cleared and the source runs the instance again. At Landing, a destination declared
//!   lost before it ran the instance: Failed, and the record moves back to the source, which kept the volumes
//!   until the migration was over.
//!
//! A standalone entity pinned to its node ([`NODE_ANNOTATION`], as fog05's instances are) has its pin moved to the
//! destination in the transaction that completes the migration ([`pin_follows`]): placed again later (its node lost),
//! it goes where it runs now, never back to the node it left.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fos_api::lifecycle::State;
use fos_api::migration::{Migration, MigrationMode, MigrationPhase, SendPhase};
use fos_api::record::MigrationRole;
use fos_api::wire::{AppRecord, NODE_ANNOTATION};
use fos_api::{InstanceId, Object};

use fos_scheduler::Allocation;

use crate::placement::Placer;
use crate::reconcile::{Event, Write};
use crate::view::{AppKey, ClusterView, StoredApp};

/// For the migrations of application `key` still without a destination (a drain's): the scheduler's node for the
/// instance over the cluster without it (a draining node is cordoned, so never chosen), or why there is none.
pub fn destinations(
    placer: &dyn Placer,
    view: &ClusterView,
    key: &AppKey,
    spec: &fos_api::ApplicationSpec,
) -> BTreeMap<InstanceId, Result<String, String>> {
    let mut out = BTreeMap::new();
    let open = view.migrations.values().filter(|m| {
        m.instance.tenant == key.0 && m.instance.app == key.1 && m.destination.is_empty() && !m.phase.is_final()
    });
    for m in open {
        let chosen = match view.snapshot() {
            Err(e) => Err(e.to_string()),
            Ok(snapshot) => {
                let mut snapshot = snapshot.clone();
                snapshot.release(&m.instance);
                let existing: Vec<Allocation> = view
                    .desired_of(&key.0, &key.1)
                    .filter(|d| d.id != m.instance)
                    .map(Allocation::from_desired)
                    .collect();
                let plan = placer.place(&snapshot, &existing, &key.0, &key.1, spec);
                match plan.placement(&m.instance) {
                    Some(p) if p.node != m.source => Ok(p.node.clone()),
                    _ => Err(plan
                        .unschedulable
                        .iter()
                        .find(|u| u.component == m.instance.component)
                        .map(|u| u.explanation())
                        .unwrap_or_else(|| "no other node fits".into())),
                }
            }
        };
        out.insert(m.instance.clone(), chosen);
    }
    out
}

/// Where a migrating instance's desired record goes now.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The node.
    pub node: String,
    /// The epoch.
    pub epoch: String,
    /// Its role in the migration (none once it is over).
    pub role: Option<MigrationRole>,
    /// The node whose record it leaves (deleted in the same transaction), when it moves.
    pub leaves: Option<String>,
}

/// What the migrations of an application decide.
#[derive(Debug, Default)]
pub struct Moves {
    /// Instances whose desired record a migration places, by id.
    pub placements: BTreeMap<InstanceId, Placement>,
    /// Migration records to write.
    pub writes: Vec<Write>,
    /// Events.
    pub events: Vec<Event>,
}

/// Moves the migrations of the instances of application `key` forward.
pub fn step(
    view: &ClusterView,
    key: &AppKey,
    chosen: &BTreeMap<InstanceId, Result<String, String>>,
    now: DateTime<Utc>,
) -> Moves {
    let mut moves = Moves::default();
    let from = InstanceId::new(&key.0, &key.1, "", 0);
    let of_app = |id: &InstanceId| id.tenant == key.0 && id.app == key.1;
    for (id, m) in view.migrations.range(from..).take_while(|(id, _)| of_app(id)) {
        if m.phase.is_final() {
            continue;
        }
        let mut next = m.clone();
        if m.destination.is_empty() {
            match chosen.get(id) {
                Some(Ok(node)) => {
                    next.destination = node.clone();
                    let kind = view.desired_of(&key.0, &key.1).find(|d| d.id == *id).map(|d| d.entity.kind);
                    let by_checkpoint = kind != Some(fos_api::manifest::EntityKind::Vm);
                    if next.mode == MigrationMode::Live && by_checkpoint && !view.live_capable.contains(node) {
                        // Chosen by the scheduler, which does not look at CRIU: cold where live cannot be (VMs are
                        // moved by libvirt, which every node running them has).
                        next.mode = MigrationMode::Cold;
                        next.message = Some(format!("{node} cannot restore a checkpoint (no working CRIU): cold"));
                    }
                }
                Some(Err(why)) => {
                    next.phase = MigrationPhase::Failed;
                    next.message = Some(format!("no node can take it: {why}"));
                }
                None => continue,
            }
        }
        let placement = if next.phase.is_final() { None } else { decide(view, &next.clone(), &mut next, now) };
        if let Some(p) = placement {
            moves.placements.insert(id.clone(), p);
        }
        if next != *m {
            if next.phase != m.phase {
                let detail = next.message.as_deref().map(|s| format!(": {s}")).unwrap_or_default();
                moves.events.push(Event::new(
                    key,
                    "Migration",
                    format!("{} {} → {}: {}{detail}", id.short(), m.source, m.destination, next.phase),
                ));
            }
            if next.phase.is_final() {
                next.finished = Some(now);
            }
            moves.writes.push(Write::PutMigration(Box::new(next)));
        }
    }
    moves
}

/// The record of standalone entity `stored` with its node pin moved where a migration of `moves` completed (its
/// record placed there without a role and leaving nothing), when that is not where the pin says; `None` otherwise.
pub fn pin_follows(stored: &StoredApp, moves: &Moves) -> Option<AppRecord> {
    let Object::Entity(e) = &stored.record.object else { return None };
    let pin = e.metadata.annotations.get(NODE_ANNOTATION)?;
    let landed = moves.placements.values().find(|p| p.role.is_none() && p.leaves.is_none() && &p.node != pin)?;
    let mut record = stored.record.clone();
    if let Object::Entity(e) = &mut record.object {
        e.metadata.annotations.insert(NODE_ANNOTATION.to_string(), landed.node.clone());
    }
    Some(record)
}

/// The next state of `m` (written into `next`) and where its instance's record goes (`None`: as it is, without a
/// role).
fn decide(view: &ClusterView, m: &Migration, next: &mut Migration, now: DateTime<Utc>) -> Option<Placement> {
    let desired = view.desired.get(&m.instance);
    let actual = view.actual.get(&m.instance);
    let at_source = Placement { node: m.source.clone(), epoch: m.from_epoch.clone(), role: None, leaves: None };
    let fail = |next: &mut Migration, phase: MigrationPhase, why: String| {
        next.phase = phase;
        next.message = Some(why);
    };
    if m.phase.before_landing() {
        let Some(d) = desired.filter(|d| d.node == m.source && d.epoch == m.from_epoch) else {
            fail(next, MigrationPhase::Failed, format!("{} no longer has the instance", m.source));
            return None;
        };
        let _ = d;
        let destination_ready = view.nodes.get(&m.destination).is_some_and(|n| n.status.ready);
        if m.abort {
            fail(next, MigrationPhase::Aborted, "aborted".into());
            return Some(at_source);
        }
        if !destination_ready {
            fail(next, MigrationPhase::Failed, format!("destination {} is not ready", m.destination));
            return Some(at_source);
        }
        let progress =
            actual.filter(|a| a.node == m.source).and_then(|a| a.migration.as_ref()).filter(|p| p.id == m.id);
        if let Some(p) = progress {
            next.bytes_moved = p.bytes_moved;
            next.bytes_total = p.bytes_total;
            next.message = p.error.clone();
            next.stopped_at = p.stopped_at.or(next.stopped_at);
            next.ticket = p.ticket.clone().or(next.ticket.take());
        }
        let source_role = MigrationRole::Source { destination: m.destination.clone(), id: m.id.clone(), mode: m.mode };
        match progress.map(|p| p.phase) {
            Some(SendPhase::Sent) => {
                next.phase = MigrationPhase::Landing;
                next.message = None;
                Some(Placement {
                    node: m.destination.clone(),
                    epoch: m.epoch.clone(),
                    role: Some(MigrationRole::Destination {
                        source: m.source.clone(),
                        id: m.id.clone(),
                        ticket: next.ticket.clone(),
                    }),
                    leaves: Some(m.source.clone()),
                })
            }
            phase => {
                next.phase = match phase {
                    Some(SendPhase::Sending | SendPhase::Retrying) => MigrationPhase::Transferring,
                    _ => MigrationPhase::TakingOff,
                };
                Some(Placement { role: Some(source_role), ..at_source })
            }
        }
    } else {
        // Landing: the destination owns the instance. Lost before it ran it (it fenced what it had): the source,
        // which kept the volumes, runs it again.
        let running_there = actual.is_some_and(|a| a.node == m.destination && a.state() == Some(State::Running));
        if view.node_lost(&m.destination) && !running_there && view.node_ready(&m.source) {
            fail(next, MigrationPhase::Failed, format!("destination {} was lost at {}", m.destination, m.phase));
            let leaves = desired.filter(|d| d.node == m.destination).map(|_| m.destination.clone());
            return Some(Placement { leaves, ..at_source });
        }
        let Some(d) = desired.filter(|d| d.node == m.destination && d.epoch == m.epoch) else {
            fail(next, MigrationPhase::Failed, format!("{} no longer has the instance", m.destination));
            return None;
        };
        let running = actual.is_some_and(|a| {
            a.node == m.destination && a.state() == Some(State::Running) && a.observed_generation == d.generation
        });
        let at_destination =
            Placement { node: m.destination.clone(), epoch: m.epoch.clone(), role: None, leaves: None };
        if running {
            next.phase = MigrationPhase::Completed;
            next.message = None;
            let _ = now;
            return Some(at_destination);
        }
        next.message = actual.filter(|a| a.node == m.destination).and_then(|a| a.error.clone());
        Some(Placement {
            role: Some(MigrationRole::Destination {
                source: m.source.clone(),
                id: m.id.clone(),
                ticket: m.ticket.clone(),
            }),
            ..at_destination
        })
    }
}
