//! The library behind `fosctl`: loading manifest paths into objects with positions ([`load`]), printing
//! diagnostics with source snippets ([`render`]), and the `manifest` subcommands ([`manifest_cmd`]).

pub mod load;
pub mod manifest_cmd;
pub mod render;

pub use load::{load_paths, LoadError, Loaded};
