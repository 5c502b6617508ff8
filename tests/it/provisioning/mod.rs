//! Deployments that provision themselves: the provisioning manager against
//! the grid SIMULATOR's TFChain and ZOS nodes over HTTP, on a real
//! PostgreSQL, with the API and projections running. No operator call.

mod crash;
mod flows;
mod qsfs;
mod scale;
mod standby;

use std::sync::Arc;
use std::time::{Duration, Instant};

use marketplace_app::grid::GridClient;
use marketplace_app::tfchain::http::HttpChain;
use marketplace_app::tfchain::{Chain, Custody};
use marketplace_app::zos::rmb::HttpRmb;
use marketplace_dev::grid_sim::{self as sim, Seed, SimOptions};
use marketplace_workers::grid::{GridSync, GridSyncOptions, ManualClock};
use marketplace_workers::jobs::WorkOptions;
use marketplace_workers::provisioning::{self, Provisioner, ProvisioningOptions, Treasury};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{alice, spawn_app_with, AppOptions, TestApp};

/// The simulated chain's clock at the start of every test.
pub const START: i64 = 1_760_000_000;

/// The master secret of the tests' custodial accounts.
pub const SEED: &str = "0x5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// The dev catalog with every node up for 40 days (so uptime criteria pass)
/// and its clock at [`START`]: Belgium has nodes 1 (24 vCPUs free) and 2
/// (16 free) in farm 1, which has two free public IPs.
pub fn dev_seed() -> Seed {
    let mut seed = Seed::dev();
    seed.now = Some(START);
    for n in &mut seed.nodes {
        n.uptime = 40 * 24 * 3600;
    }
    seed
}

/// `nodes` empty nodes in Belgium, farm 1, each with `cru` vCPUs.
pub fn uniform_seed(nodes: u32, cru: u64) -> Seed {
    let mut seed = dev_seed();
    let template = seed
        .nodes
        .iter()
        .find(|n| n.node_id == 2)
        .cloned()
        .expect("dev node 2");
    seed.nodes = (1..=nodes)
        .map(|id| {
            let mut n = template.clone();
            n.node_id = id;
            n.id = format!("sim-node-{id}");
            n.twin_id = 1_000 + id;
            n.serial_number = format!("SIM-U-{id:04}");
            n.total_resources.cru = cru;
            n.used_resources = Default::default();
            n.rentable = false;
            n
        })
        .collect();
    seed
}

/// A VM spec body: `cpu` vCPUs, no public IP unless asked, in Belgium.
pub fn vm(name: &str, cpu: u32, public_ipv4: bool) -> Value {
    json!({
        "name": name,
        "spec": {
            "kind": "vm",
            "size": { "cpu": cpu, "memory_mib": 1024, "rootfs_gb": 10 },
            "disks_gb": [],
            "public_ipv4": public_ipv4,
            "image": "https://hub.grid.tf/tf-official-apps/base:latest.flist",
            "ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqtest alice@laptop"
        },
        "placement": { "country": "Belgium", "certified_only": false, "min_uptime_bps": 0 }
    })
}

/// The simulator, the API with its projections, the node catalog synced
/// once, and (unless asked otherwise) the provisioning manager.
pub struct Grid {
    pub app: TestApp,
    pub sim: String,
    pub http: reqwest::Client,
    pub chain: Arc<HttpChain>,
    pub custody: Arc<Custody>,
    sim_cancel: CancellationToken,
    simulator: sim::Simulator,
    serving: std::sync::Mutex<CancellationToken>,
}

impl Drop for Grid {
    fn drop(&mut self) {
        self.sim_cancel.cancel();
        self.app.cancel.cancel();
    }
}

impl Grid {
    /// Everything, the manager in this process (users' chain accounts
    /// funded, see [`Grid::without_manager`]).
    pub async fn start(seed: Seed) -> Grid {
        let grid = Self::without_manager(seed).await;
        grid.spawn_manager(ProvisioningOptions {
            standby_check: Duration::from_millis(100),
            ..ProvisioningOptions::default()
        });
        grid
    }

