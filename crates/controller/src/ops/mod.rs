//! Operations: everything a client can ask of fos, each one function taking the [`Caller`] and typed arguments
//! and answering a typed result or an [`OpError`]. The HTTP API only decodes requests into these calls and maps
//! their errors to status codes; the operations do the work over the typed records, so every entry point (the API
//! today, others later) goes through the same checks.
//!
//! | operation | what |
//! |---|---|
//! | [`apply::apply`] | admission, then every object written in one transaction (or the plan only, on a dry run) |
//! | [`plan::plan`] | where a set of applications would go, through the one [`crate::plan::Planner`] |
//! | [`delete::delete`] | marks an application for teardown in reverse `need` order |
//! | [`set_state::set_state`] | the imperative lifecycle verbs of a standalone entity |
//! | [`read`] | applications, entities, nodes, networks, plugins, images, events, the store by URI |
//! | [`logs::logs`] | an instance's output, from this node's agent or fetched from the node that runs it |
//!
//! Adding an operation (`migrate`, `cordon`, `drain`) is one new file here taking a `&Caller`, plus one route.

pub mod admission;
pub mod apply;
pub mod delete;
pub mod logs;
pub mod plan;
pub mod read;
pub mod set_state;

use std::collections::BTreeSet;

use fos_api::wire::ErrorBody;
use fos_store::StoreError;
use thiserror::Error;

/// Who asks: a principal and the tenants it may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal's name (a user, a token, a node).
    pub principal: String,
    /// The tenants it may read and change.
    pub tenants: Tenants,
}

/// The tenants a caller may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenants {
    /// Every tenant (administrators, the control plane itself).
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl Caller {
    /// The local administrator: every tenant. Every API caller is this one until authentication exists.
    pub fn local_admin() -> Caller {
        Caller { principal: "local-admin".to_string(), tenants: Tenants::All }
    }

    /// Whether the caller may act on `tenant`.
    pub fn may_act_on(&self, tenant: &str) -> bool {
        match &self.tenants {
            Tenants::All => true,
            Tenants::Only(set) => set.contains(tenant),
        }
    }

    /// Refuses `tenant` when the caller may not act on it.
    pub fn check(&self, tenant: &str) -> Result<(), OpError> {
        if self.may_act_on(tenant) {
            Ok(())
        } else {
            Err(OpError::Forbidden(format!("{} may not act on tenant {tenant}", self.principal)))
        }
    }

    /// Whether the caller may act on every tenant (cluster-wide objects: nodes, images, plugins).
    pub fn is_admin(&self) -> bool {
        self.tenants == Tenants::All
    }
}

/// What an operation can fail with.
#[derive(Debug, Error)]
pub enum OpError {
    /// The request is malformed or an object is invalid (with the object's index, kind, name and field).
    #[error("{}", .0.message)]
    Invalid(ErrorBody),
    /// The object asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the object's state (a refused lifecycle step, a concurrent change).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[source] StoreError),
    /// Another node could not be reached.
    #[error("{0}")]
    Upstream(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) => OpError::Conflict(format!("{message}; try again")),
            other => OpError::Store(other),
        }
    }
}

impl OpError {
    /// An invalid request with only a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        OpError::Invalid(ErrorBody { message: message.into(), index: None, kind: None, name: None, path: None })
    }
}
