//! The JSON body of a request, read within [`fos_api::limits::MAX_BODY_BYTES`]: a larger body answers 413 naming
//! the limit, one that is not the JSON asked for answers 422 saying where it is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::ops::OpError;

/// A JSON request body of type `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                OpError::TooLarge(format!(
                    "the request body is over the limit of {} bytes",
                    fos_api::limits::MAX_BODY_BYTES
                ))
            } else {
                OpError::invalid(format!("reading the request body: {}", e.body_text()))
            }
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| OpError::invalid(format!("request body at `{}`: {}", e.path(), e.inner())))?;
        Ok(Body(value))
    }
}
