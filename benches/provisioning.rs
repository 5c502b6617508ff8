//! Provisioning latency: from a user's `POST /v1/deployments` to the commit
//! of that deployment's `DeploymentRunning`, the simulator's delays at zero.
//!
//! Everything runs in this process, as `marketplace dev` wires it: a private
//! PostgreSQL (durable by default), migrations, the grid SIMULATOR
//! (`workload_delay` zero: a workload reads `ok` on the first look), every
//! projection runner, the node catalog synced once, the provisioning manager
//! (intake and executor; `serve`'s 30 s leases and 250 ms poll) and the API,
//! on one pool of 32 connections. The catalog is `Seed::generate` with every
//! node up and powered for 45 days; the request (2 vCPUs, 4 GiB, 20 + 50 GB,
//! no public IPv4, any country, 95% uptime) fits most nodes.
//!
//! BENCH_CONCURRENCY clients (a user and a keep-alive connection each) send
//! BENCH_DEPLOYMENTS requests between them, each waiting for its deployment
//! to run before sending the next. A watcher looks every 5 ms at the
//! in-flight deployments' jobs and for their `DeploymentRunning` or
//! `DeploymentFailed`, to tell their clients. Latencies come from the store
//! afterwards: an event's `recorded_at` minus the client's wall clock when
//! it sent the request. `recorded_at` is `now()` of the writing transaction,
//! its start: short of the commit by one insert and a WAL flush. Steps: sent
//! → `DeploymentRequested` (the API) → the job due (`due_at`, the intake's
//! `now()`) → leased (`leased_until` less the lease: the executor took it)
//! → `NodeAssigned` (placement) → `ContractCreated` (the user's twin on
//! first need, the contract) → `DeploymentRunning` (sent to the node, read
//! back, marked running).
//!
//! `cargo bench --bench provisioning`. Environment: BENCH_DEPLOYMENTS (200),
//! BENCH_CONCURRENCY (16), BENCH_EXECUTORS (`16,4`: the executor's
//! `WorkOptions.concurrency`, a fresh stack each), BENCH_POLL_MS (250, its
//! `poll`), BENCH_NODES (1000), BENCH_FARMS (50), BENCH_DURABLE (1). Exits
//! non-zero unless every deployment runs, printing why from
//! `deployment_views`.

mod common;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use marketplace_app::grid::types::{NodePower, NodeStatus, PowerState};
use marketplace_app::grid::GridClient;
use marketplace_app::tfchain::http::HttpChain;
use marketplace_app::tfchain::{Chain, Custody};
use marketplace_app::zos::rmb::HttpRmb;
use marketplace_app::zos::Nodes;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::grid_sim::{self as sim, Seed, SimClock, SimOptions};
use marketplace_dev::keys::SigningKey;
use marketplace_workers::grid::{GridSync, GridSyncOptions, ManualClock};
use marketplace_workers::jobs::WorkOptions;
use marketplace_workers::provisioning::{self, Provisioner, ProvisioningOptions};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The simulated chain's clock at start.
const START: i64 = 1_760_000_000;
/// The custodial accounts' master secret (a bench's, worth nothing).
const CHAIN_SEED: &str = "0x5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
/// How often the watcher looks.
const WATCH: Duration = Duration::from_millis(5);
/// How long a client waits for one deployment.
const DONE_TIMEOUT: Duration = Duration::from_secs(120);

struct Config {
    deployments: usize,
    concurrency: usize,
    executors: Vec<usize>,
    poll: Duration,
    nodes: u32,
    farms: u32,
    durable: bool,
}

impl Config {
    fn from_env() -> Self {
        Self {
            deployments: env_num("BENCH_DEPLOYMENTS", 200),
            concurrency: env_num("BENCH_CONCURRENCY", 16).max(1),
            executors: std::env::var("BENCH_EXECUTORS")
                .unwrap_or_else(|_| "16,4".into())
                .split(',')
                .map(|s| s.trim().parse().expect("BENCH_EXECUTORS: numbers"))
                .collect(),
            poll: Duration::from_millis(env_num("BENCH_POLL_MS", 250) as u64),
            nodes: env_num("BENCH_NODES", 1000) as u32,
            farms: env_num("BENCH_FARMS", 50) as u32,
            durable: env_num("BENCH_DURABLE", 1) != 0,
        }
    }
}

