//! The application reconciler's decisions for one application, computed from a [`ClusterView`] without I/O: which
//! desired instance records to write or delete (placement, release in `need` order with the `FOS_NEED_*`
//! environment, generation bumps on change, teardown in reverse order), which events to record, and the
//! aggregated status.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use fos_api::manifest::Probe;
use fos_api::wire::{AppStatus, ComponentStatus, Phase, STATE_ANNOTATION};
use fos_api::{ApplicationSpec, DesiredInstance, EntitySpec, InstanceId, State};

use crate::graph;
use crate::placement::Placement;
use crate::view::{ClusterView, StoredApp};

/// What the controller does for one application in one pass.
#[derive(Debug, Default, PartialEq)]
pub struct AppActions {
    /// Desired instance records to write.
    pub puts: Vec<DesiredInstance>,
    /// Desired instance records to delete (node, instance).
    pub deletes: Vec<(String, InstanceId)>,
    /// Events to record: (reason, message).
    pub events: Vec<(&'static str, String)>,
    /// The status to store (`None`: unchanged).
    pub status: Option<AppStatus>,
    /// Everything is torn down: remove the application record and its status.
    pub remove_app: bool,
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

/// The instance ids an application wants, component by component.
pub fn wanted_instances(tenant: &str, name: &str, spec: &ApplicationSpec) -> Vec<InstanceId> {
    spec.components
        .iter()
        .flat_map(|c| (0..c.replicas).map(move |r| InstanceId::new(tenant, name, &c.name, r)))
        .collect()
}

/// The port a component is reached at: its first exposed port, else its readiness probe's port.
pub fn service_port(entity: &EntitySpec) -> Option<u16> {
    if let Some(p) = entity.ports.first() {
        return Some(p.host_port.unwrap_or(p.port));
    }
    match &entity.readiness {
        Some(Probe::Tcp(port)) => Some(*port),
        Some(Probe::Http(h)) => Some(h.port),
        _ => None,
    }
}

/// `FOS_NEED_<NAME>_` for a component name.
fn env_prefix(component: &str) -> String {
    format!("FOS_NEED_{}_", component.to_ascii_uppercase().replace('-', "_"))
}

/// Whether an instance runs at the generation desired of it, and is ready.
fn instance_ready(view: &ClusterView, id: &InstanceId) -> (bool, bool) {
    running_ready(view.desired.get(id), view.actual.get(id))
}

/// Whether an actual record shows its desired record running (at its generation), and ready.
fn running_ready(desired: Option<&DesiredInstance>, actual: Option<&fos_api::ActualInstance>) -> (bool, bool) {
    let (Some(d), Some(a)) = (desired, actual) else {
        return (false, false);
    };
    let current = a.observed_generation == d.generation && a.node == d.node;
    let running = current && a.state() == Some(State::Running);
    (running, running && a.ready)
}

/// Decides what to do for `tenant`/`name`. `placement` holds where every placeable instance goes (existing
/// placements included); `now` stamps status changes.
pub fn reconcile_app(
    view: &ClusterView,
    tenant: &str,
    name: &str,
    stored: &StoredApp,
    placement: &Placement,
    now: DateTime<Utc>,
) -> AppActions {
    let mut out = AppActions::default();
    let Some(app) = stored.record.object.as_application() else {
        return out;
    };
    let spec = &app.spec;
    let key = (tenant.to_string(), name.to_string());
    let previous = view.statuses.get(&key);
    let existing: Vec<InstanceId> = view.instances_of(tenant, name).cloned().collect();

    if stored.record.deleting {
        teardown(view, spec, &existing, &mut out);
        let status = AppStatus {
            phase: Phase::Deleting,
            observed_generation: stored.record.generation,
            components: component_counts(view, &out, spec, tenant, name, &BTreeMap::new()).0,
            unschedulable: false,
            message: None,
            since: now,
        };
        out.status = changed_status(previous, status);
        return out;
    }

    let target = target_state(stored);
    let wanted = wanted_instances(tenant, name, spec);
    let wanted_set: BTreeSet<&InstanceId> = wanted.iter().collect();
    let node_of = |id: &InstanceId| -> Option<String> {
        view.desired.get(id).map(|d| d.node.clone()).or_else(|| placement.assigned.get(id).cloned())
    };
    let mut messages: BTreeMap<String, String> = BTreeMap::new();
    for (component, reason) in &placement.unplaced {
        messages.insert(component.clone(), format!("cannot place {component}: {reason}"));
    }

    for c in &spec.components {
        let need_ids: Vec<InstanceId> = c
            .need
            .iter()
            .filter_map(|n| spec.component(n))
            .flat_map(|n| (0..n.replicas).map(|r| InstanceId::new(tenant, name, &n.name, r)))
            .collect();
        let waiting: Vec<&str> = c
            .need
            .iter()
            .filter(|n| need_ids.iter().filter(|id| &id.component == *n).any(|id| !instance_ready(view, id).1))
            .map(String::as_str)
            .collect();
        let state = match target {
            State::Running | State::Paused if !waiting.is_empty() => State::Configured,
            t => t,
        };
        if !waiting.is_empty() && !messages.contains_key(&c.name) {
            messages.insert(c.name.clone(), format!("{} waits for {}", c.name, waiting.join(", ")));
        }
        for r in 0..c.replicas {
            let id = InstanceId::new(tenant, name, &c.name, r);
            let Some(node) = node_of(&id) else { continue };
            let mut env = BTreeMap::new();
            for need in &c.need {
                let Some(nc) = spec.component(need) else { continue };
                let nid = InstanceId::new(tenant, name, need, 0);
                let Some(nnode) = node_of(&nid) else { continue };
                let p = env_prefix(need);
                env.insert(format!("{p}HOST"), need_host(view, &node, &nnode));
                env.insert(format!("{p}NODE"), nnode);
                if let Some(port) = service_port(&nc.entity) {
                    env.insert(format!("{p}PORT"), port.to_string());
                }
            }
            let prior = view.desired.get(&id);
            let generation = match prior {
                Some(p) if p.entity == c.entity && p.env == env => p.generation,
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
                    .or_else(|| placement.devices.get(&id).cloned())
                    .unwrap_or_default(),
                migration: prior.and_then(|p| p.migration.clone()),
            };
            if prior == Some(&record) {
                continue;
            }
            match prior {
                None => out.events.push(("Scheduled", format!("scheduled {} on {node}", id.short()))),
                Some(p) if p.generation != generation => out
                    .events
                    .push(("Updated", format!("{} changed: restarting at generation {generation}", id.short()))),
                Some(p) if p.state != state && state == State::Running && !c.need.is_empty() => {
                    out.events.push(("Released", format!("released {}: {} ready", id.short(), c.need.join(", "))))
                }
                Some(_) => {}
            }
            if !waiting.is_empty() && prior.map(|p| p.state) != Some(state) {
                out.events.push(("Waiting", format!("{} waits for {}", id.short(), waiting.join(", "))));
            }
            out.puts.push(record);
        }
    }
    for id in &existing {
        if !wanted_set.contains(id) {
            if let Some(d) = view.desired.get(id) {
                out.events.push(("Removed", format!("removing {} from {}", id.short(), d.node)));
                out.deletes.push((d.node.clone(), id.clone()));
            }
        }
    }

    let components = component_counts(view, &out, spec, tenant, name, &messages);
    let status = aggregate(previous, stored.record.generation, components, !placement.unplaced.is_empty(), target, now);
    if status.unschedulable && previous.map(|p| &p.message) != Some(&status.message) {
        for (component, reason) in &placement.unplaced {
            out.events.push(("Unschedulable", format!("cannot place {component}: {reason}")));
        }
    }
    out.status = changed_status(previous, status);
    out
}

/// The address an instance on `from` uses to reach one on `to`.
fn need_host(view: &ClusterView, from: &str, to: &str) -> String {
    if from == to {
        return "127.0.0.1".to_string();
    }
    let node = view.nodes.get(to);
    if let Some(addr) = node.and_then(|n| n.status.address.as_deref()) {
        if let Some((host, _port)) = addr.rsplit_once(':') {
            return host.trim_start_matches('[').trim_end_matches(']').to_string();
        }
    }
    node.and_then(|n| n.spec.hostname.clone()).unwrap_or_else(|| to.to_string())
}

/// Deletes the desired records of every component no remaining component depends on (reverse `need` order).
fn teardown(view: &ClusterView, spec: &ApplicationSpec, existing: &[InstanceId], out: &mut AppActions) {
    if existing.is_empty() {
        out.remove_app = true;
        return;
    }
    let alive: BTreeSet<&str> = existing.iter().map(|id| id.component.as_str()).collect();
    for id in existing {
        let blocked = graph::dependents(spec, &id.component).iter().any(|d| alive.contains(d));
        if blocked {
            continue;
        }
        if let Some(d) = view.desired.get(id) {
            out.events.push(("Stopping", format!("tearing down {} on {}", id.short(), d.node)));
            out.deletes.push((d.node.clone(), id.clone()));
        }
    }
}

/// Per-component counts, as they will be once `pending` is written.
fn component_counts(
    view: &ClusterView,
    pending: &AppActions,
    spec: &ApplicationSpec,
    tenant: &str,
    name: &str,
    messages: &BTreeMap<String, String>,
) -> (BTreeMap<String, ComponentStatus>, bool) {
    let mut out = BTreeMap::new();
    let mut failed = false;
    for c in &spec.components {
        let mut s =
            ComponentStatus { replicas: c.replicas, message: messages.get(&c.name).cloned(), ..Default::default() };
        for r in 0..c.replicas {
            let id = InstanceId::new(tenant, name, &c.name, r);
            let desired = if pending.deletes.iter().any(|(_, d)| d == &id) {
                None
            } else {
                pending.puts.iter().find(|d| d.id == id).or_else(|| view.desired.get(&id))
            };
            s.placed += u32::from(desired.is_some());
            let (running, ready) = running_ready(desired, view.actual.get(&id));
            s.running += u32::from(running);
            s.ready += u32::from(ready);
            if let Some(a) = view.actual.get(&id).filter(|a| a.state() == Some(State::Error)) {
                if s.message.is_none() {
                    s.message =
                        Some(format!("{} failed: {}", id.short(), a.error.as_deref().unwrap_or("unknown error")));
                }
            }
        }
        failed |= s.ready == 0
            && (0..c.replicas).any(|r| {
                let id = InstanceId::new(tenant, name, &c.name, r);
                view.actual.get(&id).is_some_and(|a| a.state() == Some(State::Error))
            });
        out.insert(c.name.clone(), s);
    }
    (out, failed)
}

fn aggregate(
    previous: Option<&AppStatus>,
    generation: u64,
    (components, failed): (BTreeMap<String, ComponentStatus>, bool),
    unschedulable: bool,
    target: State,
    now: DateTime<Utc>,
) -> AppStatus {
    let all_placed = components.values().all(|c| c.placed == c.replicas);
    let settled = match target {
        State::Running => components.values().all(|c| c.ready == c.replicas),
        _ => all_placed,
    };
    let was_up = matches!(previous.map(|p| p.phase), Some(Phase::Running | Phase::Degraded));
    let phase = if unschedulable || !all_placed {
        Phase::Pending
    } else if settled {
        Phase::Running
    } else if was_up {
        Phase::Degraded
    } else if failed {
        Phase::Failed
    } else {
        Phase::Deploying
    };
    let message = components.values().filter_map(|c| c.message.clone()).collect::<Vec<_>>();
    AppStatus {
        phase,
        observed_generation: generation,
        components,
        unschedulable,
        message: if message.is_empty() { None } else { Some(message.join("; ")) },
        since: match previous {
            Some(p) if p.phase == phase => p.since,
            _ => now,
        },
    }
}

/// `Some(status)` when it differs from `previous` (ignoring `since`), else `None`.
fn changed_status(previous: Option<&AppStatus>, mut status: AppStatus) -> Option<AppStatus> {
    if let Some(p) = previous {
        if p.phase == status.phase {
            status.since = p.since;
        }
        if *p == status {
            return None;
        }
    }
    Some(status)
}
