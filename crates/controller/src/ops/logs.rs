//! An instance's output: served by the node that runs the instance, whose agent reads it through the instance's
//! runtime (the [`LogSource`] `fosd` hands the control plane), and fetched from that node's `fosd` (its
//! `status.address`) when asked of another node. Following keeps streaming what is appended.

use async_trait::async_trait;
use fos_api::InstanceId;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Deserialize;
use thiserror::Error;

use super::{Caller, OpError};
use crate::view::ClusterView;
use crate::Context;

/// An instance's output as a stream of chunks.
pub type LogStream = BoxStream<'static, std::io::Result<Vec<u8>>>;

/// Why a [`LogSource`] gives no output.
#[derive(Debug, Error)]
pub enum LogError {
    /// This node has no output of the instance (it does not hold it, or it wrote nothing yet).
    #[error("{0}")]
    NotFound(String),
    /// The output exists but could not be read.
    #[error("{0}")]
    Unavailable(String),
}

/// Where the control plane reads the output of this node's instances: the node's agent, which asks the instance's
/// runtime.
#[async_trait]
pub trait LogSource: Send + Sync {
    /// The output of instance `id`: what is there (only its last `tail_bytes` per file when given), then what is
    /// appended when `follow`.
    async fn open(&self, id: &InstanceId, follow: bool, tail_bytes: Option<u64>) -> Result<LogStream, LogError>;
}

/// The source of a node that runs no agent: it has no instance output.
pub struct NoLogs;

#[async_trait]
impl LogSource for NoLogs {
    async fn open(&self, id: &InstanceId, _follow: bool, _tail_bytes: Option<u64>) -> Result<LogStream, LogError> {
        Err(LogError::NotFound(format!("no output of {id}: this node runs no agent")))
    }
}

/// What output is asked for (`GET /v1/logs/{id}?follow=&tail_bytes=&local=`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct LogQuery {
    /// Keep streaming what is appended.
    #[serde(default)]
    pub follow: bool,
    /// Only the last this many bytes of what is there already.
    pub tail_bytes: Option<u64>,
    /// Set by a node fetching for another: answer locally, never ask another node.
    #[serde(default)]
    pub local: bool,
}

/// The output of instance `id` (its full id, or the name of a standalone entity).
pub async fn logs(ctx: &Context, caller: &Caller, id: &str, q: &LogQuery) -> Result<LogStream, OpError> {
    let (view, _) = ClusterView::read(&ctx.records()).await?;
    let entity = super::read::entity_views(&view)
        .into_iter()
        .filter(|e| caller.may_act_on(&e.id.tenant))
        .find(|e| e.id.to_string() == id || e.id.app == id)
        .ok_or_else(|| OpError::NotFound(format!("entity {id} not found")))?;
    if entity.node != ctx.node_name && !q.local {
        let addr =
            view.nodes.get(&entity.node).and_then(|n| n.status.address.clone()).ok_or_else(|| {
                OpError::Upstream(format!("node {} has no API address to fetch logs from", entity.node))
            })?;
        return fetch(ctx, &addr, &entity.id.to_string(), q).await;
    }
    ctx.logs.open(&entity.id, q.follow, q.tail_bytes).await.map_err(|e| match e {
        LogError::NotFound(message) => OpError::NotFound(message),
        LogError::Unavailable(message) => OpError::Upstream(message),
    })
}

/// The output from the `fosd` at `addr`, which runs the instance: over HTTPS with the cluster CA, as this node (its
/// node token), after this node checked that the caller may see the instance.
async fn fetch(ctx: &Context, addr: &str, id: &str, q: &LogQuery) -> Result<LogStream, OpError> {
    let peer = ctx
        .security
        .peer
        .as_ref()
        .ok_or_else(|| OpError::Upstream(format!("this node has no credentials to fetch logs from {addr}")))?;
    let mut url = format!("{}://{addr}/v1/logs/{id}?local=true&follow={}", peer.scheme, q.follow);
    if let Some(t) = q.tail_bytes {
        url.push_str(&format!("&tail_bytes={t}"));
    }
    let resp = peer
        .http
        .get(&url)
        .bearer_auth(&peer.token)
        .send()
        .await
        .map_err(|e| OpError::Upstream(format!("{addr}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.json::<fos_api::wire::ErrorBody>().await;
        let message = body.map(|b| b.message).unwrap_or_else(|e| format!("{addr} answered {status}: {e}"));
        return Err(match status.as_u16() {
            404 => OpError::NotFound(message),
            _ => OpError::Upstream(message),
        });
    }
    Ok(resp.bytes_stream().map(|chunk| chunk.map(|b| b.to_vec()).map_err(std::io::Error::other)).boxed())
}