/// The generated catalog, every node up, powered and up for 45 days.
fn catalog(cfg: &Config) -> Seed {
    let mut seed = Seed::generate(cfg.farms, cfg.nodes, 1);
    seed.now = Some(START);
    for n in &mut seed.nodes {
        n.status = NodeStatus::Up;
        n.power = NodePower {
            state: PowerState::Up,
            target: PowerState::Up,
        };
        n.healthy = true;
        n.uptime = 45 * 86_400;
    }
    seed
}

/// The request: a VM that fits most nodes, no public IPv4, any country.
fn body(i: usize) -> Value {
    let mut body = vm_body(&format!("prov{i}"));
    body["spec"]["public_ipv4"] = json!(false);
    body["placement"] = json!({ "certified_only": false, "min_uptime_bps": 9500 });
    body
}

/// One running stack: PostgreSQL, simulator, projections, manager, API.
struct Stack {
    pg: EmbeddedPostgres,
    dir: std::path::PathBuf,
    url: String,
    /// The executor's lease, to read a lease's start from `leased_until`.
    lease: Duration,
    server_pool: PgPool,
    /// The bench's own connections (watching, reading results), tagged `bench`.
    bench_pool: PgPool,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

async fn start(cfg: &Config, executors: usize, key: &SigningKey) -> anyhow::Result<Stack> {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("marketplace-bench-prov-{pid}-{executors}"));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable: cfg.durable,
        max_connections: 200,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let db_url = pg.url("bench");
    let server_pool = marketplace::wiring::connect(&db_url.clone().into(), 32).await?;
    marketplace::MIGRATOR.run(&server_pool).await?;
    let bench_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(PgConnectOptions::from_str(&db_url)?.application_name("bench"))
        .await?;
    let cancel = CancellationToken::new();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let sim_url = format!("http://{}", listener.local_addr()?);
    let options = SimOptions {
        workload_delay: Duration::ZERO,
        ..SimOptions::default()
    };
    let simulator = sim::serve(listener, catalog(cfg), options, cancel.clone());
    let mut tasks = vec![
        tokio::spawn(async move { simulator.await.expect("grid simulator") }),
        marketplace::wiring::spawn_projections(server_pool.clone(), 500, cancel.clone()),
    ];

