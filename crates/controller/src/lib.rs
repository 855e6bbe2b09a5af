//! The fos control plane: the operations a client can ask for ([`ops`], each taking the [`ops::Caller`]), the
//! HTTP API server ([`api`]) that only decodes requests into them, the one plan ([`plan`]) over the scheduler seam
//! ([`Placer`]), and the controller ([`reconcile`]): reconcilers over a watch-fed cache that place applications,
//! release their components in dependency order, and aggregate their status. Everything reads and writes the
//! cluster through the typed records of [`fos_store::records`].

pub mod api;
pub mod auth;
pub mod events;
pub mod fog05;
pub mod metrics;
pub mod ops;
pub mod placement;
pub mod plan;
pub mod reconcile;
pub mod scheduler;
pub mod space;
pub mod view;

use std::sync::Arc;

use fos_api::Keys;
use fos_store::{Records, Store};

pub use metrics::{MeteredStore, Metrics};
pub use ops::{Caller, OpError};
pub use placement::Placer;
pub use scheduler::SchedulerPlacer;

/// What the API server and the controller share.
#[derive(Clone)]
pub struct Context {
    /// The store (wrapped in [`MeteredStore`] by `fosd` so its latency is measured).
    pub store: Arc<dyn Store>,
    /// The key layout of this system.
    pub keys: Keys,
    /// Placement of components on nodes (the scheduler).
    pub placer: Arc<dyn Placer>,
    /// Counters and histograms served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The name of the node this process runs on (logs of its instances are served locally).
    pub node_name: String,
    /// Where this node's instance output is read (its agent).
    pub logs: Arc<dyn ops::logs::LogSource>,
    /// Where this node keeps the data of instances migrating to it (its agent).
    pub inbox: Arc<dyn ops::transfer::MigrationInbox>,
    /// Tokens, the secrets key, how to call other nodes, the free-space margin.
    pub security: auth::Security,
    /// Node liveness timing (when a node is lost), derived from `--node-lost-after`.
    pub timing: fos_api::cluster::NodeTiming,
}

impl Context {
    /// Typed access to the records of this system.
    pub fn records(&self) -> Records {
        Records::new(self.store.clone(), self.keys.clone())
    }

    /// The event log of this system.
    pub fn events(&self) -> events::EventLog {
        events::EventLog::new(self.records())
    }
}
