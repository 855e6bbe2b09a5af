//! `fosctl diff -f FILES`: what `apply` would change, as a unified diff of each object's YAML (what is stored →
//! what the files say; coloured on a terminal), then, per application, the placement changes the plan makes (new
//! placements, instances removed, what cannot be placed). Exit status as `kubectl diff`: 0 nothing would change,
//! 1 something would, 2 or more the diff itself failed.

use std::fmt::Write;

use fos_api::wire::{AppPlan, AppView, Change, EntityView, SOURCE_ANNOTATION};
use fos_api::{Object, ObjectKind};
use serde_json::Value;
use similar::TextDiff;

use super::apply::{send, with_tenant};
use super::style::{colour_stdout, paint};
use super::{load, Files, Global};
use crate::client::{encode_query, Client, ServerError};

/// The diff command failed (exit status 2): the error, unchanged.
#[derive(Debug)]
pub struct DiffFailed(pub anyhow::Error);

impl std::fmt::Display for DiffFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for DiffFailed {}

/// An object's YAML as `diff` compares it: without the bookkeeping annotation of `apply --prune`.
pub fn yaml_of(value: &Value) -> String {
    let mut v = value.clone();
    if let Some(a) = v.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        a.remove(SOURCE_ANNOTATION);
        if a.is_empty() {
            if let Some(md) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
                md.remove("annotations");
            }
        }
    }
    serde_yaml_ng::to_string(&v).unwrap_or_default()
}

/// The unified diff of `old` → `new` named `what`, coloured when `colour`.
pub fn unified(what: &str, old: &str, new: &str, colour: bool) -> String {
    let diff = TextDiff::from_lines(old, new);
    let text =
        diff.unified_diff().context_radius(3).header(&format!("live/{what}"), &format!("new/{what}")).to_string();
    let mut out = String::new();
    for line in text.lines() {
        let code = match line.chars().next() {
            _ if line.starts_with("+++") || line.starts_with("---") => "1",
            Some('+') => "32",
            Some('-') => "31",
            Some('@') => "36",
            _ => "",
        };
        let _ = writeln!(out, "{}", if code.is_empty() { line.to_string() } else { paint(line, code, colour) });
    }
    out
}

/// The placement changes of `plan` against the instances placed now: `+` new, `-` removed, `!` unplaceable.
pub fn placement_changes(plan: &AppPlan, placed: &[EntityView], colour: bool) -> Vec<String> {
    let mut out = Vec::new();
    for p in plan.placements.iter().filter(|p| !p.existing) {
        out.push(paint(&format!("+ {} → {}", p.instance.short(), p.node), "32", colour));
    }
    for e in placed.iter().filter(|e| e.desired.is_some()) {
        if !plan.placements.iter().any(|p| p.instance == e.id) {
            out.push(paint(&format!("- {} on {}", e.id.short(), e.node), "31", colour));
        }
    }
    for u in &plan.unschedulable {
        out.push(paint(&format!("! cannot place {}: {}", u.component, u.explanation()), "33", colour));
    }
    out
}

/// What is stored for `obj`, as an object (none: it does not exist).
async fn live(client: &Client, obj: &Object) -> anyhow::Result<Option<Value>> {
    let name = obj.name();
    let tenant = obj.metadata().tenant();
    let find = |list: Vec<Value>, tenant: Option<&str>| {
        list.into_iter().find(|v| {
            v.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                && tenant.is_none_or(|t| {
                    v.pointer("/metadata/tenant").and_then(Value::as_str).unwrap_or(fos_api::manifest::DEFAULT_TENANT)
                        == t
                })
        })
    };
    Ok(match obj.kind() {
        ObjectKind::Application | ObjectKind::Entity => {
            match client.get::<AppView>(&format!("/v1/apps/{}/{}", encode_query(tenant), encode_query(name))).await {
                Ok(v) => Some(v.record.object.to_value()),
                Err(e) if e.downcast_ref::<ServerError>().is_some_and(|s| s.status == 404) => None,
                Err(e) => return Err(e),
            }
        }
        ObjectKind::Network => find(client.get("/v1/networks").await?, Some(tenant)),
        ObjectKind::Image => find(client.get("/v1/images").await?, None),
        ObjectKind::Plugin => {
            let list: Vec<Value> = client.get("/v1/plugins").await?;
            find(list.into_iter().filter_map(|p| p.get("desired").cloned()).collect(), None)
        }
        ObjectKind::Secret | ObjectKind::Node => None,
    })
}

/// `fosctl diff`: whether something would change.
pub async fn diff(client: &Client, global: &Global, files: Files) -> anyhow::Result<bool> {
    let manifests = load::load(&files.files)?;
    let resp = send(client, &manifests, global, true, None).await?;
    let colour = colour_stdout();
    let mut changed = false;
    let mut out = String::new();
    for (l, c) in manifests.objects().iter().zip(&resp.changes) {
        if c.change == Change::Unchanged {
            continue;
        }
        changed = true;
        let obj = with_tenant(l.object.clone(), global);
        let what = format!("{}/{}", c.kind.as_str().to_ascii_lowercase(), c.name);
        if obj.kind() == ObjectKind::Secret {
            let _ = writeln!(out, "{what} {} (values are not shown)", c.change);
            continue;
        }
        let old = live(client, &obj).await?.map(|v| yaml_of(&v)).unwrap_or_default();
        out.push_str(&unified(&what, &old, &yaml_of(&obj.to_value()), colour));
    }
    for plan in &resp.plans {
        let q = format!("tenant={}&app={}", encode_query(&plan.tenant), encode_query(&plan.app));
        let placed: Vec<EntityView> = client.get(&format!("/v1/entities?{q}")).await?;
        let lines = placement_changes(plan, &placed, colour);
        if !lines.is_empty() {
            changed = true;
            let _ = writeln!(out, "placement of {}/{}:", plan.tenant, plan.app);
            lines.iter().for_each(|l| {
                let _ = writeln!(out, "  {l}");
            });
        }
    }
    print!("{out}");
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_change_reads_as_that_field() {
        let old = "spec:\n  components:\n  - name: web\n    replicas: 3\n    entity:\n      command: [a]\n";
        let new = "spec:\n  components:\n  - name: web\n    replicas: 5\n    entity:\n      command: [a]\n";
        let d = unified("application/wp", old, new, false);
        assert!(d.contains("--- live/application/wp\n+++ new/application/wp\n"), "{d}");
        assert!(d.contains("\n-    replicas: 3\n+    replicas: 5\n"), "{d}");
        let coloured = unified("application/wp", old, new, true);
        assert!(coloured.contains("\x1b[32m+    replicas: 5\x1b[0m"), "{coloured}");
    }

    #[test]
    fn the_source_annotation_is_not_a_difference() {
        let a = serde_json::json!({"metadata": {"name": "x", "annotations": {"fos/source": "/d"}}});
        let b = serde_json::json!({"metadata": {"name": "x"}});
        assert_eq!(yaml_of(&a), yaml_of(&b));
    }
}