    // The catalog, synced once at the simulator's clock, then projected.
    let t = Instant::now();
    let clock: SimClock = reqwest::get(format!("{sim_url}/sim/clock"))
        .await?
        .json()
        .await?;
    let clock = ManualClock::new(DateTime::from_timestamp(clock.now, 0).expect("simulated clock"));
    let (client, options) = (GridClient::new(&sim_url)?, GridSyncOptions::default());
    let sync = GridSync::new(client, server_pool.clone(), Arc::new(clock), options);
    let synced = sync.sync_once().await?;
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM node_catalog")
            .fetch_one(&bench_pool)
            .await?;
        if n >= i64::from(cfg.nodes) {
            break;
        }
        anyhow::ensure!(t.elapsed() < DONE_TIMEOUT, "the catalog holds {n} nodes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (took, fetched) = (ms(t.elapsed()), synced.fetched);
    eprintln!("[executors {executors}] {fetched} nodes synced and projected in {took:.0} ms");

    let chain: Arc<dyn Chain> = Arc::new(HttpChain::new(&sim_url)?);
    let nodes: Arc<dyn Nodes> = Arc::new(HttpRmb::new(&sim_url)?);
    let custody = Arc::new(Custody::from_seed(&SecretString::from(CHAIN_SEED))?);
    let mut work = WorkOptions::new(provisioning::WORKER);
    work.concurrency = executors;
    work.poll = cfg.poll;
    let lease = work.lease;
    let options = ProvisioningOptions::default();
    let provisioner = Provisioner::new(server_pool.clone(), chain, nodes.clone(), custody, options);
    let manager = provisioning::spawn(server_pool.clone(), provisioner, work, cancel.clone());
    tasks.extend(manager);

    let auth = authenticator(key).await;
    let state = marketplace::wiring::app_state(server_pool.clone(), auth, api_settings(), &cancel)
        .with_nodes(nodes);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/deployments", listener.local_addr()?);
    let api = marketplace::wiring::spawn_api(listener, state, cancel.clone());
    tasks.push(tokio::spawn(async move {
        api.await.expect("API task").expect("API");
    }));
    Ok(Stack {
        pg,
        dir,
        url,
        lease,
        server_pool,
        bench_pool,
        cancel,
        tasks,
    })
}

impl Stack {
    async fn stop(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.bench_pool.close().await;
        self.server_pool.close().await;
        self.pg.stop().await?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// What the watcher tracks: the clients waiting, and the earliest `due_at`
/// and lease start seen of each in-flight deployment's job.
#[derive(Default)]
struct Waiting {
    tell: Mutex<HashMap<String, oneshot::Sender<()>>>,
    jobs: Mutex<HashMap<String, Job>>,
    /// Looks taken, and placements seen waiting for the placement lock.
    looks: AtomicUsize,
    lock_waiters: AtomicUsize,
}

#[derive(Default, Clone, Copy)]
struct Job {
    due: Option<DateTime<Utc>>,
    leased: Option<DateTime<Utc>>,
}

/// Every [`WATCH`]: notes the in-flight deployments' jobs and tells the
/// clients whose deployments have finished.
async fn watch(pool: PgPool, waiting: Arc<Waiting>, lease: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(WATCH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while tokio::select! { _ = tick.tick() => true, _ = cancel.cancelled() => false } {
        let ids: Vec<String> = waiting.tell.lock().unwrap().keys().cloned().collect();
        if ids.is_empty() {
            continue;
        }
        let jobs: Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT job_id, due_at, leased_until - $2 * interval '1 millisecond'
               FROM provisioning_jobs WHERE job_id = ANY($1)",
        )
        .bind(&ids)
        .bind(lease.as_millis() as i64)
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        let done: Vec<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM events
              WHERE aggregate_type = 'deployment' AND aggregate_id = ANY($1)
                AND event_type IN ('DeploymentRunning', 'DeploymentFailed')",
        )
        .bind(&ids)
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        let lock_waiters: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint)
                    = hashtextextended('capacity-placement', 7)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        waiting.looks.fetch_add(1, Ordering::Relaxed);
        waiting
            .lock_waiters
            .fetch_add(lock_waiters as usize, Ordering::Relaxed);
        let mut seen = waiting.jobs.lock().unwrap();
        for (id, due, leased) in jobs {
            let job = seen.entry(id).or_default();
            job.due = earliest(job.due, Some(due));
            job.leased = earliest(job.leased, leased);
        }
        let mut tell = waiting.tell.lock().unwrap();
        for id in done {
            if let Some(tell) = tell.remove(&id) {
                let _ = tell.send(());
            }
        }
    }
}

/// One request as the client saw it.
struct Sample {
    id: String,
    /// Wall clock just before the request was sent.
    sent: DateTime<Utc>,
    /// Request sent to 202 received.
    answered: Duration,
}

/// `n` deployments from one client per token, each client waiting for its
/// deployment to finish before it sends the next.
async fn run_clients(
    url: &str,
    tokens: &[String],
    n: usize,
    waiting: &Waiting,
) -> (Vec<Sample>, Vec<String>) {
    let next = &AtomicUsize::new(0);
    let clients = tokens.iter().map(|token| async move {
        // One request at a time: one keep-alive connection.
        let http = reqwest::Client::new();
        let (mut samples, mut errors) = (Vec::new(), Vec::new());
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let request = http.post(url).bearer_auth(token).json(&body(i));
            let (sent, t) = (Utc::now(), Instant::now());
            let r = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("request {i}: transport: {e}"));
                    continue;
                }
            };
            let answered = t.elapsed();
            let status = r.status().as_u16();
            let reply: Value = r.json().await.unwrap_or(Value::Null);
            let id = reply["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
            let Some(id) = id.filter(|_| status == 202).map(|id| id.to_string()) else {
                errors.push(format!("request {i}: {status} {reply}"));
                continue;
            };
            let (tell, told) = oneshot::channel();
            waiting.tell.lock().unwrap().insert(id.clone(), tell);
            if tokio::time::timeout(DONE_TIMEOUT, told).await.is_err() {
                waiting.tell.lock().unwrap().remove(&id);
            }
            samples.push(Sample { id, sent, answered });
        }
        (samples, errors)
    });
    let (mut samples, mut errors) = (Vec::new(), Vec::new());
    for (s, e) in futures::future::join_all(clients).await {
        samples.extend(s);
        errors.extend(e);
    }
    (samples, errors)
}

/// When a deployment's events were recorded (each type's first), and how
/// many times it was assigned a node.
#[derive(sqlx::FromRow)]
struct Steps {
    id: String,
    requested: Option<DateTime<Utc>>,
    assigned: Option<DateTime<Utc>>,
    contracted: Option<DateTime<Utc>>,
    running: Option<DateTime<Utc>>,
    attempts: i64,
}

