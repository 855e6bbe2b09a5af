//! The destination's side of a migration's data, called by the source node (its node token): what has arrived
//! (`GET /v1/migrations/{instance}/data?migration=`), the rest of the stream from its offset (`PUT
//! …/data?migration=&offset=`, a body of frames streamed as they are made), and the end, checked and moved into the
//! instance's volumes (`POST …/data/commit?migration=`). Each is accepted
//! only for the instance's current migration, while it is on its way to this node and before the destination owns
//! it. The bytes go to this node's agent through its [`MigrationInbox`].

use async_trait::async_trait;
use bytes::Bytes;
use fos_api::auth::Role;
use fos_api::migration::{DataCommit, Migration, Received};
use fos_api::record::DesiredInstance;
use fos_api::InstanceId;
use fos_store::records::Migrations;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use super::{Caller, OpError};
use crate::Context;

/// Why the inbox refused.
#[derive(Debug, thiserror::Error)]
pub enum InboxRefusal {
    /// The chunk or commit does not fit what arrived (resume from what `received` says).
    #[error("{0}")]
    Conflict(String),
    /// It could not be stored.
    #[error("{0}")]
    Failed(String),
}

/// A request's body as it arrives.
pub type BodyStream = BoxStream<'static, Result<Bytes, String>>;

/// Where this node keeps what it receives of migrations: its agent's inbox.
#[async_trait]
pub trait MigrationInbox: Send + Sync {
    /// What has arrived of `migration`.
    fn received(&self, migration: &str) -> Result<Received, InboxRefusal>;
    /// Receives the stream of `migration` from `offset` on; answers the bytes there then.
    async fn append(&self, migration: &str, offset: u64, body: BodyStream) -> Result<u64, InboxRefusal>;
    /// Checks what arrived against `commit` and unpacks it into `instance`'s volumes.
    async fn commit(&self, migration: &str, instance: &InstanceId, commit: &DataCommit) -> Result<(), InboxRefusal>;
    /// Prepares the incoming instance `desired` of a live migration its runtime moves itself; answers what the
    /// runtime said, for the source.
    async fn prepare(&self, migration: &str, desired: &DesiredInstance) -> Result<String, InboxRefusal>;
}

/// The inbox of a node that runs no agent: it receives nothing.
pub struct NoInbox;

#[async_trait]
impl MigrationInbox for NoInbox {
    fn received(&self, _migration: &str) -> Result<Received, InboxRefusal> {
        Err(InboxRefusal::Failed("this node runs no agent".into()))
    }
    async fn append(&self, _migration: &str, _offset: u64, _body: BodyStream) -> Result<u64, InboxRefusal> {
        Err(InboxRefusal::Failed("this node runs no agent".into()))
    }
    async fn commit(&self, _m: &str, _i: &InstanceId, _c: &DataCommit) -> Result<(), InboxRefusal> {
        Err(InboxRefusal::Failed("this node runs no agent".into()))
    }
    async fn prepare(&self, _migration: &str, _desired: &DesiredInstance) -> Result<String, InboxRefusal> {
        Err(InboxRefusal::Failed("this node runs no agent".into()))
    }
}

/// Which migration a request is about, and where its chunk starts.
#[derive(Debug, Clone, Deserialize)]
pub struct DataQuery {
    /// The migration id.
    pub migration: String,
    /// Where the chunk starts (`PUT`).
    #[serde(default)]
    pub offset: u64,
}

impl From<InboxRefusal> for OpError {
    fn from(e: InboxRefusal) -> Self {
        match e {
            InboxRefusal::Conflict(m) => OpError::Conflict(m),
            InboxRefusal::Failed(m) => OpError::Upstream(m),
        }
    }
}

/// The migration of `instance` that `q` names, if it is on its way to this node.
async fn current(ctx: &Context, caller: &Caller, instance: &str, q: &DataQuery) -> Result<Migration, OpError> {
    if !matches!(caller.role, Role::Node | Role::Admin) {
        return Err(OpError::Forbidden(format!("{} may not send migration data: nodes only", caller.principal)));
    }
    let id: InstanceId =
        instance.parse().map_err(|e: fos_api::record::InstanceIdError| OpError::invalid(e.to_string()))?;
    let m = ctx.records().get::<Migrations>(&id).await?.map(|v| v.value);
    let m = m
        .filter(|m| m.id == q.migration)
        .ok_or_else(|| OpError::NotFound(format!("{instance} has no migration {} in progress", q.migration)))?;
    if m.destination != ctx.node_name {
        return Err(OpError::Conflict(format!("migration {} goes to {}, not {}", m.id, m.destination, ctx.node_name)));
    }
    if !m.phase.before_landing() || m.abort {
        return Err(OpError::Conflict(format!("migration {} takes no more data ({})", m.id, m.phase)));
    }
    Ok(m)
}

/// What has arrived of the migration.
pub async fn received(ctx: &Context, caller: &Caller, instance: &str, q: &DataQuery) -> Result<Received, OpError> {
    let m = current(ctx, caller, instance, q).await?;
    Ok(ctx.inbox.received(&m.id)?)
}

/// Receives the stream from `q.offset` on; answers what has arrived then.
pub async fn append(
    ctx: &Context,
    caller: &Caller,
    instance: &str,
    q: &DataQuery,
    body: BodyStream,
) -> Result<Received, OpError> {
    let m = current(ctx, caller, instance, q).await?;
    let bytes = ctx.inbox.append(&m.id, q.offset, body).await?;
    Ok(Received { bytes, complete: false })
}

/// Checks and unpacks what arrived.
pub async fn commit(
    ctx: &Context,
    caller: &Caller,
    instance: &str,
    q: &DataQuery,
    commit: &DataCommit,
) -> Result<Received, OpError> {
    let m = current(ctx, caller, instance, q).await?;
    ctx.inbox.commit(&m.id, &m.instance, commit).await?;
    Ok(ctx.inbox.received(&m.id)?)
}

/// The answer of [`prepare`]: what the destination's runtime needs the source's to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    /// Runtime-specific (for a VM: where its libvirt takes the domain, and the domain's definition here).
    pub prepared: String,
}

/// Prepares the incoming instance of a live migration its runtime moves itself (the source's first step).
pub async fn prepare(
    ctx: &Context,
    caller: &Caller,
    instance: &str,
    q: &DataQuery,
    desired: &DesiredInstance,
) -> Result<Prepared, OpError> {
    let m = current(ctx, caller, instance, q).await?;
    if desired.id != m.instance {
        return Err(OpError::invalid(format!("the desired record is of {}, not {}", desired.id, m.instance)));
    }
    Ok(Prepared { prepared: ctx.inbox.prepare(&m.id, desired).await? })
}
