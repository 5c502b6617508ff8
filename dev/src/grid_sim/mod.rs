//! A grid proxy **SIMULATOR** for development and tests. It is not the grid
//! proxy: it serves a made-up catalog, in the proxy's JSON shape, from
//! memory.
//!
//! It answers `GET /nodes` and `GET /farms` like the proxy: `page` (from 1),
//! `size` (default 50) and `ret_count=true` (headers `count`, `size`,
//! `pages`), items in id order. `/nodes` honours three of the proxy's
//! filters, `farm_ids` (comma separated), `status` (`up`, `standby`, `down`,
//! comma separated or repeated) and `country` (case-insensitive); any other
//! parameter is ignored. Node `status` is derived on every read from
//! `updatedAt`, the power state and the simulated clock, with the proxy's
//! rule (see [`NodeStatus::derive`]).
//!
//! Time is simulated: it stands still until `POST /sim/clock/advance`. A
//! node that is *reporting* gets `updatedAt` = the simulated now at start and
//! on every advance, as if it had sent its uptime report.
//!
//! Control endpoints:
//! - `GET  /sim/clock` → `{"now": <unix secs>}`
//! - `POST /sim/clock/advance?minutes=N` → advances the clock; answers the clock
//! - `POST /sim/nodes/{id}/down` → the node stops reporting (its `updatedAt`
//!   freezes; it reads `down` once that is over 80 minutes old)
//! - `POST /sim/nodes/{id}/up` → the node is powered up and reports now
//! - `POST /sim/nodes/{id}/fill` → used resources = total resources
//! - `POST /sim/nodes` with a node item → adds the node (201)
//!
//! A [`Seed`] is the starting catalog: `{"now": <optional unix secs>,
//! "farms": [<proxy farm items>], "nodes": [<proxy node items>]}`. A seed
//! node whose `status` is `down` starts silent; any other starts reporting
//! (`standby` ones powered down). Without `now` the clock starts at the wall
//! clock.

mod catalog;
mod seed;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use catalog::SimClock;
use catalog::{
    add_node, advance_clock, clock, list_farms, list_nodes, node_down, node_fill, node_up, Sim,
};
pub use seed::{Seed, SeedError};

fn wall_clock_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Sim>>);

impl Shared {
    /// A panic while holding the lock cannot leave the catalog half-written
    /// in a way that matters for a simulator, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a simulator request failed.
#[derive(Debug, thiserror::Error)]
enum SimError {
    #[error("node {0} not found")]
    NodeNotFound(u32),
    #[error("node {0} already exists")]
    NodeExists(u32),
    #[error("node {node_id} belongs to farm {farm_id}, which does not exist")]
    UnknownFarm { node_id: u32, farm_id: u32 },
    #[error("{0}")]
    BadQuery(String),
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match &self {
            SimError::NodeNotFound(_) => StatusCode::NOT_FOUND,
            SimError::NodeExists(_) => StatusCode::CONFLICT,
            SimError::UnknownFarm { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            SimError::BadQuery(_) => StatusCode::BAD_REQUEST,
        };
        // The proxy answers errors as `{"error": "..."}`.
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// The simulator's routes over a seed, for embedding in another server.
pub fn router(seed: Seed) -> Result<Router, SeedError> {
    seed.validate()?;
    let shared = Shared(Arc::new(Mutex::new(Sim::new(seed, wall_clock_now()))));
    Ok(Router::new()
        .route("/nodes", get(list_nodes))
        .route("/farms", get(list_farms))
        .route("/sim/clock", get(clock))
        .route("/sim/clock/advance", post(advance_clock))
        .route("/sim/nodes", post(add_node))
        .route("/sim/nodes/{id}/down", post(node_down))
        .route("/sim/nodes/{id}/up", post(node_up))
        .route("/sim/nodes/{id}/fill", post(node_fill))
        .with_state(shared))
}

/// Serves the grid proxy SIMULATOR on `listener` until `cancel`. Fails at
/// once (`InvalidInput`) if the seed contradicts itself.
pub async fn serve(
    listener: TcpListener,
    seed: Seed,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let (farms, nodes) = (seed.farms.len(), seed.nodes.len());
    let app = router(seed)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let addr = listener.local_addr()?;
    info!(%addr, farms, nodes, "grid proxy SIMULATOR listening (simulated catalog, not the real grid)");
    axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await?;
    info!(%addr, "grid proxy SIMULATOR stopped");
    Ok(())
}