async fn steps(pool: &PgPool, ids: &[String]) -> anyhow::Result<HashMap<String, Steps>> {
    let rows: Vec<Steps> = sqlx::query_as(
        "SELECT aggregate_id AS id,
                min(recorded_at) FILTER (WHERE event_type = 'DeploymentRequested') AS requested,
                min(recorded_at) FILTER (WHERE event_type = 'NodeAssigned') AS assigned,
                min(recorded_at) FILTER (WHERE event_type = 'ContractCreated') AS contracted,
                min(recorded_at) FILTER (WHERE event_type = 'DeploymentRunning') AS running,
                count(*) FILTER (WHERE event_type = 'NodeAssigned') AS attempts
           FROM events WHERE aggregate_type = 'deployment' AND aggregate_id = ANY($1)
          GROUP BY aggregate_id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|s| (s.id.clone(), s)).collect())
}

/// The earlier of two instants, either of which may be missing.
fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.into_iter().chain(b).min()
}

/// `later - earlier`, zero if the clock says otherwise.
fn between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> Duration {
    (later - earlier).to_std().unwrap_or_default()
}

/// The figures, in order: the whole path, then its steps.
const COLUMNS: [&str; 8] = [
    "total", "202", "request", "intake", "pickup", "placed", "contract", "running",
];

/// A deployment's durations by [`COLUMNS`]; `None` if it did not run.
/// Intake, pickup and placed need its job seen due, then leased, before the
/// node was assigned (a run shorter than the watcher's look can hide).
fn durations(s: &Sample, st: &Steps, job: Job) -> Option<[Option<Duration>; 8]> {
    let (req, node, contract, running) = (st.requested?, st.assigned?, st.contracted?, st.running?);
    let job = match (job.due, job.leased) {
        (Some(due), Some(leased)) if req <= due && due <= leased && leased <= node => {
            Some((due, leased))
        }
        _ => None,
    };
    Some([
        Some(between(s.sent, running)),
        Some(s.answered),
        Some(between(s.sent, req)),
        job.map(|(due, _)| between(req, due)),
        job.map(|(due, leased)| between(due, leased)),
        job.map(|(_, leased)| between(leased, node)),
        Some(between(node, contract)),
        Some(between(contract, running)),
    ])
}

/// One executor concurrency's figures, each column sorted.
struct Run {
    executors: usize,
    ran: usize,
    of: usize,
    span: Duration,
    columns: [Vec<Duration>; 8],
}

/// A fresh stack and the deployments; `errors` gets what went wrong.
async fn run(
    cfg: &Config,
    executors: usize,
    key: &SigningKey,
    tokens: &[String],
    notes: &mut Vec<String>,
    errors: &mut Vec<String>,
) -> anyhow::Result<Run> {
    let stack = start(cfg, executors, key).await?;
    let n = cfg.deployments;
    let waiting = Arc::new(Waiting::default());
    let (pool, stop) = (stack.bench_pool.clone(), stack.cancel.child_token());
    let watcher = tokio::spawn(watch(pool, waiting.clone(), stack.lease, stop.clone()));
    let pgdata = stack.dir.join("pgdata");
    let (cpu0, pg0, t) = (cpu_times(), postgres_cpu(&pgdata), Instant::now());
    let (samples, failed) = run_clients(&stack.url, tokens, n, &waiting).await;
    let (cpu1, pg1) = (cpu_times(), postgres_cpu(&pgdata));
    let secs = t.elapsed().as_secs_f64();
    stop.cancel();
    let _ = watcher.await;
    let tag = |e: String| format!("[executors {executors}] {e}");
    errors.extend(failed.into_iter().map(tag));

    let ids: Vec<String> = samples.iter().map(|s| s.id.clone()).collect();
    let steps = steps(&stack.bench_pool, &ids).await?;
    let jobs = waiting.jobs.lock().unwrap().clone();
    let mut columns: [Vec<Duration>; 8] = Default::default();
    let (mut first_sent, mut last_running) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
    let (mut ran, mut retried, mut not_running) = (0, 0, Vec::new());
    for s in &samples {
        let job = jobs.get(&s.id).copied().unwrap_or_default();
        let found = steps
            .get(&s.id)
            .and_then(|st| Some((st, durations(s, st, job)?)));
        let Some((st, row)) = found else {
            not_running.push(s.id.clone());
            continue;
        };
        for (column, d) in columns.iter_mut().zip(row) {
            column.extend(d);
        }
        ran += 1;
        retried += usize::from(st.attempts > 1);
        let running = st.running.unwrap_or(s.sent);
        first_sent = earliest(first_sent, Some(s.sent));
        last_running = last_running.max(Some(running));
    }
    columns.iter_mut().for_each(|c| c.sort());
    let why: Vec<String> = sqlx::query_scalar(
        "SELECT i.id || ' did not run: ' || coalesce(v.status || ', failure_reason: '
                || coalesce(v.failure_reason, 'none'), 'not in deployment_views')
           FROM unnest($1::text[]) AS i(id) LEFT JOIN deployment_views v ON v.id::text = i.id",
    )
    .bind(&not_running)
    .fetch_all(&stack.bench_pool)
    .await?;
    errors.extend(why.into_iter().map(tag));
    let per = |a: f64, b: f64| (b - a) / secs;
    let (busy, own, pg) = (per(cpu0.0, cpu1.0), per(cpu0.2, cpu1.2), per(pg0, pg1));
    let (seen, iowait) = (columns[3].len(), per(cpu0.1, cpu1.1));
    let looks = waiting.looks.load(Ordering::Relaxed).max(1) as f64;
    let queued = waiting.lock_waiters.load(Ordering::Relaxed) as f64 / looks;
    // Little's law: the mean wait is the mean queue over the placement rate.
    let lock_wait = queued / (ran as f64 / secs).max(1e-9) * 1e3;
    notes.push(format!(
        "[executors {executors}] {retried} placed more than once; job due and lease seen for {seen} of \
         {ran}; {queued:.1} placements waiting for the placement lock on average (so about \
         {lock_wait:.0} ms each); CPU busy {busy:.2} cores: this process {own:.2}, PostgreSQL {pg:.2}, \
         the rest {:.2}; iowait {iowait:.2}",
        busy - own - pg
    ));
    stack.stop().await?;
    let span = first_sent.zip(last_running).map(|(f, l)| between(f, l));
    let span = span.unwrap_or(Duration::from_secs_f64(secs));
    Ok(Run {
        executors,
        ran,
        of: n,
        span,
        columns,
    })
}

