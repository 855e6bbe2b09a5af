//! Loading manifests from text with positions: YAML (multi-document) or JSON, fos/v1 objects or the fog05 format,
//! each error reported as `FILE:LINE:COL: message`. [`load_str`] gives the objects (or every structural error);
//! [`check`] runs validation over loaded objects; [`locate`] maps a server-side [`Violation`] back to a position.

mod structural;
mod text;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::Object;
use crate::validate::{validate, Violation};

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
    resolve: crate::seed::Resolver<'_>,
) -> Result<Vec<LoadedObject>, Vec<Diagnostic>> {
    let docs = parse_documents(text).map_err(|e| {
        vec![Diagnostic { file: file.to_string(), position: e.position, message: e.message, hint: None }]
    })?;
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (document, (value, positions)) in docs.into_iter().enumerate() {
        match structural::objects_from_document(value, &positions, resolve) {
            Ok(loaded) => objects.extend(loaded.into_iter().map(|(object, positions, converted)| LoadedObject {
                object,
                file: file.to_string(),
                document,
                positions,
                converted,
            })),
            Err(problems) => errors.extend(problems.into_iter().map(|p| Diagnostic {
                file: file.to_string(),
                position: p.position,
                message: p.message,
                hint: p.hint,
            })),
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

/// Validates loaded objects as one apply and returns every violation as a diagnostic.
pub fn check(loaded: &[LoadedObject]) -> Vec<Diagnostic> {
    let objects: Vec<Object> = loaded.iter().map(|l| l.object.clone()).collect();
    validate(&objects).iter().filter_map(|v| locate(loaded, v)).collect()
}

/// Maps a violation (from [`validate`] here, or from the API server for the same list of objects) to its position:
/// by object index, checked against the name, else by kind and name.
pub fn locate(loaded: &[LoadedObject], violation: &Violation) -> Option<Diagnostic> {
    let o = &violation.object;
    let same = |l: &&LoadedObject| l.object.kind() == o.kind && l.object.name() == o.name;
    let object = loaded.get(o.index).filter(same).or_else(|| loaded.iter().find(same))?;
    Some(object.diagnostic(&violation.path, violation.message.clone(), violation.hint.clone()))
}

#[cfg(test)]
mod tests;