    /// Everything, the manager in this process, the simulator with `options`.
    pub async fn start_with(seed: Seed, options: SimOptions) -> Grid {
        let grid = Self::with_sim(seed, options).await;
        grid.spawn_manager(ProvisioningOptions {
            standby_check: Duration::from_millis(100),
            ..ProvisioningOptions::default()
        });
        grid
    }

    /// Everything but the manager. The chain bills as it always does, so
    /// the users' chain accounts hold plenty: these grids test provisioning,
    /// not grace periods.
    pub async fn without_manager(seed: Seed) -> Grid {
        let grid = Self::with_sim(
            seed,
            SimOptions {
                workload_delay: Duration::ZERO,
                ..SimOptions::default()
            },
        )
        .await;
        for user in ["alice", "bob"] {
            let account = grid.custody.wallet(user);
            grid.control(
                "/sim/chain/fund",
                json!({ "account": account.address(), "amount": 1_000_000u64 * 10_000_000 }),
            )
            .await;
        }
        grid
    }

    /// Everything but the manager, the simulator with `options`.
    pub async fn with_sim(seed: Seed, options: SimOptions) -> Grid {
        Self::with_sim_and_app(
            seed,
            options,
            AppOptions {
                projections: true,
                ..AppOptions::default()
            },
        )
        .await
    }

    /// Everything but the manager, the simulator with `options`, the app
    /// with `app` (e.g. with localstripe).
    pub async fn with_sim_and_app(seed: Seed, options: SimOptions, app: AppOptions) -> Grid {
        let sim_cancel = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
        let sim = format!("http://{}", listener.local_addr().expect("addr"));
        let nodes = seed.nodes.len() as i64;
        let simulator = sim::Simulator::new(seed, options).expect("seed");
        let serving = sim_cancel.child_token();
        let (served, stop) = (simulator.clone(), serving.clone());
        tokio::spawn(async move { served.serve(listener, stop).await });
        let app = spawn_app_with(app).await;
        let custody = Arc::new(Custody::from_seed(&SecretString::from(SEED)).expect("seed"));
        let grid = Grid {
            chain: Arc::new(HttpChain::new(&sim).expect("chain")),
            app,
            sim,
            http: reqwest::Client::new(),
            custody,
            sim_cancel,
            simulator,
            serving: std::sync::Mutex::new(serving),
        };
        grid.sync_catalog(nodes).await;
        let treasury = grid.custody.treasury();
        grid.control(
            "/sim/chain/fund",
            json!({ "account": treasury.address(), "amount": 1_000_000u64 * 10_000_000 }),
        )
        .await;
        grid
    }

    /// Stops the simulator's server, waits `down`, and serves the same
    /// simulated grid again on the same address (its state outlives it).
    pub async fn restart_sim(&self, down: Duration) {
        let old = std::mem::replace(
            &mut *self.serving.lock().expect("serving"),
            self.sim_cancel.child_token(),
        );
        old.cancel();
        tokio::time::sleep(down).await;
        let addr = self.sim.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind(&addr).await.expect("bind the sim again");
        let stop = self.serving.lock().expect("serving").clone();
        let served = self.simulator.clone();
        tokio::spawn(async move { served.serve(listener, stop).await });
    }

