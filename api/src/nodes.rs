//! The node catalog users browse, and the maintenance calendar providers
//! keep for the nodes of their approved farms.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_domain::money::UsdAmount;
use marketplace_domain::node::{Node, NodeCommand, NodeStatus};
use marketplace_domain::Actor;
use marketplace_projections::nodes::{self as views, CatalogQuery, NodeRow, Sort};
use marketplace_projections::providers;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AsProvider, AuthUser};
use crate::command::{accept, fingerprint, Target};
use crate::dto::{CommandAccepted, EmptyBody, MaintenanceBody};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestContext};
use crate::AppState;

/// The node and maintenance routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalog))
        .routes(routes!(get_node))
        .routes(routes!(schedule_maintenance))
        .routes(routes!(reschedule_maintenance))
        .routes(routes!(cancel_maintenance))
        .routes(routes!(my_farms))
        .routes(routes!(my_nodes))
        .routes(routes!(my_maintenance))
}

/// Catalog filters, as the grid proxy names them where it has them.
/// Capacities are bytes (memory and disks) and vCPUs.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CatalogParams {
    /// At least this many free vCPUs.
    pub free_cru: Option<u64>,
    /// At least this much free memory, bytes.
    pub free_mru: Option<u64>,
    /// At least this much free SSD, bytes.
    pub free_sru: Option<u64>,
    /// At least this much free HDD, bytes.
    pub free_hru: Option<u64>,
    /// Country (any case).
    pub country: Option<String>,
    /// City (any case).
    pub city: Option<String>,
    /// Comma-separated farm ids.
    #[param(pattern = r"^\s*([0-9]{1,9}\s*)?(,\s*([0-9]{1,9}\s*)?)*$")]
    pub farm_ids: Option<String>,
    /// Certified nodes only (or uncertified only).
    pub certified: Option<bool>,
    /// Dedicated nodes.
    pub dedicated: Option<bool>,
    /// Rentable nodes.
    pub rentable: Option<bool>,
    /// Rented nodes.
    pub rented: Option<bool>,
    /// On a farm with a free public IPv4 address.
    pub has_ipv4: Option<bool>,
    /// With a GPU.
    pub has_gpu: Option<bool>,
    /// Comma-separated statuses: up, standby, down.
    #[param(pattern = r"^\s*((up|standby|down)\s*)?(,\s*((up|standby|down)\s*)?)*$")]
    pub status: Option<String>,
    /// Up for at least this many seconds.
    pub min_uptime_seconds: Option<u64>,
    /// The whole node costs at least this much an hour (USD units, current policy).
    pub min_price: Option<u64>,
    /// The whole node costs at most this much an hour (USD units, current policy).
    pub max_price: Option<u64>,
    /// Only nodes counted now in this alliance.
    pub alliance_id: Option<String>,
    /// Only alliance nodes whose alliance's SLA targets at least this uptime (basis points).
    #[param(maximum = 65_535)]
    pub sla_min_bps: Option<u16>,
    /// node_id (default), free_cru, free_mru, price or uptime.
    #[param(schema_with = crate::contract::node_sort)]
    pub sort: Option<String>,
    /// The `next_cursor` of the previous page (same sort).
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A node in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeBody {
    /// Grid node id.
    pub node_id: i64,
    /// Its farm.
    pub farm_id: i64,
    /// Country.
    pub country: String,
    /// City.
    pub city: String,
    /// Total vCPUs.
    pub total_cru: i64,
    /// Total memory, bytes.
    pub total_mru: i64,
    /// Total SSD, bytes.
    pub total_sru: i64,
    /// Total HDD, bytes.
    pub total_hru: i64,
    /// Free vCPUs.
    pub free_cru: i64,
    /// Free memory, bytes.
    pub free_mru: i64,
    /// Free SSD, bytes.
    pub free_sru: i64,
    /// Free HDD, bytes.
    pub free_hru: i64,
    /// Has a public IPv4 configuration of its own.
    pub public_ipv4: bool,
    /// Free public IPv4 addresses of its farm (a deployment's public IPv4 comes from these).
    pub farm_free_ips: i32,
    /// Has a public IPv6 configuration.
    pub public_ipv6: bool,
    /// Certified hardware.
    pub certified: bool,
    /// Dedicated (rented whole).
    pub dedicated: bool,
    /// Can be rented.
    pub rentable: bool,
    /// Is rented.
    pub rented: bool,
    /// GPUs.
    pub gpus: i32,
    /// The farmer's extra monthly fee (USD units).
    pub extra_fee: i64,
    /// up, standby or down (the 80-minute rule).
    pub status: String,
    /// Seconds up.
    pub uptime_seconds: i64,
    /// Its last report to the grid.
    pub last_report: DateTime<Utc>,
    /// What the whole node costs an hour under the current policy (USD units).
    pub hourly_price_usd_units: i64,
    /// The provider alliance it is sold under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alliance: Option<NodeAllianceBody>,
    /// Version of the view.
    pub version: i64,
}

