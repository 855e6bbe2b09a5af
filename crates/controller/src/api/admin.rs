//! Tokens, tenant policies and Secrets: decodes the request and calls [`crate::ops::tokens`],
//! [`crate::ops::tenants`] or [`crate::ops::secrets`].

use axum::extract::{Path, State};
use axum::Json;
use fos_api::auth::{TenantPolicy, TenantView, TokenCreated, TokenInfo, TokenRequest};
use fos_api::wire::SecretView;

use super::error::ApiError;
use super::json::Body;
use crate::ops::{secrets, tenants, tokens, Caller};
use crate::Context;

type Answer<T> = Result<Json<T>, ApiError>;

/// `POST /v1/tokens`.
pub async fn create_token(
    State(ctx): State<Context>,
    caller: Caller,
    Body(req): Body<TokenRequest>,
) -> Answer<TokenCreated> {
    Ok(Json(tokens::create(&ctx, &caller, req).await?))
}

/// `GET /v1/tokens`.
pub async fn list_tokens(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<TokenInfo>> {
    Ok(Json(tokens::list(&ctx, &caller).await?))
}

/// `DELETE /v1/tokens/{id}`.
pub async fn revoke_token(State(ctx): State<Context>, caller: Caller, Path(id): Path<String>) -> Answer<TokenInfo> {
    Ok(Json(tokens::revoke(&ctx, &caller, &id).await?))
}

/// `PUT /v1/tenants/{tenant}`.
pub async fn set_tenant(
    State(ctx): State<Context>,
    caller: Caller,
    Path(tenant): Path<String>,
    Body(policy): Body<TenantPolicy>,
) -> Answer<TenantView> {
    Ok(Json(tenants::set(&ctx, &caller, &tenant, policy).await?))
}

/// `GET /v1/tenants`.
pub async fn list_tenants(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<TenantView>> {
    Ok(Json(tenants::list(&ctx, &caller).await?))
}

/// `GET /v1/secrets`.
pub async fn list_secrets(State(ctx): State<Context>, caller: Caller) -> Answer<Vec<SecretView>> {
    Ok(Json(secrets::list(&ctx, &caller).await?))
}
