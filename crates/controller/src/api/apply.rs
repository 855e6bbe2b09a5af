//! `POST /v1/apply`: decodes an [`ApplyRequest`] and runs [`ops::apply::apply`].

use axum::extract::State;
use axum::Json;
use fos_api::wire::{ApplyRequest, ApplyResponse};

use super::error::ApiError;
use crate::ops::{self, Caller};
use crate::Context;

/// `POST /v1/apply`.
pub async fn apply(
    State(ctx): State<Context>,
    caller: Caller,
    super::json::Body(req): super::json::Body<ApplyRequest>,
) -> Result<Json<ApplyResponse>, ApiError> {
    Ok(Json(ops::apply::apply(&ctx, &caller, req).await?))
}
