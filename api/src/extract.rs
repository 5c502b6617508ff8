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
        let mut value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        as_json_schema_reads(&mut value, &mut String::new())?;
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::Invalid {
                    detail: format!(
                        "Failed to deserialize the JSON body into the target type: {path}: {}",
                        e.inner()
                    ),
                    field: (path != ".").then_some(path),
                }
            })
    }
}

/// Numbers as the OpenAPI document (JSON Schema) reads them: `5.0` is the
/// integer 5, which serde would refuse for an integer field; an integer
/// beyond int64, the format every documented integer has, is refused. And
/// a text holding U+0000, which PostgreSQL can store in neither `text` nor
/// `jsonb`, is refused naming its field (the document's patterns say so).
fn as_json_schema_reads(value: &mut serde_json::Value, path: &mut String) -> Result<(), ApiError> {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if n.as_u64().is_some_and(|u| u > i64::MAX as u64) {
                return Err(ApiError::Invalid {
                    detail: format!("{path}: integers are at most {} (int64)", i64::MAX),
                    field: (!path.is_empty()).then(|| path.clone()),
                });
            }
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                // Exactly representable integers only: beyond 2^53 a float
                // is not the integer it looks like.
                if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                    *n = serde_json::Number::from(f as i64);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                as_json_schema_reads(item, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if key.contains('\0') {
                    return Err(nul(path));
                }
                as_json_schema_reads(item, path)?;
                path.truncate(len);
            }
        }
        Value::String(text) if text.contains('\0') => return Err(nul(path)),
        _ => {}
    }
    Ok(())
}

fn nul(path: &str) -> ApiError {
    ApiError::Invalid {
        detail: format!("{path}: a text must not hold U+0000 (NUL)"),
        field: (!path.is_empty()).then(|| path.to_string()),
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
        // Every documented integer is an int64: larger digits are refused
        // here as they would be in a body, whatever Rust type reads them.
        let query = parts.uri.query().unwrap_or_default();
        for (name, value) in form_urlencoded_pairs(query) {
            let digits = value.strip_prefix('+').unwrap_or(&value);
            let beyond = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<i64>().is_err();
            if beyond {
                return Err(ApiError::BadRequest(format!(
                    "{name}: integers are at most {} (int64)",
                    i64::MAX
                )));
            }
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::BadRequest(e.body_text()))
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// The query string's `name=value` pairs, decoded.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
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
    use super::{as_json_schema_reads, if_match};

    #[test]
    fn integral_numbers_read_as_integers_and_int64_bounds_hold() {
        let mut v = serde_json::json!({"a": 5.0, "b": [1.5, 2.0], "c": -3.0});
        as_json_schema_reads(&mut v, &mut String::new()).expect("fits");
        assert_eq!(v, serde_json::json!({"a": 5, "b": [1.5, 2], "c": -3}));
        let mut big = serde_json::json!({"n": {"m": 9_223_372_036_854_775_808u64}});
        let e = as_json_schema_reads(&mut big, &mut String::new()).expect_err("beyond int64");
        assert!(matches!(e, crate::error::ApiError::Invalid { field: Some(f), .. } if f == "n.m"));
    }

    #[test]
    fn if_match_takes_a_version_quoted_or_not_and_nothing_else() {
        assert_eq!(if_match("7"), Some(7));
        assert_eq!(if_match("0"), Some(0));
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
