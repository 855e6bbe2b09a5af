//! The seed's store view: `GET /v1/store?uri=afos://0/**` lists the keys an `afos://`/`dfos://` URI matches
//! (with `*` and `**`), and `GET /v1/watch?uri=…` streams their changes as newline-delimited JSON.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fos_api::wire::StoreEntry;
use futures::StreamExt;
use serde::Deserialize;

use super::error::ApiError;
use crate::ops::{read, Caller};
use crate::Context;

/// The query of the store view and watch.
#[derive(Debug, Deserialize)]
pub struct UriQuery {
    /// An `afos://` or `dfos://` URI.
    pub uri: String,
}

/// `GET /v1/store?uri=…`.
pub async fn get(
    State(ctx): State<Context>,
    caller: Caller,
    Query(q): Query<UriQuery>,
) -> Result<Json<Vec<StoreEntry>>, ApiError> {
    Ok(Json(read::store(&ctx, &caller, &q.uri).await?))
}

/// `GET /v1/watch?uri=…`: the current entries as `put` events, then every change, one JSON object per line.
pub async fn watch(
    State(ctx): State<Context>,
    caller: Caller,
    Query(q): Query<UriQuery>,
) -> Result<Response, ApiError> {
    let events = read::watch(&ctx, &caller, &q.uri).await?;
    let lines = events.map(|ev| {
        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(line)
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
