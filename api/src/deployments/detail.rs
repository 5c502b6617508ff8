//! The deployment detail: the view row with its provisioning facts and
//! history, the maintenance scheduled on its node, and the node's capacity,
//! asked of the node itself when a node port is configured and read from the
//! node catalog otherwise. The node is asked with a short timeout and its
//! failure never fails the read: the catalog's figures stand in.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use marketplace_app::zos::{NodeAddress, Nodes};
use marketplace_projections::deployments::{self as views, DeploymentRow};
use marketplace_projections::nodes::{self as node_views, NodeRow};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::AsUserOrOperator;
use crate::dto::*;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::views_watch::read_visible;
use crate::AppState;

/// How long a detail read waits for the node's own statistics before it
/// shows the catalog's: a slow or unreachable node must not hold the page.
pub const NODE_STATISTICS_TIMEOUT: Duration = Duration::from_secs(2);

/// Read-your-writes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Wait (bounded) until the view has reached this version, as returned by a command.
    pub min_version: Option<i64>,
}

/// One deployment with its provisioning and its history of states.
///
/// Provisioning: the node and its capacity (asked of the node, or the
/// catalog's when it cannot be asked), the contracts, why placement chose
/// the node and the nodes tried before, the revision running, and each
/// workload's state and addresses.
#[utoipa::path(
    get, path = "/v1/deployments/{id}", tag = "deployments",
    params(("id" = Uuid, Path, description = "Deployment id"), GetParams),
    responses(
        (status = 200, body = DeploymentDetail),
        (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, body = Problem, description = "The view did not reach min_version in time")
    ),
    security(("bearer" = []))
)]
pub async fn get_deployment(
    State(state): State<AppState>,
    AsUserOrOperator(actor): AsUserOrOperator,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> Result<Json<DeploymentDetail>, ApiError> {
    let pool = &state.pool;
    let row = read_visible(
        &state.views,
        state.settings.read_wait,
        params.min_version.unwrap_or(0),
        || views::get(pool, id),
        |row: &DeploymentRow| actor.is_operator() || row.owner == actor.subject,
        |row| row.version,
    )
    .await;
    let row = match row {
        Err(ApiError::NotFound) if params.min_version.unwrap_or(0) > 0 => {
            return Err(if requested_by(pool, id, &actor).await? {
                ApiError::ViewLagging
            } else {
                ApiError::NotFound
            })
        }
        other => other?,
    };
    let history = views::history(&state.pool, id).await?;
    let maintenance = match row.node_id.and_then(|n| u32::try_from(n).ok()) {
        Some(node) => crate::nodes::upcoming_maintenance(&state, node).await?,
        None => Vec::new(),
    };
    let node = match (row.node_id, row.farm_id) {
        (Some(node_id), Some(farm_id)) => {
            Some(node_block(&state, &row.owner, node_id, farm_id).await?)
        }
        _ => None,
    };
    detail(row, history, maintenance, node).map(Json)
}

/// Whether the store holds a request for `id` that `actor` may read: a
/// deployment read back with `min_version` after its 202 that the view has
/// not even created yet is lagging (503), not unknown (404); somebody
/// else's stays 404.
async fn requested_by(
    pool: &sqlx::PgPool,
    id: Uuid,
    actor: &marketplace_domain::Actor,
) -> Result<bool, ApiError> {
    let owner: Option<Option<String>> = sqlx::query_scalar(
        "SELECT payload -> 'DeploymentRequested' ->> 'owner' FROM events
          WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(id.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(match owner.flatten() {
        Some(owner) => actor.is_operator() || owner == actor.subject,
        None => false,
    })
}

fn detail(
    row: DeploymentRow,
    history: Vec<views::HistoryRow>,
    maintenance: Vec<MaintenanceBody>,
    node: Option<DeploymentNode>,
) -> Result<DeploymentDetail, ApiError> {
    let read = |what: &str, e: serde_json::Error| {
        ApiError::Internal(format!("deployment {} {what}: {e}", row.id))
    };
    Ok(DeploymentDetail {
        spec: serde_json::from_value(row.spec.clone()).map_err(|e| read("spec", e))?,
        placement: serde_json::from_value(row.placement.clone())
            .map_err(|e| read("placement", e))?,
        workloads: serde_json::from_value(row.workloads.clone())
            .map_err(|e| read("workloads", e))?,
        update_pending: update_pending(&row),
        id: row.id,
        owner: row.owner,
        name: row.name,
        kind: row.kind,
        status: row.status,
        node_id: row.node_id,
        farm_id: row.farm_id,
        contract_id: row.contract_id,
        placement_reason: row.placement_reason,
        tried_nodes: row.tried_nodes,
        rent_contract_id: row.rent_contract_id,
        revision: row.revision,
        running_revision: row.running_revision,
        standby: row.standby,
        failover: row.failover,
        qsfs_backends: row.qsfs_backends,
        spread_workers: row.spread_workers,
        node,
        failure_reason: row.failure_reason,
        cancel_reason: row.cancel_reason,
        deletion_cause: row.deletion_cause,
        grace_since: row.grace_since,
        deletion_at: row
            .grace_since
            .map(|since| since + marketplace_projections::notifications::grace_period()),
        grace_contracts: row.grace_contracts,
        billed_to_date_tft_units: u64::try_from(row.billed_to_date).unwrap_or(0),
        bills: u64::try_from(row.bills).unwrap_or(0),
        last_billed_at: row.last_billed_at,
        last_discount_level: row.last_discount_level,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
        history: history
            .into_iter()
            .map(|h| HistoryEntry {
                sequence: h.sequence,
                event: h.event_type,
                status: h.status,
                at: h.at,
                actor: h.actor_subject,
                actor_role: h.actor_role,
                detail: h.detail,
            })
            .collect(),
        maintenance,
    })
}

/// Running, but the node last reported an older revision than the spec's
/// (a resize not yet applied).
fn update_pending(row: &DeploymentRow) -> bool {
    row.status == "running" && row.running_revision != Some(row.revision)
}

/// The node block: the node's own figures when it answers in time, else the
/// catalog's, else none (a node the catalog does not know).
async fn node_block(
    state: &AppState,
    owner: &str,
    node_id: i64,
    farm_id: i64,
) -> Result<DeploymentNode, ApiError> {
    let catalog = match u32::try_from(node_id) {
        Ok(node) => node_views::get(&state.pool, node).await?,
        Err(_) => None,
    };
    let live = match (&state.nodes, &catalog) {
        (Some(nodes), Some(row)) => live_capacity(state, nodes.as_ref(), owner, row).await?,
        _ => None,
    };
    let (capacity, source) = match (live, &catalog) {
        (Some(live), _) => (Some(live), CapacitySource::Node),
        (None, Some(row)) => (Some(catalog_capacity(row)), CapacitySource::Catalog),
        (None, None) => (None, CapacitySource::Unknown),
    };
    Ok(DeploymentNode {
        node_id,
        farm_id,
        capacity,
        source,
    })
}

/// Asks the node (`zos.statistics.get`) as the owner's custodial twin;
/// `None` when it refuses, cannot be reached or does not answer in time.
async fn live_capacity(
    state: &AppState,
    nodes: &dyn Nodes,
    owner: &str,
    row: &NodeRow,
) -> Result<Option<NodeCapacity>, ApiError> {
    let (Ok(node_id), Ok(twin_id)) = (u32::try_from(row.node_id), u32::try_from(row.twin_id))
    else {
        return Ok(None);
    };
    let address = NodeAddress { node_id, twin_id };
    let source_twin = custodial_twin(state, owner).await?;
    let asked = tokio::time::timeout(
        NODE_STATISTICS_TIMEOUT,
        nodes.statistics(address, source_twin),
    )
    .await;
    Ok(match asked {
        Ok(Ok(stats)) => Some(NodeCapacity {
            total: stats.total.into(),
            used: stats.used.into(),
        }),
        Ok(Err(e)) => {
            tracing::warn!(node_id, error = %e, "node statistics unavailable; showing the catalog's");
            None
        }
        Err(_) => {
            tracing::warn!(
                node_id,
                timeout_ms = NODE_STATISTICS_TIMEOUT.as_millis() as u64,
                "node statistics timed out; showing the catalog's"
            );
            None
        }
    })
}

/// The owner's custodial chain twin, which RMB calls are sent as; 0 before
/// the wallet has one (a node answers statistics to any twin).
async fn custodial_twin(state: &AppState, owner: &str) -> Result<u32, ApiError> {
    let wallet = marketplace_projections::wallets::find(&state.pool, owner).await?;
    Ok(wallet
        .as_ref()
        .and_then(|w| w.wallet.state())
        .and_then(|s| s.chain_account.as_ref())
        .map_or(0, |a| a.twin_id))
}

/// The catalog's figures: its totals, and used as total minus free (the
/// catalog keeps free, never below 0). It does not know IPv4 use.
fn catalog_capacity(row: &NodeRow) -> NodeCapacity {
    let units = |v: i64| u64::try_from(v).unwrap_or(0);
    let used = |total: i64, free: i64| units(total.saturating_sub(free));
    NodeCapacity {
        total: CapacityBody {
            cru: units(row.total_cru),
            mru: units(row.total_mru),
            sru: units(row.total_sru),
            hru: units(row.total_hru),
            ipv4u: None,
        },
        used: CapacityBody {
            cru: used(row.total_cru, row.free_cru),
            mru: used(row.total_mru, row.free_mru),
            sru: used(row.total_sru, row.free_sru),
            hru: used(row.total_hru, row.free_hru),
            ipv4u: None,
        },
    }
}
