//! Semantic validation of parsed objects: every rule a manifest must obey beyond its shape (names, references,
//! the `need` graph, quantities, network ranges), reporting all violations at once. It takes `Object`s, not text, so
//! `fosctl` and the API server run the very same checks; positions are added by `fosctl`'s loader
//! (`fos_apply::source`), which maps each [`Violation`] back to its file.

mod application;
mod entity;
mod net;
mod network;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::{ImageSpec, NetworkSpec, Object, ObjectKind, PluginSpec};
use crate::names::validate_name;

pub use net::{parse_cidr, parse_mac, Cidr};

/// Which object of an apply a violation is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Its position in the list of objects given to [`validate`] (0-based).
    pub index: usize,
    /// Its kind.
    pub kind: ObjectKind,
    /// Its name as written (possibly invalid).
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind, self.name)
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The object at fault.
    pub object: ObjectRef,
    /// Where in the object, e.g. `spec.components[1].need[0]` (empty: the object as a whole).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is an obvious guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.object)?;
        if !self.path.is_empty() {
            write!(f, " {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// What already exists in the system that objects of an apply may refer to (the API server fills this in from the
/// store; `fosctl` checks an apply on its own and leaves it empty).
#[derive(Debug, Clone, Default)]
pub struct Existing {
    /// Network objects already stored, by tenant then name.
    pub networks: BTreeMap<(String, String), NetworkSpec>,
}

/// Validates the objects of one apply, returning every violation (empty: all valid).
pub fn validate(objects: &[Object]) -> Vec<Violation> {
    validate_with(objects, &Existing::default())
}

/// Validates the objects of one apply against what already exists, returning every violation.
pub fn validate_with(objects: &[Object], existing: &Existing) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut networks = existing.networks.clone();
    for o in objects {
        if let Object::Network(n) = o {
            networks.insert((n.metadata.tenant().to_string(), n.metadata.name.clone()), n.spec.clone());
        }
    }
    let mut seen: BTreeMap<(&'static str, String, String), usize> = BTreeMap::new();
    for (index, object) in objects.iter().enumerate() {
        let mut report =
            Report { object: ObjectRef { index, kind: object.kind(), name: object.name().to_string() }, out: &mut out };
        check_metadata(object, &mut report);
        let tenant = object.metadata().tenant().to_string();
        let (namespace, tenant_key) = match object.kind() {
            // An Entity runs as a one-component application: both share the applications' names.
            ObjectKind::Application | ObjectKind::Entity => ("application", tenant.clone()),
            ObjectKind::Network => ("network", tenant.clone()),
            ObjectKind::Plugin => ("plugin", String::new()),
            ObjectKind::Image => ("image", String::new()),
            ObjectKind::Node => ("node", String::new()),
            ObjectKind::Secret => ("secret", tenant.clone()),
        };
        match seen.get(&(namespace, tenant_key.clone(), object.name().to_string())) {
            Some(first) => report.push(
                "metadata.name",
                format!(
                    "duplicate {namespace} name `{}`: object #{} of this apply has it too",
                    object.name(),
                    first + 1
                ),
            ),
            None => {
                seen.insert((namespace, tenant_key, object.name().to_string()), index);
            }
        }
        let scope = Scope { tenant: &tenant, networks: &networks };
        match object {
            Object::Application(a) => application::check(&a.spec, &scope, &mut report),
            Object::Entity(e) => {
                let declared = BTreeMap::new();
                entity::check(&e.spec, "spec", 1, &scope, &declared, &mut report)
            }
            Object::Network(n) => network::check(&n.spec, "spec", &mut report),
            Object::Plugin(p) => check_plugin(&p.spec, &mut report),
            Object::Image(i) => check_image(&i.spec, &mut report),
            Object::Node(_) => {}
            Object::Secret(sec) => check_secret(&sec.spec, &mut report),
        }
        if let Some(e) = crate::limits::check(object) {
            report.push(e.path, e.message);
        }
    }
    out
}

/// What the checks of one object can look things up in.
pub(crate) struct Scope<'a> {
    /// The object's tenant.
    pub tenant: &'a str,
    /// Every Network object known (this apply's and the existing ones), by tenant and name.
    pub networks: &'a BTreeMap<(String, String), NetworkSpec>,
}

impl Scope<'_> {
    /// The Network object `name` of this tenant, if any.
    pub fn network(&self, name: &str) -> Option<&NetworkSpec> {
        self.networks.get(&(self.tenant.to_string(), name.to_string()))
    }
}

