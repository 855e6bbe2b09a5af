//! The `need` graph of an application, computed in one place for everyone: validation reports its cycles, the
//! scheduler and the plan take its start layers, the controller releases components layer by layer and tears them
//! down in reverse (a component goes only once nothing that needs it is left).
//!
//! Layers are longest-path layers: a component's layer is one more than the highest layer among what it needs, so
//! the components of one layer can start together once the previous layers are ready. Unknown `need` names are
//! ignored here (validation reports them); the members of a cycle, which validation refuses, end up together in a
//! last layer so that nothing loops.

use std::collections::{BTreeMap, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

use crate::manifest::ApplicationSpec;

/// A `need` cycle: its path and the `need` entry that closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// Component indexes along the cycle, starting and ending with its first declared member (`a -> b -> a`).
    pub path: Vec<usize>,
    /// The component whose `need` entry closes the cycle.
    pub closing_component: usize,
    /// The index of that entry in the component's `need` list.
    pub closing_need: usize,
}

/// The `need` graph of one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedGraph {
    /// Start layers: component indexes (into `spec.components`, ascending within a layer) in start order.
    pub layers: Vec<Vec<usize>>,
    /// Each component's layer.
    pub layer_of: Vec<usize>,
    /// The cycles, one per strongly connected component of more than one member, in order of their first member.
    pub cycles: Vec<Cycle>,
    /// For each component, the components that need it.
    dependents: Vec<Vec<usize>>,
}

impl NeedGraph {
    /// Builds the graph of `spec`.
    pub fn build(spec: &ApplicationSpec) -> NeedGraph {
        let comps = &spec.components;
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, c) in comps.iter().enumerate() {
            index.entry(c.name.as_str()).or_insert(i);
        }
        // Edge from a component to what it needs; the weight is the position of the entry in its `need` list.
        let mut graph: DiGraphMap<usize, usize, std::hash::RandomState> = DiGraphMap::default();
        let mut needs: Vec<Vec<usize>> = vec![Vec::new(); comps.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); comps.len()];
        for (i, c) in comps.iter().enumerate() {
            graph.add_node(i);
            for (j, need) in c.need.iter().enumerate() {
                let Some(&t) = index.get(need.as_str()) else { continue };
                if t == i || needs[i].contains(&t) {
                    continue;
                }
                graph.add_edge(i, t, j);
                needs[i].push(t);
                dependents[t].push(i);
            }
        }
        let cycles = find_cycles(&graph);
        let layer_of = layer(&needs, comps.len());
        let depth = layer_of.iter().copied().max().map_or(0, |d| d + 1);
        let mut layers = vec![Vec::new(); depth];
        for (i, l) in layer_of.iter().enumerate() {
            layers[*l].push(i);
        }
        NeedGraph { layers, layer_of, cycles, dependents }
    }

    /// The start order by component name: one list per layer.
    pub fn start_order(&self, spec: &ApplicationSpec) -> Vec<Vec<String>> {
        self.layers.iter().map(|l| l.iter().map(|&i| spec.components[i].name.clone()).collect()).collect()
    }

    /// The components that need component `index`.
    pub fn dependents(&self, index: usize) -> &[usize] {
        self.dependents.get(index).map_or(&[], Vec::as_slice)
    }
}

/// Longest-path layers over `needs` (a component's layer is one more than the highest of its needs). Components left
/// when no progress can be made (a cycle) share one last layer.
fn layer(needs: &[Vec<usize>], n: usize) -> Vec<usize> {
    let mut layer_of: Vec<Option<usize>> = vec![None; n];
    let mut done = 0;
    let mut current = 0;
    while done < n {
        let ready: Vec<usize> = (0..n)
            .filter(|&i| layer_of[i].is_none())
            .filter(|&i| needs[i].iter().all(|&t| layer_of[t].is_some_and(|l| l < current)))
            .collect();
        let wave = if ready.is_empty() { (0..n).filter(|&i| layer_of[i].is_none()).collect() } else { ready };
        for &i in &wave {
            layer_of[i] = Some(current);
        }
        done += wave.len();
        current += 1;
    }
    layer_of.into_iter().map(|l| l.unwrap_or(0)).collect()
}

/// One cycle per strongly connected component: the shortest through its first declared member.
fn find_cycles(graph: &DiGraphMap<usize, usize, std::hash::RandomState>) -> Vec<Cycle> {
    let mut sccs: Vec<Vec<usize>> = tarjan_scc(graph).into_iter().filter(|s| s.len() > 1).collect();
    sccs.iter_mut().for_each(|s| s.sort_unstable());
    sccs.sort();
    let mut out = Vec::new();
    for scc in sccs {
        let start = scc[0];
        // Breadth-first from `start` inside the component, until a node with an edge back to `start`.
        let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        while let Some(n) = queue.pop_front() {
            if graph.contains_edge(n, start) {
                closing = Some(n);
                break;
            }
            for m in graph.neighbors(n) {
                if m != start && scc.binary_search(&m).is_ok() && !parent.contains_key(&m) {
                    parent.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        let Some(last) = closing else { continue };
        let mut path = vec![last];
        while let Some(&p) = path.last().and_then(|l| parent.get(l)) {
            path.push(p);
        }
        if path.last() != Some(&start) {
            path.push(start);
        }
        path.reverse();
        path.push(start);
        let closing_need = graph.edge_weight(last, start).copied().unwrap_or(0);
        out.push(Cycle { path, closing_component: last, closing_need });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Component;
    use crate::EntitySpec;

    fn comp(name: &str, need: &[&str]) -> Component {
        let mut c = ApplicationSpec::single(name, EntitySpec::native(["true"])).components.remove(0);
        c.need = need.iter().map(|s| s.to_string()).collect();
        c
    }

    fn spec(components: Vec<Component>) -> ApplicationSpec {
        ApplicationSpec { components, ..Default::default() }
    }

    #[test]
    fn layers_follow_needs_and_dependents_invert_them() {
        let s = spec(vec![comp("web", &["db", "cache"]), comp("db", &[]), comp("cache", &[]), comp("lb", &["web"])]);
        let g = NeedGraph::build(&s);
        assert_eq!(g.layers, vec![vec![1, 2], vec![0], vec![3]]);
        assert_eq!(g.start_order(&s), vec![vec!["db", "cache"], vec!["web"], vec!["lb"]]);
        assert_eq!(g.dependents(1), [0]);
        assert_eq!(g.dependents(3), [] as [usize; 0]);
        assert!(g.cycles.is_empty());
    }

    #[test]
    fn a_layer_waits_for_its_deepest_need() {
        // c needs a (layer 0) and b (layer 1): it starts in layer 2, not 1.
        let s = spec(vec![comp("a", &[]), comp("b", &["a"]), comp("c", &["a", "b"])]);
        assert_eq!(NeedGraph::build(&s).layer_of, vec![0, 1, 2]);
    }

    #[test]
    fn a_cycle_is_found_with_its_closing_entry_and_ends_in_one_layer() {
        let s = spec(vec![comp("a", &["b"]), comp("b", &["c"]), comp("c", &["x", "a"]), comp("d", &[])]);
        let g = NeedGraph::build(&s);
        assert_eq!(g.cycles, vec![Cycle { path: vec![0, 1, 2, 0], closing_component: 2, closing_need: 1 }]);
        assert_eq!(g.layers, vec![vec![3], vec![0, 1, 2]]);
    }
}
