//! The API's error type: every failure answers with a status code and an [`ErrorBody`] naming, for a manifest at
//! fault, the object's index, kind and name and the field's path, so `fosctl` can point at the file position.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fos_api::wire::ErrorBody;
use fos_store::StoreError;
use thiserror::Error;

/// What an API call can fail with.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The request is malformed or an object is invalid.
    #[error("{}", .0.message)]
    Invalid(ErrorBody),
    /// The object asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the object's state (a refused lifecycle step).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Another node could not be reached.
    #[error("{0}")]
    Upstream(String),
}

impl ApiError {
    /// An invalid request with only a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid(ErrorBody { message: message.into(), index: None, kind: None, name: None, path: None })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Invalid(body) => (StatusCode::UNPROCESSABLE_ENTITY, body),
            other => {
                let status = match &other {
                    ApiError::NotFound(_) => StatusCode::NOT_FOUND,
                    ApiError::Conflict(_) => StatusCode::CONFLICT,
                    ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                (status, ErrorBody { message: other.to_string(), index: None, kind: None, name: None, path: None })
            }
        };
        (status, Json(body)).into_response()
    }
}
