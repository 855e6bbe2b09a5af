//! The image service's routes: `POST /v1/images/{name}?format=&sha256=` (the body is the content, streamed;
//! [`ops::image_upload`]), `GET /v1/images/{name}/content?offset=` (a node fetching a copy;
//! [`ops::image_content::content`]) and `GET /v1/images/status` (every image with its size and holders).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fos_api::image::{ImageView, UploadQuery};
use serde::Deserialize;

use super::error::ApiError;
use crate::ops::{self, Caller};
use crate::Context;

/// `POST /v1/images/{name}`.
pub async fn upload(
    State(ctx): State<Context>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<Json<ImageView>, ApiError> {
    Ok(Json(ops::image_upload::upload(&ctx, &caller, &name, &q, body.into_data_stream()).await?))
}

/// Where a fetch starts (`?offset=N`).
#[derive(Debug, Default, Deserialize)]
pub struct ContentQuery {
    /// The first byte to send.
    #[serde(default)]
    pub offset: u64,
}

/// `GET /v1/images/{name}/content`.
pub async fn content(
    State(ctx): State<Context>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ContentQuery>,
) -> Result<Response, ApiError> {
    let content = ops::image_content::content(&ctx, &caller, &name, q.offset).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, (content.size - q.offset).to_string()),
    ];
    Ok((headers, Body::from_stream(content.stream)).into_response())
}

/// `GET /v1/images/status`.
pub async fn status(State(ctx): State<Context>, caller: Caller) -> Result<Json<Vec<ImageView>>, ApiError> {
    Ok(Json(ops::image_content::views(&ctx, &caller).await?))
}
