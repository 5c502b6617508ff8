//! Reads of alliances: a provider's own (or every one, for operators), one
//! alliance with its members, its nodes' live uptime against the SLA and
//! the shares the period so far projects, and its settlements.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_app::alliance::{chain_now, period_figures};
use marketplace_domain::alliance::{settle, AllianceState, NodeFigures, Period};
use marketplace_projections::alliances::{self as views, AllianceRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{visible, RuleBody, SlaBody};
use crate::auth::AsProviderOrOperator;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::views_watch::read_visible;
use crate::AppState;

/// An alliance in a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AllianceSummary {
    /// The alliance.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it offers.
    pub description: String,
    /// The founder's subject.
    pub founder: String,
    /// `founder` or `capacity_majority`.
    pub governance: String,
    /// Its first period (`YYYY-MM`).
    pub founded_in: String,
    /// The rule of the latest period it is set for.
    pub rule: Value,
    /// The SLA of the latest period it is set for.
    pub sla: Value,
    /// Its chain farm, once created.
    pub farm_id: Option<i64>,
    /// The farm's twin.
    pub twin_id: Option<i64>,
    /// The account the chain pays the farm's share to.
    pub account: Option<String>,
    /// The first period it no longer counts, once dissolved.
    pub dissolved_from: Option<String>,
    /// The alliance's version (for `If-Match`).
    pub version: i64,
}

fn latest(v: &Value) -> Value {
    v.as_array()
        .and_then(|a| a.last())
        .and_then(|p| p.get(1))
        .cloned()
        .unwrap_or(Value::Null)
}

impl From<&AllianceRow> for AllianceSummary {
    fn from(r: &AllianceRow) -> Self {
        Self {
            id: r.alliance_id.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            founder: r.founder.clone(),
            governance: r.governance.clone(),
            founded_in: r.founded_in.clone(),
            rule: latest(&r.rules),
            sla: latest(&r.slas),
            farm_id: r.farm_id,
            twin_id: r.twin_id,
            account: r.account.clone(),
            dissolved_from: r.dissolved_from.clone(),
            version: r.version,
        }
    }
}

/// A page of alliances.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlliancePage {
    /// The page, by id.
    pub items: Vec<AllianceSummary>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// List parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AllianceListParams {
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A provider's alliances (as member or invitee), or every one for operators.
#[utoipa::path(
    get, path = "/v1/alliances", tag = "alliances", operation_id = "list_alliances",
    params(AllianceListParams),
    responses((status = 200, body = AlliancePage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    AsProviderOrOperator(actor): AsProviderOrOperator,
    ApiQuery(params): ApiQuery<AllianceListParams>,
) -> Result<Json<AlliancePage>, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 100".into()));
    }
    let member = (!actor.is_operator()).then_some(actor.subject.as_str());
    if params.cursor.as_deref() == Some("") {
        return Err(ApiError::BadRequest(
            "cursor: pass a page's next_cursor, or no cursor".into(),
        ));
    }
    let rows = views::list(&state.pool, member, params.cursor.as_deref(), limit).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.alliance_id.clone()))
        .flatten();
    Ok(Json(AlliancePage {
        items: rows.iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// A member or invitee.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberBody {
    /// The provider's subject.
    pub member: String,
    /// `invited`, `member` or `left`.
    pub status: String,
    /// Its first period.
    pub since: Option<String>,
    /// The first period it is no longer a member in.
    pub until: Option<String>,
    /// Where its payouts go, once linked.
    pub payout_account: Option<String>,
}

/// A node of the alliance, with its uptime this period so far.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AllianceNodeBody {
    /// The node.
    pub node_id: i64,
    /// Its contributor.
    pub member: String,
    /// The member's farm it came from.
    pub farm_id: i64,
    /// Contributed compute units.
    pub cu: i64,
    /// Contributed storage units.
    pub su: i64,
    /// The first period it counts in.
    pub counted_from: String,
    /// The first period it no longer counts in, once withdrawn.
    pub counted_until: Option<String>,
    /// Measured uptime this period so far (basis points), when it counts now.
    pub uptime_bps: Option<u16>,
    /// The SLA's target for this period.
    pub target_bps: Option<u16>,
    /// Whether the uptime so far meets the target.
    pub meets_sla: Option<bool>,
    /// What the chain paid the alliance for it this period so far (base units).
    pub income: Option<String>,
}

/// One member's share projected from the period so far.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectedShare {
    /// The member.
    pub member: String,
    /// Base units, decimal.
    pub share: String,
}

