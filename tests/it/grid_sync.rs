//! The grid sync worker against the grid proxy simulator over real HTTP and
//! a real PostgreSQL: nodes appear in the catalog, changes and status decay
//! are synced, and an unchanged grid costs no command and no event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use marketplace_app::grid::types::NodeStatus as WireStatus;
use marketplace_app::grid::{GridClient, GridNode};
use marketplace_dev::grid_sim::Seed;
use marketplace_dev::grid_sim::{self as sim, SimClock};
use marketplace_projections::nodes::NodeProjection;
use marketplace_projections::tail;
use marketplace_workers::grid::{GridSync, GridSyncOptions, ManualClock, SyncStats};
use serde_json::Value;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Where every simulated catalog's clock starts (2025-06-15T14:40:00Z).
const START: i64 = 1_750_000_000;

/// A generated catalog starting at [`START`].
fn seed(nodes: u32) -> Seed {
    let mut seed = Seed::generate(3, nodes, 42);
    seed.now = Some(START);
    seed
}

/// The grid proxy simulator on a free loopback port, stopped on drop.
struct Sim {
    base: String,
    http: reqwest::Client,
    cancel: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Sim {
    async fn start(seed: Seed) -> Sim {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
        Self::serve(listener, seed)
    }

    fn serve(listener: TcpListener, seed: Seed) -> Sim {
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let cancel = CancellationToken::new();
        tokio::spawn(sim::serve(
            listener,
            seed,
            sim::SimOptions::default(),
            cancel.clone(),
        ));
        Sim {
            base,
            http: reqwest::Client::new(),
            cancel,
        }
    }

    async fn post(&self, path: &str) -> reqwest::Response {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .expect("sim request");
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r
    }

    async fn now(&self) -> DateTime<Utc> {
        let clock: SimClock = self
            .http
            .get(format!("{}/sim/clock", self.base))
            .send()
            .await
            .expect("clock")
            .json()
            .await
            .expect("clock json");
        DateTime::from_timestamp(clock.now, 0).expect("instant")
    }

    async fn nodes(&self) -> Vec<GridNode> {
        GridClient::new(&self.base)
            .expect("client")
            .nodes()
            .await
            .expect("nodes")
    }
}

/// A database, a simulator and a worker whose clock follows the simulator's.
struct Fixture {
    pool: PgPool,
    sim: Sim,
    clock: ManualClock,
    worker: GridSync,
}

impl Fixture {
    async fn new(seed: Seed) -> Fixture {
        let (pool, _) = crate::common::fresh_database().await;
        Self::with_pool(pool, Sim::start(seed).await).await
    }

    async fn with_pool(pool: PgPool, sim: Sim) -> Fixture {
        let clock = ManualClock::new(sim.now().await);
        let worker = worker(&sim.base, &pool, &clock, GridSyncOptions::default());
        Fixture {
            pool,
            sim,
            clock,
            worker,
        }
    }

    /// One sync run, then the catalog view brought up to date.
    async fn sync(&self) -> SyncStats {
        let stats = self.worker.sync_once().await.expect("sync");
        catch_up(&self.pool).await;
        stats
    }

    /// Advances the simulated clock and sets the worker's clock to it.
    async fn advance(&self, minutes: u32) {
        self.sim
            .post(&format!("/sim/clock/advance?minutes={minutes}"))
            .await;
        self.clock.set(self.sim.now().await);
    }
}

fn worker(base: &str, pool: &PgPool, clock: &ManualClock, options: GridSyncOptions) -> GridSync {
    GridSync::new(
        GridClient::new(base).expect("client"),
        pool.clone(),
        Arc::new(clock.clone()),
        options,
    )
}

async fn catch_up(pool: &PgPool) {
    tail::catch_up(pool, &NodeProjection, 500)
        .await
        .expect("catch up");
}

async fn node_events(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'node'")
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn events_of(pool: &PgPool, node_id: u32) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'node' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(node_id.to_string())
    .fetch_all(pool)
    .await
    .expect("events")
}

/// The catalog's status of every node.
async fn statuses(pool: &PgPool) -> HashMap<u32, String> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT node_id, status FROM node_catalog")
        .fetch_all(pool)
        .await
        .expect("catalog");
    rows.into_iter()
        .map(|(id, status)| (u32::try_from(id).expect("node id"), status))
        .collect()
}

async fn status_of(pool: &PgPool, node_id: u32) -> String {
    statuses(pool)
        .await
        .remove(&node_id)
        .unwrap_or_else(|| panic!("node {node_id} not in the catalog"))
}

/// A node the proxy reports up with some free CPU, and its id.
fn up_node(nodes: &[GridNode]) -> &GridNode {
    nodes
        .iter()
        .find(|n| n.status == WireStatus::Up && n.free_resources().cru > 0)
        .expect("an up node with free capacity")
}

