//! Changes to one application or entity: `DELETE /v1/apps/{tenant}/{name}` ([`ops::delete`]) and the entity verbs
//! `POST /v1/entities/{tenant}/{name}/{verb}` ([`ops::set_state`]).

use axum::extract::{Path, State};
use axum::Json;
use fos_api::wire::AppView;

use super::error::ApiError;
use crate::ops::{self, Caller};
use crate::Context;

/// `DELETE /v1/apps/{tenant}/{name}`.
pub async fn delete(
    State(ctx): State<Context>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(ops::delete::delete(&ctx, &caller, &tenant, &name).await?))
}

/// `POST /v1/entities/{tenant}/{name}/{verb}`.
pub async fn lifecycle(
    State(ctx): State<Context>,
    caller: Caller,
    Path((tenant, name, verb)): Path<(String, String, String)>,
) -> Result<Json<AppView>, ApiError> {
    let action = ops::set_state::parse_verb(&verb)?;
    Ok(Json(ops::set_state::set_state(&ctx, &caller, &tenant, &name, action).await?))
}
