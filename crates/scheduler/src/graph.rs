//! The application's graph for placement: the start layers of the `need` graph ([`NeedGraph`], shared with
//! validation and the controller), and the placement groups: required `proximity` edges bind components into groups
//! placed together; the placement order is the groups in `need` order, each group ordered so that a rule's target is
//! placed before the rule's owner.

use std::collections::HashMap;

use petgraph::unionfind::UnionFind;

use fos_api::graph::NeedGraph;
use fos_api::ApplicationSpec;

use crate::error::ScheduleError;

/// The application's components, their start layers and their placement groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppGraph {
    /// Start layers: component indexes (into `spec.components`) that can start together, in start order.
    pub layers: Vec<Vec<usize>>,
    /// Each component's layer.
    pub layer_of: Vec<usize>,
    /// Placement groups (components bound by required proximity), in placement order, each in placement order.
    pub groups: Vec<Vec<usize>>,
}

impl AppGraph {
    /// Builds the graph, refusing duplicate names, unknown references and `need` cycles.
    pub fn build(spec: &ApplicationSpec) -> Result<Self, ScheduleError> {
        let comps = &spec.components;
        let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(comps.len());
        for (i, c) in comps.iter().enumerate() {
            if by_name.insert(c.name.as_str(), i).is_some() {
                return Err(ScheduleError::DuplicateComponent(c.name.clone()));
            }
        }
        let index = |name: &str| by_name.get(name).copied();
        for c in comps {
            for n in &c.need {
                if index(n).is_none() {
                    return Err(ScheduleError::UnknownNeed { component: c.name.clone(), need: n.clone() });
                }
            }
            for p in &c.proximity {
                if index(&p.to).is_none() {
                    return Err(ScheduleError::UnknownProximity { component: c.name.clone(), to: p.to.clone() });
                }
            }
        }
        let need = NeedGraph::build(spec);
        if let Some(cycle) = need.cycles.first() {
            let mut names: Vec<String> = cycle.path[1..].iter().map(|&i| comps[i].name.clone()).collect();
            names.sort();
            return Err(ScheduleError::NeedCycle(names));
        }
        let NeedGraph { layers, layer_of, .. } = need;

        let mut uf = UnionFind::<usize>::new(comps.len());
        for (i, c) in comps.iter().enumerate() {
            for p in c.proximity.iter().filter(|p| p.required) {
                if let Some(j) = index(&p.to) {
                    uf.union(i, j);
                }
            }
        }
        let rank = |i: usize| (layer_of[i], i);
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_root: Vec<Option<usize>> = vec![None; comps.len()];
        let mut by_rank: Vec<usize> = (0..comps.len()).collect();
        by_rank.sort_by_key(|i| rank(*i));
        for &i in &by_rank {
            let root = uf.find(i);
            match by_root[root] {
                Some(g) => groups[g].push(i),
                None => {
                    by_root[root] = Some(groups.len());
                    groups.push(vec![i]);
                }
            }
        }
        // Inside a group, place a rule's target before its owner where the rules allow it.
        for g in &mut groups {
            let members = std::mem::take(g);
            let mut left = members.clone();
            while !left.is_empty() {
                let ready = left.iter().position(|&i| {
                    comps[i].proximity.iter().filter(|p| p.required && p.to != comps[i].name).all(|p| {
                        let j = index(&p.to).unwrap_or(i);
                        !members.contains(&j) || g.contains(&j)
                    })
                });
                g.push(left.remove(ready.unwrap_or(0)));
            }
        }
        Ok(AppGraph { layers, layer_of, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::component;
    use fos_api::manifest::{Proximity, Within};

    fn spec(comps: Vec<fos_api::Component>) -> ApplicationSpec {
        ApplicationSpec { description: None, networks: vec![], components: comps }
    }

    fn needs(name: &str, need: &[&str]) -> fos_api::Component {
        let mut c = component(name);
        c.need = need.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn layers_follow_need() {
        let s =
            spec(vec![needs("web", &["db", "cache"]), needs("db", &[]), needs("cache", &[]), needs("lb", &["web"])]);
        let g = AppGraph::build(&s).unwrap();
        assert_eq!(g.layers, vec![vec![1, 2], vec![0], vec![3]]);
        assert_eq!(g.groups, vec![vec![1], vec![2], vec![0], vec![3]]);
    }

    #[test]
    fn cycles_and_unknown_names_are_refused() {
        let s = spec(vec![needs("a", &["b"]), needs("b", &["c"]), needs("c", &["a"]), needs("d", &[])]);
        assert_eq!(AppGraph::build(&s), Err(ScheduleError::NeedCycle(vec!["a".into(), "b".into(), "c".into()])));
        let s = spec(vec![needs("a", &["zz"])]);
        assert!(matches!(AppGraph::build(&s), Err(ScheduleError::UnknownNeed { .. })));
        let s = spec(vec![needs("a", &[]), needs("a", &[])]);
        assert_eq!(AppGraph::build(&s), Err(ScheduleError::DuplicateComponent("a".into())));
    }

    #[test]
    fn required_proximity_groups_place_the_target_first() {
        // db needs nothing; web needs db; agent (layer 0) must be on the same node as web (layer 1).
        let mut agent = needs("agent", &[]);
        agent.proximity = vec![Proximity { to: "web".into(), within: Within::Node, required: true }];
        let s = spec(vec![agent, needs("db", &[]), needs("web", &["db"])]);
        let g = AppGraph::build(&s).unwrap();
        assert_eq!(g.layers, vec![vec![0, 1], vec![2]]);
        // The group {agent, web} comes first (agent is layer 0) and places web before agent.
        assert_eq!(g.groups, vec![vec![2, 0], vec![1]]);
    }
}
