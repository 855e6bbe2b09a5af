//! Turning a parsed document into typed objects, collecting as many structural errors as possible: each error is
//! located by its serde path, the offending node is removed and deserialization tried again; an application's
//! components are also tried one by one. Unknown fields and values get the closest valid name suggested.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::text::{field, PathMap};
use super::Position;
use crate::fog05;
use fos_api::manifest::{Component, NetworkSpec, Object, ObjectKind, Proximity, API_VERSION};

/// A structural error at a position.
pub(crate) struct Problem {
    pub position: Position,
    pub message: String,
    pub hint: Option<String>,
}

/// Most errors reported for one object before giving up.
const MAX_ERRORS_PER_OBJECT: usize = 32;

/// Reads a document: a fos/v1 object, or a fog05 manifest converted into one or more objects.
pub(crate) fn objects_from_document(
    value: Value,
    map: &PathMap,
    resolve: fog05::Resolver<'_>,
) -> Result<Vec<(Object, PathMap, bool)>, Vec<Problem>> {
    if value.get("kind").and_then(Value::as_str) == Some("List") {
        return list_items(value, map, resolve);
    }
    if fog05::is_fog05(&value) {
        let converted = fog05::convert(&value, resolve).map_err(|errs| {
            errs.into_iter()
                .map(|e| Problem { position: map.locate(&e.path), message: e.message, hint: e.hint })
                .collect::<Vec<_>>()
        })?;
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for c in converted {
            let rebased = map.rebased(&c.renames);
            match object_from_value(c.value, &rebased) {
                Ok(o) => out.push((o, rebased, true)),
                Err(p) => problems.extend(p),
            }
        }
        return if problems.is_empty() { Ok(out) } else { Err(problems) };
    }
    object_from_value(value, map).map(|o| vec![(o, map.clone(), false)])
}

