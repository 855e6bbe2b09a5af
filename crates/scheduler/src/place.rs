//! Whole-application placement: groups in `need` order, each instance placed with the earlier placements taken
//! into account, bounded backtracking when a component does not fit because of an earlier choice (first another
//! node for the group's first component, then placing the failing group before an earlier one).

use std::collections::HashMap;

use fos_api::{ApplicationSpec, InstanceId};

use crate::error::ScheduleError;
use crate::explain::{explain, Failure};
use crate::graph::AppGraph;
use crate::options::Options;
use crate::plugins::Context;
use crate::proximity::{label_key_of, near};
use crate::request::{Needs, ProximityTarget, Request};
use crate::select::select;
use crate::snapshot::{Allocation, ClusterSnapshot, NodeIdx};
use crate::state::Working;
use fos_api::plan::{Placement, Plan, Relaxation, Unschedulable};

/// Places the instances of `spec` that `existing` does not already place; existing ones stay where they are.
/// `existing` are this application's current allocations (whether or not the snapshot already counts them).
pub fn place_application(
    snapshot: &ClusterSnapshot,
    tenant: &str,
    app: &str,
    spec: &ApplicationSpec,
    existing: &[Allocation],
    options: &Options,
) -> Result<Plan, ScheduleError> {
    Run::new(snapshot, tenant, app, spec, options)?.run(existing, &[], &[])
}

/// Places `instances` again (after a node loss, or to migrate them), never on `exclude_nodes` (the source of a
/// migration). Their current allocations are released first; the rest of `existing` stays where it is.
#[allow(clippy::too_many_arguments)] // one entry point, each argument a distinct input of the run
pub fn place_instances(
    snapshot: &ClusterSnapshot,
    tenant: &str,
    app: &str,
    spec: &ApplicationSpec,
    instances: &[InstanceId],
    existing: &[Allocation],
    exclude_nodes: &[String],
    options: &Options,
) -> Result<Plan, ScheduleError> {
    Run::new(snapshot, tenant, app, spec, options)?.run(existing, instances, exclude_nodes)
}

struct Run<'s> {
    snapshot: &'s ClusterSnapshot,
    tenant: &'s str,
    app: &'s str,
    spec: &'s ApplicationSpec,
    options: &'s Options,
    graph: AppGraph,
    needs: Vec<Needs>,
    excluded: Vec<NodeIdx>,
    moving: bool,
    /// The components with a required proximity rule (the only ones a repair looks at).
    bound: Vec<usize>,
    /// Component indexes by name.
    index: HashMap<&'s str, usize>,
    /// For each component, the rules of other components that point at it: (component, rule index).
    targeted_by: Vec<Vec<(usize, usize)>>,
}

/// The outcome of placing one group.
struct GroupResult<'s> {
    state: Working<'s>,
    placements: Vec<Placement>,
    failures: Vec<Unschedulable>,
    root: Option<NodeIdx>,
}

impl GroupResult<'_> {
    fn unplaced(&self) -> usize {
        self.failures.iter().map(|f| f.unplaced.len()).sum()
    }
}

impl<'s> Run<'s> {
    fn new(
        snapshot: &'s ClusterSnapshot,
        tenant: &'s str,
        app: &'s str,
        spec: &'s ApplicationSpec,
        options: &'s Options,
    ) -> Result<Self, ScheduleError> {
        let graph = AppGraph::build(spec)?;
        let needs = spec.components.iter().map(|c| Needs::of(c, snapshot)).collect();
        let comps = &spec.components;
        let bound = (0..comps.len()).filter(|&i| comps[i].proximity.iter().any(|p| p.required)).collect();
        let index: HashMap<&str, usize> = comps.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
        let mut targeted_by = vec![Vec::new(); comps.len()];
        for (o, other) in comps.iter().enumerate() {
            for (k, p) in other.proximity.iter().enumerate() {
                match index.get(p.to.as_str()) {
                    Some(&t) if t != o => targeted_by[t].push((o, k)),
                    _ => {}
                }
            }
        }
        Ok(Run {
            snapshot,
            tenant,
            app,
            spec,
            options,
            graph,
            needs,
            excluded: Vec::new(),
            moving: false,
            bound,
            index,
            targeted_by,
        })
    }

