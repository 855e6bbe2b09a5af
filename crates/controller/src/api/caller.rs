//! Who is calling: every handler takes a [`Caller`] extracted from the request. Today every request acts as the
//! local administrator; authentication replaces this extractor, and every operation already takes the caller.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::ops::Caller;

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller::local_admin())
    }
}
