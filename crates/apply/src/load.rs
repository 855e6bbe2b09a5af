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
    /// A path is a device, FIFO or socket, not a file.
    #[error("{0}: not a regular file (devices, FIFOs and sockets are not read)")]
    NotAFile(String),
    /// A file is larger than a manifest may be.
    #[error("{path}: {size} bytes, over the limit of {limit} bytes for a manifest file")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size (at least).
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// Reads a manifest file: a regular file of at most [`fos_api::limits::MAX_MANIFEST_BYTES`], opened without
/// blocking (a FIFO swapped in after the check is refused too, not waited on).
pub fn read_manifest(path: &Path) -> Result<String, LoadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display().to_string();
    let io = |source| LoadError::Io { path: shown.clone(), source };
    let limit = fos_api::limits::MAX_MANIFEST_BYTES;
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(LoadError::NotAFile(shown));
    }
    if meta.len() > limit {
        return Err(LoadError::TooLarge { path: shown, size: meta.len(), limit });
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(LoadError::NotAFile(shown));
    }
    read_limited(file, &shown)
}

/// Reads at most the manifest limit from `r`.
fn read_limited(r: impl Read, shown: &str) -> Result<String, LoadError> {
    let limit = fos_api::limits::MAX_MANIFEST_BYTES;
    let mut text = String::new();
    r.take(limit + 1).read_to_string(&mut text).map_err(|source| LoadError::Io { path: shown.to_string(), source })?;
    if text.len() as u64 > limit {
        return Err(LoadError::TooLarge { path: shown.to_string(), size: text.len() as u64, limit });
    }
    Ok(text)
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
    walk_depth(dir, out, 0)
}

/// How deep directories are searched (symbolic links to directories are not followed, so there is no cycle).
const MAX_DEPTH: usize = 32;

fn walk_depth(dir: &Path, out: &mut Vec<String>, depth: usize) -> Result<(), LoadError> {
    let io = |source| LoadError::Io { path: dir.display().to_string(), source };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let linked_dir = e.symlink_metadata().map(|m| m.file_type().is_symlink()).unwrap_or(false) && e.is_dir();
        if linked_dir || (e.is_dir() && depth >= MAX_DEPTH) {
            continue;
        }
        if e.is_dir() {
            walk_depth(&e, out, depth + 1)?;
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
            (STDIN_NAME.to_string(), read_limited(std::io::stdin(), STDIN_NAME)?)
        } else {
            (file.clone(), read_manifest(Path::new(&file))?)
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
        let text = read_manifest(&path).map_err(|e| format!("cannot read {e}"))?;
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
