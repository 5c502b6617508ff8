//! Operators' searches over the audit index: events by correlation, actor,
//! type, aggregate type and time, combined; and a correlation id's whole
//! tree across aggregates (`marketplace_app::audit::search`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_app::audit::search;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{logged, AuditEventBody, MAX_LIMIT};
use crate::auth::AsOperator;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery, RequestContext};
use crate::AppState;

/// What to search for; every filter given must hold, and with none every
/// event is listed (by commit time). A `from` at or after `to` matches
/// nothing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Events of this correlation id.
    #[param(min_length = 1, max_length = 200)]
    pub correlation_id: Option<String>,
    /// Events caused by this actor (a token's subject or a worker's name).
    #[param(min_length = 1, max_length = 200)]
    pub actor: Option<String>,
    /// Events of this type, e.g. `PolicyChanged`.
    #[param(min_length = 1, max_length = 200)]
    pub event_type: Option<String>,
    /// Events of this aggregate type.
    #[param(inline)]
    pub aggregate_type: Option<AggregateType>,
    /// Committed at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Committed before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The `next` of the previous page.
    #[param(pattern = r"^[0-9]+\.[0-9]+$")]
    pub cursor: Option<String>,
    /// At most this many (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// An aggregate type.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregateType {
    /// Provider alliances.
    Alliance,
    /// Deployments.
    Deployment,
    /// Grid nodes.
    Node,
    /// The pricing policy.
    PricingPolicy,
    /// Provider requests.
    ProviderRequest,
    /// The TFT price feed.
    TftPrice,
    /// Wallets.
    Wallet,
}

impl AggregateType {
    fn as_str(self) -> &'static str {
        match self {
            AggregateType::Alliance => "alliance",
            AggregateType::Deployment => "deployment",
            AggregateType::Node => "node",
            AggregateType::PricingPolicy => "pricing_policy",
            AggregateType::ProviderRequest => "provider_request",
            AggregateType::TftPrice => "tft_price",
            AggregateType::Wallet => "wallet",
        }
    }
}

/// A page of search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPage {
    /// By commit time, then position.
    pub items: Vec<AuditEventBody>,
    /// The `cursor` of the next page, when this one was full.
    pub next: Option<String>,
}

/// Searches every aggregate's events (operator) by correlation id, actor,
/// event type, aggregate type and commit time, combined. Backed by the
/// `audit_index` view, so an event appears once that view has it.
#[utoipa::path(
    get, path = "/v1/audit/events", tag = "audit",
    params(SearchParams),
    responses(
        (status = 200, body = SearchPage),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "A malformed filter, or a cursor this search did not give"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn search_events(
    State(state): State<AppState>,
    AsOperator(operator): AsOperator,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            search::Cursor::decode(c)
                .ok_or_else(|| ApiError::BadRequest("cursor is not one this search gave".into()))
        })
        .transpose()?;
    // The text filters are 1 to 200 characters, as documented: an empty
    // one is malformed, not absent.
    for (name, value) in [
        ("correlation_id", &params.correlation_id),
        ("actor", &params.actor),
        ("event_type", &params.event_type),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.chars().count() > 200)
        {
            return Err(ApiError::BadRequest(format!(
                "{name} is 1 to 200 characters"
            )));
        }
    }
    let query = search::Query {
        correlation_id: params.correlation_id,
        actor: params.actor,
        event_type: params.event_type,
        aggregate_type: params.aggregate_type.map(|t| t.as_str().to_string()),
        from: params.from,
        to: params.to,
        after,
    };
    logged(
        &state,
        &operator,
        &ctx,
        query.aggregate_type.as_deref().unwrap_or("*"),
        "*",
        &describe(&query),
    )
    .await?;
    let page = search::search(&state.pool, &query, limit).await?;
    Ok(Json(SearchPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// The access log's text for a search.
fn describe(q: &search::Query) -> String {
    let mut text = String::from("search");
    let fields = [
        ("correlation_id", q.correlation_id.clone()),
        ("actor", q.actor.clone()),
        ("event_type", q.event_type.clone()),
        ("aggregate_type", q.aggregate_type.clone()),
        ("from", q.from.map(|t| t.to_rfc3339())),
        ("to", q.to.map(|t| t.to_rfc3339())),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            text.push_str(&format!(" {name}={v}"));
        }
    }
    text
}

/// One event of a tree.
#[derive(Debug, Serialize, ToSchema)]
pub struct TreeEventBody {
    /// 0 for the correlation's own events; one more per causation step.
    pub depth: u32,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEventBody,
}

/// Everything a correlation id caused.
#[derive(Debug, Serialize, ToSchema)]
pub struct TreeBody {
    /// The correlation id asked about.
    pub correlation_id: String,
    /// Its events, in commit order.
    pub events: Vec<TreeEventBody>,
    /// The aggregates they touched, `type/id`.
    pub aggregates: Vec<String>,
    /// Whether the tree was cut (10,000 events or 8 causation steps).
    pub truncated: bool,
}

/// The whole tree a correlation id caused (operator), across aggregates:
/// its own events, then every event whose correlation or causation is the
/// request or correlation id of one already in it, step by step (a
/// worker's run caused by a request, and what that run wrote).
#[utoipa::path(
    get, path = "/v1/audit/correlations/{correlation_id}", tag = "audit",
    params(("correlation_id" = String, Path, description = "A correlation id (a request's `X-Correlation-Id`, or its request id)")),
    responses(
        (status = 200, body = TreeBody),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No event has this correlation id")
    ),
    security(("bearer" = []))
)]
pub async fn correlation(
    State(state): State<AppState>,
    AsOperator(operator): AsOperator,
    ctx: RequestContext,
    ApiPath(correlation_id): ApiPath<String>,
) -> Result<Json<TreeBody>, ApiError> {
    logged(
        &state,
        &operator,
        &ctx,
        "*",
        "*",
        &format!("correlate {correlation_id}"),
    )
    .await?;
    let tree = search::correlate(&state.pool, &correlation_id).await?;
    if tree.events.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(TreeBody {
        correlation_id: tree.correlation_id,
        events: tree
            .events
            .into_iter()
            .map(|e| TreeEventBody {
                depth: e.depth,
                event: e.event.into(),
            })
            .collect(),
        aggregates: tree.aggregates,
        truncated: tree.truncated,
    }))
}
