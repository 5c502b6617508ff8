//! Every error the API answers, as RFC 9457 problem details with a stable
//! `type`. Internal causes are logged, never sent to clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cqrs_es::AggregateError;
use marketplace_domain::deployment::DeploymentError;
use marketplace_domain::node::NodeError;
use marketplace_domain::pricing::PricingPolicyError;
use marketplace_domain::provider::ProviderRequestError;
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

impl From<DeploymentError> for ApiError {
    fn from(e: DeploymentError) -> Self {
        let invalid = |e: &DeploymentError| ApiError::Invalid {
            detail: e.to_string(),
            field: None,
        };
        match &e {
            DeploymentError::AlreadyExists => ApiError::Conflict(e.to_string()),
            // Tenancy: another user's deployment answers as if it did not exist.
            DeploymentError::NotFound | DeploymentError::NotPermitted => ApiError::NotFound,
            DeploymentError::InvalidSpec(spec) => ApiError::Invalid {
                detail: spec.reason.clone(),
                field: Some(spec.field.clone()),
            },
            DeploymentError::InvalidTransition { .. }
            | DeploymentError::WorkloadNotReady { .. }
            | DeploymentError::WorkloadsMismatch { .. }
            | DeploymentError::MissingReason
            | DeploymentError::ResizeUnchanged
            | DeploymentError::DiskShrink { .. }
            | DeploymentError::NotACluster
            | DeploymentError::GracePeriodNotElapsed { .. }
            | DeploymentError::CauseNotAllowed { .. }
            | DeploymentError::InvalidContractId
            | DeploymentError::TextTooLong { .. } => invalid(&e),
        }
    }
}

impl<E> From<AggregateError<E>> for ApiError
where
    E: std::error::Error,
    ApiError: From<E>,
{
    fn from(e: AggregateError<E>) -> Self {
        match e {
            AggregateError::UserError(e) => e.into(),
            AggregateError::AggregateConflict => {
                ApiError::Conflict("another command changed this resource first".into())
            }
            AggregateError::DatabaseConnectionError(e) => ApiError::Unavailable(e.to_string()),
            AggregateError::DeserializationError(e) => ApiError::Internal(e.to_string()),
            AggregateError::UnexpectedError(e) => ApiError::Internal(e.to_string()),
        }
    }
}

fn spec_invalid(e: &marketplace_domain::deployment::SpecError) -> ApiError {
    ApiError::Invalid {
        detail: e.reason.clone(),
        field: Some(e.field.clone()),
    }
}

impl From<ProviderRequestError> for ApiError {
    fn from(e: ProviderRequestError) -> Self {
        match &e {
            ProviderRequestError::NotFound => ApiError::NotFound,
            // Another provider's request answers as if it did not exist.
            ProviderRequestError::NotPermitted => ApiError::NotFound,
            ProviderRequestError::OpenRequestExists | ProviderRequestError::AlreadyApproved => {
                ApiError::Conflict(e.to_string())
            }
            ProviderRequestError::Invalid(spec) => spec_invalid(spec),
            ProviderRequestError::FarmMismatch { .. }
            | ProviderRequestError::InvalidTransition { .. } => ApiError::Invalid {
                detail: e.to_string(),
                field: None,
            },
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let invalid = |e: &NodeError| ApiError::Invalid {
            detail: e.to_string(),
            field: None,
        };
        match &e {
            // A node of another provider's farm answers as if it did not exist.
            NodeError::NotFound | NodeError::NotPermitted | NodeError::MaintenanceNotFound => {
                ApiError::NotFound
            }
            NodeError::MaintenanceExists => ApiError::Conflict(e.to_string()),
            NodeError::Invalid(spec) => spec_invalid(spec),
            NodeError::NodeMismatch { .. }
            | NodeError::MaintenanceInThePast
            | NodeError::MaintenanceEndsBeforeStart
            | NodeError::MaintenanceTooLong { .. }
            | NodeError::MaintenanceOverlap { .. }
            | NodeError::MaintenanceStarted => invalid(&e),
        }
    }
}

impl From<PricingPolicyError> for ApiError {
    fn from(e: PricingPolicyError) -> Self {
        match &e {
            PricingPolicyError::NotPermitted => ApiError::Forbidden,
            PricingPolicyError::InvalidPolicy(spec) => spec_invalid(spec),
            PricingPolicyError::PolicyUnchanged => ApiError::Invalid {
                detail: e.to_string(),
                field: None,
            },
        }
    }
}
