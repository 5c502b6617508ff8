//! A grid **SIMULATOR** for development and tests: a grid proxy, a TFChain
//! with its indexer and the catalog's ZOS nodes, in one process, from
//! memory, over real HTTP. It is not the grid proxy, not TFChain, not its
//! indexer and not ZOS: it serves a made-up
//! catalog and applies the few chain calls and node commands the
//! marketplace makes, with the real names and JSON shapes (DOMAIN.md,
//! "Chain mechanics in detail"). docs/simulator.md lists every route.
//!
//! - `seed`: the catalog it starts from ([`Seed`]).
//! - `catalog`: the grid proxy's `GET /nodes` and `GET /farms` (`page` from
//!   1, `size` default 50, `ret_count=true` with headers `count`, `size`,
//!   `pages`, items in id order; `/nodes` honours `farm_ids`, `status` and
//!   `country`, any other parameter is ignored). Node `status` is derived
//!   on every read with the proxy's rule
//!   ([`NodeStatus::derive`](marketplace_app::grid::types::NodeStatus::derive));
//!   `used_resources` and `farm_free_ips` include the simulated deployments
//!   and reserved IPs, so the grid sync sees them.
//! - `chain` and `chain_http`: the TFChain SIMULATOR (`/chain/...`), the
//!   HTTP shape `marketplace_app::tfchain::http::HttpChain` speaks.
//! - `blocks`: what happens in the blocks the clock passes: bills in each
//!   contract's cycle slot, nodes' uptime reports every 40 minutes, the
//!   event retention.
//! - `billing`, `cost` and `price`: billing by the pallet's rules (used
//!   resources, IPs, NU, rent and extra fee, the staking discount, the
//!   certified premium, USD to TFT at the clamped average price), grace
//!   periods that pause the node's workloads, deletion `OutOfFunds`, and the
//!   TFT price ring buffer; bills are reserved and paid out as rewards
//!   every [`SimOptions::reward_distribution_cycles`] bills and on
//!   deletion (`RewardDistributed`: 50% to the twin of the node's farm,
//!   40% to [`FOUNDATION_ACCOUNT`], 10% to [`STAKING_POOL_ACCOUNT`], a
//!   rent contract's extra fee wholly to the farmer).
//! - `grid`: `tfgridModule.createFarm` and nodes moving between farms
//!   (`NodeUpdated`).
//! - `zos` and `zos_http`: the ZOS SIMULATOR behind `POST /rmb`, the shape
//!   `marketplace_app::zos::rmb::HttpRmb` speaks.
//! - `indexer`: the INDEXER SIMULATOR (`POST /graphql`), tfchain_graphql's
//!   GraphQL API over a projection of the chain's events, which
//!   `marketplace_app::tfchain::GraphqlIndexer` reads.
//!
//! Time is simulated: it stands still until `POST /sim/clock/advance`. A
//! node that is *reporting* gets `updatedAt` = the simulated now at start and
//! on every advance, as if it had sent its uptime report. Chain blocks are
//! 6 s of that clock from its start; an advance goes through the blocks it
//! passes ([`SimOptions`] sets the billing cycle, the grace period, the
//! event retention and the TFT price). Workloads turn `ok` after
//! [`SimOptions::workload_delay`] of *wall-clock* time, so a deployer polls
//! as it would a real node.
//!
//! Controls (dev and tests only):
//! - `GET  /sim/clock` → `{"now": <unix secs>}`
//! - `POST /sim/clock/advance?minutes=N` → advances the clock; answers the clock
//! - `POST /sim/nodes/{id}/down` → the node stops reporting (its `updatedAt`
//!   freezes; it reads `down` once that is over 80 minutes old) and stops
//!   answering RMB
//! - `POST /sim/nodes/{id}/up` → the node is powered up and reports now
//! - `POST /sim/nodes/{id}/fill` → used resources = total resources
//! - `POST /sim/nodes/{id}/farm {"farm_id"}` → the node moves to that farm
//!   (its owner's `update_node`): `tfgridModule.NodeUpdated`
//! - `POST /sim/nodes` with a node item → adds the node (201)
//! - `POST /sim/chain/fund {"account", "amount"}` → mints TFT base units
//! - `GET  /sim/chain/contracts` → every contract, deleted ones included
//! - `GET  /sim/chain/billing` → every contract's payment state
//! - `POST /sim/chain/price {"price_musd"}` → a TFT price observation;
//!   answers `{"price_musd", "average_musd"}`
//! - `POST /sim/chain/nru {"contract_id", "nru", "window"}` → an NRU report
//! - `POST /sim/zos/nodes/{id}/fail {"message"}`, `/stall`, `/unreachable`,
//!   `/heal`; `GET /sim/zos/nodes/{id}/deployments`
//!
//! [`Simulator`] is a handle on the state that can be served, stopped and
//! served again; [`router`] and [`serve`] wrap it.
//!
//! A [`Seed`] is the starting catalog: `{"now": <optional unix secs>,
//! "farms": [<proxy farm items>], "nodes": [<proxy node items>]}`. A seed
//! node whose `status` is `down` starts silent; any other starts reporting
//! (`standby` ones powered down). Without `now` the clock starts at the wall
//! clock. Farms' and nodes' twins in the catalog are not chain accounts: a
//! seed farm's farmer share is paid to [`catalog_twin_account`] of its
//! twin. A farm made with `createFarm` has a chain twin and is paid there.

