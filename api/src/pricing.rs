//! The pricing policy: everyone reads the current one; operators change it
//! and read its history. Quotes use the current policy.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_domain::money::UsdAmount;
use marketplace_domain::pricing::{
    DiscountLevel, DiscountTier, PricingPolicy, PricingPolicyCommand, AGGREGATE_ID,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AsOperator, AuthUser};
use crate::command::{accept, fingerprint, Target};
use crate::dto::CommandAccepted;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, RequestContext};
use crate::AppState;

/// The pricing routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(current_policy, set_policy))
        .routes(routes!(policy_history))
}

/// One discount tier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscountTierBody {
    /// `default`, `bronze`, `silver` or `gold`.
    #[schema(schema_with = tier_level_schema)]
    pub level: DiscountLevel,
    /// Balance needed, in half-months of the contract's cost (3 = 1.5 months).
    #[schema(minimum = 1)]
    pub min_half_months: u32,
    /// Discount in percent.
    #[schema(maximum = 100)]
    pub percent: u8,
}

/// The levels a tier can have (`none` is what no tier gives).
fn tier_level_schema() -> utoipa::openapi::schema::Object {
    crate::contract::string_enum(["default", "bronze", "silver", "gold"])
}

/// A pricing policy. Prices are USD chain units (1 USD = 10,000,000), per hour unless said.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingPolicyBody {
    /// One compute unit for an hour.
    #[schema(minimum = 1)]
    pub cu_per_hour: u64,
    /// One storage unit for an hour.
    #[schema(minimum = 1)]
    pub su_per_hour: u64,
    /// One GB of public traffic.
    #[schema(minimum = 1)]
    pub nu_per_gb: u64,
    /// One public IPv4 address for an hour.
    #[schema(minimum = 1)]
    pub ipv4_per_hour: u64,
    /// A gateway name for an hour.
    #[schema(minimum = 1)]
    pub name_per_hour: u64,
    /// A gateway domain for an hour.
    #[schema(minimum = 1)]
    pub domain_per_hour: u64,
    /// Certified-node multiplier on CU and SU, basis points (12,500 = x1.25).
    #[schema(minimum = 10_000, maximum = 50_000)]
    pub certified_multiplier_bps: u32,
    /// The marketplace's markup on the whole price, basis points.
    #[schema(maximum = 10_000)]
    pub markup_bps: u32,
    /// Staking discount tiers, lowest first: levels, balances and percents
    /// each rising (422 `discount-tiers-out-of-order` otherwise).
    #[schema(max_items = 8)]
    pub discounts: Vec<DiscountTierBody>,
}

impl From<&PricingPolicy> for PricingPolicyBody {
    fn from(p: &PricingPolicy) -> Self {
        Self {
            cu_per_hour: p.cu_per_hour.units(),
            su_per_hour: p.su_per_hour.units(),
            nu_per_gb: p.nu_per_gb.units(),
            ipv4_per_hour: p.ipv4_per_hour.units(),
            name_per_hour: p.name_per_hour.units(),
            domain_per_hour: p.domain_per_hour.units(),
            certified_multiplier_bps: p.certified_multiplier_bps,
            markup_bps: p.markup_bps,
            discounts: p
                .discounts
                .iter()
                .map(|d| DiscountTierBody {
                    level: d.level,
                    min_half_months: d.min_half_months,
                    percent: d.percent,
                })
                .collect(),
        }
    }
}

impl From<PricingPolicyBody> for PricingPolicy {
    fn from(b: PricingPolicyBody) -> Self {
        PricingPolicy {
            cu_per_hour: UsdAmount::from_units(b.cu_per_hour),
            su_per_hour: UsdAmount::from_units(b.su_per_hour),
            nu_per_gb: UsdAmount::from_units(b.nu_per_gb),
            ipv4_per_hour: UsdAmount::from_units(b.ipv4_per_hour),
            name_per_hour: UsdAmount::from_units(b.name_per_hour),
            domain_per_hour: UsdAmount::from_units(b.domain_per_hour),
            certified_multiplier_bps: b.certified_multiplier_bps,
            markup_bps: b.markup_bps,
            discounts: b
                .discounts
                .into_iter()
                .map(|d| DiscountTier {
                    level: d.level,
                    min_half_months: d.min_half_months,
                    percent: d.percent,
                })
                .collect(),
        }
    }
}

/// The policy in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CurrentPolicy {
    /// 0 for the grid's default, then one more per change.
    pub version: u64,
    /// When it was set (absent for the default).
    pub changed_at: Option<DateTime<Utc>>,
    /// The policy.
    pub policy: PricingPolicyBody,
}

/// One change in the policy's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyChange {
    /// The version this change made.
    pub version: i64,
    /// Who changed it.
    pub changed_by: String,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// The policy from then on.
    pub policy: PricingPolicyBody,
}

/// The history, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyHistory {
    /// The page.
    pub items: Vec<PolicyChange>,
    /// Pass as `before` for older changes; absent at the start of history.
    pub next_before: Option<i64>,
}

/// The pricing policy in force.
#[utoipa::path(
    get, path = "/v1/pricing", tag = "pricing",
    responses((status = 200, body = CurrentPolicy), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn current_policy(
    State(state): State<AppState>,
    _user: AuthUser,
) -> Result<Json<CurrentPolicy>, ApiError> {
    let current = crate::policy::in_force(&state).await?;
    Ok(Json(CurrentPolicy {
        version: current.version as u64,
        changed_at: current.changed_at,
        policy: (&current.policy).into(),
    }))
}

/// Change the pricing policy (operator). Every change is an audited event.
#[utoipa::path(
    put, path = "/v1/pricing", tag = "pricing",
    request_body = PricingPolicyBody,
    params(("If-Match" = Option<String>, Header, description = "The version you read; 409 if it moved")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn set_policy(
    State(state): State<AppState>,
    AsOperator(actor): AsOperator,
    ctx: RequestContext,
    ApiJson(body): ApiJson<PricingPolicyBody>,
) -> Response {
    let fingerprint = fingerprint(("PUT /v1/pricing", &body));
    let target = Target {
        store: &state.stores.pricing,
        id: AGGREGATE_ID.to_string(),
        location: "/v1/pricing".to_string(),
        fresh: false,
    };
    let command = PricingPolicyCommand::SetPolicy {
        policy: body.into(),
        by: actor.clone(),
        at: Utc::now(),
    };
    accept(&state, &ctx, &actor, target, fingerprint, move |_| {
        Ok(command.clone())
    })
    .await
}

/// History page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Only changes older than this version.
    pub before: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// Every change to the policy, newest first (operator).
#[utoipa::path(
    get, path = "/v1/pricing/history", tag = "pricing",
    params(HistoryParams),
    responses((status = 200, body = PolicyHistory), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn policy_history(
    State(state): State<AppState>,
    _operator: AsOperator,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Json<PolicyHistory>, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 100".into()));
    }
    let rows = marketplace_projections::pricing::history(&state.pool, limit, params.before).await?;
    let next_before = if rows.len() as i64 == limit {
        rows.last().map(|r| r.version)
    } else {
        None
    };
    Ok(Json(PolicyHistory {
        items: rows
            .into_iter()
            .map(|r| PolicyChange {
                version: r.version,
                changed_by: r.changed_by,
                changed_at: r.changed_at,
                policy: (&r.policy).into(),
            })
            .collect(),
        next_before,
    }))
}
