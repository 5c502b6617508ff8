//! Dead letters for operators: the events a projection could not apply,
//! with the error, and a retry once the cause is fixed (ARCHITECTURE.md,
//! invariant 7). Whichever source feeds the projection (the store or Kafka),
//! its dead letters land in one table and are retried from the store.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AsOperator;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery};
use crate::AppState;

/// The dead-letter routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(retry_dead_letters))
}

/// Which dead letters to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterParams {
    /// Only this projection's.
    #[param(schema_with = projection_name)]
    pub projection: Option<String>,
    /// Resolved ones too (they stay as the audit trail of retries).
    pub include_resolved: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Pass `next_after` from the previous page.
    pub after: Option<i64>,
}

/// An event a projection could not apply.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct DeadLetter {
    /// The record's id.
    pub id: i64,
    /// The projection that failed.
    pub projection: String,
    /// The event's position in the store (its id in Kafka headers too).
    pub event_position: i64,
    /// Its aggregate type.
    pub aggregate_type: String,
    /// Its aggregate id.
    pub aggregate_id: String,
    /// Its sequence in the aggregate.
    pub sequence: i64,
    /// Its type.
    pub event_type: String,
    /// Why it could not be applied (the last attempt's error).
    pub error: String,
    /// When it last failed.
    pub failed_at: DateTime<Utc>,
    /// When a retry applied it.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A page of dead letters, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterPage {
    /// The page.
    pub items: Vec<DeadLetter>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<i64>,
}

/// What to retry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// The projection whose unresolved dead letters to retry, in store order.
    #[schema(schema_with = projection_name)]
    pub projection: String,
}

/// The registry's projections, by name.
fn projection_name() -> utoipa::openapi::schema::Object {
    crate::contract::string_enum(marketplace_projections::names())
}

/// What a retry did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetryOutcome {
    /// The projection.
    pub projection: String,
    /// Dead letters applied now, and marked resolved.
    pub resolved: usize,
    /// Dead letters that failed again (their error is updated).
    pub still_failing: usize,
}

fn known(
    projection: &str,
) -> Result<std::sync::Arc<dyn marketplace_projections::Projection>, ApiError> {
    marketplace_projections::known(projection).map_err(|detail| ApiError::Invalid {
        detail,
        field: Some("projection".into()),
    })
}

/// List dead letters (operator).
#[utoipa::path(
    get, path = "/v1/operator/dead-letters", tag = "operations",
    params(DeadLetterParams),
    responses(
        (status = 200, body = DeadLetterPage),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn list_dead_letters(
    State(state): State<AppState>,
    _operator: AsOperator,
    ApiQuery(params): ApiQuery<DeadLetterParams>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    if let Some(p) = &params.projection {
        known(p)?;
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Invalid {
            detail: "limit is 1 to 200".into(),
            field: Some("limit".into()),
        });
    }
    let mut items: Vec<DeadLetter> = sqlx::query_as(
        "SELECT id, projection, event_position, aggregate_type, aggregate_id, sequence,
                event_type, error, failed_at, resolved_at
           FROM projection_dead_letters
          WHERE ($1::text IS NULL OR projection = $1)
            AND ($2 OR resolved_at IS NULL)
            AND id > $3
          ORDER BY id
          LIMIT $4",
    )
    .bind(params.projection.as_deref())
    .bind(params.include_resolved.unwrap_or(false))
    .bind(params.after.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let next_after = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|d| d.id)
    } else {
        None
    };
    Ok(Json(DeadLetterPage { items, next_after }))
}

/// Retry a projection's unresolved dead letters (operator), once the cause
/// is fixed (an upcaster deployed, a view repaired). Each one that applies
/// is marked resolved; one that fails again keeps its record with the new error.
#[utoipa::path(
    post, path = "/v1/operator/dead-letters/retry", tag = "operations",
    request_body = RetryBody,
    responses(
        (status = 200, body = RetryOutcome),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn retry_dead_letters(
    State(state): State<AppState>,
    AsOperator(actor): AsOperator,
    ApiJson(body): ApiJson<RetryBody>,
) -> Result<Json<RetryOutcome>, ApiError> {
    let projection = known(&body.projection)?;
    let (resolved, still_failing) =
        marketplace_projections::tail::retry_dead_letters(&state.pool, &projection).await?;
    tracing::info!(
        projection = %body.projection,
        operator = %actor.subject,
        resolved,
        still_failing,
        "dead letters retried"
    );
    Ok(Json(RetryOutcome {
        projection: body.projection,
        resolved,
        still_failing,
    }))
}