#[tokio::test]
async fn a_first_sync_discovers_every_node_and_an_unchanged_one_writes_nothing() {
    let f = Fixture::new(seed(40)).await;
    let grid = f.sim.nodes().await;

    let first = f.sync().await;
    assert_eq!(first.fetched, 40);
    assert_eq!((first.new, first.commands, first.events), (40, 40, 40));
    assert_eq!((first.unchanged, first.failed, first.known), (0, 0, 0));

    // The catalog holds every node with the status the proxy derives.
    let catalog = statuses(&f.pool).await;
    assert_eq!(catalog.len(), 40);
    for node in &grid {
        assert_eq!(
            catalog[&node.node_id],
            node.status.as_str(),
            "node {}",
            node.node_id
        );
    }
    assert!(catalog.values().any(|s| s == "standby") && catalog.values().any(|s| s == "down"));

    // Each node carries its farm's free public IPv4 count, read from /farms.
    let farms: Vec<Value> = f
        .sim
        .http
        .get(format!("{}/farms?size=500", f.sim.base))
        .send()
        .await
        .expect("farms")
        .json()
        .await
        .expect("json");
    let free_of = |farm: u64| {
        farms
            .iter()
            .find(|x| x["farmId"].as_u64() == Some(farm))
            .and_then(|x| x["publicIps"].as_array())
            .map_or(0, |ips| {
                ips.iter()
                    .filter(|ip| ip["contract_id"].as_u64().unwrap_or(0) == 0)
                    .count()
            })
    };
    let rows: Vec<(i64, i64, i32)> =
        sqlx::query_as("SELECT node_id, farm_id, farm_free_ips FROM node_catalog")
            .fetch_all(&f.pool)
            .await
            .expect("catalog");
    assert!(
        rows.iter().any(|(_, _, ips)| *ips > 0),
        "some farms have free IPs"
    );
    for (node, farm, ips) in rows {
        assert_eq!(
            ips as usize,
            free_of(farm as u64),
            "node {node} of farm {farm}"
        );
    }

    // Every event says who wrote it and why; one correlation id per run.
    let metas: Vec<Value> =
        sqlx::query_scalar("SELECT metadata FROM events WHERE aggregate_type = 'node'")
            .fetch_all(&f.pool)
            .await
            .expect("metadata");
    let correlation = metas[0]["correlation_id"].as_str().expect("correlation");
    for m in &metas {
        assert_eq!(m["actor_subject"], "grid-sync");
        assert_eq!(m["actor_role"], "system");
        assert_eq!(m["correlation_id"], correlation);
        assert_eq!(m["request_id"], correlation);
        assert_eq!(
            m["causation_id"].as_str(),
            Some(format!("grid-proxy:{}/", f.sim.base).as_str())
        );
        assert!(m["recorded_at"].is_string());
    }

    // Nothing changed: no command, no event.
    let before = node_events(&f.pool).await;
    let again = f.sync().await;
    assert_eq!((again.commands, again.events), (0, 0));
    assert_eq!((again.unchanged, again.known, again.fetched), (40, 40, 40));
    assert_eq!(node_events(&f.pool).await, before);
}

#[tokio::test]
async fn a_filled_node_updates_its_free_capacity() {
    let f = Fixture::new(seed(20)).await;
    f.sync().await;
    let grid = f.sim.nodes().await;
    let node = up_node(&grid);
    let id = node.node_id;
    let free: (i64, i64) =
        sqlx::query_as("SELECT free_cru, free_mru FROM node_catalog WHERE node_id = $1")
            .bind(i64::from(id))
            .fetch_one(&f.pool)
            .await
            .expect("row");
    assert_eq!(free.0 as u64, node.free_resources().cru);
    assert!(free.0 > 0);

    f.sim.post(&format!("/sim/nodes/{id}/fill")).await;
    let stats = f.sync().await;
    assert_eq!((stats.changed, stats.commands, stats.events), (1, 1, 1));
    assert_eq!(stats.unchanged, 19);

    let (free_cru, free_mru, free_sru, rentable): (i64, i64, i64, bool) = sqlx::query_as(
        "SELECT free_cru, free_mru, free_sru, rentable FROM node_catalog WHERE node_id = $1",
    )
    .bind(i64::from(id))
    .fetch_one(&f.pool)
    .await
    .expect("row");
    assert_eq!((free_cru, free_mru, free_sru, rentable), (0, 0, 0, false));
    assert_eq!(
        events_of(&f.pool, id).await,
        ["NodeDiscovered", "NodeUpdated"]
    );
}

