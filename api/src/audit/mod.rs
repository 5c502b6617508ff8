//! Operators' audit reads: an aggregate's history with each event's
//! metadata and commit position, and its state at any version or time,
//! folded by the domain's own rules; searches and correlation trees
//! ([`search`]); tamper evidence ([`integrity`]). All over
//! `marketplace_app::audit`, all operators only, every read of an aggregate
//! recorded in the access log.

mod integrity;
mod search;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_app::audit::{self, AuditError, AuditEvent, Until};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AsOperator;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery, RequestContext};
use crate::AppState;

/// The most events a history page holds.
pub const MAX_LIMIT: i64 = 500;

/// The audit routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(aggregate_events))
        .routes(routes!(aggregate_state))
        .routes(routes!(aggregate_diff))
        .routes(routes!(access_log))
        .routes(routes!(search::search_events))
        .routes(routes!(search::correlation))
        .routes(routes!(integrity::verify_store))
        .routes(routes!(integrity::checkpoints))
}

/// Records an operator's audit read in the access log before it is
/// answered: who, what of which aggregate, under which request.
pub(crate) async fn logged(
    state: &AppState,
    operator: &marketplace_domain::Actor,
    ctx: &RequestContext,
    aggregate_type: &str,
    id: &str,
    asked: &str,
) -> Result<(), ApiError> {
    audit::record_access(
        &state.pool,
        &operator.subject,
        aggregate_type,
        id,
        asked,
        &ctx.request_id,
    )
    .await?;
    Ok(())
}

/// A page's `after` (default 0) and `limit` (default 100), checked.
pub(crate) fn page(after: Option<i64>, limit: Option<i64>) -> Result<(i64, i64), ApiError> {
    let (after, limit) = (after.unwrap_or(0), limit.unwrap_or(100));
    if after < 0 {
        return Err(ApiError::BadRequest("after must not be negative".into()));
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    Ok((after, limit))
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::UnknownType(_) => ApiError::NotFound,
            AuditError::Db(e) => e.into(),
            e @ AuditError::Unreadable { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

/// One event of an aggregate's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventBody {
    /// Its aggregate type.
    pub aggregate_type: String,
    /// Its aggregate.
    pub aggregate_id: String,
    /// Its sequence in the aggregate, from 1.
    pub sequence: i64,
    /// Its type, e.g. `DeploymentRequested`.
    pub event_type: String,
    /// The payload version as stored.
    pub event_version: String,
    /// The payload at the current version.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// `actor_subject`, `actor_role`, `correlation_id`, `causation_id`,
    /// `request_id`, `recorded_at`, `idempotency_key`.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Its insertion position in the store.
    pub position: i64,
    /// The committing transaction's id: the store's commit order.
    pub txid: i64,
    /// When the store committed it.
    pub recorded_at: DateTime<Utc>,
}

impl From<AuditEvent> for AuditEventBody {
    fn from(e: AuditEvent) -> Self {
        Self {
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: e.payload,
            metadata: e.metadata,
            position: e.position,
            txid: e.txid,
            recorded_at: e.recorded_at,
        }
    }
}

/// A page of history.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditHistory {
    /// Oldest first.
    pub items: Vec<AuditEventBody>,
    /// The `after` of the next page, when this one was full.
    pub next_after: Option<i64>,
}

/// Which events.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Only events after this sequence (default 0: from the first).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// An aggregate's history (operator): every event with its sequence, type,
/// version, payload, metadata and commit position, oldest first.
#[utoipa::path(
    get, path = "/v1/audit/aggregates/{aggregate_type}/{id}/events", tag = "audit",
    params(
        ("aggregate_type" = String, Path, description = "deployment, node, pricing_policy, provider_request, tft_price or wallet"),
        ("id" = String, Path, description = "The aggregate's id"),
        HistoryParams
    ),
    responses(
        (status = 200, body = AuditHistory),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such aggregate type, or no events for this id")
    ),
    security(("bearer" = []))
)]
pub async fn aggregate_events(
    State(state): State<AppState>,
    AsOperator(operator): AsOperator,
    ctx: RequestContext,
    ApiPath((aggregate_type, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Json<AuditHistory>, ApiError> {
    let (after, limit) = page(params.after, params.limit)?;
    let asked = format!("events after={after} limit={limit}");
    logged(&state, &operator, &ctx, &aggregate_type, &id, &asked).await?;
    let events = audit::history(&state.pool, &aggregate_type, &id, after, limit).await?;
    if events.is_empty() && after == 0 {
        return Err(ApiError::NotFound);
    }
    let next_after = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.sequence))
        .flatten();
    Ok(Json(AuditHistory {
        items: events.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

/// Up to which point: both bounds hold when both are given; with neither,
/// the latest state.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateParams {
    /// Through this version (sequence).
    #[param(minimum = 1)]
    pub version: Option<i64>,
    /// Through the last event committed at or before this instant (RFC 3339).
    pub at: Option<DateTime<Utc>>,
}

/// An aggregate's state at a point of its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditState {
    /// The version folded to: the last event's sequence.
    pub version: i64,
    /// The aggregate's state, as the domain folds it.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
}

/// An aggregate's state (operator) through `version` and through time
/// `at` (each optional; the latest state without either), folded from its
/// events by the domain's own rules.
#[utoipa::path(
    get, path = "/v1/audit/aggregates/{aggregate_type}/{id}/state", tag = "audit",
    params(
        ("aggregate_type" = String, Path, description = "deployment, node, pricing_policy, provider_request, tft_price or wallet"),
        ("id" = String, Path, description = "The aggregate's id"),
        StateParams
    ),
    responses(
        (status = 200, body = AuditState),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "A malformed version or at"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such aggregate type, or no event by then")
    ),
    security(("bearer" = []))
)]
pub async fn aggregate_state(
    State(state): State<AppState>,
    AsOperator(operator): AsOperator,
    ctx: RequestContext,
    ApiPath((aggregate_type, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<StateParams>,
) -> Result<Json<AuditState>, ApiError> {
    if params.version.is_some_and(|v| v < 1) {
        return Err(ApiError::BadRequest("version must be 1 or more".into()));
    }
    let until = Until {
        version: params.version,
        at: params.at,
    };
    let asked = format!("state {}", until.describe());
    logged(&state, &operator, &ctx, &aggregate_type, &id, &asked).await?;
    let (version, folded) = audit::state(&state.pool, &aggregate_type, &id, until)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(AuditState {
        version,
        state: folded,
    }))
}

/// Between which versions, in either order.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    /// The version the patch starts from.
    #[param(minimum = 1)]
    pub from: i64,
    /// The version the patch leads to; older than `from` gives the patch
    /// that undoes, equal gives an empty one.
    #[param(minimum = 1)]
    pub to: i64,
}

/// What changed between two versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditDiff {
    /// The version the patch starts from.
    pub from: i64,
    /// The version it leads to.
    pub to: i64,
    /// An RFC 6902 JSON Patch from the state at `from` to the state at
    /// `to`: `op` (`add`, `remove`, `replace`), `path`, `value`.
    #[schema(value_type = Vec<Object>)]
    pub changes: serde_json::Value,
    /// The events between, oldest first (sequences from the lower version
    /// + 1 to the higher), at most 500.
    pub events: Vec<AuditEventBody>,
    /// Whether more events lie between than listed.
    pub events_truncated: bool,
}

