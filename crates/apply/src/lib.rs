//! The library behind `fosctl`, the one crate that reads manifest files. Manifests flow through it in steps:
//!
//! 1. [`load`] expands paths (files, directories, `-`) and reads each file's text;
//! 2. [`source`] parses that text with positions (YAML or JSON via `saphyr`, every field path mapped to its
//!    `LINE:COL`), converts fog05 manifests into fos/v1 objects through [`fog05`], and reports every structural
//!    error as a [`source::Diagnostic`] with the closest valid name as a hint;
//! 3. [`Loaded::all_diagnostics`] runs `fos_api`'s validation (the very checks the API server runs) and maps each
//!    violation back to its position with [`source::locate`];
//! 4. [`render`] prints diagnostics with source snippets.
//!
//! On top of these sit the `manifest` subcommands ([`manifest_cmd`]) and the offline `plan` ([`plan_cmd`]).

pub mod fog05;
pub mod load;
pub mod manifest_cmd;
pub mod plan_cmd;
pub mod render;
pub mod source;

pub use load::{load_paths, LoadError, Loaded};
