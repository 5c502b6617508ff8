//! Every error the API answers, as RFC 9457 problem details with a stable
//! `type`. Internal causes are logged, never sent to clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use marketplace_app::CommandError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A stable identifier of the kind of problem (a relative URI).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or invalid token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The token is valid but its roles do not allow this.
    #[error("forbidden")]
    Forbidden,
    /// Unknown, or another tenant's.
    #[error("not found")]
    NotFound,
    /// The body is not JSON or not readable.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is larger than allowed.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body is not declared as JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The command is invalid (a field out of range, an illegal transition).
    #[error("invalid: {detail}")]
    Invalid {
        /// What is wrong.
        detail: String,
        /// The field at fault, if one.
        field: Option<String>,
    },
    /// The aggregate changed since the client read it, or the command conflicts with its state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The command would create what already exists (409, `/problems/{slug}`).
    #[error("{slug}: {detail}")]
    Exists {
        /// What exists: `already-exists`, `maintenance-exists`, ...
        slug: &'static str,
        /// Details.
        detail: String,
    },
    /// The same Idempotency-Key was sent with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// A request with this Idempotency-Key is still being processed.
    #[error("a request with this idempotency key is in progress")]
    IdempotencyInProgress,
    /// The read model has not caught up within the wait allowed.
    #[error("the view has not caught up yet")]
    ViewLagging,
    /// A feature this deployment has not been configured for (payments without Stripe keys).
    #[error("{slug}: {detail}")]
    Rule {
        /// The problem type's last segment (`insufficient-balance`).
        slug: &'static str,
        /// What was refused and why.
        detail: String,
    },
    /// A feature needs configuration this deployment lacks.
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    /// The caller spent its budget (rate limiting); retry after this many seconds.
    #[error("rate limited ({budget}): retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a request of this budget is allowed again.
        retry_after_secs: u64,
        /// The budget spent: `commands`, `reads`, `anonymous`, `webhook`.
        budget: &'static str,
    },
    /// A dependency (the database) is unreachable.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Anything else; logged with its cause.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Whether the same request could succeed later, in which case an
    /// Idempotency-Key record must not keep this answer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Conflict(_)
                | ApiError::IdempotencyInProgress
                | ApiError::ViewLagging
                | ApiError::Unavailable(_)
                | ApiError::NotConfigured(_)
                | ApiError::RateLimited { .. }
                | ApiError::Internal(_)
        )
    }

    /// The status code and problem document for this error.
    pub fn problem(&self) -> (StatusCode, Problem) {
        let (status, slug, title, detail, field) = match self {
            ApiError::Unauthorized(why) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or invalid credentials",
                Some(why.clone()),
                None,
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Your role does not allow this",
                None,
                None,
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found", None, None),
            ApiError::BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "The request could not be read",
                Some(why.clone()),
                None,
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is too large",
                None,
                None,
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Send the body as application/json",
                None,
                None,
            ),
            ApiError::Invalid { detail, field } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-command",
                "The command is invalid",
                Some(detail.clone()),
                field.clone(),
            ),
            ApiError::Conflict(why) => (
                StatusCode::CONFLICT,
                "version-conflict",
                "The resource changed; read it again and retry",
                Some(why.clone()),
                None,
            ),
            ApiError::Exists { slug, detail } => (
                StatusCode::CONFLICT,
                *slug,
                "That already exists",
                Some(detail.clone()),
                None,
            ),
            ApiError::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "This Idempotency-Key was used for a different request",
                None,
                None,
            ),
            ApiError::IdempotencyInProgress => (
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "A request with this Idempotency-Key is still in progress",
                None,
                None,
            ),
            ApiError::ViewLagging => (
                StatusCode::SERVICE_UNAVAILABLE,
                "view-lagging",
                "The view has not caught up with that version yet; retry shortly",
                None,
                None,
            ),
            ApiError::Rule { slug, detail } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                *slug,
                "A business rule refused the command",
                Some(detail.clone()),
                None,
            ),
            ApiError::NotConfigured(what) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not-configured",
                "This marketplace is not configured for that",
                Some(what.to_string()),
                None,
            ),
            ApiError::RateLimited {
                retry_after_secs,
                budget,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests; retry after the time Retry-After gives",
                Some(format!(
                    "the {budget} budget is spent; retry in {retry_after_secs} s"
                )),
                None,
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "A dependency is unavailable; retry shortly",
                None,
                None,
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                None,
                None,
            ),
        };
        let problem = Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            field,
        };
        (status, problem)
    }
}

/// Serialises a problem with its media type.
pub fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(error = %cause, "request failed"),
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dependency unavailable")
            }
            _ => {}
        }
        let (status, problem) = self.problem();
        let mut response = problem_response(status, &problem);
        if matches!(self, ApiError::ViewLagging | ApiError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ApiError::Unavailable(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NotFound => ApiError::NotFound,
            CommandError::Forbidden => ApiError::Forbidden,
            CommandError::Invalid { detail, field } => ApiError::Invalid { detail, field },
            CommandError::Rule { slug, detail } => ApiError::Rule { slug, detail },
            CommandError::VersionConflict(why) => ApiError::Conflict(why),
            CommandError::Exists { slug, detail } => ApiError::Exists { slug, detail },
            CommandError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            CommandError::IdempotencyInProgress | CommandError::IdempotencyKeyTaken => {
                ApiError::IdempotencyInProgress
            }
            CommandError::NotConfigured(what) => ApiError::NotConfigured(what),
            CommandError::Unavailable(why) => ApiError::Unavailable(why),
            CommandError::Internal(why) => ApiError::Internal(why),
        }
    }
}

impl From<marketplace_app::stripe::PaymentsError> for ApiError {
    fn from(e: marketplace_app::stripe::PaymentsError) -> Self {
        CommandError::from(e).into()
    }
}