    fn run(
        mut self,
        existing: &[Allocation],
        replace: &[InstanceId],
        exclude_nodes: &[String],
    ) -> Result<Plan, ScheduleError> {
        self.excluded = exclude_nodes.iter().filter_map(|n| self.snapshot.index_of(n)).collect();
        self.excluded.sort_unstable();
        self.excluded.dedup();
        self.moving = !replace.is_empty();
        let mut state = Working::new(self.snapshot);
        let mut plan = Plan::default();
        let comps = &self.spec.components;
        let mut todo: Vec<Vec<u32>> = comps.iter().map(|c| (0..c.replicas).collect()).collect();
        for a in existing {
            let counted = self.snapshot.allocation(&a.instance).is_some();
            if !counted {
                state.take(a);
            }
            let ours = a.instance.tenant == self.tenant && a.instance.app == self.app;
            let c = self.index.get(a.instance.component.as_str()).copied();
            match c {
                Some(c) if ours && a.instance.replica < comps[c].replicas => {
                    if replace.contains(&a.instance) {
                        let held = self.snapshot.allocation(&a.instance).unwrap_or(a);
                        state.give_back(held);
                        continue;
                    }
                    if let Some(n) = self.snapshot.index_of(&a.node) {
                        state.record(&a.instance, n);
                    }
                    todo[c].retain(|r| *r != a.instance.replica);
                    plan.kept.push(a.instance.clone());
                }
                _ if ours => plan.surplus.push(a.instance.clone()),
                _ => {}
            }
        }
        if !replace.is_empty() {
            // Only the instances asked for are placed; instances never placed before are left alone.
            for (c, list) in todo.iter_mut().enumerate() {
                list.retain(|r| replace.contains(&self.id(c, *r)));
            }
        }
        plan.kept.sort();
        plan.surplus.sort();

        let mut budget = self.options.max_backtracks;
        // The state before any group; the state before group g is it plus the first checkpoints[g] placements
        // (rebuilt only when backtracking needs it, so a run over thousands of groups copies no state per group).
        let initial = state.clone();
        // checkpoints[g]: the placement count before group g, while that is a prefix of the order used.
        let mut checkpoints: Vec<Option<usize>> = Vec::new();
        let groups = self.graph.groups.clone();
        for (gi, group) in groups.iter().enumerate() {
            checkpoints.push(Some(plan.placements.len()));
            let mut best = self.place_group(state, group, &todo, &[]);
            // Backtracking 1: another node for the group's first component.
            // An attempt counts only if the first component still fits entirely.
            let root_name = &comps[group[0]].name;
            let root_fits = |r: &GroupResult<'_>| !r.failures.iter().any(|f| &f.component == root_name);
            let mut root_excluded: Vec<NodeIdx> = Vec::new();
            let mut last_root = best.root;
            let mut before_group: Option<Working<'s>> = None;
            while best.unplaced() > 0 && budget > 0 && group.len() > 1 && root_fits(&best) {
                let Some(root) = last_root else { break };
                budget -= 1;
                root_excluded.push(root);
                let before = before_group.get_or_insert_with(|| undo(best.state.clone(), &best.placements)).clone();
                let attempt = self.place_group(before, group, &todo, &root_excluded);
                if !root_fits(&attempt) {
                    break;
                }
                last_root = attempt.root;
                if attempt.unplaced() < best.unplaced() {
                    best = attempt;
                }
            }
            // Backtracking 2: place this group before an earlier one, then the earlier ones again.
            let mut k = gi;
            while best.unplaced() > 0 && budget > 0 && k > 0 {
                k -= 1;
                let Some(len) = checkpoints[k] else { continue };
                budget -= 1;
                let before = replay(initial.clone(), &plan.placements[..len]);
                let first = self.place_group(before, group, &todo, &[]);
                if first.unplaced() > 0 {
                    continue;
                }
                let mut placements = plan.placements[..len].to_vec();
                placements.extend(first.placements);
                let mut s = Some(first.state);
                for g in &groups[k..gi] {
                    let Some(current) = s.take() else { break };
                    let r = self.place_group(current, g, &todo, &[]);
                    if r.unplaced() == 0 {
                        placements.extend(r.placements);
                        s = Some(r.state);
                    }
                }
                if let Some(s) = s {
                    plan.placements = placements;
                    // The earlier groups were placed again, completely this time.
                    let replaced: Vec<&str> = groups[k..gi].iter().flatten().map(|c| comps[*c].name.as_str()).collect();
                    plan.unschedulable.retain(|u| !replaced.contains(&u.component.as_str()));
                    best = GroupResult { state: s, placements: Vec::new(), failures: Vec::new(), root: None };
                    // The states before groups k+1..=gi are no longer prefixes of the order used.
                    for c in &mut checkpoints[k + 1..=gi] {
                        *c = None;
                    }
                    break;
                }
            }
            state = best.state;
            plan.placements.extend(best.placements);
            plan.unschedulable.extend(best.failures);
        }
        plan.start_order =
            self.graph.layers.iter().map(|l| l.iter().map(|c| comps[*c].name.clone()).collect()).collect();
        Ok(plan)
    }

