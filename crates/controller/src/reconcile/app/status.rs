//! An application's aggregated status: per component how many instances are placed, running and ready (as they
//! will be once the pass's writes are in), and the phase that follows from them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use fos_api::wire::{AppStatus, ComponentStatus, Phase};
use fos_api::{ApplicationSpec, DesiredInstance, InstanceId, State};

use crate::view::ClusterView;

pub use fos_api::record::running_ready;

/// Per-component counts, as they will be once `puts` are written and `deletes` deleted, with whether some component
/// has failing instances and none ready.
pub fn component_counts(
    view: &ClusterView,
    puts: &BTreeMap<InstanceId, &DesiredInstance>,
    deletes: &BTreeSet<&InstanceId>,
    spec: &ApplicationSpec,
    (tenant, name): (&str, &str),
    messages: &BTreeMap<String, String>,
) -> (BTreeMap<String, ComponentStatus>, bool) {
    let mut out = BTreeMap::new();
    let mut failed = false;
    for c in &spec.components {
        let mut s =
            ComponentStatus { replicas: c.replicas, message: messages.get(&c.name).cloned(), ..Default::default() };
        let mut erring = false;
        for r in 0..c.replicas {
            let id = InstanceId::new(tenant, name, &c.name, r);
            let desired =
                if deletes.contains(&id) { None } else { puts.get(&id).copied().or_else(|| view.desired.get(&id)) };
            // An instance on a node without a heartbeat is Unknown: neither running nor ready.
            let actual = view.actual.get(&id).filter(|a| !view.node_down(&a.node));
            s.placed += u32::from(desired.is_some());
            let (running, ready) = running_ready(desired, actual);
            s.running += u32::from(running);
            s.ready += u32::from(ready);
            if let Some(a) = actual.filter(|a| a.state() == Some(State::Error)) {
                erring = true;
                if s.message.is_none() {
                    s.message =
                        Some(format!("{} failed: {}", id.short(), a.error.as_deref().unwrap_or("unknown error")));
                }
            }
        }
        failed |= s.ready == 0 && erring;
        out.insert(c.name.clone(), s);
    }
    (out, failed)
}

/// The status from the component counts: the phase (Pending, Deploying, Running, Degraded, Failed) and the message
/// joining what holds each component back.
pub fn aggregate(
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
    } else if settled && target == State::Paused {
        Phase::Paused
    } else if settled && target != State::Running {
        Phase::Stopped
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
pub fn changed_status(previous: Option<&AppStatus>, mut status: AppStatus) -> Option<AppStatus> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one(placed: u32, ready: u32) -> (BTreeMap<String, ComponentStatus>, bool) {
        let c = ComponentStatus { replicas: 1, placed, running: ready, ready, message: None };
        (BTreeMap::from([("e".to_string(), c)]), false)
    }

    #[test]
    fn a_held_entity_shows_its_real_phase() {
        let now = Utc::now();
        let phase = |counts, target| aggregate(None, 1, counts, false, target, now).phase;
        assert_eq!(phase(one(1, 1), State::Running), Phase::Running);
        assert_eq!(phase(one(1, 0), State::Configured), Phase::Stopped);
        assert_eq!(phase(one(1, 0), State::Defined), Phase::Stopped);
        assert_eq!(phase(one(1, 0), State::Paused), Phase::Paused);
        assert_eq!(phase(one(0, 0), State::Configured), Phase::Pending);
        assert_eq!(phase(one(1, 0), State::Running), Phase::Deploying);
    }
}