/// What changed in an aggregate from version `from` to version `to`
/// (operator; either order): a JSON Patch of its state, field by field,
/// and the events between.
#[utoipa::path(
    get, path = "/v1/audit/aggregates/{aggregate_type}/{id}/diff", tag = "audit",
    params(
        ("aggregate_type" = String, Path, description = "deployment, node, pricing_policy, provider_request, tft_price or wallet"),
        ("id" = String, Path, description = "The aggregate's id"),
        DiffParams
    ),
    responses(
        (status = 200, body = AuditDiff),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "from or to missing, malformed, or below 1"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such aggregate type, or it has not reached the higher version")
    ),
    security(("bearer" = []))
)]
pub async fn aggregate_diff(
    State(state): State<AppState>,
    AsOperator(operator): AsOperator,
    ctx: RequestContext,
    ApiPath((aggregate_type, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<DiffParams>,
) -> Result<Json<AuditDiff>, ApiError> {
    if params.from < 1 || params.to < 1 {
        return Err(ApiError::BadRequest("versions start at 1".into()));
    }
    let asked = format!("diff from={} to={}", params.from, params.to);
    logged(&state, &operator, &ctx, &aggregate_type, &id, &asked).await?;
    let d = audit::diff(&state.pool, &aggregate_type, &id, params.from, params.to)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(AuditDiff {
        from: d.from,
        to: d.to,
        changes: d.changes,
        events: d.events.into_iter().map(Into::into).collect(),
        events_truncated: d.events_truncated,
    }))
}

/// One audit read.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessBody {
    /// Its place in the log; pass it as `after` for the next page.
    pub position: i64,
    /// The operator who read.
    pub actor_subject: String,
    /// The aggregate type read.
    pub aggregate_type: String,
    /// The aggregate read.
    pub aggregate_id: String,
    /// What was asked: `events ...`, `state ...` or `diff ...`.
    pub request: String,
    /// The HTTP request's id.
    pub request_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A page of the access log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessLog {
    /// Oldest first.
    pub items: Vec<AccessBody>,
    /// The `after` of the next page, when this one was full.
    pub next_after: Option<i64>,
}

/// Which reads.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccessParams {
    /// Only reads after this position (default 0).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Only this operator's reads.
    pub actor: Option<String>,
}

/// Who read which aggregate's history, state or diff, and when (operator).
#[utoipa::path(
    get, path = "/v1/audit/access-log", tag = "audit",
    params(AccessParams),
    responses(
        (status = 200, body = AccessLog),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn access_log(
    State(state): State<AppState>,
    AsOperator(_operator): AsOperator,
    ApiQuery(params): ApiQuery<AccessParams>,
) -> Result<Json<AccessLog>, ApiError> {
    let (after, limit) = page(params.after, params.limit)?;
    let rows = audit::accesses(&state.pool, params.actor.as_deref(), after, limit).await?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|a| a.position))
        .flatten();
    Ok(Json(AccessLog {
        items: rows
            .into_iter()
            .map(|a| AccessBody {
                position: a.position,
                actor_subject: a.actor_subject,
                aggregate_type: a.aggregate_type,
                aggregate_id: a.aggregate_id,
                request: a.request,
                request_id: a.request_id,
                at: a.at,
            })
            .collect(),
        next_after,
    }))
}