mod billing;
mod blocks;
mod catalog;
mod chain;
mod chain_http;
mod cost;
mod grid;
mod indexer;
mod price;
mod seed;
#[cfg(test)]
mod tests;
mod zos;
mod zos_http;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use billing::{catalog_twin_account, FOUNDATION_ACCOUNT, STAKING_POOL_ACCOUNT};
use catalog::Catalog;
pub use catalog::SimClock;
use chain::Ledger;
pub use seed::{Seed, SeedError};
use zos::Zos;

/// How the simulator behaves beyond its seed. Start from
/// `SimOptions::default()` and set the fields that matter:
/// `SimOptions { billing_cycle_blocks: 10, ..SimOptions::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOptions {
    /// How long, in wall-clock time, an accepted workload stays `init`
    /// before it turns `ok` (or `error` under the `fail` control). Zero is
    /// allowed: the next read sees it settled.
    pub workload_delay: Duration,
    /// `BillingFrequency`: blocks in a billing cycle. Contract `id` is
    /// billed in every block `b` with `b % billing_cycle_blocks == id %
    /// billing_cycle_blocks`. 600 (an hour) by default; 0 counts as 1.
    pub billing_cycle_blocks: u32,
    /// `GracePeriod`: blocks an unpaid contract waits before it is deleted
    /// `OutOfFunds`. 201,600 (14 days) by default.
    pub grace_period_blocks: u32,
    /// Blocks of events `GET /chain/events` keeps: older ones are dropped
    /// and asking for them answers 410. Two grace periods by default.
    pub event_retention_blocks: u32,
    /// The TFT price observed at genesis, mUSD (10: $0.01).
    pub tft_price_musd: u32,
    /// `MinTftPrice`, mUSD: billing never converts below it.
    pub min_tft_price_musd: u32,
    /// `MaxTftPrice`, mUSD: billing never converts above it.
    pub max_tft_price_musd: u32,
    /// `DistributionFrequency`: a contract's billed amounts are paid out
    /// (`RewardDistributed`) every this many of its bills, and when it is
    /// deleted. 24 by default; 0 counts as 1.
    pub reward_distribution_cycles: u32,
}

/// Dev mode's delay: long enough to see `init`, short enough not to wait.
pub const DEFAULT_WORKLOAD_DELAY: Duration = Duration::from_millis(1_500);

/// `BillingFrequency` on the main chain: 600 blocks, an hour.
pub const DEFAULT_BILLING_CYCLE_BLOCKS: u32 = 600;

/// `GracePeriod`: 14 days of 6-second blocks.
pub const DEFAULT_GRACE_PERIOD_BLOCKS: u32 = 201_600;

/// `DistributionFrequency` on the main chain: every 24 bills (a day).
pub const DEFAULT_REWARD_DISTRIBUTION_CYCLES: u32 = 24;

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            workload_delay: DEFAULT_WORKLOAD_DELAY,
            billing_cycle_blocks: DEFAULT_BILLING_CYCLE_BLOCKS,
            grace_period_blocks: DEFAULT_GRACE_PERIOD_BLOCKS,
            event_retention_blocks: 2 * DEFAULT_GRACE_PERIOD_BLOCKS,
            tft_price_musd: 10,
            min_tft_price_musd: 10,
            max_tft_price_musd: 1_000,
            reward_distribution_cycles: DEFAULT_REWARD_DISTRIBUTION_CYCLES,
        }
    }
}

/// Everything simulated, behind one lock.
struct Sim {
    catalog: Catalog,
    chain: Ledger,
    zos: Zos,
    billing: billing::Billing,
    price: price::PriceOracle,
    uptime: blocks::Uptime,
    options: SimOptions,
}