fn print(runs: &[Run]) {
    let head: String = COLUMNS.iter().map(|c| format!("{c:>15}")).collect();
    let title = format!("{:>9} {:>9} {:>6}", "executors", "ran", "dep/s");
    println!("\n{title} {head} {:>6} {:>6}", "mean", "max");
    for r in runs {
        let p = |c: &Vec<Duration>| format!("{:.1} / {:.1}", pct(c, 0.5), pct(c, 0.99));
        let cells: String = r.columns.iter().map(|c| format!("{:>15}", p(c))).collect();
        let (total, ran) = (&r.columns[0], format!("{}/{}", r.ran, r.of));
        let mean = total.iter().sum::<Duration>() / total.len().max(1) as u32;
        let rate = r.ran as f64 / r.span.as_secs_f64().max(1e-9);
        let (mean, max) = (ms(mean), pct(total, 1.0));
        println!(
            "{:>9} {ran:>9} {rate:>6.1} {cells} {mean:>6.0} {max:>6.0}",
            r.executors
        );
    }
    println!(
        "(ms, p50 / p99; total = request sent to DeploymentRunning recorded, then its steps, as the \
         bench's header says; dep/s from the first request sent to the last DeploymentRunning)"
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::from_env();
    let key = SigningKey::generate()?;
    let now = Utc::now().timestamp();
    let tokens: Vec<String> = (0..cfg.concurrency)
        .map(|w| {
            key.sign(&json!({
                "iss": ISSUER, "aud": AUDIENCE, "sub": format!("prov{w}"),
                "iat": now, "nbf": now - 1, "exp": now + 4 * 3600,
                ROLES_CLAIM: ["cloud-user"],
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut notes = vec![
        machine_line("clients, API, projection runners, provisioning manager, simulator and PostgreSQL"),
        format!(
            "PostgreSQL {}; catalog {} nodes in {} farms; executor poll {} ms; {} clients, one user each",
            if cfg.durable { "durable" } else { "non-durable" },
            cfg.nodes,
            cfg.farms,
            cfg.poll.as_millis(),
            cfg.concurrency
        ),
    ];
    let (mut runs, mut errors) = (Vec::new(), Vec::new());
    for &executors in &cfg.executors {
        runs.push(run(&cfg, executors, &key, &tokens, &mut notes, &mut errors).await?);
    }
    print(&runs);
    println!();
    for n in notes.iter().chain(&errors) {
        println!("{n}");
    }
    if !errors.is_empty() || runs.iter().any(|r| r.ran != cfg.deployments) {
        eprintln!("FAILED: not every deployment reached running (see above)");
        std::process::exit(1);
    }
    Ok(())
}