/// A node's alliance on the catalog: its name, SLA and the uptime the node
/// measured this month so far (the 80-minute rule, maintenance excused).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeAllianceBody {
    /// The alliance.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its SLA's monthly uptime target per node (basis points).
    pub sla_target_bps: Option<i32>,
    /// The node's uptime this month so far (basis points).
    pub measured_uptime_bps: u16,
}

/// Adds each node's alliance, with its uptime this month so far.
async fn with_alliances(state: &AppState, items: &mut [NodeBody]) -> Result<(), ApiError> {
    let ids: Vec<i64> = items.iter().map(|n| n.node_id).collect();
    let found = marketplace_projections::alliances::alliances_of_nodes(&state.pool, &ids).await?;
    if found.is_empty() {
        return Ok(());
    }
    let now = marketplace_app::alliance::chain_now(&state.pool)
        .await?
        .unwrap_or_else(|| Utc::now().timestamp());
    let start = marketplace_domain::alliance::Period::of(now)
        .map_err(|e| ApiError::Internal(e.reason))?
        .start();
    let nodes: Vec<u32> = found
        .iter()
        .filter_map(|a| u32::try_from(a.node_id).ok())
        .collect();
    let uptime = marketplace_app::alliance::uptime(&state.pool, &nodes, start, now).await?;
    for item in items.iter_mut() {
        if let Some(a) = found.iter().find(|a| a.node_id == item.node_id) {
            item.alliance = Some(NodeAllianceBody {
                id: a.alliance_id.clone(),
                name: a.name.clone(),
                sla_target_bps: a.sla_target_bps,
                measured_uptime_bps: u32::try_from(a.node_id)
                    .ok()
                    .and_then(|n| uptime.get(&n).copied())
                    .unwrap_or(0),
            });
        }
    }
    Ok(())
}

fn node_body(row: NodeRow, policy: &marketplace_domain::pricing::PricingPolicy) -> NodeBody {
    NodeBody {
        hourly_price_usd_units: row.hourly_usd(policy).units() as i64,
        alliance: None,
        node_id: row.node_id,
        farm_id: row.farm_id,
        country: row.country,
        city: row.city,
        total_cru: row.total_cru,
        total_mru: row.total_mru,
        total_sru: row.total_sru,
        total_hru: row.total_hru,
        free_cru: row.free_cru,
        free_mru: row.free_mru,
        free_sru: row.free_sru,
        free_hru: row.free_hru,
        public_ipv4: row.public_ipv4,
        farm_free_ips: row.farm_free_ips,
        public_ipv6: row.public_ipv6,
        certified: row.certified,
        dedicated: row.dedicated,
        rentable: row.rentable,
        rented: row.rented,
        gpus: row.gpus,
        extra_fee: row.extra_fee,
        status: row.status,
        uptime_seconds: row.uptime_seconds,
        last_report: row.last_report,
        version: row.version,
    }
}