/// Reads the `items` of a `kind: List` document (what `fosctl get -o json` prints for several objects), each at
/// its own positions.
fn list_items(
    value: Value,
    map: &PathMap,
    resolve: fog05::Resolver<'_>,
) -> Result<Vec<(Object, PathMap, bool)>, Vec<Problem>> {
    let at = |path: &str, message: &str| Problem { position: map.locate(path), message: message.into(), hint: None };
    let Some(Value::Array(items)) = value.get("items").cloned() else {
        return Err(vec![at("", "a `kind: List` document needs `items`, a list of objects")]);
    };
    let (mut out, mut problems) = (Vec::new(), Vec::new());
    for (i, item) in items.into_iter().enumerate() {
        let rebased = map.rebased(&[(String::new(), format!("items[{i}]"))]);
        match objects_from_document(item, &rebased, resolve) {
            Ok(objects) => out.extend(objects),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Reads a fos/v1 object (`apiVersion`, `kind`, `metadata`, `spec`). A `status` (what `fosctl get -o yaml` prints
/// beside the spec) is ignored, except a Node's, which planning reads.
pub(crate) fn object_from_value(value: Value, map: &PathMap) -> Result<Object, Vec<Problem>> {
    let at = |path: &str, message: String, hint: Option<String>| Problem { position: map.locate(path), message, hint };
    let Value::Object(mut fields) = value else {
        return Err(vec![at("", "a manifest must be a mapping with apiVersion, kind, metadata and spec".into(), None)]);
    };
    let mut problems = Vec::new();
    match fields.remove("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(other) => problems.push(at(
            "apiVersion",
            format!("unsupported apiVersion {other}"),
            Some(format!("use `{API_VERSION}`")),
        )),
        None => {
            problems.push(at("", "missing field `apiVersion`".into(), Some(format!("add `apiVersion: {API_VERSION}`"))))
        }
    }
    let names = ObjectKind::ALL.map(|k| k.as_str());
    let kind = match fields.remove("kind") {
        Some(Value::String(k)) => match ObjectKind::parse(&k) {
            Some(kind) => Some(kind),
            None => {
                problems.push(at("kind", format!("unknown kind `{k}`"), Some(suggest(&k, &names))));
                None
            }
        },
        Some(other) => {
            problems.push(at("kind", format!("kind must be a string, not {other}"), Some(suggest("", &names))));
            None
        }
        None => {
            problems.push(at("", "missing field `kind`".into(), Some(suggest("", &names))));
            None
        }
    };
    let (Some(kind), true) = (kind, problems.is_empty()) else { return Err(problems) };
    if kind != ObjectKind::Node {
        fields.remove("status");
    }
    let rest = Value::Object(fields);
    match kind {
        ObjectKind::Application => application(rest, map).map(Object::Application),
        ObjectKind::Entity => collect(rest, "", map).map(Object::Entity),
        ObjectKind::Network => collect(rest, "", map).map(Object::Network),
        ObjectKind::Plugin => collect(rest, "", map).map(Object::Plugin),
        ObjectKind::Image => collect(rest, "", map).map(Object::Image),
        ObjectKind::Node => collect(rest, "", map).map(|n| Object::Node(Box::new(n))),
        ObjectKind::Secret => collect(rest, "", map).map(Object::Secret),
    }
}

/// Reads an application; on errors, reads each component and each inline network alone, then the rest, so that
/// errors in several components are all reported.
fn application(value: Value, map: &PathMap) -> Result<fos_api::manifest::Application, Vec<Problem>> {
    let mut whole = match collect::<fos_api::manifest::Application>(value.clone(), "", map) {
        Ok(app) => return Ok(app),
        Err(p) => p,
    };
    let mut rest = value;
    let mut problems = Vec::new();
    if let Some(Value::Array(components)) = rest.pointer_mut("/spec/components").map(std::mem::take) {
        for (i, c) in components.into_iter().enumerate() {
            if let Err(p) = collect::<Component>(c, &format!("spec.components[{i}]"), map) {
                problems.extend(p);
            }
        }
        if let Some(slot) = rest.pointer_mut("/spec/components") {
            *slot = Value::Array(Vec::new());
        }
    }
    if let Some(Value::Array(networks)) = rest.pointer_mut("/spec/networks").map(std::mem::take) {
        for (i, mut n) in networks.into_iter().enumerate() {
            let at = format!("spec.networks[{i}]");
            if let Value::Object(fields) = &mut n {
                match fields.remove("name") {
                    Some(Value::String(_)) => {}
                    _ => problems.push(Problem {
                        position: map.locate(&at),
                        message: "an inline network needs a `name`".into(),
                        hint: None,
                    }),
                }
                if let Err(p) = collect::<NetworkSpec>(n, &at, map) {
                    problems.extend(p);
                }
            } else if !n.is_string() {
                problems.push(Problem {
                    position: map.locate(&at),
                    message: "a network is a Network object's name or an inline {name, type, ...}".into(),
                    hint: None,
                });
            }
        }
        if let Some(slot) = rest.pointer_mut("/spec/networks") {
            *slot = Value::Array(Vec::new());
        }
    }
    if let Err(p) = collect::<fos_api::manifest::Application>(rest, "", map) {
        problems.extend(p);
    }
    if problems.is_empty() {
        problems.append(&mut whole);
    }
    Err(problems)
}

/// Deserializes `value` (found at `prefix`) as a `T`, collecting errors by removing each offending node and
/// trying again.
fn collect<T: DeserializeOwned>(mut value: Value, prefix: &str, map: &PathMap) -> Result<T, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    while problems.len() < MAX_ERRORS_PER_OBJECT {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(t) if problems.is_empty() => return Ok(t),
            Ok(_) => break,
            Err(e) => e,
        };
        let rel = path_string(err.path());
        let message = err.inner().to_string();
        if let Some(missing) = quoted(&message, "missing field `") {
            if removed.contains(&field(&rel, missing)) {
                break;
            }
        }
        let full = |p: &str| join_prefix(prefix, p);
        // The proximity forms are tried in turn, so serde's error says little: read each rule alone instead.
        let detailed = if rel == "proximity" || rel.ends_with(".proximity") {
            proximity_problems(pointer(&value, &rel), &full(&rel), map)
        } else {
            Vec::new()
        };
        let (problem, remove) = if let Some(unknown) = quoted(&message, "unknown field `") {
            let target = if rel == unknown || rel.ends_with(&format!(".{unknown}")) {
                rel.clone()
            } else {
                field(&rel, unknown)
            };
            let expected = expected_names(&message);
            let hint = Some(suggest(unknown, &expected.iter().map(String::as_str).collect::<Vec<_>>()));
            (
                Problem {
                    position: map.locate_key(&full(&target)),
                    message: format!("unknown field `{unknown}`"),
                    hint,
                },
                target,
            )
        } else if let Some(variant) = quoted(&message, "unknown variant `") {
            let expected = expected_names(&message);
            let hint = Some(suggest(variant, &expected.iter().map(String::as_str).collect::<Vec<_>>()));
            let what = if rel.is_empty() { String::new() } else { format!("{}: ", full(&rel)) };
            (
                Problem {
                    position: map.locate(&full(&rel)),
                    message: format!("{what}unknown value `{variant}`"),
                    hint,
                },
                rel,
            )
        } else {
            let what = if full(&rel).is_empty() { String::new() } else { format!("{}: ", full(&rel)) };
            (Problem { position: map.locate(&full(&rel)), message: format!("{what}{message}"), hint: None }, rel)
        };
        if detailed.is_empty() {
            problems.push(problem);
        } else {
            problems.extend(detailed);
        }
        // Removing one element would shift its followers' indices: remove the whole list instead.
        let remove = strip_trailing_index(&remove);
        if remove.is_empty() || !remove_path(&mut value, remove) {
            break;
        }
        removed.push(remove.to_string());
    }
    Err(problems)
}

