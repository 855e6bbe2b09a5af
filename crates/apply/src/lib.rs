//! The library behind `fosctl`: loading manifest paths into objects with positions ([`load`]), printing
//! diagnostics with source snippets ([`render`]), the `manifest` subcommands ([`manifest_cmd`]) and the offline
//! `plan` ([`plan_cmd`]).

pub mod load;
pub mod manifest_cmd;
pub mod plan_cmd;
pub mod render;

pub use load::{load_paths, LoadError, Loaded};
