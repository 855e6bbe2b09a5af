//! Instance logs: served by the node that runs the instance (from the file its agent writes), and proxied to that
//! node's `fosd` (its `status.address`) when asked of another node. `follow=true` keeps streaming what is appended.

use std::io::SeekFrom;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::ApiError;
use crate::ops::{Caller, OpError};
use crate::view::ClusterView;
use crate::Context;

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
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let (view, _) = ClusterView::read(&ctx.records()).await.map_err(OpError::from)?;
    let entity = crate::ops::read::entity_views(&view)
        .into_iter()
        .filter(|e| caller.may_act_on(&e.id.tenant))
        .find(|e| e.id.to_string() == id || e.id.app == id)
        .ok_or_else(|| OpError::NotFound(format!("entity {id} not found")))?;
    if entity.node != ctx.node_name && !q.local {
        let addr =
            view.nodes.get(&entity.node).and_then(|n| n.status.address.clone()).ok_or_else(|| {
                OpError::Upstream(format!("node {} has no API address to fetch logs from", entity.node))
            })?;
        return proxy(&addr, &entity.id.to_string(), &q).await;
    }
    let mut files = Vec::new();
    for path in (ctx.logs)(&entity.id) {
        let Ok(mut file) = tokio::fs::File::open(&path).await else { continue };
        if let (Some(tail), Ok(meta)) = (q.tail_bytes, file.metadata().await) {
            let _ = file.seek(SeekFrom::Start(meta.len().saturating_sub(tail))).await;
        }
        files.push(file);
    }
    if files.is_empty() {
        return Err(OpError::NotFound(format!("no output of {} on {} yet", entity.id, ctx.node_name)).into());
    }
    let follow = q.follow;
    // Reads whatever the files have; when following, waits for more instead of ending.
    let stream = futures::stream::unfold(files, move |mut files| async move {
        loop {
            let mut chunk = Vec::new();
            for file in files.iter_mut() {
                let mut buf = vec![0u8; 64 * 1024];
                if let Ok(n) = file.read(&mut buf).await {
                    chunk.extend_from_slice(&buf[..n]);
                }
            }
            if !chunk.is_empty() {
                return Some((Ok::<_, std::io::Error>(chunk), files));
            }
            if !follow {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(stream)).into_response())
}

async fn proxy(addr: &str, id: &str, q: &LogQuery) -> Result<Response, ApiError> {
    let mut url = format!("http://{addr}/v1/logs/{id}?local=true&follow={}", q.follow);
    if let Some(t) = q.tail_bytes {
        url.push_str(&format!("&tail_bytes={t}"));
    }
    let resp = reqwest::get(&url).await.map_err(|e| OpError::Upstream(format!("{addr}: {e}")))?;
    let status = resp.status();
    let body = Body::from_stream(resp.bytes_stream());
    let mut out = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
    *out.status_mut() =
        axum::http::StatusCode::from_u16(status.as_u16()).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    Ok(out)
}
