//! The fog05 formats (2018 entity, network, application and plugin manifests; fog05 0.2 FDU, network and flavor
//! descriptors), read through the one fog05 codec, `fos_fog05`, and re-exported here for the loader.

pub use fos_fog05::manifest::*;

#[cfg(test)]
mod tests;
