//! Maps an operation's [`OpError`] to an HTTP answer: a status code and an [`ErrorBody`] naming, for a manifest at
//! fault, the object's index, kind and name and the field's path, so `fosctl` can point at the file position.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fos_api::wire::ErrorBody;

use crate::ops::OpError;

/// The API's error: an operation's error, answered as JSON.
#[derive(Debug)]
pub struct ApiError(pub OpError);

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self.0 {
            OpError::Invalid(body) => (StatusCode::UNPROCESSABLE_ENTITY, body),
            other => {
                let status = match &other {
                    OpError::NotFound(_) => StatusCode::NOT_FOUND,
                    OpError::Conflict(_) => StatusCode::CONFLICT,
                    OpError::Forbidden(_) => StatusCode::FORBIDDEN,
                    OpError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                    OpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    OpError::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
                    OpError::Upstream(_) => StatusCode::BAD_GATEWAY,
                    OpError::Store(_) | OpError::Invalid(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                (status, ErrorBody { message: other.to_string(), index: None, kind: None, name: None, path: None })
            }
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
