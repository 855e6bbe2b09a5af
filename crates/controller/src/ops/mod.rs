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
//! | [`remove::remove`] | deletes a Network, Image, Plugin or Secret; a network or image in use is refused |
//! | [`set_state::set_state`] | the imperative lifecycle verbs of a standalone entity |
//! | [`read`] | applications, entities, nodes, networks, plugins, images, events, the store by URI |
//! | [`logs::logs`] | an instance's output, from this node's agent or fetched from the node that runs it |
//! | [`tokens`] | API tokens: create (the secret shown once), list, revoke (administrators) |
//! | [`tenants`] | tenant policies: may a tenant's entities run as root (administrators) |
//! | [`secrets`] | the Secrets of the caller's tenants: names and keys, never values |
//! | [`migrate::migrate`] | moves an instance to another node (or stops its migration); lists migrations |
//! | [`transfer`] | a migration's data arriving from its source node (nodes only) |
//! | [`catalog`] | the fog05 catalog of a tenant: FDU descriptors, flavors, images, connection points |
//!
//! Authorization is here, on the [`Caller`]: a view token reads its tenant, an edit token also changes it, an
//! administrator does everything; another tenant's object answers [`OpError::NotFound`] (as if it did not exist),
//! a write the caller's role does not allow [`OpError::Forbidden`].
//!
//! Adding an operation (`migrate`, `cordon`, `drain`) is one new file here taking a `&Caller`, plus one route.

pub mod admission;
pub mod apply;
pub mod catalog;
pub mod cordon;
pub mod delete;
pub mod drain;
pub mod image_content;
pub mod image_upload;
pub mod logs;
pub mod migrate;
pub mod plan;
pub mod prune;
pub mod read;
pub mod remove;
pub mod secrets;
pub mod set_state;
pub mod tenants;
pub mod tokens;
pub mod transfer;

use std::collections::BTreeSet;

use fos_api::auth::Role;
use fos_api::wire::ErrorBody;
use fos_store::StoreError;
use thiserror::Error;

/// Who asks: a principal, the tenants it may act on and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal's name (a token's description or id, a node).
    pub principal: String,
    /// The tenants it may read and change.
    pub tenants: Tenants,
    /// What it may do there.
    pub role: Role,
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
    /// The local administrator: every tenant, every operation (the API without authentication, tests).
    pub fn local_admin() -> Caller {
        Caller { principal: "local-admin".to_string(), tenants: Tenants::All, role: Role::Admin }
    }

    /// A caller of one tenant with `role`.
    pub fn of_tenant(principal: impl Into<String>, tenant: &str, role: Role) -> Caller {
        Caller { principal: principal.into(), tenants: Tenants::Only(BTreeSet::from([tenant.to_string()])), role }
    }

    /// Whether the caller may see `tenant`'s objects.
    pub fn may_act_on(&self, tenant: &str) -> bool {
        match &self.tenants {
            Tenants::All => true,
            Tenants::Only(set) => set.contains(tenant),
        }
    }

    /// Reading an object of `tenant`: another tenant's object is not found (`what` names it, e.g.
    /// `application beta/wp`), never forbidden, so no caller learns what other tenants hold.
    pub fn check_read(&self, tenant: &str, what: impl FnOnce() -> String) -> Result<(), OpError> {
        if self.may_act_on(tenant) {
            Ok(())
        } else {
            Err(OpError::NotFound(format!("{} not found", what())))
        }
    }

    /// Changing an existing object of `tenant`: not found in another tenant, forbidden to a view token.
    pub fn check_write(&self, tenant: &str, what: impl FnOnce() -> String) -> Result<(), OpError> {
        self.check_read(tenant, what)?;
        self.check_role_writes()
    }

    /// Creating or changing objects in `tenant` (apply): forbidden outside the caller's tenants and to view tokens.
    pub fn check(&self, tenant: &str) -> Result<(), OpError> {
        if !self.may_act_on(tenant) {
            return Err(OpError::Forbidden(format!("{} may not act on tenant {tenant}", self.principal)));
        }
        self.check_role_writes()
    }

    fn check_role_writes(&self) -> Result<(), OpError> {
        match self.role {
            Role::Edit | Role::Admin => Ok(()),
            Role::View | Role::Node => Err(OpError::Forbidden(format!(
                "{} has a {} token, which cannot change anything",
                self.principal, self.role
            ))),
        }
    }

    /// Whether the caller is an administrator (every tenant, cluster-wide objects, tokens, the raw store).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses a caller that is not an administrator.
    pub fn check_admin(&self, what: &str) -> Result<(), OpError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(OpError::Forbidden(format!("{} may not {what}: administrators only", self.principal)))
        }
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
    /// The caller did not say who it is, or its token is unknown, revoked or expired.
    #[error("{0}")]
    Unauthenticated(String),
    /// The request is over one of the API's size limits (body, objects per apply).
    #[error("{0}")]
    TooLarge(String),
    /// The node's disk is too full to store more; deletes still work.
    #[error("{0}")]
    NoSpace(String),
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
