//! The application reconciler: for one application, from the cached view and without I/O, which desired instance
//! records to write or delete (placement through the one [`Planner`], release in `need` order with the
//! `FOS_NEED_*` environment, generation bumps on change, teardown in reverse order), which events to record, and the
//! aggregated status. Desired records of applications that no longer exist are removed.

pub mod address;
pub mod env;
pub mod migrate;
pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use fos_api::graph::NeedGraph;
use fos_api::migration::MigrationPhase;
use fos_api::wire::{AppPlan, AppStatus, Phase, PlannedInstance, STATE_ANNOTATION};
use fos_api::{ApplicationSpec, Component, DesiredInstance, InstanceId, State};

use super::{Actions, Event, Guard, Reconciler, SharedPlacer, Write};
use crate::plan::{wanted_instances, Planner};
use crate::view::{AppKey, ClusterView, StoredApp, Touched};

/// The reconciler of applications (and standalone entities, which run as one-component applications).
pub struct ApplicationReconciler {
    placer: SharedPlacer,
}

impl ApplicationReconciler {
    /// A reconciler placing with `placer`.
    pub fn new(placer: SharedPlacer) -> Self {
        ApplicationReconciler { placer }
    }
}

impl Reconciler for ApplicationReconciler {
    type Key = AppKey;

