//! `GET` of every kind: decodes the path and query and calls [`ops::read`].

use axum::extract::{Path, Query, State};
use axum::Json;
use fos_api::wire::{AppView, EntityView, EventRecord, ListQuery, SystemInfo};
use fos_api::Node;

use super::error::ApiError;
use crate::ops::{read, Caller};
use crate::Context;

/// A JSON answer or an API error.
type Answer<T> = Result<Json<T>, ApiError>;

/// `GET /v1/apps`.
pub async fn list_apps(State(ctx): State<Context>, caller: Caller, Query(q): Query<ListQuery>) -> Answer<Vec<AppView>> {
    Ok(Json(read::apps(&ctx, &caller, &q).await?))
}

/// `GET /v1/apps/{tenant}/{name}`.
pub async fn get_app(
    State(ctx): State<Context>,
    caller: Caller,
    Path((t, n)): Path<(String, String)>,
) -> Answer<AppView> {
    Ok(Json(read::app(&ctx, &caller, &t, &n).await?))
}

/// `GET /v1/entities`.
pub async fn list_entities(
    State(ctx): State<Context>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Answer<Vec<EntityView>> {
    Ok(Json(read::entities(&ctx, &caller, &q).await?))
}

/// `GET /v1/entities/{id}`.
pub async fn get_entity(State(ctx): State<Context>, caller: Caller, Path(id): Path<String>) -> Answer<EntityView> {
    Ok(Json(read::entity(&ctx, &caller, &id).await?))
}

/// `GET /v1/system`.
pub async fn system(State(ctx): State<Context>, caller: Caller) -> Answer<SystemInfo> {
    Ok(Json(read::system(&ctx, &caller)))
}

/// `GET /v1/nodes`.
pub async fn list_nodes(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<Node>> {
    Ok(Json(read::nodes(&ctx, &caller).await?))
}

/// `GET /v1/nodes/{name}`.
pub async fn get_node(State(ctx): State<Context>, caller: Caller, Path(name): Path<String>) -> Answer<Node> {
    Ok(Json(read::node(&ctx, &caller, &name).await?))
}

/// `GET /v1/networks`.
pub async fn list_networks(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<serde_json::Value>> {
    Ok(Json(read::networks(&ctx, &caller).await?))
}

/// `GET /v1/networks/nodes`.
pub async fn list_node_networks(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<serde_json::Value>> {
    Ok(Json(read::node_networks(&ctx, &caller).await?))
}

/// `GET /v1/images`.
pub async fn list_images(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<serde_json::Value>> {
    Ok(Json(read::images(&ctx, &caller).await?))
}

/// `GET /v1/plugins`.
pub async fn list_plugins(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<serde_json::Value>> {
    Ok(Json(read::plugins(&ctx, &caller).await?))
}

/// `GET /v1/events`.
pub async fn list_events(
    State(ctx): State<Context>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Answer<Vec<EventRecord>> {
    Ok(Json(read::events(&ctx, &caller, &q).await?))
}