/// An alliance in full.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AllianceBody {
    /// The alliance.
    #[serde(flatten)]
    pub summary: AllianceSummary,
    /// The period the live figures are for (by the chain's clock).
    pub period: String,
    /// The rule in force this period.
    pub current_rule: Option<RuleBody>,
    /// The SLA in force this period.
    pub current_sla: Option<SlaBody>,
    /// Members and invitees.
    pub members: Vec<MemberBody>,
    /// Nodes, with live uptime against the SLA.
    pub nodes: Vec<AllianceNodeBody>,
    /// Shares if the period ended now.
    pub projected_shares: Vec<ProjectedShare>,
    /// Income this period so far (base units, decimal).
    pub income_so_far: String,
    /// The last period settled.
    pub last_settled: Option<String>,
}

/// Read-your-writes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AllianceGetParams {
    /// Wait (bounded) until the view has reached this version.
    pub min_version: Option<i64>,
}

pub(crate) async fn visible_row(
    state: &AppState,
    actor: &marketplace_domain::Actor,
    id: &str,
    min_version: i64,
) -> Result<AllianceRow, ApiError> {
    let pool = &state.pool;
    read_visible(
        &state.views,
        state.settings.read_wait,
        min_version,
        || views::get(pool, id),
        |row: &AllianceRow| row.alliance().is_some_and(|a| visible(&a, actor)),
        |row| row.version,
    )
    .await
}

async fn live_period(state: &AppState) -> Result<(Period, i64), ApiError> {
    let now = chain_now(&state.pool)
        .await?
        .unwrap_or_else(|| Utc::now().timestamp());
    let period =
        Period::of(now).map_err(|e| ApiError::Internal(format!("chain clock: {}", e.reason)))?;
    Ok((period, now))
}

