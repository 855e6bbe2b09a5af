//! Deletes of the kinds other than applications: `DELETE /v1/networks/{tenant}/{name}`, `/v1/secrets/{tenant}/{name}`,
//! `/v1/images/{name}` and `/v1/plugins/{name}` ([`ops::remove`]).

use axum::extract::{Path, State};
use axum::Json;
use fos_api::wire::ObjectChange;
use fos_api::ObjectKind;

use super::error::ApiError;
use crate::ops::{self, Caller};
use crate::Context;

/// A JSON answer or an API error.
type Answer = Result<Json<ObjectChange>, ApiError>;

/// `DELETE /v1/networks/{tenant}/{name}`.
pub async fn network(State(ctx): State<Context>, caller: Caller, Path((t, n)): Path<(String, String)>) -> Answer {
    Ok(Json(ops::remove::remove(&ctx, &caller, ObjectKind::Network, &t, &n).await?))
}

/// `DELETE /v1/secrets/{tenant}/{name}`.
pub async fn secret(State(ctx): State<Context>, caller: Caller, Path((t, n)): Path<(String, String)>) -> Answer {
    Ok(Json(ops::remove::remove(&ctx, &caller, ObjectKind::Secret, &t, &n).await?))
}

/// `DELETE /v1/images/{name}`.
pub async fn image(State(ctx): State<Context>, caller: Caller, Path(n): Path<String>) -> Answer {
    Ok(Json(ops::remove::remove(&ctx, &caller, ObjectKind::Image, "", &n).await?))
}

/// `DELETE /v1/plugins/{name}`.
pub async fn plugin(State(ctx): State<Context>, caller: Caller, Path(n): Path<String>) -> Answer {
    Ok(Json(ops::remove::remove(&ctx, &caller, ObjectKind::Plugin, "", &n).await?))
}
