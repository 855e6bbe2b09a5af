//! The controller: reconcilers over a cache of the cluster, in the manner of kube-runtime's watcher → reflector →
//! controller.
//!
//! - A [`Reconciler`] says which store changes wake which of its objects ([`Reconciler::wakes`]) and decides, for
//!   one object, what to do ([`Reconciler::reconcile`]): a pure function of the cached [`ClusterView`] returning
//!   typed [`Actions`] (records to write or delete, the records that must be unchanged for them to go in, events,
//!   when to look again).
//! - The [`runner`] wins leader election through the store, keeps the [`cache`] fed by one watch, queues the objects
//!   each change wakes (per reconciler, in key order), and commits each object's actions in one guarded transaction
//!   ([`commit`]); the cache sees its own writes at once, and a conflict requeues the object.
//!
//! Adding a reconciler is one new file implementing [`Reconciler`] and one line in [`reconcilers`].

pub mod app;
pub mod cache;
pub mod commit;
pub mod node;
pub mod runner;

use std::fmt::Debug;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fos_api::network::{AddressHolder, NetworkName};
use fos_api::wire::AppStatus;
use fos_api::{DesiredInstance, InstanceId};
use fos_store::{Revision, StoreError};

pub use runner::{reconcile_all, run, Controller, Registered, RESYNC};

use crate::view::{AppKey, ClusterView, Touched};
use crate::Context;

/// A control loop over one kind of object.
pub trait Reconciler: Send + Sync + 'static {
    /// What names one object it looks after (an application: `(tenant, name)`).
    type Key: Clone + Ord + Debug + Send + Sync + 'static;

    /// Its name, in logs and metrics.
    fn name(&self) -> &'static str;

    /// The objects to look at again after a change of the view.
    fn wakes(&self, touched: &Touched, view: &ClusterView) -> Vec<Self::Key>;

    /// Every object it looks after (a resync looks at all of them).
    fn all(&self, view: &ClusterView) -> Vec<Self::Key>;

    /// What to do for `key`, decided from `view` alone (no I/O); `now` stamps status changes.
    fn reconcile(&self, key: &Self::Key, view: &ClusterView, now: DateTime<Utc>) -> Actions;
}

/// The reconcilers the controller runs, in the order they are offered each change.
pub fn reconcilers(ctx: &Context) -> Vec<Box<dyn Registered>> {
    vec![
        runner::register(app::ApplicationReconciler::new(ctx.placer.clone())),
        runner::register(node::NodeReconciler::new(ctx.timing)),
    ]
}

/// What one reconcile decided: written in one transaction, only if every guard holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Actions {
    /// Records that must be unchanged since they were read for the writes to go in.
    pub guards: Vec<Guard>,
    /// Records to write or delete.
    pub writes: Vec<Write>,
    /// Events to record once the writes are in.
    pub events: Vec<Event>,
    /// Look at the object again after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
}

impl Actions {
    /// Nothing to write and nothing to record.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.events.is_empty()
    }

    /// The desired records this writes.
    pub fn puts(&self) -> impl Iterator<Item = &DesiredInstance> {
        self.writes.iter().filter_map(|w| match w {
            Write::PutDesired(d) => Some(d.as_ref()),
            _ => None,
        })
    }

    /// The desired records this deletes.
    pub fn deletes(&self) -> impl Iterator<Item = &InstanceId> {
        self.writes.iter().filter_map(|w| match w {
            Write::DeleteDesired { id, .. } => Some(id),
            _ => None,
        })
    }
}

/// A record that must be unchanged for a transaction to go in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The application record is still at this mod revision (0: still absent).
    App(AppKey, Revision),
    /// The node still has no heartbeat record (it has not come back since it was declared lost).
    NodeGone(String),
}

/// A typed write of the control plane.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Write a desired instance record (under its node).
    PutDesired(Box<DesiredInstance>),
    /// Delete a desired instance record.
    DeleteDesired {
        /// The node it is under.
        node: String,
        /// The instance.
        id: InstanceId,
    },
    /// Delete an actual instance record (of a lost node, whose agent cannot).
    DeleteActual {
        /// The node it is under.
        node: String,
        /// The instance.
        id: InstanceId,
    },
    /// Mark a node lost.
    PutLoss(String, fos_api::cluster::NodeLoss),
    /// Remove a node's lost mark (its heartbeat is back).
    DeleteLoss(String),
    /// Write an application's status.
    PutStatus(AppKey, Box<AppStatus>),
    /// Delete an application's status.
    DeleteStatus(AppKey),
    /// Delete an application record (its teardown is complete).
    DeleteApp(AppKey),
    /// Rewrite an application record (a standalone entity's node pin following its migration), under the guard of
    /// the revision it was read at. Not applied ahead: the view takes it from the watch, with its new revision.
    PutApp(AppKey, Box<fos_api::wire::AppRecord>),
    /// Write an instance's migration record (its phase moved).
    PutMigration(Box<fos_api::migration::Migration>),
    /// Allocate an address to an instance at placement (only if nobody holds it: written in the same transaction
    /// as the desired record naming it).
    TakeAddress {
        /// The network.
        network: NetworkName,
        /// The address.
        ip: Ipv4Addr,
        /// Who holds it from now on.
        holder: AddressHolder,
    },
    /// Release an address allocated at placement (its instance has neither a desired nor an actual record left).
    ReleaseAddress {
        /// The network.
        network: NetworkName,
        /// The address.
        ip: Ipv4Addr,
    },
}

/// An event to record about an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The application.
    pub app: AppKey,
    /// A short machine-friendly reason (`Scheduled`, `Waiting`, `Unschedulable`, …).
    pub reason: &'static str,
    /// What happened, in words.
    pub message: String,
}

impl Event {
    /// An event about `app`.
    pub fn new(app: &AppKey, reason: &'static str, message: String) -> Self {
        Event { app: app.clone(), reason, message }
    }
}

/// Why a commit did not go in.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A guard no longer held: the object changed since it was read (it is looked at again).
    #[error("changed since it was read")]
    Conflict,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Shared handle on the placer, as reconcilers hold it.
pub type SharedPlacer = Arc<dyn crate::Placer>;