    fn id(&self, c: usize, replica: u32) -> InstanceId {
        InstanceId::new(self.tenant, self.app, &self.spec.components[c].name, replica)
    }

    fn place_group(
        &self,
        mut state: Working<'s>,
        group: &[usize],
        todo: &[Vec<u32>],
        root_excluded: &[NodeIdx],
    ) -> GroupResult<'s> {
        let mut placements = Vec::new();
        let mut failures = Vec::new();
        let mut root = None;
        for (gi, &c) in group.iter().enumerate() {
            let replicas = &todo[c];
            for (k, &r) in replicas.iter().enumerate() {
                let id = self.id(c, r);
                let mut excluded = self.excluded.clone();
                if gi == 0 {
                    excluded.extend_from_slice(root_excluded);
                    excluded.sort_unstable();
                    excluded.dedup();
                }
                let request = self.request(c, &id, k + 1 == replicas.len(), &state, excluded);
                let cx = Context { snapshot: self.snapshot, state: &state, request: &request, options: self.options };
                match select(&cx) {
                    Some(choice) => {
                        let needs = &self.needs[c];
                        let devices = state.allocate(choice.node, needs);
                        state.record(&id, choice.node);
                        if gi == 0 && root.is_none() {
                            root = Some(choice.node);
                        }
                        placements.push(Placement {
                            instance: id,
                            node: self.snapshot.node(choice.node).name.clone(),
                            devices,
                            cpu_millis: needs.cpu_millis,
                            memory_bytes: needs.memory_bytes,
                            disk_bytes: needs.disk_bytes,
                            score: choice.score,
                        });
                    }
                    None => {
                        let comp = &self.spec.components[c];
                        let failure = Failure {
                            component: comp.name.clone(),
                            unplaced: replicas[k..].iter().map(|r| self.id(c, *r)).collect(),
                            placed: state.placed(&comp.name).len() as u32,
                            replicas: comp.replicas,
                            moving: self.moving,
                        };
                        failures.push(explain(&cx, failure));
                        break;
                    }
                }
            }
        }
        self.repair(&mut state, &mut placements, &mut failures);
        GroupResult { state, placements, failures, root }
    }

    /// An instance placed before a component of its group failed may be left without the neighbour its required
    /// proximity asks for. Such an instance is placed again, or, when nothing fits, taken back and explained.
    fn repair(&self, state: &mut Working<'s>, placements: &mut Vec<Placement>, failures: &mut Vec<Unschedulable>) {
        if self.bound.is_empty() {
            return; // no required proximity: nothing can lack a neighbour
        }
        loop {
            self.repair_new(state, placements, failures);
            if !self.repair_kept(state, placements, failures) {
                break;
            }
        }
    }

    /// An instance kept from before may only lose its "vacuous" proximity (no target placed at all) if the new
    /// targets cover it; when the target component did not fit, its new instances are taken back and explained.
    fn repair_kept(
        &self,
        state: &mut Working<'s>,
        placements: &mut Vec<Placement>,
        failures: &mut Vec<Unschedulable>,
    ) -> bool {
        let comps = &self.spec.components;
        let mut broken: Option<usize> = None;
        'find: for a in self.bound.iter().map(|&i| &comps[i]) {
            for r in a.proximity.iter().filter(|r| r.required) {
                for (replica, n) in state.placed(&a.name) {
                    let new =
                        placements.iter().any(|p| p.instance.component == a.name && p.instance.replica == *replica);
                    if new {
                        continue;
                    }
                    let mut targets =
                        state.placed(&r.to).iter().filter(|(t, _)| !(r.to == a.name && t == replica)).peekable();
                    if targets.peek().is_some() && !targets.any(|(_, m)| near(self.snapshot, *n, *m, &r.within)) {
                        broken = self.index.get(r.to.as_str()).copied();
                        if placements.iter().any(|p| p.instance.component == r.to) {
                            break 'find;
                        }
                        broken = None;
                    }
                }
            }
        }
        let Some(t) = broken else { return false };
        let name = &comps[t].name;
        let mut removed: Vec<InstanceId> = Vec::new();
        placements.retain(|p| {
            if &p.instance.component != name {
                return true;
            }
            state.give_back(&Allocation::from(p));
            state.unrecord(&p.instance);
            removed.push(p.instance.clone());
            false
        });
        removed.sort();
        let request = self.request(t, &removed[0], true, state, self.excluded.clone());
        let cx = Context { snapshot: self.snapshot, state, request: &request, options: self.options };
        let mut unplaced = removed;
        for f in failures.iter().filter(|f| &f.component == name) {
            unplaced.extend(f.unplaced.iter().cloned());
        }
        failures.retain(|f| &f.component != name);
        unplaced.sort();
        unplaced.dedup();
        let failure = Failure {
            component: name.clone(),
            unplaced,
            placed: state.placed(name).len() as u32,
            replicas: comps[t].replicas,
            moving: true,
        };
        failures.push(explain(&cx, failure));
        true
    }

    fn repair_new(&self, state: &mut Working<'s>, placements: &mut Vec<Placement>, failures: &mut Vec<Unschedulable>) {
        let mut rounds = 4 * placements.len();
        while let Some(i) = placements.iter().position(|p| self.lacks_neighbour(state, p)) {
            let p = placements.remove(i);
            state.give_back(&Allocation::from(&p));
            state.unrecord(&p.instance);
            let Some(&c) = self.index.get(p.instance.component.as_str()) else { continue };
            let request = self.request(c, &p.instance, true, state, self.excluded.clone());
            let cx = Context { snapshot: self.snapshot, state, request: &request, options: self.options };
            let again = if rounds > 0 { select(&cx) } else { None };
            rounds = rounds.saturating_sub(1);
            match again {
                Some(choice) => {
                    drop(request);
                    let devices = state.allocate(choice.node, &self.needs[c]);
                    state.record(&p.instance, choice.node);
                    placements.push(Placement {
                        node: self.snapshot.node(choice.node).name.clone(),
                        devices,
                        score: choice.score,
                        ..p
                    });
                }
                None => {
                    let comp = &self.spec.components[c];
                    match failures.iter_mut().find(|f| f.component == comp.name) {
                        Some(f) => {
                            f.unplaced.push(p.instance);
                            f.unplaced.sort();
                            f.placed = f.placed.saturating_sub(1);
                            if let Some(Relaxation::FewerReplicas { replicas }) = &mut f.relaxation {
                                *replicas = f.placed;
                                if f.placed == 0 {
                                    f.relaxation = None;
                                }
                            }
                        }
                        None => {
                            let failure = Failure {
                                component: comp.name.clone(),
                                unplaced: vec![p.instance],
                                placed: state.placed(&comp.name).len() as u32,
                                replicas: comp.replicas,
                                moving: self.moving,
                            };
                            failures.push(explain(&cx, failure));
                        }
                    }
                }
            }
        }
    }

    /// True when a required proximity rule of the placed instance has targets placed, none of them near it.
    fn lacks_neighbour(&self, state: &Working<'_>, p: &Placement) -> bool {
        let Some(comp) = self.index.get(p.instance.component.as_str()).map(|&i| &self.spec.components[i]) else {
            return false;
        };
        let Some(n) = self.snapshot.index_of(&p.node) else { return false };
        comp.proximity.iter().filter(|r| r.required).any(|r| {
            let mut targets = state
                .placed(&r.to)
                .iter()
                .filter(|(replica, _)| !(r.to == comp.name && *replica == p.instance.replica))
                .peekable();
            targets.peek().is_some() && !targets.any(|(_, m)| near(self.snapshot, n, *m, &r.within))
        })
    }

    /// The request of instance `id` of component `c`, given what is placed in `state`.
    fn request(
        &self,
        c: usize,
        id: &InstanceId,
        last: bool,
        state: &Working<'_>,
        excluded: Vec<NodeIdx>,
    ) -> Request<'_> {
        let comps = &self.spec.components;
        let me = &comps[c];
        let mut required = Vec::new();
        let mut preferred = Vec::new();
        let nodes_of = |name: &str| -> Vec<NodeIdx> {
            let mut v: Vec<NodeIdx> = state.placed(name).iter().map(|(_, n)| *n).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        for p in &me.proximity {
            let nodes = nodes_of(&p.to);
            if nodes.is_empty() {
                continue;
            }
            let t = ProximityTarget {
                from: me.name.clone(),
                to: p.to.clone(),
                within: p.within.clone(),
                label_key: label_key_of(self.snapshot, &p.within),
                nodes,
                all: false,
                reverse: false,
            };
            if p.required {
                required.push(t);
            } else {
                preferred.push(t);
            }
        }
        // A required rule to its own component: every placed replica needs another replica near it.
        for p in me.proximity.iter().filter(|p| p.required && p.to == me.name) {
            let placed = state.placed(&me.name);
            let uncovered: Vec<NodeIdx> = placed
                .iter()
                .filter(|(r, n)| !placed.iter().any(|(r2, n2)| r2 != r && near(self.snapshot, *n, *n2, &p.within)))
                .map(|(_, n)| *n)
                .collect();
            if let Some(&first) = uncovered.first() {
                required.push(ProximityTarget {
                    from: me.name.clone(),
                    to: me.name.clone(),
                    within: p.within.clone(),
                    label_key: label_key_of(self.snapshot, &p.within),
                    nodes: if last { uncovered } else { vec![first] },
                    all: last,
                    reverse: true,
                });
            }
        }
        for &(o, k) in &self.targeted_by[c] {
            let (other, p) = (&comps[o], &comps[o].proximity[k]);
            {
                let theirs = nodes_of(&other.name);
                if theirs.is_empty() {
                    continue;
                }
                if !p.required {
                    preferred.push(ProximityTarget {
                        from: other.name.clone(),
                        to: me.name.clone(),
                        within: p.within.clone(),
                        label_key: label_key_of(self.snapshot, &p.within),
                        nodes: theirs,
                        all: false,
                        reverse: true,
                    });
                    continue;
                }
                // Each of their instances must have one of ours near it: cover the uncovered ones.
                let ours = nodes_of(&me.name);
                let uncovered: Vec<NodeIdx> = theirs
                    .into_iter()
                    .filter(|t| !ours.iter().any(|o| near(self.snapshot, *t, *o, &p.within)))
                    .collect();
                if uncovered.is_empty() {
                    continue;
                }
                let nodes = if last { uncovered } else { vec![uncovered[0]] };
                required.push(ProximityTarget {
                    from: other.name.clone(),
                    to: me.name.clone(),
                    within: p.within.clone(),
                    label_key: label_key_of(self.snapshot, &p.within),
                    nodes,
                    all: last,
                    reverse: true,
                });
            }
        }
        let same_component = state.placed(&me.name).iter().map(|(_, n)| *n).collect();
        Request { needs: &self.needs[c], instance: id.to_string(), required, preferred, excluded, same_component }
    }
}

/// `state` with `placements` taken back (the state before they were made).
fn undo<'s>(mut state: Working<'s>, placements: &[Placement]) -> Working<'s> {
    for p in placements.iter().rev() {
        state.give_back(&Allocation::from(p));
        state.unrecord(&p.instance);
    }
    state
}

/// `state` with `placements` made again, in order.
fn replay<'s>(mut state: Working<'s>, placements: &[Placement]) -> Working<'s> {
    for p in placements {
        state.take(&Allocation::from(p));
        if let Some(n) = state.snapshot().index_of(&p.node) {
            state.record(&p.instance, n);
        }
    }
    state
}