    fn name(&self) -> &'static str {
        "applications"
    }

    fn wakes(&self, touched: &Touched, view: &ClusterView) -> Vec<AppKey> {
        match touched {
            Touched::App(key) => vec![key.clone()],
            Touched::Desired(id) | Touched::Actual(id) | Touched::Migration(id) => {
                vec![(id.tenant.clone(), id.app.clone())]
            }
            // A node that comes, goes, or changes what it offers: the applications waiting for a node, and those
            // with an instance there (their environment names its address).
            Touched::NodeMark(name) | Touched::Node { name, placement: true } => view
                .apps
                .iter()
                .filter(|(_, app)| view.statuses.get(&app_key(app)).is_none_or(|s| s.phase == Phase::Pending))
                .map(|(k, _)| k.clone())
                .chain(
                    view.desired.values().filter(|d| &d.node == name).map(|d| (d.id.tenant.clone(), d.id.app.clone())),
                )
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            Touched::Network((tenant, net)) => view
                .apps
                .iter()
                .filter(|((t, _), app)| {
                    t == tenant && app.record.object.as_application().is_some_and(|a| env::uses_network(&a.spec, net))
                })
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    fn all(&self, view: &ClusterView) -> Vec<AppKey> {
        let mut keys: BTreeSet<AppKey> = view.apps.keys().cloned().collect();
        keys.extend(view.desired.keys().map(|id| (id.tenant.clone(), id.app.clone())));
        keys.into_iter().collect()
    }

    fn reconcile(&self, key: &AppKey, view: &ClusterView, now: DateTime<Utc>) -> Actions {
        let Some(stored) = view.apps.get(key) else {
            return orphans(view, key);
        };
        let Some(app) = stored.record.object.as_application() else {
            return Actions::default();
        };
        let (tenant, name) = (key.0.as_str(), key.1.as_str());
        let placed = |id: &InstanceId| view.desired.contains_key(id) || tearing_down(view, id);
        let plan = (!stored.record.deleting && !wanted_instances(tenant, name, &app.spec).iter().all(placed))
            .then(|| Planner::one(self.placer.as_ref(), view).plan(tenant, name, &app.spec));
        let chosen = migrate::destinations(self.placer.as_ref(), view, key, &app.spec);
        reconcile_app(view, key, stored, plan.as_ref(), &chosen, now)
    }
}

/// Whether `id` has no desired record but a copy still on a node that is not lost (being stopped there, e.g. by a
/// drain): it is placed again only once that copy is gone, so two copies never run at once.
pub fn tearing_down(view: &ClusterView, id: &InstanceId) -> bool {
    !view.desired.contains_key(id) && view.actual.get(id).is_some_and(|a| !view.node_lost(&a.node))
}

fn app_key(app: &StoredApp) -> AppKey {
    let md = app.record.object.metadata();
    (md.tenant().to_string(), md.name.clone())
}

/// Deletes the desired records of an application that no longer exists.
fn orphans(view: &ClusterView, (tenant, name): &AppKey) -> Actions {
    let writes = view
        .desired_of(tenant, name)
        .map(|d| Write::DeleteDesired { node: d.node.clone(), id: d.id.clone() })
        .chain(address::releases(view, (tenant, name), &BTreeSet::new()))
        .collect();
    // Only while the application is still absent: one applied in between keeps its instances.
    Actions { guards: vec![Guard::App((tenant.clone(), name.clone()), 0)], writes, ..Default::default() }
}

/// The state an application asks its instances to reach (the `fos/state` annotation, else Running).
pub fn target_state(app: &StoredApp) -> State {
    let ann = app.record.object.metadata().annotations.get(STATE_ANNOTATION);
    match ann.map(String::as_str) {
        Some("Defined") => State::Defined,
        Some("Configured") => State::Configured,
        Some("Paused") => State::Paused,
        _ => State::Running,
    }
}

/// Decides what to do for the application `key`. `plan` holds where the instances not placed yet go (`None`:
/// every wanted instance is placed already, or the application is being deleted).
pub fn reconcile_app(
    view: &ClusterView,
    key: &AppKey,
    stored: &StoredApp,
    plan: Option<&AppPlan>,
    chosen: &BTreeMap<InstanceId, Result<String, String>>,
    now: DateTime<Utc>,
) -> Actions {
    let mut out = Actions { guards: vec![Guard::App(key.clone(), stored.mod_revision)], ..Default::default() };
    let Some(app) = stored.record.object.as_application() else {
        return out;
    };
    let spec = &app.spec;
    let (tenant, name) = (key.0.as_str(), key.1.as_str());
    let previous = view.statuses.get(key);
    let existing = view.instances_of(tenant, name);

    if stored.record.deleting {
        teardown(view, key, spec, &existing, &mut out);
        if out.writes.iter().any(|w| matches!(w, Write::DeleteApp(_))) {
            out.writes.extend(address::releases(view, (tenant, name), &BTreeSet::new()));
            return out;
        }
        let deletes: BTreeSet<&InstanceId> = out.deletes().collect();
        let counts = status::component_counts(view, &BTreeMap::new(), &deletes, spec, (tenant, name), &BTreeMap::new());
        let releases = address::releases(view, (tenant, name), &kept(view, (tenant, name), &BTreeMap::new(), &deletes));
        let status = AppStatus {
            phase: Phase::Deleting,
            observed_generation: stored.record.generation,
            components: counts.0,
            unschedulable: false,
            message: None,
            since: now,
        };
        drop(deletes);
        out.writes.extend(releases);
        if let Some(s) = status::changed_status(previous, status) {
            out.writes.push(Write::PutStatus(key.clone(), Box::new(s)));
        }
        return out;
    }

    let target = target_state(stored);
    let moves = migrate::step(view, key, chosen, now);
    if let Some(record) = migrate::pin_follows(stored, &moves) {
        out.writes.push(Write::PutApp(key.clone(), Box::new(record)));
    }
    out.writes.extend(moves.writes);
    out.events.extend(moves.events);
    let wanted: BTreeSet<InstanceId> = wanted_instances(tenant, name, spec).into_iter().collect();
    let planned: HashMap<&InstanceId, &PlannedInstance> =
        plan.map(|p| p.placements.iter().map(|i| (&i.instance, i)).collect()).unwrap_or_default();
    let node_of = |id: &InstanceId| -> Option<String> {
        (moves.placements.get(id).map(|p| p.node.clone()))
            .or_else(|| view.desired.get(id).map(|d| d.node.clone()))
            .or_else(|| planned.get(id).map(|p| p.node.clone()))
    };
    let unplaced = plan.map_or(&[][..], |p| p.unschedulable.as_slice());
    let mut messages: BTreeMap<String, String> = BTreeMap::new();
    for u in unplaced {
        messages.insert(u.component.clone(), format!("cannot place {}: {}", u.component, u.explanation()));
    }

    let by_name: HashMap<&str, &Component> = spec.components.iter().map(|c| (c.name.as_str(), c)).collect();
    // Every placed instance's addresses first: an instance's environment names those of what it needs.
    let placed: Vec<(InstanceId, String, &Component)> = spec
        .components
        .iter()
        .flat_map(|c| (0..c.replicas).map(move |r| (InstanceId::new(tenant, name, &c.name, r), c)))
        .filter_map(|(id, c)| node_of(&id).map(|node| (id, node, c)))
        .collect();
    let networks_of = |c: &Component| env::entity_networks(view, tenant, spec, &c.entity);
    let assigned = address::assign(view, tenant, spec, &placed, &networks_of);
    out.writes.extend(assigned.takes);
    for c in &spec.components {
        let waiting: Vec<&str> = c
            .need
            .iter()
            .filter(|n| {
                by_name.get(n.as_str()).is_some_and(|nc| (0..nc.replicas).any(|r| !ready(view, tenant, name, n, r)))
            })
            .map(String::as_str)
            .collect();
        let state = match target {
            State::Running | State::Paused if !waiting.is_empty() => State::Configured,
            t => t,
        };
        // Needs away only for a migration keep a dependent that was released already where it is.
        let away = waiting.iter().all(|n| {
            let nc = by_name.get(n).map_or(0, |nc| nc.replicas);
            (0..nc).all(|r| ready(view, tenant, name, n, r) || migrating(view, &InstanceId::new(tenant, name, n, r)))
        });
        if !waiting.is_empty() && !messages.contains_key(&c.name) {
            messages.insert(c.name.clone(), format!("{} waits for {}", c.name, waiting.join(", ")));
        }
        for r in 0..c.replicas {
            let id = InstanceId::new(tenant, name, &c.name, r);
            let released = view.desired.get(&id).is_some_and(|p| p.state == target);
            let state = if away && released { target } else { state };
            if tearing_down(view, &id) {
                messages.entry(c.name.clone()).or_insert_with(|| {
                    format!("{} waits for its copy on {} to stop", id.short(), view.actual[&id].node)
                });
                continue;
            }
            let Some(node) = node_of(&id) else { continue };
            let env = env::need_env(view, &by_name, c, &node, (tenant, name), &node_of, &assigned.addresses);
            let prior = view.desired.get(&id);
            let moved = moves.placements.get(&id);
            let networks = env::entity_networks(view, tenant, spec, &c.entity);
            let generation = match prior {
                Some(p) if p.entity == c.entity && p.env == env && p.networks == networks => p.generation,
                Some(p) => p.generation + 1,
                None => 1,
            };
            let record = DesiredInstance {
                id: id.clone(),
                node: node.clone(),
                entity: c.entity.clone(),
                state,
                generation,
                env,
                devices: prior
                    .map(|p| p.devices.clone())
                    .or_else(|| planned.get(&id).map(|p| p.devices.clone()))
                    .unwrap_or_default(),
                migration: moved.and_then(|m| m.role.clone()),
                networks,
                addresses: assigned.addresses.get(&id).cloned().unwrap_or_default(),
                epoch: (moved.map(|m| m.epoch.clone()))
                    .or_else(|| prior.map(|p| p.epoch.clone()))
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                on_node_loss: c.on_node_loss,
            };
            if prior == Some(&record) {
                continue;
            }
            let event = |reason, message| Event::new(key, reason, message);
            match prior {
                None => out.events.push(event("Scheduled", format!("scheduled {} on {node}", id.short()))),
                Some(p) if p.generation != generation => out
                    .events
                    .push(event("Updated", format!("{} changed: restarting at generation {generation}", id.short()))),
                Some(p) if p.state != state && state == State::Running && !c.need.is_empty() => {
                    out.events.push(event("Released", format!("released {}: {} ready", id.short(), c.need.join(", "))))
                }
                Some(_) => {}
            }
            if let Some(source) = moved.and_then(|m| m.leaves.as_ref()) {
                // Moved by its migration: the source's record goes in the same transaction (before the new one,
                // which the cache then keeps).
                out.writes.push(Write::DeleteDesired { node: source.clone(), id: id.clone() });
            }
            if !waiting.is_empty() && prior.map(|p| p.state) != Some(state) {
                out.events.push(event("Waiting", format!("{} waits for {}", id.short(), waiting.join(", "))));
            }
            out.writes.push(Write::PutDesired(Box::new(record)));
        }
    }
    for id in &existing {
        if !wanted.contains(id) {
            if let Some(d) = view.desired.get(id) {
                out.events.push(Event::new(key, "Removed", format!("removing {} from {}", id.short(), d.node)));
                out.writes.push(Write::DeleteDesired { node: d.node.clone(), id: id.clone() });
            }
        }
    }

    let puts: BTreeMap<InstanceId, &DesiredInstance> = out.puts().map(|d| (d.id.clone(), d)).collect();
    let deletes: BTreeSet<&InstanceId> = out.deletes().collect();
    let counts = status::component_counts(view, &puts, &deletes, spec, (tenant, name), &messages);
    let releases = address::releases(view, (tenant, name), &kept(view, (tenant, name), &puts, &deletes));
    let status = status::aggregate(previous, stored.record.generation, counts, !unplaced.is_empty(), target, now);
    drop((puts, deletes));
    out.writes.extend(releases);
    if status.unschedulable && previous.map(|p| &p.message) != Some(&status.message) {
        for u in unplaced {
            out.events.push(Event::new(
                key,
                "Unschedulable",
                format!("cannot place {}: {}", u.component, u.explanation()),
            ));
        }
    }
    if let Some(s) = status::changed_status(previous, status) {
        out.writes.push(Write::PutStatus(key.clone(), Box::new(s)));
    }
    out
}

/// The instances of `tenant`/`app` with a desired record once `puts` are written and `deletes` deleted.
fn kept<'a>(
    view: &'a ClusterView,
    (tenant, app): (&'a str, &'a str),
    puts: &'a BTreeMap<InstanceId, &DesiredInstance>,
    deletes: &BTreeSet<&InstanceId>,
) -> BTreeSet<&'a InstanceId> {
    view.desired_of(tenant, app).map(|d| &d.id).chain(puts.keys()).filter(|id| !deletes.contains(id)).collect()
}

