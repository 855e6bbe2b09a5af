//! Handlers of the node operations: cordon, uncordon, drain and its progress.

use axum::extract::{Path, State};
use axum::Json;
use fos_api::wire::DrainStatus;
use fos_api::Node;

use super::error::ApiError;
use crate::ops::{cordon, drain, Caller};
use crate::Context;

type Answer<T> = Result<Json<T>, ApiError>;

/// `POST /v1/nodes/{name}/cordon`.
pub async fn cordon_node(State(ctx): State<Context>, caller: Caller, Path(name): Path<String>) -> Answer<Node> {
    Ok(Json(cordon::cordon(&ctx, &caller, &name, false).await?))
}

/// `POST /v1/nodes/{name}/uncordon`.
pub async fn uncordon_node(State(ctx): State<Context>, caller: Caller, Path(name): Path<String>) -> Answer<Node> {
    Ok(Json(cordon::uncordon(&ctx, &caller, &name).await?))
}

/// `POST /v1/nodes/{name}/drain` (start), `GET` (progress).
pub async fn drain_node(State(ctx): State<Context>, caller: Caller, Path(name): Path<String>) -> Answer<DrainStatus> {
    Ok(Json(drain::drain(&ctx, &caller, &name).await?))
}

/// `GET /v1/nodes/{name}/drain`: what is still on the node.
pub async fn drain_progress(
    State(ctx): State<Context>,
    caller: Caller,
    Path(name): Path<String>,
) -> Answer<DrainStatus> {
    Ok(Json(drain::remaining(&ctx, &caller, &name).await?))
}
