//! `GET /v1/logs/{id}[?follow=&tail_bytes=]`: an instance's output as plain text, streamed ([`ops::logs`]).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
pub use crate::ops::logs::{LogError, LogQuery, LogSource, LogStream, NoLogs};
use crate::ops::{self, Caller};
use crate::Context;

/// `GET /v1/logs/{id}`.
pub async fn logs(
    State(ctx): State<Context>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let stream = ops::logs::logs(&ctx, &caller, &id, &q).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(stream)).into_response())
}
