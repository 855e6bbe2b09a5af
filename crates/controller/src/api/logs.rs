//! Instance logs: served by the node that runs the instance, whose agent reads them through the instance's runtime
//! (the [`LogSource`] `fosd` hands the API), and proxied to that node's `fosd` (its `status.address`) when asked of
//! another node. `follow=true` keeps streaming what is appended.

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fos_api::InstanceId;
use futures::stream::BoxStream;
use serde::Deserialize;
use thiserror::Error;

use super::error::ApiError;
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

/// Where the API reads the output of this node's instances: the node's agent, which asks the instance's runtime.
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

/// Options of a log request.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// Keep streaming what is appended.
    #[serde(default)]
    pub follow: bool,
    /// Only the last this many bytes of what is there already.
    pub tail_bytes: Option<u64>,
    /// Set by a proxying node: answer locally, never proxy again.
    #[serde(default)]
    pub local: bool,
}

/// `GET /v1/logs/{id}`.
pub async fn logs(
    State(ctx): State<Context>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let view = ClusterView::read(ctx.store.as_ref(), &ctx.keys).await?;
    let entity = super::read::entity_views(&view)
        .into_iter()
        .find(|e| e.id.to_string() == id || e.id.app == id)
        .ok_or_else(|| ApiError::NotFound(format!("entity {id} not found")))?;
    if entity.node != ctx.node_name && !q.local {
        let addr =
            view.nodes.get(&entity.node).and_then(|n| n.status.address.clone()).ok_or_else(|| {
                ApiError::Upstream(format!("node {} has no API address to fetch logs from", entity.node))
            })?;
        return proxy(&addr, &entity.id.to_string(), &q).await;
    }
    let stream = ctx.logs.open(&entity.id, q.follow, q.tail_bytes).await.map_err(|e| match e {
        LogError::NotFound(message) => ApiError::NotFound(message),
        LogError::Unavailable(message) => ApiError::Upstream(message),
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(stream)).into_response())
}

async fn proxy(addr: &str, id: &str, q: &LogQuery) -> Result<Response, ApiError> {
    let mut url = format!("http://{addr}/v1/logs/{id}?local=true&follow={}", q.follow);
    if let Some(t) = q.tail_bytes {
        url.push_str(&format!("&tail_bytes={t}"));
    }
    let resp = reqwest::get(&url).await.map_err(|e| ApiError::Upstream(format!("{addr}: {e}")))?;
    let status = resp.status();
    let body = Body::from_stream(resp.bytes_stream());
    let mut out = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    *out.status_mut() =
        axum::http::StatusCode::from_u16(status.as_u16()).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    Ok(out)
}
