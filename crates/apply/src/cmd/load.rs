//! Manifests for the API commands, read through the manifest loader (`fos_apply::load_paths`): every structural
//! or validation error is reported locally with `FILE:LINE:COL` and a snippet before anything is sent, and an
//! error the server reports about object N at a field path is pointed back at that object's position.

use std::fmt;

use fos_apply::render::{render, render_all};
use fos_apply::source::LoadedObject;

use crate::client::ServerError;

/// Manifests read and checked locally.
pub struct Manifests {
    /// What the loader read (objects with positions, and each file's text).
    pub loaded: fos_apply::Loaded,
}

impl Manifests {
    /// The objects, in file order.
    pub fn objects(&self) -> &[LoadedObject] {
        &self.loaded.objects
    }
}

/// A manifest at fault (exit code 1); the text is already rendered with positions.
#[derive(Debug)]
pub struct ManifestError(pub String);

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.trim_end())
    }
}

impl std::error::Error for ManifestError {}

/// Reads every object of `paths` and checks them; any error is a [`ManifestError`].
pub fn load(paths: &[String]) -> anyhow::Result<Manifests> {
    let loaded = fos_apply::load_paths(paths)?;
    let diagnostics = loaded.all_diagnostics();
    if !diagnostics.is_empty() {
        return Err(ManifestError(render_all(&diagnostics, &loaded.sources)).into());
    }
    if loaded.objects.is_empty() {
        return Err(ManifestError(format!("no objects found in {}", paths.join(", "))).into());
    }
    Ok(Manifests { loaded })
}

/// Points a server error about object N (and a field path) at that object's file position.
pub fn locate(e: anyhow::Error, manifests: &Manifests) -> anyhow::Error {
    let Some(se) = e.downcast_ref::<ServerError>() else { return e };
    let Some(obj) = se.body.index.and_then(|i| manifests.objects().get(i)) else { return e };
    let what = format!("{} `{}`", obj.object.kind(), obj.object.name());
    let d = obj.diagnostic(se.body.path.as_deref().unwrap_or(""), format!("{what}: {}", se.body.message), None);
    ManifestError(render(&d, manifests.loaded.sources.get(&obj.file).map(String::as_str))).into()
}
