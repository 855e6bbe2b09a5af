//! Loading manifests from paths (files, directories searched recursively for `.yaml`, `.yml` and `.json`, or `-`
//! for standard input) into objects with positions, keeping each file's text for error snippets. Every `fosctl`
//! command that reads manifests goes through [`load_paths`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use fos_api::manifest::{NetworkKind, NetworkSpec, Object};
use fos_api::Existing;

use crate::source::{check_with, load_partial, parse_documents, Diagnostic, LoadedObject};

/// The name standard input is reported under.
pub const STDIN_NAME: &str = "<stdin>";

/// Why paths could not be read (as opposed to manifests that are wrong).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path given does not exist.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Standard input was given more than once.
    #[error("`-` (standard input) can be given only once")]
    StdinTwice,
}

/// The manifests read from a set of paths.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every object read without structural errors, in file order.
    pub objects: Vec<LoadedObject>,
    /// Every structural error.
    pub diagnostics: Vec<Diagnostic>,
    /// Each file's text, by the name diagnostics use.
    pub sources: BTreeMap<String, String>,
    /// `(tenant, name)` of Network documents with structural errors: references to them are not reported again.
    pub broken_networks: Vec<(String, String)>,
}

impl Loaded {
    /// Structural errors plus every violation of validating all objects as one apply.
    pub fn all_diagnostics(&self) -> Vec<Diagnostic> {
        let mut existing = Existing::default();
        for (tenant, name) in &self.broken_networks {
            // Known by name only: no address checks against it.
            let placeholder = NetworkSpec {
                kind: NetworkKind::Bridge,
                vxlan_id: None,
                multicast_address: None,
                vlan_id: None,
                ip_range: None,
                gateway: None,
                dhcp: false,
            };
            existing.networks.insert((tenant.clone(), name.clone()), placeholder);
        }
        let mut out = self.diagnostics.clone();
        out.extend(check_with(&self.objects, &existing));
        out
    }

    /// The objects alone.
    pub fn objects(&self) -> Vec<Object> {
        self.objects.iter().map(|l| l.object.clone()).collect()
    }
}

/// Expands the paths into manifest files: files as given, directories searched recursively (sorted) for `.yaml`,
/// `.yml` and `.json` files, `-` as standard input.
pub fn expand_paths(paths: &[String]) -> Result<Vec<String>, LoadError> {
    let mut files = Vec::new();
    let mut stdin = false;
    for p in paths {
        if p == "-" {
            if stdin {
                return Err(LoadError::StdinTwice);
            }
            stdin = true;
            files.push(p.clone());
            continue;
        }
        let path = Path::new(p);
        if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.exists() {
            files.push(p.clone());
        } else {
            return Err(LoadError::NotFound(p.clone()));
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<String>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io { path: dir.display().to_string(), source };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            walk(&e, out)?;
        } else if e.extension().and_then(|x| x.to_str()).is_some_and(|x| matches!(x, "yaml" | "yml" | "json")) {
            out.push(e.display().to_string());
        }
    }
    Ok(())
}

/// Reads and loads every manifest under `paths`. Wrong manifests are reported in [`Loaded::diagnostics`]; only
/// unreadable paths are errors.
pub fn load_paths(paths: &[String]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for file in expand_paths(paths)? {
        let (name, text) = if file == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| LoadError::Io { path: STDIN_NAME.into(), source })?;
            (STDIN_NAME.to_string(), text)
        } else {
            let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Io { path: file.clone(), source })?;
            (file.clone(), text)
        };
        let base = if file == "-" {
            PathBuf::from(".")
        } else {
            Path::new(&file).parent().map(Path::to_path_buf).unwrap_or_default()
        };
        load_text(&mut loaded, &name, text, &base);
    }
    dedupe_converted_networks(&mut loaded.objects);
    Ok(loaded)
}

/// Loads one text into `loaded`; fog05 component manifests named by file are read relative to `base`.
pub fn load_text(loaded: &mut Loaded, name: &str, text: String, base: &Path) {
    let resolve = |file: &str| -> Result<serde_json::Value, String> {
        let path = base.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut docs =
            parse_documents(&text).map_err(|e| format!("{}:{}: {}", path.display(), e.position.line, e.message))?;
        if docs.is_empty() {
            return Err(format!("{} holds no manifest", path.display()));
        }
        Ok(docs.swap_remove(0).0)
    };
    let partial = load_partial(name, &text, &resolve);
    loaded.objects.extend(partial.objects);
    loaded.diagnostics.extend(partial.diagnostics);
    loaded.broken_networks.extend(partial.broken_networks);
    loaded.sources.insert(name.to_string(), text);
}

/// Several fog05 entities naming the same host bridge each yield the same `bridge` Network: keep the first.
fn dedupe_converted_networks(objects: &mut Vec<LoadedObject>) {
    let mut kept: Vec<Object> = Vec::new();
    objects.retain(|l| {
        if !(l.converted && matches!(l.object, Object::Network(_))) {
            return true;
        }
        if kept.contains(&l.object) {
            return false;
        }
        kept.push(l.object.clone());
        true
    });
}
