//! `fosctl get app NAME -o dot`: an application as a Graphviz graph. Every instance is a box inside the cluster of
//! the node it runs on (instances not placed yet stand outside), coloured by its state; `need` edges are solid
//! (`web → db`: web starts after db), `proximity` edges dashed (bold when required).
//!
//! ```text
//! fosctl get app wordpress -o dot | dot -Tsvg > wordpress.svg
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;

use fos_api::wire::{AppView, EntityView};
use fos_api::State;

/// The fill colour of an instance in `state` (ready or not).
fn colour(e: Option<&EntityView>) -> &'static str {
    let Some(a) = e.and_then(|e| e.actual.as_ref()) else { return "lightgrey" };
    match a.state() {
        Some(State::Running) if a.ready => "palegreen",
        Some(State::Running) => "khaki",
        Some(State::Error) => "salmon",
        Some(State::Paused) => "lightblue",
        Some(State::Configured | State::Defined) => "lightgrey",
        _ => "white",
    }
}

/// A Graphviz string (names are DNS labels; `\n` in labels is Graphviz's line break and stays as it is).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\\\""))
}

/// The graph of `app` with its instances `entities`.
pub fn render(app: &AppView, entities: &[EntityView]) -> String {
    let name = app.record.object.name();
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(name));
    let phase = app.status.as_ref().map_or("Pending".to_string(), |s| s.phase.to_string());
    let _ = writeln!(out, "  label={}; labelloc=t; rankdir=LR; compound=true;", quote(&format!("{name} ({phase})")));
    let _ = writeln!(out, "  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];");
    let Some(spec) = app.record.object.as_application() else {
        out.push_str("}\n");
        return out;
    };
    // Each component's graph nodes: its instances, or the component itself while none exists.
    let mut members: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut by_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut loose: Vec<String> = Vec::new();
    for c in &spec.spec.components {
        let mine: Vec<&EntityView> = entities.iter().filter(|e| e.id.component == c.name).collect();
        if mine.is_empty() {
            let id = quote(&c.name);
            loose.push(format!(
                "{id} [label={}, fillcolor={}]",
                quote(&format!("{}\\nnot placed", c.name)),
                colour(None)
            ));
            members.entry(&c.name).or_default().push(id);
            continue;
        }
        for e in mine {
            let short = e.id.short();
            let state = e.actual.as_ref().and_then(|a| a.state()).map_or("-".to_string(), |s| s.to_string());
            let line = format!(
                "{} [label={}, fillcolor={}]",
                quote(&short),
                quote(&format!("{short}\\n{state}")),
                colour(Some(e))
            );
            by_node.entry(e.node.as_str()).or_default().push(line);
            members.entry(&c.name).or_default().push(quote(&short));
        }
    }
    for (node, lines) in &by_node {
        let _ = writeln!(out, "  subgraph {} {{", quote(&format!("cluster_{node}")));
        let _ = writeln!(out, "    label={}; style=rounded; color=grey40;", quote(&format!("node {node}")));
        for l in lines {
            let _ = writeln!(out, "    {l};");
        }
        out.push_str("  }\n");
    }
    for l in &loose {
        let _ = writeln!(out, "  {l};");
    }
    let empty = Vec::new();
    for c in &spec.spec.components {
        let from = members.get(c.name.as_str()).unwrap_or(&empty);
        for need in &c.need {
            for a in from {
                for b in members.get(need.as_str()).unwrap_or(&empty) {
                    let _ = writeln!(out, "  {a} -> {b} [label=\"need\"];");
                }
            }
        }
        for p in &c.proximity {
            let style = if p.required { "dashed, penwidth=2" } else { "dashed" };
            for a in from {
                for b in members.get(p.to.as_str()).unwrap_or(&empty) {
                    let _ = writeln!(out, "  {a} -> {b} [label=\"near\", style=\"{style}\", dir=none];");
                }
            }
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fos_api::wire::AppRecord;
    use fos_api::{ActualInstance, InstanceId, Object};

    fn wordpress() -> AppView {
        let text = "apiVersion: fos/v1\nkind: Application\nmetadata: {name: wp}\nspec:\n  components:\n    - name: db\n      entity: {kind: native, command: [db]}\n    - name: web\n      need: [db]\n      proximity: [{to: db, required: true}]\n      entity: {kind: native, command: [web]}\n";
        let object: Object =
            serde_yaml_ng::from_str::<serde_json::Value>(text).map(|v| Object::from_value(v).unwrap()).unwrap();
        AppView { record: AppRecord { object, generation: 1, deleting: false, created: None }, status: None }
    }

    #[test]
    fn instances_sit_in_their_node_with_need_and_proximity_edges() {
        let id = InstanceId::new("default", "wp", "db", 0);
        let mut actual = ActualInstance::new(id.clone(), "edge-1");
        actual.lifecycle.state = Some(State::Running);
        actual.ready = true;
        let db = EntityView { id, node: "edge-1".into(), desired: None, actual: Some(actual), unknown: false };
        let dot = render(&wordpress(), &[db]);
        assert!(dot.starts_with("digraph \"wp\" {"), "{dot}");
        assert!(dot.contains("subgraph \"cluster_edge-1\""), "{dot}");
        assert!(dot.contains("\"db-0\" [label=\"db-0\\nRunning\", fillcolor=palegreen]"), "{dot}");
        assert!(dot.contains("\"web\" [label=\"web\\nnot placed\""), "{dot}");
        assert!(dot.contains("\"web\" -> \"db-0\" [label=\"need\"]"), "{dot}");
        assert!(dot.contains("\"web\" -> \"db-0\" [label=\"near\", style=\"dashed, penwidth=2\""), "{dot}");
    }
}
