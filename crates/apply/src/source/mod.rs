//! Loading manifests from text with positions: YAML (multi-document) or JSON, fos/v1 objects or the fog05 format,
//! each error reported as `FILE:LINE:COL: message`. [`load_str`] gives the objects (or every structural error);
//! [`check`] runs validation over loaded objects; [`locate`] maps a server-side [`Violation`] back to a position.

mod structural;
mod text;

use std::fmt;

use serde::{Deserialize, Serialize};

use fos_api::manifest::Object;
use fos_api::validate::{validate_with, Existing, Violation};

pub use text::{parse_documents, ParseError, PathMap};

/// A place in a source text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset of the start in the text.
    pub offset: usize,
    /// Length in bytes of the text pointed at (at most to the end of its line).
    pub len: usize,
}

/// An error in a manifest file, at a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file name as given (`-` for standard input).
    pub file: String,
    /// Where in it.
    pub position: Position,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.position.line, self.position.column, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// An object read from a file, with what is needed to point back into that file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedObject {
    /// The object.
    pub object: Object,
    /// The file it was read from.
    pub file: String,
    /// Its document's index in the file (0-based).
    pub document: usize,
    /// Where each of its paths is written.
    pub positions: PathMap,
    /// True when it was converted from the fog05 format.
    pub converted: bool,
}

impl LoadedObject {
    /// A diagnostic at `path` of this object.
    pub fn diagnostic(&self, path: &str, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        Diagnostic { file: self.file.clone(), position: self.positions.locate(path), message: message.into(), hint }
    }
}

/// Loads every object of a text (fos/v1 YAML or JSON, one or more documents, or fog05 JSON), reporting every
/// structural error found (bad syntax, wrong types, unknown fields with the closest valid name, missing fields).
/// A fog05 application naming its components' manifests by file name needs [`load_str_with`].
pub fn load_str(file: &str, text: &str) -> Result<Vec<LoadedObject>, Vec<Diagnostic>> {
    load_str_with(file, text, &|name: &str| {
        Err(format!("cannot read component manifest `{name}`: file names are resolved only when loading files"))
    })
}

/// [`load_str`], reading the entity manifests a fog05 application names by file through `resolve`.
pub fn load_str_with(
    file: &str,
    text: &str,
    resolve: crate::fog05::Resolver<'_>,
) -> Result<Vec<LoadedObject>, Vec<Diagnostic>> {
    let partial = load_partial(file, text, resolve);
    if partial.diagnostics.is_empty() {
        Ok(partial.objects)
    } else {
        Err(partial.diagnostics)
    }
}

/// What one text yields when some of its documents are wrong: the objects that loaded, the errors of the others,
/// and the names of the Network objects among the others (so that references to them are not reported as well).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partial {
    /// The objects read without error.
    pub objects: Vec<LoadedObject>,
    /// Every structural error.
    pub diagnostics: Vec<Diagnostic>,
    /// `(tenant, name)` of each Network document that did not load.
    pub broken_networks: Vec<(String, String)>,
}

/// Loads what can be loaded of a text, document by document.
pub fn load_partial(file: &str, text: &str, resolve: crate::fog05::Resolver<'_>) -> Partial {
    let mut partial = Partial::default();
    let docs = match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            let d = Diagnostic { file: file.to_string(), position: e.position, message: e.message, hint: None };
            partial.diagnostics.push(d);
            return partial;
        }
    };
    if docs.is_empty() {
        partial.diagnostics.push(Diagnostic {
            file: file.to_string(),
            position: Position { line: 1, column: 1, offset: 0, len: 0 },
            message: "no manifest in this file".into(),
            hint: Some("a manifest has apiVersion, kind, metadata and spec".into()),
        });
    }
    for (document, (value, positions)) in docs.into_iter().enumerate() {
        let network = network_name(&value);
        match structural::objects_from_document(value, &positions, resolve) {
            Ok(loaded) => partial.objects.extend(loaded.into_iter().map(|(object, positions, converted)| {
                LoadedObject { object, file: file.to_string(), document, positions, converted }
            })),
            Err(problems) => {
                partial.broken_networks.extend(network);
                partial.diagnostics.extend(problems.into_iter().map(|p| Diagnostic {
                    file: file.to_string(),
                    position: p.position,
                    message: p.message,
                    hint: p.hint,
                }))
            }
        }
    }
    partial
}

/// `(tenant, name)` when a raw document is a Network (fos/v1 or fog05).
fn network_name(value: &serde_json::Value) -> Option<(String, String)> {
    let tenant =
        value.pointer("/metadata/tenant").and_then(|t| t.as_str()).unwrap_or(fos_api::manifest::DEFAULT_TENANT);
    if value.get("kind").and_then(|k| k.as_str()) == Some("Network") {
        let name = value.pointer("/metadata/name")?.as_str()?;
        return Some((tenant.to_string(), name.to_string()));
    }
    let fog05_network =
        crate::fog05::is_fog05(value) && !["components", "entity_data", "type"].iter().any(|k| value.get(*k).is_some());
    fog05_network.then(|| Some((tenant.to_string(), crate::fog05::dns_name(value.get("name")?.as_str()?))))?
}

/// Validates loaded objects as one apply and returns every violation as a diagnostic.
pub fn check(loaded: &[LoadedObject]) -> Vec<Diagnostic> {
    check_with(loaded, &Existing::default())
}

/// [`check`], against what already exists (or is known to exist, such as networks whose documents are wrong).
pub fn check_with(loaded: &[LoadedObject], existing: &Existing) -> Vec<Diagnostic> {
    let objects: Vec<Object> = loaded.iter().map(|l| l.object.clone()).collect();
    validate_with(&objects, existing).iter().filter_map(|v| locate(loaded, v)).collect()
}

/// Maps a violation (from [`fos_api::validate::validate`] here, or from the API server for the same list of
/// objects) to its position: by object index, checked against the name, else by kind and name.
pub fn locate(loaded: &[LoadedObject], violation: &Violation) -> Option<Diagnostic> {
    let o = &violation.object;
    let same = |l: &&LoadedObject| l.object.kind() == o.kind && l.object.name() == o.name;
    let object = loaded.get(o.index).filter(same).or_else(|| loaded.iter().find(same))?;
    Some(object.diagnostic(&violation.path, violation.message.clone(), violation.hint.clone()))
}

#[cfg(test)]
mod tests;