/// Whether replica `r` of component `c` runs at the generation desired of it and is ready.
/// Whether `id` is away for a migration: moving, or moved and running again (not yet ready) after it completed.
fn migrating(view: &ClusterView, id: &InstanceId) -> bool {
    view.migrations.get(id).is_some_and(|m| match m.phase {
        MigrationPhase::Completed => status::running_ready(view.desired.get(id), view.actual.get(id)).0,
        phase => !phase.is_final(),
    })
}

fn ready(view: &ClusterView, tenant: &str, name: &str, c: &str, r: u32) -> bool {
    let id = InstanceId::new(tenant, name, c, r);
    status::running_ready(view.desired.get(&id), view.actual.get(&id)).1
}

/// Deletes the desired records of every component no remaining component depends on (reverse `need` order); once
/// nothing is left, the application record and its status go.
fn teardown(view: &ClusterView, key: &AppKey, spec: &ApplicationSpec, existing: &[InstanceId], out: &mut Actions) {
    // Copies on lost nodes are not waited for: their records go now, and the node cleans up when it returns.
    let on_lost = |id: &InstanceId| {
        view.desired.get(id).is_none_or(|d| view.node_lost(&d.node))
            && view.actual.get(id).is_none_or(|a| view.node_lost(&a.node))
    };
    let (gone, existing): (Vec<InstanceId>, Vec<InstanceId>) = existing.iter().cloned().partition(|id| on_lost(id));
    for id in &gone {
        if let Some(d) = view.desired.get(id) {
            out.writes.push(Write::DeleteDesired { node: d.node.clone(), id: id.clone() });
        }
        if let Some(a) = view.actual.get(id) {
            out.events.push(Event::new(key, "Stopping", format!("forgetting {} on lost node {}", id.short(), a.node)));
            out.writes.push(Write::DeleteActual { node: a.node.clone(), id: id.clone() });
        }
    }
    let existing = existing.as_slice();
    if existing.is_empty() {
        out.writes.push(Write::DeleteApp(key.clone()));
        out.writes.push(Write::DeleteStatus(key.clone()));
        out.events.push(Event::new(key, "Deleted", format!("{} deleted", key.1)));
        return;
    }
    let graph = NeedGraph::build(spec);
    let index: HashMap<&str, usize> = spec.components.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let alive: BTreeSet<&str> = existing.iter().map(|id| id.component.as_str()).collect();
    for id in existing {
        let blocked = index
            .get(id.component.as_str())
            .is_some_and(|&i| graph.dependents(i).iter().any(|&d| alive.contains(spec.components[d].name.as_str())));
        if blocked {
            continue;
        }
        if let Some(d) = view.desired.get(id) {
            out.events.push(Event::new(key, "Stopping", format!("tearing down {} on {}", id.short(), d.node)));
            out.writes.push(Write::DeleteDesired { node: d.node.clone(), id: id.clone() });
        }
    }
}