/// A page of nodes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodePage {
    /// The page.
    pub items: Vec<NodeBody>,
    /// Pass as `cursor` (with the same sort) for the next page.
    pub next_cursor: Option<String>,
}

fn parse_list<T>(
    text: &str,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).ok_or_else(|| ApiError::BadRequest(format!("invalid {what}: {s}"))))
        .collect()
}

async fn catalog_page(
    state: &AppState,
    params: CatalogParams,
    farms: Option<Vec<u32>>,
) -> Result<NodePage, ApiError> {
    let bad = |what: &str| ApiError::BadRequest(what.to_string());
    let sort = match params.sort.as_deref() {
        None => Sort::NodeId,
        Some(s) => Sort::parse(s)
            .ok_or_else(|| bad("sort is node_id, free_cru, free_mru, price or uptime"))?,
    };
    let after = params
        .cursor
        .as_deref()
        .map(|c| views::Cursor::decode(c).ok_or_else(|| bad("invalid cursor")))
        .transpose()?;
    if after.is_some_and(|c| c.sort() != sort) {
        return Err(bad("the cursor belongs to another sort"));
    }
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(bad("limit is 1 to 100"));
    }
    // Every filter is read before a provider with no farms is answered
    // an empty page: a malformed one is refused either way.
    let status = match params.status.as_deref() {
        Some(list) => parse_list(list, "status", NodeStatus::parse)?,
        None => Vec::new(),
    };
    let mut farm_ids = match params.farm_ids.as_deref() {
        Some(list) => parse_list(list, "farm id", |s| s.parse::<u32>().ok())?,
        None => Vec::new(),
    };
    if let Some(own) = farms {
        // A provider's view: only its farms, narrowed further by any farm filter.
        farm_ids = if farm_ids.is_empty() {
            own
        } else {
            farm_ids.into_iter().filter(|f| own.contains(f)).collect()
        };
        if farm_ids.is_empty() {
            return Ok(NodePage {
                items: Vec::new(),
                next_cursor: None,
            });
        }
    }
    let policy = crate::policy::in_force(state).await?.policy;
    let query = CatalogQuery {
        min_free_cru: params.free_cru,
        min_free_mru: params.free_mru,
        min_free_sru: params.free_sru,
        min_free_hru: params.free_hru,
        country: params.country,
        city: params.city,
        farm_ids,
        certified: params.certified,
        dedicated: params.dedicated,
        rentable: params.rentable,
        rented: params.rented,
        has_ipv4: params.has_ipv4,
        has_gpu: params.has_gpu,
        status,
        min_uptime_seconds: params.min_uptime_seconds,
        min_price: params.min_price.map(UsdAmount::from_units),
        max_price: params.max_price.map(UsdAmount::from_units),
        alliance_id: params.alliance_id,
        min_sla_bps: params.sla_min_bps,
        policy,
        sort,
        after,
        limit,
    };
    let (rows, next) = views::catalog(&state.pool, &query).await?;
    let mut items: Vec<NodeBody> = rows
        .into_iter()
        .map(|r| node_body(r, &query.policy))
        .collect();
    with_alliances(state, &mut items).await?;
    Ok(NodePage {
        items,
        next_cursor: next.map(|c| c.encode()),
    })
}

/// Browse the node catalog (any role): the grid proxy's filters, sorted,
/// cursor-paginated.
#[utoipa::path(
    get, path = "/v1/nodes", tag = "nodes",
    params(CatalogParams),
    responses((status = 200, body = NodePage), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn catalog(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiQuery(params): ApiQuery<CatalogParams>,
) -> Result<Json<NodePage>, ApiError> {
    catalog_page(&state, params, None).await.map(Json)
}

/// A node with its upcoming maintenance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeDetail {
    /// The node.
    #[serde(flatten)]
    pub node: NodeBody,
    /// Maintenance windows that have not ended, by start.
    pub maintenance: Vec<MaintenanceBody>,
}

