//! The fog05 codec: the one place that knows fog05's formats.
//!
//! - [`manifest`]: the 2018 manifests (entity, network, application, plugin) and, through [`descriptor`], fog05
//!   0.2's FDU, virtual network and flavor descriptors, converted into fos/v1 objects with the renames that let
//!   errors point into the original file (`fosctl manifest check|convert`, `apply`, the fog05 REST API);
//! - [`shapes`]: fos's records in the shapes fog05 clients read (node info, plugin info, FDU instance records and
//!   their `status`).
//!
//! Pure functions over `serde_json` values and `fos-api` types: no I/O.

pub mod descriptor;
pub mod manifest;
pub mod shapes;
