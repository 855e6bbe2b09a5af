//! Handlers of migrations: start or abort one, read them, and the destination's side of a migration's data.

use axum::extract::{Path, Query, State};
use axum::Json;
use fos_api::migration::{DataCommit, MigrateRequest, Migration, Received};
use fos_api::record::DesiredInstance;
use futures::StreamExt;

use super::error::ApiError;
use super::json::Body;
use crate::ops::transfer::DataQuery;
use crate::ops::{migrate, transfer, Caller};
use crate::Context;

type Answer<T> = Result<Json<T>, ApiError>;

/// `POST /v1/migrations/{instance}`: migrate the instance (or abort its migration).
pub async fn start(
    State(ctx): State<Context>,
    caller: Caller,
    Path(instance): Path<String>,
    Body(req): Body<MigrateRequest>,
) -> Answer<Migration> {
    Ok(Json(migrate::migrate(&ctx, &caller, &instance, &req).await?))
}

/// `GET /v1/migrations`.
pub async fn list(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<Migration>> {
    Ok(Json(migrate::list(&ctx, &caller).await?))
}

/// `GET /v1/migrations/{instance}`.
pub async fn get(State(ctx): State<Context>, caller: Caller, Path(instance): Path<String>) -> Answer<Migration> {
    Ok(Json(migrate::get(&ctx, &caller, &instance).await?))
}

/// `GET /v1/migrations/{instance}/data?migration=`: what this node has received.
pub async fn received(
    State(ctx): State<Context>,
    caller: Caller,
    Path(instance): Path<String>,
    Query(q): Query<DataQuery>,
) -> Answer<Received> {
    Ok(Json(transfer::received(&ctx, &caller, &instance, &q).await?))
}

/// `PUT /v1/migrations/{instance}/data?migration=&offset=`: the rest of the stream, as it comes.
pub async fn append(
    State(ctx): State<Context>,
    caller: Caller,
    Path(instance): Path<String>,
    Query(q): Query<DataQuery>,
    body: axum::body::Body,
) -> Answer<Received> {
    let body = body.into_data_stream().map(|r| r.map_err(|e| e.to_string())).boxed();
    Ok(Json(transfer::append(&ctx, &caller, &instance, &q, body).await?))
}

/// `POST /v1/migrations/{instance}/data/commit?migration=`: check and unpack.
pub async fn commit(
    State(ctx): State<Context>,
    caller: Caller,
    Path(instance): Path<String>,
    Query(q): Query<DataQuery>,
    Body(c): Body<DataCommit>,
) -> Answer<Received> {
    Ok(Json(transfer::commit(&ctx, &caller, &instance, &q, &c).await?))
}

/// `POST /v1/migrations/{instance}/prepare?migration=`: prepare the incoming instance (body: its desired record).
pub async fn prepare(
    State(ctx): State<Context>,
    caller: Caller,
    Path(instance): Path<String>,
    Query(q): Query<DataQuery>,
    Body(desired): Body<DesiredInstance>,
) -> Answer<transfer::Prepared> {
    Ok(Json(transfer::prepare(&ctx, &caller, &instance, &q, &desired).await?))
}
