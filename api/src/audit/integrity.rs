//! Tamper evidence for operators: the store's verification and its global
//! checkpoints (`marketplace_app::audit::integrity`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_app::audit::integrity;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AsOperator;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::AppState;

/// Where the history was found broken.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokenBody {
    /// The aggregate type, when one event is named.
    pub aggregate_type: Option<String>,
    /// The aggregate, when one event is named.
    pub aggregate_id: Option<String>,
    /// The first event of it that does not check out.
    pub sequence: Option<i64>,
    /// The checkpoint that no longer matches, for a checkpoint finding.
    pub checkpoint: Option<i64>,
    /// `edited`, `missing before it`, `removed`, `rehashed`, or
    /// `checkpoint: ...`.
    pub reason: String,
}

/// What a verification of the store found.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationBody {
    /// Events checked.
    pub checked: i64,
    /// Checkpoints recomputed.
    pub checkpoints: i64,
    /// The first break, if any.
    pub broken: Option<BrokenBody>,
}

/// Verifies the whole store (operator) and records the finding (the
/// `marketplace_audit_verify_*` metrics read the latest): every
/// aggregate's hash chain (an event edited, or removed before another),
/// the store against the audit index (an aggregate's last event removed, a
/// chain recomputed), and the global checkpoints. Answers the first break.
/// The same check as `marketplace audit verify`.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "audit",
    responses(
        (status = 200, body = VerificationBody),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn verify_store(
    State(state): State<AppState>,
    AsOperator(_operator): AsOperator,
) -> Result<Json<VerificationBody>, ApiError> {
    let v = integrity::verify_and_record(&state.pool).await?;
    Ok(Json(VerificationBody {
        checked: v.checked,
        checkpoints: v.checkpoints,
        broken: v.broken.map(|b| BrokenBody {
            aggregate_type: b.aggregate_type,
            aggregate_id: b.aggregate_id,
            sequence: b.sequence,
            checkpoint: b.checkpoint,
            reason: b.reason,
        }),
    }))
}

/// One global checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointBody {
    /// Its id, increasing; pass it as `after` for the next page.
    pub id: i64,
    /// Events it covers (since the previous checkpoint).
    pub events: i64,
    /// Events covered by it and every earlier one.
    pub total: i64,
    /// SHA-256 over the previous checkpoint's hash and the hashes of the
    /// events it covers in commit order, hex.
    pub hash: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Which checkpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointParams {
    /// Only checkpoints after this id (default 0).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// A page of checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checkpoints {
    /// Oldest first.
    pub items: Vec<CheckpointBody>,
    /// The `after` of the next page, when this one was full.
    pub next_after: Option<i64>,
}

/// The global checkpoints over commit order (operator), to copy somewhere
/// the database's writers cannot reach: a later verification fails when
/// the events one covers change.
#[utoipa::path(
    get, path = "/v1/audit/checkpoints", tag = "audit",
    params(CheckpointParams),
    responses(
        (status = 200, body = Checkpoints),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn checkpoints(
    State(state): State<AppState>,
    AsOperator(_operator): AsOperator,
    ApiQuery(params): ApiQuery<CheckpointParams>,
) -> Result<Json<Checkpoints>, ApiError> {
    let (after, limit) = super::page(params.after, params.limit)?;
    let items: Vec<CheckpointBody> = integrity::checkpoints(&state.pool, after, limit)
        .await?
        .into_iter()
        .map(|c| CheckpointBody {
            id: c.id,
            events: c.events,
            total: c.total,
            hash: c.hash,
            recorded_at: c.recorded_at,
        })
        .collect();
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|c| c.id))
        .flatten();
    Ok(Json(Checkpoints { items, next_after }))
}
