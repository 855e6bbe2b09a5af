//! What `get -o yaml|json` prints: the objects as they are applied (`apiVersion`, `kind`, `metadata`, `spec`), with
//! what fos observed apart under `status`, so the output goes back into `apply`, `diff` and `plan --nodes` (which
//! ignore `status`, except a Node's). One object asked for by name prints alone; a listing prints as YAML documents
//! or as a JSON `kind: List` (as `kubectl get`). Also the label selector of `--selector` and human units.

use std::collections::BTreeMap;

use fos_api::wire::AppView;
use fos_api::{Node, Object};
use serde_json::{json, Value};

/// An application or standalone entity as an object: the applied object with its status (phase, generation,
/// components) under `status`.
pub fn app_object(view: &AppView) -> Value {
    let mut v = view.record.object.to_value();
    let mut status = serde_json::Map::new();
    status.insert("generation".into(), json!(view.record.generation));
    if let Some(created) = view.record.created {
        status.insert("created".into(), json!(created));
    }
    if view.record.deleting {
        status.insert("deleting".into(), json!(true));
    }
    if let Some(Value::Object(s)) = view.status.as_ref().map(|s| serde_json::to_value(s).unwrap_or_default()) {
        status.extend(s);
    }
    v["status"] = Value::Object(status);
    v
}

/// A node as a `kind: Node` object (info under `spec`, heartbeat and readiness under `status`).
pub fn node_object(node: &Node) -> Value {
    Object::Node(Box::new(node.clone())).to_value()
}

/// Prints `items` as YAML documents or as JSON: the object alone when `single` (one object asked for by name),
/// else a `kind: List`.
pub fn print_objects(items: &[Value], json_out: bool, single: bool) -> anyhow::Result<()> {
    print!("{}", render_objects(items, json_out, single)?);
    Ok(())
}

/// The text [`print_objects`] prints.
pub fn render_objects(items: &[Value], json_out: bool, single: bool) -> anyhow::Result<String> {
    if json_out {
        let v = match items {
            [one] if single => one.clone(),
            _ => json!({"apiVersion": fos_api::manifest::API_VERSION, "kind": "List", "items": items}),
        };
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(item)?);
    }
    Ok(out)
}

/// A label selector (`app=web,tier!=db,gpu,!legacy`), as `kubectl get -l`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Selector {
    /// Parses `k=v`, `k==v`, `k!=v`, `k` and `!k`, separated by commas.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else {
                Requirement::Exists(part.into())
            };
            let key = match &req {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::Exists(k)
                | Requirement::Absent(k) => k,
            };
            if key.is_empty() || key.contains(['=', '!', ' ']) {
                return Err(format!("`{part}` is not a label requirement (key=value, key!=value, key, !key)"));
            }
            out.push(req);
        }
        Ok(Selector(out))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }

    /// Whether the JSON object `v` (its `metadata.labels`) satisfies it.
    pub fn matches_value(&self, v: &Value) -> bool {
        let labels: BTreeMap<String, String> =
            v.pointer("/metadata/labels").and_then(|l| serde_json::from_value(l.clone()).ok()).unwrap_or_default();
        self.matches(&labels)
    }
}

/// Bytes with a binary unit and one decimal where needed (`23.5Gi`, `512Mi`, `0`).
pub fn human_bytes(bytes: u64) -> String {
    for (unit, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        if bytes >= 1 << shift {
            let v = bytes as f64 / (1u64 << shift) as f64;
            let text = format!("{v:.1}");
            return format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text));
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_labels() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string()), ("gpu".to_string(), "1".to_string())]);
        let yes = |s: &str| Selector::parse(s).unwrap().matches(&labels);
        assert!(yes("app=web"));
        assert!(yes("app==web,gpu"));
        assert!(yes("app!=db,!legacy"));
        assert!(!yes("app=db"));
        assert!(!yes("legacy"));
        assert!(!yes("app=web,!gpu"));
        assert!(Selector::parse("=x").is_err());
    }

    #[test]
    fn bytes_read_as_humans_read_them() {
        assert_eq!(human_bytes(25_276_502_016), "23.5Gi");
        assert_eq!(human_bytes(512 << 20), "512Mi");
        assert_eq!(human_bytes(2 << 30), "2Gi");
        assert_eq!(human_bytes(1000), "1000");
    }

    #[test]
    fn several_objects_print_as_documents_or_a_list() {
        let items = vec![json!({"kind": "Node", "metadata": {"name": "a"}}), json!({"kind": "Node"})];
        let yaml = render_objects(&items, false, false).unwrap();
        assert_eq!(yaml.matches("---\n").count(), 1, "{yaml}");
        let list: Value = serde_json::from_str(&render_objects(&items, true, false).unwrap()).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][0]["metadata"]["name"], "a");
        let listed: Value = serde_json::from_str(&render_objects(&items[..1], true, false).unwrap()).unwrap();
        assert_eq!(listed["kind"], "List");
        let one: Value = serde_json::from_str(&render_objects(&items[..1], true, true).unwrap()).unwrap();
        assert_eq!(one["kind"], "Node");
        let none: Value = serde_json::from_str(&render_objects(&[], true, false).unwrap()).unwrap();
        assert_eq!(none["items"], json!([]));
    }
}