/// The errors of each `{to, within, required}` rule of a `proximity` value that is not a valid list of rules.
fn proximity_problems(value: Option<&Value>, at: &str, map: &PathMap) -> Vec<Problem> {
    let items: Vec<(String, &Value)> = match value {
        Some(Value::Array(items)) => items.iter().enumerate().map(|(j, v)| (format!("{at}[{j}]"), v)).collect(),
        Some(v @ Value::Object(_)) => vec![(at.to_string(), v)],
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (path, item) in items {
        match item {
            Value::String(_) => {}
            Value::Object(_) => {
                if let Err(p) = collect::<Proximity>(item.clone(), &path, map) {
                    out.extend(p);
                }
            }
            _ => out.push(Problem {
                position: map.locate(&path),
                message: format!("{path}: a proximity is a component name or a rule {{to, within, required}}"),
                hint: None,
            }),
        }
    }
    out
}

/// The node at a dotted path (`a.b[0].c`).
fn pointer<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        let key = pieces.next().unwrap_or("");
        if !key.is_empty() {
            node = node.get(key)?;
        }
        for idx in pieces {
            node = node.get(idx.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(node)
}

fn join_prefix(prefix: &str, rel: &str) -> String {
    match (prefix.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => prefix.to_string(),
        _ if rel.starts_with('[') => format!("{prefix}{rel}"),
        _ => format!("{prefix}.{rel}"),
    }
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => out = field(&out, key),
            Segment::Enum { variant } => out = field(&out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

fn strip_trailing_index(path: &str) -> &str {
    let mut p = path;
    while p.ends_with(']') {
        match p.rfind('[') {
            Some(i) => p = &p[..i],
            None => break,
        }
    }
    p
}

/// Removes the node at a dotted path; false when there is none.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let mut segments: Vec<(String, Option<usize>)> = Vec::new();
    for part in path.split('.') {
        let mut pieces = part.split('[');
        segments.push((pieces.next().unwrap_or("").to_string(), None));
        for idx in pieces {
            match idx.trim_end_matches(']').parse() {
                Ok(i) => segments.push((String::new(), Some(i))),
                Err(_) => return false,
            }
        }
    }
    let Some((last, last_index)) = segments.pop() else { return false };
    let mut node = value;
    for (key, index) in segments {
        let next = match index {
            Some(i) => node.get_mut(i),
            None => node.get_mut(&key),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last_index, node) {
        (None, Value::Object(m)) => m.remove(&last).is_some(),
        _ => false,
    }
}

/// The text between `prefix` and the next backtick in `message`.
fn quoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The backticked names after "expected" in a serde message.
fn expected_names(message: &str) -> Vec<String> {
    let Some(i) = message.find("expected") else { return Vec::new() };
    message[i..].split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// A hint naming the closest of `candidates` to `wrong` (ignoring case, `_` and `-`), else listing them.
pub(crate) fn suggest(wrong: &str, candidates: &[&str]) -> String {
    let norm = |s: &str| s.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_lowercase();
    let w = norm(wrong);
    let best =
        candidates.iter().map(|c| (if norm(c) == w { 0 } else { strsim::damerau_levenshtein(&norm(c), &w) }, *c)).min();
    match best {
        Some((d, c)) if !wrong.is_empty() && d <= 2.max(wrong.len() / 3) => format!("did you mean `{c}`?"),
        _ if candidates.is_empty() => "no fields are allowed here".to_string(),
        _ => format!("expected one of: {}", candidates.join(", ")),
    }
}