/// One node and its upcoming maintenance (any role).
#[utoipa::path(
    get, path = "/v1/nodes/{node_id}", tag = "nodes",
    params(("node_id" = u32, Path, description = "Grid node id")),
    responses((status = 200, body = NodeDetail), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_node(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiPath(node_id): ApiPath<u32>,
) -> Result<Json<NodeDetail>, ApiError> {
    let row = views::get(&state.pool, node_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let policy = crate::policy::in_force(&state).await?.policy;
    let maintenance = views::windows_for_node(&state.pool, node_id, Utc::now()).await?;
    Ok(Json(NodeDetail {
        node: node_body(row, &policy),
        maintenance: maintenance.into_iter().map(Into::into).collect(),
    }))
}

/// Upcoming maintenance windows of a node, for a deployment's detail view.
pub async fn upcoming_maintenance(
    state: &AppState,
    node_id: u32,
) -> Result<Vec<MaintenanceBody>, ApiError> {
    Ok(views::windows_for_node(&state.pool, node_id, Utc::now())
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// `POST /v1/nodes/{node_id}/maintenance`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// The window's id, chosen by the client (a retry with the same id is refused as a duplicate).
    pub window_id: Uuid,
    /// Start, in the future.
    pub starts_at: DateTime<Utc>,
    /// End, after the start, at most 14 days later.
    pub ends_at: DateTime<Utc>,
    /// Why (shown to users on the node): not blank, at most 500 characters.
    #[schema(schema_with = maintenance_reason)]
    pub reason: String,
}

fn maintenance_reason() -> utoipa::openapi::schema::Object {
    crate::contract::not_blank(marketplace_domain::node::MAX_MAINTENANCE_REASON)
}

/// `PUT /v1/nodes/{node_id}/maintenance/{window_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// New start, in the future.
    pub starts_at: DateTime<Utc>,
    /// New end.
    pub ends_at: DateTime<Utc>,
}

/// The approved provider of the node's farm, looked up before the decision.
async fn farm_owner(state: &AppState, node_id: u32) -> Result<Option<String>, ApiError> {
    let Some(node) = views::get(&state.pool, node_id).await? else {
        return Ok(None);
    };
    let farm = u32::try_from(node.farm_id)
        .map_err(|_| ApiError::Internal("farm id out of range".into()))?;
    Ok(providers::farm_owner(&state.pool, farm).await?)
}

fn node_target(state: &AppState, node_id: u32) -> Target<'_, Node> {
    Target {
        store: &state.stores.nodes,
        id: node_id.to_string(),
        location: format!("/v1/nodes/{node_id}"),
        fresh: false,
    }
}

async fn maintenance_command(
    state: AppState,
    actor: Actor,
    ctx: RequestContext,
    node_id: u32,
    fingerprint: Vec<u8>,
    command: impl FnOnce(Actor, Option<String>) -> NodeCommand,
) -> Response {
    let owner = match farm_owner(&state, node_id).await {
        Ok(owner) => owner,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let command = command(actor.clone(), owner);
    accept(
        &state,
        &ctx,
        &actor,
        node_target(&state, node_id),
        fingerprint,
        move |_| Ok(command.clone()),
    )
    .await
}

/// Schedule a maintenance window on a node of one of your approved farms (provider).
#[utoipa::path(
    post, path = "/v1/nodes/{node_id}/maintenance", tag = "maintenance",
    request_body = ScheduleBody,
    params(("node_id" = u32, Path, description = "Grid node id")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem, description = "In the past, overlapping, or too long")
    ),
    security(("bearer" = []))
)]
pub async fn schedule_maintenance(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath(node_id): ApiPath<u32>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Response {
    let fingerprint = fingerprint((format!("POST /v1/nodes/{node_id}/maintenance"), &body));
    maintenance_command(
        state,
        actor,
        ctx,
        node_id,
        fingerprint,
        move |by, farm_owner| NodeCommand::ScheduleMaintenance {
            window_id: body.window_id,
            start: body.starts_at,
            end: body.ends_at,
            reason: body.reason,
            by,
            farm_owner,
            now: Utc::now(),
        },
    )
    .await
}

/// Move a maintenance window that has not started (provider).
#[utoipa::path(
    put, path = "/v1/nodes/{node_id}/maintenance/{window_id}", tag = "maintenance",
    request_body = RescheduleBody,
    params(("node_id" = u32, Path, description = "Grid node id"), ("window_id" = Uuid, Path, description = "Window id")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn reschedule_maintenance(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath((node_id, window_id)): ApiPath<(u32, Uuid)>,
    ApiJson(body): ApiJson<RescheduleBody>,
) -> Response {
    let fingerprint = fingerprint((
        format!("PUT /v1/nodes/{node_id}/maintenance/{window_id}"),
        &body,
    ));
    maintenance_command(
        state,
        actor,
        ctx,
        node_id,
        fingerprint,
        move |by, farm_owner| NodeCommand::RescheduleMaintenance {
            window_id,
            start: body.starts_at,
            end: body.ends_at,
            by,
            farm_owner,
            now: Utc::now(),
        },
    )
    .await
}

/// Cancel a maintenance window that has not started (provider).
#[utoipa::path(
    post, path = "/v1/nodes/{node_id}/maintenance/{window_id}/cancel", tag = "maintenance",
    request_body = EmptyBody,
    params(("node_id" = u32, Path, description = "Grid node id"), ("window_id" = Uuid, Path, description = "Window id")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn cancel_maintenance(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath((node_id, window_id)): ApiPath<(u32, Uuid)>,
    ApiJson(_body): ApiJson<EmptyBody>,
) -> Response {
    let fingerprint = fingerprint(format!("cancel {node_id} {window_id}"));
    maintenance_command(
        state,
        actor,
        ctx,
        node_id,
        fingerprint,
        move |by, farm_owner| NodeCommand::CancelMaintenance {
            window_id,
            by,
            farm_owner,
            now: Utc::now(),
        },
    )
    .await
}

async fn own_farms(state: &AppState, provider: &str) -> Result<Vec<u32>, ApiError> {
    Ok(providers::farms_of(&state.pool, provider)
        .await?
        .into_iter()
        .filter_map(|f| u32::try_from(f).ok())
        .collect())
}

/// A provider's farms.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FarmList {
    /// Farms whose requests were approved.
    pub farm_ids: Vec<u32>,
}

/// Your approved farms (provider).
#[utoipa::path(
    get, path = "/v1/provider/farms", tag = "providers",
    responses((status = 200, body = FarmList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn my_farms(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
) -> Result<Json<FarmList>, ApiError> {
    Ok(Json(FarmList {
        farm_ids: own_farms(&state, &actor.subject).await?,
    }))
}

/// The nodes of your approved farms, with the catalog's filters (provider).
#[utoipa::path(
    get, path = "/v1/provider/nodes", tag = "providers",
    params(CatalogParams),
    responses((status = 200, body = NodePage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn my_nodes(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ApiQuery(params): ApiQuery<CatalogParams>,
) -> Result<Json<NodePage>, ApiError> {
    let farms = own_farms(&state, &actor.subject).await?;
    catalog_page(&state, params, Some(farms)).await.map(Json)
}

/// Maintenance calendar.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceCalendar {
    /// Windows that have not ended, by start.
    pub items: Vec<MaintenanceBody>,
}

/// The maintenance calendar of your farms' nodes (provider).
#[utoipa::path(
    get, path = "/v1/provider/maintenance", tag = "providers",
    responses((status = 200, body = MaintenanceCalendar), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn my_maintenance(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
) -> Result<Json<MaintenanceCalendar>, ApiError> {
    let farms = own_farms(&state, &actor.subject).await?;
    let windows = views::windows_for_farms(&state.pool, &farms, Utc::now()).await?;
    Ok(Json(MaintenanceCalendar {
        items: windows.into_iter().map(Into::into).collect(),
    }))
}