    /// One grid sync, then waits for the catalog view to hold the nodes.
    pub async fn sync_catalog(&self, nodes: i64) {
        let now = self.now().await;
        let clock = ManualClock::new(chrono::DateTime::from_timestamp(now, 0).expect("time"));
        let sync = GridSync::new(
            GridClient::new(&self.sim).expect("grid client"),
            self.app.pool.clone(),
            Arc::new(clock),
            GridSyncOptions::default(),
        );
        sync.sync_once().await.expect("grid sync");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM node_catalog")
                .fetch_one(&self.app.pool)
                .await
                .expect("count");
            if n >= nodes {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the catalog holds {n} of {nodes} nodes"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the manager and the treasury in this process until the returned
    /// token is cancelled (or the test ends).
    pub fn spawn_manager(&self, options: ProvisioningOptions) -> CancellationToken {
        let cancel = self.app.cancel.child_token();
        let pool = self.app.pool.clone();
        let chain: Arc<dyn Chain> = self.chain.clone();
        let nodes = Arc::new(HttpRmb::new(&self.sim).expect("rmb"));
        let mut work = WorkOptions::new("provisioning-test");
        work.poll = Duration::from_millis(50);
        let provisioner = Provisioner::new(
            pool.clone(),
            chain.clone(),
            nodes,
            self.custody.clone(),
            options,
        );
        provisioning::spawn(pool.clone(), provisioner, work.clone(), cancel.clone());
        let treasury = Treasury::new(&pool, chain, self.custody.clone());
        provisioning::spawn_treasury(pool, treasury, work, cancel.clone());
        cancel
    }

    /// The simulator's clock, unix seconds.
    pub async fn now(&self) -> i64 {
        let v: Value = self
            .http
            .get(format!("{}/sim/clock", self.sim))
            .send()
            .await
            .expect("clock")
            .json()
            .await
            .expect("clock json");
        v["now"].as_i64().expect("now")
    }

    /// A simulator control.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.sim))
            .json(&body)
            .send()
            .await
            .expect("control");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// A simulator read.
    pub async fn sim_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim))
            .send()
            .await
            .expect("sim read")
            .json()
            .await
            .expect("sim json")
    }

    /// Every contract on the simulated chain.
    pub async fn contracts(&self) -> Vec<Value> {
        let v = self.sim_get("/sim/chain/contracts").await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Live (not deleted) node contracts on `node_id`.
    pub async fn live_contracts_on(&self, node_id: u32) -> Vec<Value> {
        self.contracts()
            .await
            .into_iter()
            .filter(|c| c["state"] == json!("Created"))
            .filter(|c| c["contract_type"]["NodeContract"]["node_id"] == json!(node_id))
            .collect()
    }

    /// Requests a deployment as `token`; its id.
    pub async fn request(&self, token: &str, body: &Value) -> String {
        self.app.request(token, body).await.0
    }

    /// Alice requests one.
    pub async fn request_as_alice(&self, body: &Value) -> String {
        self.request(&alice(), body).await
    }

    /// The deployment's detail once its status is one of `statuses`.
    pub async fn settled(&self, token: &str, id: &str, statuses: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.app.get(&format!("/v1/deployments/{id}"), token).await;
            let status = r.status();
            // 404 before the view has the deployment, 503 while it lags.
            if status != 200 && status != 404 && status != 503 {
                panic!(
                    "reading deployment {id}: {status} {}",
                    r.text().await.unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} still unreadable after 60 s"
            );
            if status == 200 {
                let v: Value = r.json().await.expect("detail");
                if statuses.iter().any(|s| v["status"] == json!(s)) {
                    return v;
                }
                assert!(
                    Instant::now() < deadline,
                    "deployment {id} is {} after 60 s, not {statuses:?}: {v:#}",
                    v["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Advances the simulated clock.
    pub async fn advance(&self, minutes: u32) {
        self.control(&format!("/sim/clock/advance?minutes={minutes}"), json!({}))
            .await;
    }

    /// The node's `zos.statistics.get`, through the simulator's RMB.
    pub async fn statistics(&self, node_id: u32) -> marketplace_app::zos::Statistics {
        use marketplace_app::zos::{NodeAddress, Nodes};
        let rmb = HttpRmb::new(&self.sim).expect("rmb");
        rmb.statistics(
            NodeAddress {
                node_id,
                twin_id: 1_000 + node_id,
            },
            1,
        )
        .await
        .expect("statistics")
    }
}
