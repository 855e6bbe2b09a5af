//! `fos-sim`: fos at fog scale in one process. Each simulated node is the real agent ([`fos_agent::Agent`]) with a
//! given node description instead of discovery, fixed round-trip times instead of probes, no virtual networks, and
//! the [`runtime::SimRuntime`] (every step succeeds at once, no process) registered for the `native` kind. They run
//! against the real controller and store (embedded, or etcd), with a generated workload ([`workload`]) applied
//! through the controller's apply operation. [`run::simulate`] measures time to all Running, apply → Running per
//! instance, the controller's CPU, the process's memory and the store operations per instance, and the recovery
//! after a share of the nodes is killed.

pub mod figures;
pub mod measure;
pub mod run;
pub mod runtime;
pub mod tracker;
pub mod workload;