#[tokio::test]
async fn a_node_that_stops_reporting_goes_down_after_80_minutes() {
    let f = Fixture::new(seed(20)).await;
    f.sync().await;
    let grid = f.sim.nodes().await;
    let id = up_node(&grid).node_id;
    f.sim.post(&format!("/sim/nodes/{id}/down")).await;

    // Its last report is exactly 80 minutes old: still up, nothing to sync.
    f.advance(80).await;
    let stats = f.sync().await;
    assert!(stats.changed > 0, "the other nodes reported: {stats:?}");
    assert_eq!(stats.status_changed, 0, "{stats:?}");
    assert_eq!(status_of(&f.pool, id).await, "up");
    assert_eq!(events_of(&f.pool, id).await, ["NodeDiscovered"]);

    // 81 minutes: down, by the status alone.
    f.advance(1).await;
    let stats = f.sync().await;
    assert_eq!(stats.status_changed, 1, "{stats:?}");
    assert_eq!(status_of(&f.pool, id).await, "down");
    assert_eq!(
        events_of(&f.pool, id).await,
        ["NodeDiscovered", "NodeStatusChanged"]
    );
    let proxy = f.sim.nodes().await;
    let listed = proxy.iter().find(|n| n.node_id == id).expect("listed");
    assert_eq!(listed.status, WireStatus::Down, "the proxy agrees");
}

#[tokio::test]
async fn a_node_added_to_the_grid_appears_in_the_catalog() {
    let f = Fixture::new(seed(10)).await;
    f.sync().await;

    let mut node = serde_json::to_value(up_node(&f.sim.nodes().await)).expect("json");
    node["nodeId"] = 10_001.into();
    node["twinId"] = 20_001.into();
    let r = f
        .sim
        .http
        .post(format!("{}/sim/nodes", f.sim.base))
        .json(&node)
        .send()
        .await
        .expect("add node");
    assert_eq!(r.status(), 201);

    let stats = f.sync().await;
    assert_eq!((stats.new, stats.commands, stats.events), (1, 1, 1));
    assert_eq!(stats.unchanged, 10);
    assert_eq!(status_of(&f.pool, 10_001).await, "up");
    assert_eq!(events_of(&f.pool, 10_001).await, ["NodeDiscovered"]);
}

#[tokio::test]
async fn a_node_the_proxy_no_longer_lists_decays_to_down() {
    let full = seed(12);
    let gone = full
        .nodes
        .iter()
        .find(|n| n.status == WireStatus::Up)
        .expect("an up node")
        .node_id;
    let (pool, _) = crate::common::fresh_database().await;
    let first = Fixture::with_pool(pool.clone(), Sim::start(full.clone()).await).await;
    first.sync().await;
    let last_report: DateTime<Utc> =
        sqlx::query_scalar("SELECT last_report FROM node_catalog WHERE node_id = $1")
            .bind(i64::from(gone))
            .fetch_one(&pool)
            .await
            .expect("row");

    // The same grid, from a proxy that no longer lists `gone`.
    let mut partial = full;
    partial.nodes.retain(|n| n.node_id != gone);
    let f = Fixture::with_pool(pool.clone(), Sim::start(partial).await).await;
    let stats = f.sync().await;
    assert_eq!((stats.missing, stats.commands, stats.events), (1, 0, 0));
    assert_eq!(status_of(&pool, gone).await, "up");

    f.advance(81).await;
    let stats = f.sync().await;
    assert_eq!(stats.missing, 1);
    assert_eq!(status_of(&pool, gone).await, "down");
    assert_eq!(
        events_of(&pool, gone).await,
        ["NodeDiscovered", "NodeStatusChanged"]
    );
    let kept: DateTime<Utc> =
        sqlx::query_scalar("SELECT last_report FROM node_catalog WHERE node_id = $1")
            .bind(i64::from(gone))
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(kept, last_report, "the stored snapshot is kept");
}

#[tokio::test]
async fn the_worker_survives_an_unreachable_proxy_and_syncs_once_it_answers() {
    let (pool, _) = crate::common::fresh_database().await;
    // A port nothing listens on yet.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = reserved.local_addr().expect("addr");
    drop(reserved);
    let clock = ManualClock::new(DateTime::from_timestamp(START, 0).expect("instant"));
    let options = GridSyncOptions {
        interval: Duration::from_millis(50),
        concurrency: 4,
        max_backoff: Duration::from_millis(200),
    };
    let w = worker(&format!("http://{addr}"), &pool, &clock, options);
    let failed = w.sync_once().await.expect_err("nothing listens");
    assert!(failed.to_string().contains("grid proxy"), "{failed}");

    let cancel = CancellationToken::new();
    let running = tokio::spawn(w.run(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.is_finished(), "a failed fetch is not fatal");

    let listener = TcpListener::bind(addr).await.expect("rebind the port");
    let _sim = Sim::serve(listener, seed(15));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        catch_up(&pool).await;
        if statuses(&pool).await.len() == 15 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the worker stops when cancelled")
        .expect("worker task");
}