impl Sim {
    fn new(seed: Seed, wall_now: i64, options: SimOptions) -> Sim {
        let catalog = Catalog::new(seed, wall_now);
        let mut chain = Ledger::new(catalog.now);
        let price = price::PriceOracle::new(
            options.tft_price_musd,
            options.min_tft_price_musd,
            options.max_tft_price_musd,
        );
        let genesis = chain.block(0);
        chain.record(
            genesis,
            price::events(options.tft_price_musd, price.average()),
        );
        Sim {
            catalog,
            chain,
            zos: Zos::default(),
            billing: billing::Billing::default(),
            price,
            uptime: blocks::Uptime::default(),
            options,
        }
    }
}

fn wall_clock_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Sim>>);

impl Shared {
    /// A panic while holding the lock cannot leave the simulation
    /// half-written in a way that matters for a simulator, so poisoning is
    /// ignored.
    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a catalog request or a control failed.
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

/// A grid SIMULATOR: a handle on its state (clones share it), to be
/// served, stopped and served again without losing the chain.
#[derive(Clone)]
pub struct Simulator {
    shared: Shared,
}

impl Simulator {
    /// A simulator over `seed`, its clock at the seed's `now` (or the wall
    /// clock). Fails if the seed contradicts itself.
    pub fn new(seed: Seed, options: SimOptions) -> Result<Simulator, SeedError> {
        seed.validate()?;
        Ok(Simulator {
            shared: Shared(Arc::new(Mutex::new(Sim::new(
                seed,
                wall_clock_now(),
                options,
            )))),
        })
    }

    /// Its routes, for embedding in another server.
    pub fn router(&self) -> Router {
        Router::new()
            // The grid proxy.
            .route("/nodes", get(catalog::list_nodes))
            .route("/farms", get(catalog::list_farms))
            .route("/sim/clock", get(catalog::clock))
            .route("/sim/clock/advance", post(catalog::advance_clock))
            .route("/sim/nodes", post(catalog::add_node))
            .route("/sim/nodes/{id}/down", post(catalog::node_down))
            .route("/sim/nodes/{id}/up", post(catalog::node_up))
            .route("/sim/nodes/{id}/fill", post(catalog::node_fill))
            .route("/sim/nodes/{id}/farm", post(catalog::node_farm))
            // TFChain.
            .route("/chain/extrinsic", post(chain_http::extrinsic))
            .route("/chain/storage/{pallet}/{item}", get(chain_http::storage))
            .route("/chain/blocks/latest", get(chain_http::latest_block))
            .route("/chain/events", get(chain_http::events))
            .route("/sim/chain/fund", post(chain_http::fund))
            .route("/sim/chain/contracts", get(chain_http::contracts))
            // TFChain's indexer.
            .merge(indexer::router(self.shared.clone()))
            .route("/sim/chain/billing", get(chain_http::billing))
            .route("/sim/chain/price", post(chain_http::price))
            .route("/sim/chain/nru", post(chain_http::nru))
            // ZOS nodes.
            .route("/rmb", post(zos_http::rmb))
            .route("/sim/zos/nodes/{id}/fail", post(zos_http::node_fail))
            .route("/sim/zos/nodes/{id}/stall", post(zos_http::node_stall))
            .route(
                "/sim/zos/nodes/{id}/unreachable",
                post(zos_http::node_unreachable),
            )
            .route("/sim/zos/nodes/{id}/heal", post(zos_http::node_heal))
            .route(
                "/sim/zos/nodes/{id}/deployments",
                get(zos_http::node_deployments),
            )
            .with_state(self.shared.clone())
    }

    /// Serves it (proxy, TFChain and ZOS nodes on one base URL) on
    /// `listener` until `cancel`; its state outlives the server.
    pub async fn serve(
        &self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> std::io::Result<()> {
        let (farms, nodes, delay_ms) = {
            let sim = self.shared.lock();
            (
                sim.catalog.farms.len(),
                sim.catalog.nodes.len(),
                sim.options.workload_delay.as_millis(),
            )
        };
        let addr = listener.local_addr()?;
        info!(
            %addr, farms, nodes, workload_delay_ms = delay_ms,
            "grid SIMULATOR listening: grid proxy, TFChain and ZOS nodes, all simulated (not the real grid)"
        );
        axum::serve(listener, self.router())
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await?;
        info!(%addr, "grid SIMULATOR stopped");
        Ok(())
    }
}

/// The simulator's routes over a seed, for embedding in another server.
pub fn router(seed: Seed, options: SimOptions) -> Result<Router, SeedError> {
    Ok(Simulator::new(seed, options)?.router())
}

/// Serves the grid SIMULATOR (proxy, TFChain and ZOS nodes on one base
/// URL) on `listener` until `cancel`. Fails at once (`InvalidInput`) if the
/// seed contradicts itself.
pub async fn serve(
    listener: TcpListener,
    seed: Seed,
    options: SimOptions,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let simulator = Simulator::new(seed, options)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    simulator.serve(listener, cancel).await
}
