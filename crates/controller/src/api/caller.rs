//! Who is calling: every handler takes a [`Caller`] extracted from the request's bearer token
//! ([`crate::auth::authenticate`]): no token, or an unknown, revoked or expired one, answers 401 before the
//! handler runs.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::ops::Caller;
use crate::Context;

impl FromRequestParts<Context> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Context) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        Ok(crate::auth::authenticate(ctx, header).await?)
    }
}
