//! The fos control plane: the HTTP API server ([`api`]) through which `fosctl` applies and reads objects, and the
//! controller ([`reconcile`]) that places applications, releases their components in dependency order, and
//! aggregates their status. Both speak to the cluster only through the [`fos_store::Store`] trait.

pub mod api;
pub mod events;
pub mod graph;
pub mod metrics;
pub mod placement;
pub mod reconcile;
pub mod scheduler;
pub mod view;

use std::sync::Arc;

use fos_api::Keys;
use fos_store::Store;

pub use metrics::{MeteredStore, Metrics};
pub use placement::{Placement, Placer};
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
    pub logs: Arc<dyn api::logs::LogSource>,
}

impl Context {
    /// The event log of this system.
    pub fn events(&self) -> events::EventLog {
        events::EventLog::new(self.store.clone(), self.keys.clone())
    }
}