/// The projected settlement of `period` on figures up to `now`.
fn project(
    s: &AllianceState,
    period: Period,
    figures: &[marketplace_domain::alliance::NodeIncome],
) -> Vec<ProjectedShare> {
    let counted = s.nodes_in(period);
    let nodes: Vec<NodeFigures> = figures
        .iter()
        .filter_map(|f| {
            let c = counted.get(&f.node_id)?;
            Some(NodeFigures {
                node_id: f.node_id,
                member: c.member.clone(),
                capacity: c.capacity,
                uptime_bps: f.uptime_bps,
                income: f.income,
                billed: f.billed.clone(),
            })
        })
        .collect();
    let (Some(rule), Some(sla)) = (s.rule_for(period), s.sla_for(period)) else {
        return Vec::new();
    };
    let carried_in = s
        .settlements
        .range(..period)
        .next_back()
        .map_or(0, |(_, st)| st.carried);
    settle(rule, sla, &s.members_in(period), &nodes, carried_in)
        .map(|st| {
            st.shares
                .into_iter()
                .map(|(member, share)| ProjectedShare {
                    member,
                    share: share.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One alliance (members, invitees and operators): members, nodes with
/// their uptime this period against the SLA, and projected shares.
#[utoipa::path(
    get, path = "/v1/alliances/{id}", tag = "alliances",
    params(("id" = String, Path, description = "The alliance"), AllianceGetParams),
    responses(
        (status = 200, body = AllianceBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn get_alliance(
    State(state): State<AppState>,
    AsProviderOrOperator(actor): AsProviderOrOperator,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<AllianceGetParams>,
) -> Result<Json<AllianceBody>, ApiError> {
    let row = visible_row(&state, &actor, &id, params.min_version.unwrap_or(0)).await?;
    let alliance = row
        .alliance()
        .ok_or_else(|| ApiError::Internal("unreadable alliance view".into()))?;
    let s = alliance
        .state()
        .ok_or_else(|| ApiError::Internal("alliance view before founding".into()))?;
    let (period, now) = live_period(&state).await?;
    let figures = period_figures(&state.pool, s, period, now).await?;
    let sla = s.sla_for(period);
    let members = views::members(&state.pool, &id).await?;
    let nodes = views::nodes(&state.pool, &id).await?;
    let income_so_far: u128 = figures.iter().map(|f| f.income).sum();
    Ok(Json(AllianceBody {
        summary: (&row).into(),
        period: period.to_string(),
        current_rule: s.rule_for(period).map(RuleBody::of),
        current_sla: sla.map(SlaBody::of),
        members: members
            .into_iter()
            .map(|m| MemberBody {
                member: m.member,
                status: m.status,
                since: m.since,
                until: m.until,
                payout_account: m.payout_account,
            })
            .collect(),
        nodes: nodes
            .into_iter()
            .map(|n| {
                let f = figures.iter().find(|f| i64::from(f.node_id) == n.node_id);
                AllianceNodeBody {
                    node_id: n.node_id,
                    member: n.member,
                    farm_id: n.farm_id,
                    cu: n.cu,
                    su: n.su,
                    counted_from: n.counted_from,
                    counted_until: n.counted_until,
                    uptime_bps: f.map(|f| f.uptime_bps),
                    target_bps: sla.map(|s| s.target_bps),
                    meets_sla: f.zip(sla).map(|(f, s)| f.uptime_bps >= s.target_bps),
                    income: f.map(|f| f.income.to_string()),
                }
            })
            .collect(),
        projected_shares: project(s, period, &figures),
        income_so_far: income_so_far.to_string(),
        last_settled: s.last_settled().map(|p| p.to_string()),
    }))
}

/// A member's share of a settled period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShareBody {
    /// The member.
    pub member: String,
    /// Its share (base units, decimal).
    pub share: String,
    /// The SLA penalty taken from it and given to the others.
    pub penalty: String,
    /// What was sent, once.
    pub paid: Option<String>,
    /// Where.
    pub paid_to: Option<String>,
    /// The chain transfer (`block-event`).
    pub transfer: Option<String>,
}

/// A settled period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettlementBody {
    /// The period.
    pub period: String,
    /// What the counted nodes brought (base units, decimal).
    pub income: String,
    /// Carried from the previous period.
    pub carried_in: String,
    /// Carried to the next period.
    pub carried: String,
    /// Credited to users.
    pub user_credits: String,
    /// Every member's share.
    pub shares: Vec<ShareBody>,
    /// The settlement as recorded (`AllianceSettled`): node credits, user credits, penalties.
    pub settlement: Value,
    /// The figures settled on, per node.
    pub nodes: Value,
    /// When it was settled (chain time).
    pub settled_at: DateTime<Utc>,
}

/// The alliance's settled periods (members and operators), oldest first.
#[utoipa::path(
    get, path = "/v1/alliances/{id}/settlements", tag = "alliances",
    params(("id" = String, Path, description = "The alliance")),
    responses(
        (status = 200, body = Vec<SettlementBody>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn settlements(
    State(state): State<AppState>,
    AsProviderOrOperator(actor): AsProviderOrOperator,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<SettlementBody>>, ApiError> {
    visible_row(&state, &actor, &id, 0).await?;
    let shares = views::shares(&state.pool, &id, None).await?;
    let rows = views::settlements(&state.pool, &id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| SettlementBody {
                shares: shares
                    .iter()
                    .filter(|s| s.period == r.period)
                    .map(|s| ShareBody {
                        member: s.member.clone(),
                        share: s.share.clone(),
                        penalty: s.penalty.clone(),
                        paid: s.paid.clone(),
                        paid_to: s.paid_to.clone(),
                        transfer: s.transfer.clone(),
                    })
                    .collect(),
                period: r.period,
                income: r.income,
                carried_in: r.carried_in,
                carried: r.carried,
                user_credits: r.user_credits,
                settlement: r.settlement,
                nodes: r.nodes,
                settled_at: r.settled_at,
            })
            .collect(),
    ))
}