/// Collects the violations of one object.
pub(crate) struct Report<'a> {
    object: ObjectRef,
    out: &'a mut Vec<Violation>,
}

impl Report<'_> {
    /// Records a violation at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Violation {
            object: self.object.clone(),
            path: path.into(),
            message: message.into(),
            hint: None,
        });
    }

    /// Records a violation at `path` with a hint.
    pub fn hint(&mut self, path: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) {
        self.out.push(Violation {
            object: self.object.clone(),
            path: path.into(),
            message: message.into(),
            hint: Some(hint.into()),
        });
    }

    /// Records a violation if `name` is not a valid name.
    pub fn name(&mut self, path: impl Into<String>, what: &str, name: &str) {
        if let Err(e) = validate_name(name) {
            self.push(path, format!("invalid {what} name: {e}"));
        }
    }
}

fn check_metadata(object: &Object, report: &mut Report<'_>) {
    let meta = object.metadata();
    report.name("metadata.name", &object.kind().as_str().to_lowercase(), &meta.name);
    if let Some(t) = &meta.tenant {
        report.name("metadata.tenant", "tenant", t);
    }
    for key in meta.labels.keys() {
        if key.is_empty() {
            report.push("metadata.labels", "label keys must not be empty");
        }
    }
}

fn check_plugin(spec: &PluginSpec, report: &mut Report<'_>) {
    for (i, n) in spec.nodes.iter().enumerate() {
        report.name(format!("spec.nodes[{i}]"), "node", n);
    }
    check_selector(&spec.node_selector, "spec.nodeSelector", report);
}

/// Refuses empty label keys in a node selector.
pub(crate) fn check_selector(selector: &BTreeMap<String, String>, path: &str, report: &mut Report<'_>) {
    if selector.keys().any(String::is_empty) {
        report.push(path, "node selector keys must not be empty");
    }
}

fn check_secret(spec: &crate::manifest::SecretSpec, report: &mut Report<'_>) {
    if spec.data.is_empty() {
        report.push("spec.data", "a secret needs at least one key in `data`");
    }
    for key in spec.data.keys() {
        let ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            report.push("spec.data", format!("`{key}` is not a secret key (letters, digits, `-`, `_`, `.`)"));
        }
    }
}

fn check_image(spec: &ImageSpec, report: &mut Report<'_>) {
    if spec.checksum.len() != 64 || !spec.checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        report.hint(
            "spec.checksum",
            format!("checksum `{}` is not a sha256 digest", spec.checksum),
            "write the 64 hexadecimal digits printed by `sha256sum`",
        );
    }
    let uri = spec.uri.as_str();
    let known_scheme = ["file://", "http://", "https://"].iter().any(|s| uri.starts_with(s));
    if uri.is_empty() || (!known_scheme && !uri.starts_with('/')) {
        report.push("spec.uri", format!("uri `{uri}` is not a file://, http(s):// URI or an absolute path"));
    }
}

/// Returns the items that appear more than once, each with the index of every repetition after the first.
pub(crate) fn repeats<'a, I: IntoIterator<Item = &'a str>>(items: I) -> Vec<(usize, &'a str)> {
    let mut seen = BTreeSet::new();
    items.into_iter().enumerate().filter(|(_, s)| !seen.insert(*s)).collect()
}

#[cfg(test)]
mod tests;
