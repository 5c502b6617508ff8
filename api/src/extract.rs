//! Extractors that turn request parts into typed values or problem answers.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body whose rejections are problem documents: malformed JSON is
/// 400, a body that does not fit the schema (unknown field, wrong type) is
/// 422, a missing content type 415, a body over the limit 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::Invalid {
            detail: e.body_text(),
            field: None,
        },
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(e) => {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(e.body_text())
            }
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// A path parameter; one that does not parse (a malformed id) is 404, as an
/// unknown id is.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(ApiError::NotFound),
            Err(other) => Err(ApiError::Internal(other.body_text())),
        }
    }
}

/// Query parameters; a malformed one is 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::BadRequest(e.body_text()))
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// Ids that tie a request to its events: the request id (set by the
/// request-id layer) and the caller's correlation id (or the request id).
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// This request's id.
    pub request_id: String,
    /// The conversation it belongs to.
    pub correlation_id: String,
    /// The command's Idempotency-Key, if sent.
    pub idempotency_key: Option<String>,
    /// The version the client expects the aggregate to have (`If-Match`).
    pub expected_version: Option<u64>,
}

/// The request-id header, set by the request-id layer when the client sent none.
pub const REQUEST_ID: &str = "x-request-id";
/// The correlation-id header a caller may send to tie requests together.
pub const CORRELATION_ID: &str = "x-correlation-id";

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let request_id = header(REQUEST_ID).unwrap_or_default();
        let correlation_id = header(CORRELATION_ID)
            .filter(|c| c.len() <= 128)
            .unwrap_or_else(|| request_id.clone());
        let idempotency_key = header("idempotency-key");
        if let Some(key) = &idempotency_key {
            if key.len() > 255 {
                return Err(ApiError::Invalid {
                    detail: "Idempotency-Key is at most 255 characters".into(),
                    field: Some("Idempotency-Key".into()),
                });
            }
        }
        // Present but empty is as malformed as any other value that is not
        // the documented shape (`crate::contract::IF_MATCH_PATTERN`).
        let expected_version = match parts.headers.get("if-match") {
            None => None,
            Some(v) => Some(if_match(v.to_str().unwrap_or_default()).ok_or_else(|| {
                ApiError::BadRequest(
                    "If-Match must be a version number, as returned in `version` or `ETag`".into(),
                )
            })?),
        };
        Ok(RequestContext {
            request_id,
            correlation_id,
            idempotency_key,
            expected_version,
        })
    }
}

/// A version as `If-Match` carries it: `7` or `"7"` (1 to 18 digits).
fn if_match(value: &str) -> Option<u64> {
    let digits = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => value,
    };
    let well_formed =
        (1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    well_formed.then(|| digits.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::if_match;

    #[test]
    fn if_match_takes_a_version_quoted_or_not_and_nothing_else() {
        assert_eq!(if_match("7"), Some(7));
        assert_eq!(if_match("\"12\""), Some(12));
        for bad in [
            "",
            "\"",
            "\"\"",
            "\"7",
            "7\"",
            "\"\"7\"\"",
            "W/\"7\"",
            "-1",
            " 7",
            "1234567890123456789",
        ] {
            assert_eq!(if_match(bad), None, "{bad:?}");
        }
    }
}
