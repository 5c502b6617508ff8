//! HTTP command throughput and command-accepted-to-visible-in-view latency.
//!
//! Everything runs in this process, as `marketplace dev` wires it: a private
//! PostgreSQL (durable by default: fsync, synchronous_commit and
//! full_page_writes on), migrations, the API on 127.0.0.1:0 with a pool of
//! `BENCH_POOL` connections (default 32, as `serve` and `dev`), and the
//! deployment projection runner (batch 500) tailing the store. The load
//! generator is reqwest over real HTTP/1.1 with keep-alive, one client (one
//! connection) per concurrent worker. Client, API, runner and PostgreSQL all
//! share the machine's CPUs.
//!
//! Phases, per mode: warm-up; `POST /v1/deployments` throughput; the same
//! with an `Idempotency-Key`; accepted-to-visible latency under load (a
//! single poller runs `SELECT id FROM deployment_views WHERE id = ANY($1) AND
//! version >= 1` every 1 ms over the ids whose 202 arrived); the same at a
//! held arrival rate of 50% and of 80% of the plain phase's commands/s
//! (request `i` sent no earlier than `i / rate` into the run, by the same
//! BENCH_CONCURRENCY workers); the same latency paced (one command at a
//! time, its own 1 ms poll of `SELECT version FROM deployment_views WHERE
//! id = $1`).
//!
//! Each mode first runs `pgbench` on the same server (BENCH_CONCURRENCY
//! clients, 10 s, one event-sized row inserted per transaction into a table
//! shaped like the store) and prints each throughput phase as a ratio of it.
//!
//! `cargo bench --bench http_commands`. Environment: BENCH_REQUESTS (5000),
//! BENCH_CONCURRENCY (16), BENCH_WARMUP (300), BENCH_LATENCY_SAMPLES (1000),
//! BENCH_PACED_SAMPLES (200), BENCH_POOL (32), BENCH_DURABLE (1, 0 or both),
//! BENCH_IDEMPOTENCY (1; 0 skips the keyed run), BENCH_SAMPLE_WAITS (0; 1
//! samples pg_stat_activity and pg_locks every 10 ms during the throughput
//! runs and prints what backends waited on; it costs some throughput). Exits non-zero if any
//! command is not answered 202 or any accepted command never becomes visible.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::*;
use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_api::ApiSettings;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::keys::SigningKey;
use marketplace_domain::TftPrice;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const POLL: Duration = Duration::from_millis(1);
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(30);

struct Config {
    requests: usize,
    concurrency: usize,
    warmup: usize,
    latency_samples: usize,
    paced_samples: usize,
    pool: u32,
    idempotency: bool,
    sample_waits: bool,
    modes: Vec<bool>,
}

impl Config {
    fn from_env() -> Self {
        let modes = match std::env::var("BENCH_DURABLE").as_deref() {
            Ok("0") | Ok("false") => vec![false],
            Ok("both") => vec![true, false],
            _ => vec![true],
        };
        Self {
            requests: env_num("BENCH_REQUESTS", 5000),
            concurrency: env_num("BENCH_CONCURRENCY", 16).max(1),
            warmup: env_num("BENCH_WARMUP", 300),
            latency_samples: env_num("BENCH_LATENCY_SAMPLES", 1000),
            paced_samples: env_num("BENCH_PACED_SAMPLES", 200),
            pool: env_num("BENCH_POOL", 32) as u32,
            idempotency: env_num("BENCH_IDEMPOTENCY", 1) != 0,
            sample_waits: env_num("BENCH_SAMPLE_WAITS", 0) != 0,
            modes,
        }
    }
}

/// One running stack: PostgreSQL, API, projection runner.
struct Stack {
    pg: EmbeddedPostgres,
    dir: std::path::PathBuf,
    url: String,
    /// The database's URL (pgbench connects to it).
    db_url: String,
    /// The server's pool (shared by the API and the projection runner).
    server_pool: PgPool,
    /// The bench's own connections (polling, sampling), tagged `bench`.
    bench_pool: PgPool,
    cancel: CancellationToken,
    runner: tokio::task::JoinHandle<()>,
    api: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(durable: bool, cfg: &Config, key: &SigningKey) -> anyhow::Result<Stack> {
    let dir = std::env::temp_dir().join(format!(
        "marketplace-bench-{}-{}",
        std::process::id(),
        if durable { "durable" } else { "fast" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable,
        max_connections: 200,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let db_url = pg.url("bench");
    let server_pool = marketplace::wiring::connect(&db_url.clone().into(), cfg.pool).await?;
    marketplace::MIGRATOR.run(&server_pool).await?;
    let bench_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(PgConnectOptions::from_str(&db_url)?.application_name("bench"))
        .await?;

    let auth = Authenticator::new(AuthConfig {
        // Never fetched: the key is preloaded.
        jwks_url: "http://127.0.0.1:9/unused/jwks.json".into(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        roles_claim: ROLES_CLAIM.into(),
        leeway_secs: 30,
    });
    auth.preload(&key.jwks()).await;
    let settings = ApiSettings {
        body_limit: 64 * 1024,
        read_wait: Duration::from_secs(2),
        tft_price: TftPrice::from_usd_units(100_000).expect("price"),
        stripe_webhook_secret: None,
        payments: None,
        dev_jwks: None,
        // Measures something else: the limiter off (benches/rate_limit.rs measures it).
        rate_limit: marketplace_api::rate_limit::RateLimitConfig::off(),
        metrics: marketplace_api::metrics::MetricsAccess::open(),
    };
    let cancel = CancellationToken::new();
    let state = marketplace::wiring::app_state(server_pool.clone(), auth, settings, &cancel);
    let runner = marketplace::wiring::spawn_projections(server_pool.clone(), 500, cancel.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/deployments", listener.local_addr()?);
    let api = marketplace::wiring::spawn_api(listener, state, cancel.clone());
    Ok(Stack {
        pg,
        dir,
        url,
        db_url,
        server_pool,
        bench_pool,
        cancel,
        runner,
        api,
    })
}

impl Stack {
    async fn stop(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        let _ = self.api.await;
        let _ = self.runner.await;
        self.bench_pool.close().await;
        self.server_pool.close().await;
        self.pg.stop().await?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// Accepted commands waiting to show up in the view, and how long they took.
#[derive(Default)]
struct Visibility {
    pending: Mutex<HashMap<Uuid, Instant>>,
    seen: Mutex<Vec<Duration>>,
}

/// Polls the view every [`POLL`] for the pending ids until `stop` is set and
/// nothing is pending (or [`VISIBLE_TIMEOUT`] passed since `stop`).
async fn poll_visibility(pool: PgPool, vis: Arc<Visibility>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopped_at: Option<Instant> = None;
    loop {
        tick.tick().await;
        let ids: Vec<Uuid> = vis.pending.lock().unwrap().keys().copied().collect();
        if stop.load(Ordering::Acquire) {
            let since = *stopped_at.get_or_insert_with(Instant::now);
            if ids.is_empty() || since.elapsed() > VISIBLE_TIMEOUT {
                return;
            }
        }
        if ids.is_empty() {
            continue;
        }
        let found: Vec<Uuid> = match sqlx::query_scalar(
            "SELECT id FROM deployment_views WHERE id = ANY($1) AND version >= 1",
        )
        .bind(&ids)
        .fetch_all(&pool)
        .await
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("visibility poll failed: {e}");
                continue;
            }
        };
        let now = Instant::now();
        let mut pending = vis.pending.lock().unwrap();
        let mut seen = vis.seen.lock().unwrap();
        for id in found {
            if let Some(at) = pending.remove(&id) {
                seen.push(now - at);
            }
        }
    }
}

#[derive(Default)]
struct Load {
    ok: usize,
    failed: usize,
    errors: Vec<String>,
    elapsed: Duration,
    /// Request sent to 202 headers received.
    latencies: Vec<Duration>,
}

impl Load {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.errors.len() < 5 {
            self.errors.push(why);
        }
    }
}

/// Sends `n` requests with `c` workers; names are `{tag}{i}`. With a
/// `rate` (commands/s), request `i` is not sent before `i / rate` seconds
/// into the run: an arrival rate held whatever the answers' latency, as
/// long as `c` requests in flight are enough for it.
#[allow(clippy::too_many_arguments)]
async fn run_load(
    url: &str,
    tokens: &[String],
    n: usize,
    c: usize,
    tag: &str,
    keyed: bool,
    vis: Option<Arc<Visibility>>,
    rate: Option<f64>,
) -> Load {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..c {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("http client");
        let (url, token, next, tag, vis) = (
            url.to_string(),
            tokens[w % tokens.len()].clone(),
            next.clone(),
            tag.to_string(),
            vis.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut out = Load::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut req = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&vm_body(&format!("{tag}{i}")));
                if keyed {
                    req = req.header("Idempotency-Key", format!("{tag}-{i}"));
                }
                let sent = Instant::now();
                let r = match req.send().await {
                    Ok(r) => r,
                    Err(e) => {
                        out.fail(format!("transport: {e}"));
                        continue;
                    }
                };
                let got = Instant::now();
                let status = r.status().as_u16();
                let body = match r.bytes().await {
                    Ok(b) => b,
                    Err(e) => {
                        out.fail(format!("body: {e}"));
                        continue;
                    }
                };
                if status != 202 {
                    out.fail(format!("{status}: {}", String::from_utf8_lossy(&body)));
                    continue;
                }
                if let Some(vis) = &vis {
                    let id = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()));
                    match id {
                        Some(id) => {
                            vis.pending.lock().unwrap().insert(id, got);
                        }
                        None => {
                            out.fail(format!("202 without an id: {body:?}"));
                            continue;
                        }
                    }
                }
                out.ok += 1;
                out.latencies.push(got - sent);
            }
            out
        }));
    }
    let mut total = Load::default();
    for w in workers {
        let out = w.await.expect("worker panicked");
        total.ok += out.ok;
        total.failed += out.failed;
        total.errors.extend(out.errors);
        total.latencies.extend(out.latencies);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort();
    total
}

/// `n` commands from `c` workers (at `rate` if given) while one poller
/// times each from its 202 to its row in the view; an accepted command
/// never seen counts as a failure. The times come back sorted.
async fn visible_under_load(
    stack: &Stack,
    tokens: &[String],
    n: usize,
    c: usize,
    tag: &str,
    rate: Option<f64>,
) -> (Load, Vec<Duration>) {
    let vis = Arc::new(Visibility::default());
    let stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_visibility(
        stack.bench_pool.clone(),
        vis.clone(),
        stop.clone(),
    ));
    let mut load = run_load(
        &stack.url,
        tokens,
        n,
        c,
        tag,
        false,
        Some(vis.clone()),
        rate,
    )
    .await;
    stop.store(true, Ordering::Release);
    poller.await.expect("poller");
    let missing = vis.pending.lock().unwrap().len();
    for _ in 0..missing {
        load.fail("accepted but never visible".into());
    }
    let mut seen = std::mem::take(&mut *vis.seen.lock().unwrap());
    seen.sort();
    (load, seen)
}

/// One command at a time; after each 202, polls its view row every 1 ms.
async fn run_paced(url: &str, token: &str, pool: &PgPool, n: usize) -> (Load, Vec<Duration>) {
    let client = reqwest::Client::new();
    let mut load = Load::default();
    let mut seen = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let sent = Instant::now();
        let r = client
            .post(url)
            .bearer_auth(token)
            .json(&vm_body(&format!("p{i}")))
            .send()
            .await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                load.fail(format!("transport: {e}"));
                continue;
            }
        };
        let got = Instant::now();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let id = body["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
        let Some(id) = id.filter(|_| status == 202) else {
            load.fail(format!("{status}: {body}"));
            continue;
        };
        load.ok += 1;
        load.latencies.push(got - sent);
        loop {
            let v: Option<i64> =
                sqlx::query_scalar("SELECT version FROM deployment_views WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .expect("poll view");
            if v.is_some_and(|v| v >= 1) {
                seen.push(got.elapsed());
                break;
            }
            if got.elapsed() > VISIBLE_TIMEOUT {
                load.fail(format!("{id} not visible after {VISIBLE_TIMEOUT:?}"));
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }
    load.elapsed = started.elapsed();
    load.latencies.sort();
    seen.sort();
    (load, seen)
}

/// What the database backends were doing, sampled every 10 ms, plus how many
/// of the server pool's connections were checked out.
#[derive(Default)]
struct Waits {
    samples: u64,
    counts: HashMap<String, u64>,
    pool_in_use_sum: u64,
    pool_in_use_max: u32,
    notify_lock_waiters: u64,
}

async fn sample_waits(bench: PgPool, server: PgPool, stop: Arc<AtomicBool>) -> Waits {
    let mut w = Waits::default();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let in_use = server.size().saturating_sub(server.num_idle() as u32);
        w.pool_in_use_sum += u64::from(in_use);
        w.pool_in_use_max = w.pool_in_use_max.max(in_use);
        let rows: Vec<(String, i64)> = match sqlx::query_as(
            "SELECT CASE WHEN state = 'active'
                         THEN coalesce(wait_event_type || ':' || wait_event, 'on CPU')
                         ELSE state END,
                    count(*)
               FROM pg_stat_activity
              WHERE datname = current_database() AND application_name <> 'bench'
                AND backend_type = 'client backend' AND state <> 'idle'
              GROUP BY 1",
        )
        .fetch_all(&bench)
        .await
        {
            Ok(r) => r,
            Err(_) => continue,
        };
        // A transaction that ran NOTIFY (the events trigger, the runner's
        // pg_notify) holds this lock from pre-commit until after its commit
        // record is flushed, so such commits are serialised.
        let notify_waiters: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks
              WHERE locktype = 'object' AND classid = 'pg_database'::regclass
                AND objid = 0 AND NOT granted",
        )
        .fetch_one(&bench)
        .await
        .unwrap_or(0);
        w.notify_lock_waiters += notify_waiters as u64;
        w.samples += 1;
        for (what, n) in rows {
            *w.counts.entry(what).or_default() += n as u64;
        }
    }
    w
}

/// Whole-machine and own-process CPU time, in seconds.
fn cpu_times() -> (f64, f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    let iowait = get(4);
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = own.rsplit_once(')').map(|(_, s)| s).unwrap_or_default();
    let g: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields after the comm start at field 3 (state, not numeric, dropped).
    let own_cpu = g.get(10).copied().unwrap_or(0.0) + g.get(11).copied().unwrap_or(0.0);
    (busy / hz, iowait / hz, own_cpu / hz)
}

struct Row {
    mode: &'static str,
    what: String,
    load: Load,
    visible: Option<Vec<Duration>>,
}

async fn wait_for_views(pool: &PgPool, expected: i64) -> Option<Duration> {
    let started = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM deployment_views")
            .fetch_one(pool)
            .await
            .expect("count views");
        if n >= expected {
            return Some(started.elapsed());
        }
        if started.elapsed() > VISIBLE_TIMEOUT {
            return None;
        }
        // Not too often: counting the view is not free and competes with the runner.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run_mode(
    durable: bool,
    cfg: &Config,
    key: &SigningKey,
    tokens: &[String],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<bool> {
    let mode = if durable { "durable" } else { "non-durable" };
    eprintln!("[{mode}] starting PostgreSQL, API and projection runner");
    let stack = start(durable, cfg, key).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&stack.bench_pool)
        .await?;
    notes.push(format!(
        "[{mode}] PostgreSQL {version}; server pool {} connections; projection batch 500",
        cfg.pool
    ));
    let (c, mut accepted, mut ok) = (cfg.concurrency, 0i64, true);
    // The plain command phase's rate, which the paced phases take shares of.
    let mut max_rate: Option<f64> = None;
    // The database's own speed, in this run, on this server: `pgbench`,
    // C clients each inserting one event-sized row per transaction into a
    // table shaped like the store (its columns, key and commit-order index).
    let baseline = match common::pgbench_baseline(&stack.db_url, &stack.bench_pool, c).await {
        Ok(tps) => {
            notes.push(format!(
                "[{mode}] pgbench baseline: {tps:.0} single-row inserts/s at {c} clients (10 s)"
            ));
            Some(tps)
        }
        Err(e) => {
            notes.push(format!("[{mode}] pgbench baseline not run: {e}"));
            None
        }
    };

    eprintln!("[{mode}] warm-up: {} requests", cfg.warmup);
    let warm = run_load(&stack.url, tokens, cfg.warmup, c, "w", false, None, None).await;
    accepted += warm.ok as i64;
    if warm.failed > 0 {
        rows.push(Row {
            mode,
            what: "warm-up".into(),
            load: warm,
            visible: None,
        });
    }
    if wait_for_views(&stack.bench_pool, accepted).await.is_none() {
        notes.push(format!("[{mode}] warm-up views never caught up"));
        ok = false;
    }

    // Profile the command phases only (not pgbench, not the warm-up).
    if std::env::var("MARKETPLACE_PG_SETTINGS").is_ok_and(|v| v.contains("pg_stat_statements")) {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&stack.bench_pool)
            .await?;
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&stack.bench_pool)
            .await?;
    }
    let mut phases = vec![("t", false)];
    if cfg.idempotency {
        phases.push(("k", true));
    }
    for (tag, keyed) in phases {
        let what = if keyed {
            format!("POST + Idempotency-Key, C={c}")
        } else {
            format!("POST /v1/deployments, C={c}")
        };
        eprintln!("[{mode}] {what}: {} requests", cfg.requests);
        let stop = Arc::new(AtomicBool::new(!cfg.sample_waits));
        let sampler = tokio::spawn(sample_waits(
            stack.bench_pool.clone(),
            stack.server_pool.clone(),
            stop.clone(),
        ));
        let stats = &marketplace_app::bus::group::STATS;
        let batches0 = stats.batches.load(Ordering::Relaxed);
        let appends0 = stats.appends.load(Ordering::Relaxed);
        let cpu0 = cpu_times();
        let load = run_load(&stack.url, tokens, cfg.requests, c, tag, keyed, None, None).await;
        let cpu1 = cpu_times();
        let batches = stats.batches.load(Ordering::Relaxed) - batches0;
        let appends = stats.appends.load(Ordering::Relaxed) - appends0;
        stop.store(true, Ordering::Release);
        let waits = sampler.await.expect("sampler");
        accepted += load.ok as i64;
        let views_then: i64 = sqlx::query_scalar("SELECT count(*) FROM deployment_views")
            .fetch_one(&stack.bench_pool)
            .await?;
        let drain = wait_for_views(&stack.bench_pool, accepted).await;
        let secs = load.elapsed.as_secs_f64();
        if !keyed {
            max_rate = Some(load.ok as f64 / secs.max(1e-9));
        }
        let machine = (cpu1.0 - cpu0.0) / secs;
        let own = (cpu1.2 - cpu0.2) / secs;
        if let Some(tps) = baseline {
            let rate = load.ok as f64 / secs;
            notes.push(format!(
                "[{mode}] {what}: {rate:.0} commands/s = {:.2}x the pgbench baseline; {appends} commands in {batches} group commits ({:.1} a transaction)",
                rate / tps,
                appends as f64 / batches.max(1) as f64
            ));
        }
        notes.push(format!(
            "[{mode}] {what}: CPU busy {machine:.2} cores of {} (this process: client+API+runner {own:.2}; rest, mostly PostgreSQL, {:.2}); iowait {:.2} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            machine - own,
            (cpu1.1 - cpu0.1) / secs,
        ));
        notes.push(match drain {
            Some(d) => format!(
                "[{mode}] {what}: at the last 202 the projection was {} events behind; caught up {:.0} ms later ({:.0} events/s with no command load)",
                accepted - views_then,
                ms(d),
                (accepted - views_then) as f64 / d.as_secs_f64().max(1e-9)
            ),
            None => {
                ok = false;
                format!("[{mode}] {what}: views did NOT catch up within {VISIBLE_TIMEOUT:?}")
            }
        });
        let mut top: Vec<_> = waits.counts.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        let per = |n: u64| n as f64 / waits.samples.max(1) as f64;
        let list: Vec<String> = top
            .iter()
            .take(6)
            .map(|(k, n)| format!("{k} {:.1}", per(**n)))
            .collect();
        if cfg.sample_waits {
            notes.push(format!(
            "[{mode}] {what}: non-idle backends on average ({} samples): {}; of them waiting for the NOTIFY commit lock {:.2}; server pool in use avg {:.1}, max {}",
            waits.samples,
            list.join(", "),
            per(waits.notify_lock_waiters),
            per(waits.pool_in_use_sum),
            waits.pool_in_use_max
        ));
        }
        rows.push(Row {
            mode,
            what,
            load,
            visible: None,
        });
    }

    let n = cfg.latency_samples;
    if std::env::var("MARKETPLACE_PG_SETTINGS").is_ok_and(|v| v.contains("pg_stat_statements")) {
        notes.extend(top_statements(&stack.bench_pool, mode).await);
    }
    eprintln!("[{mode}] accepted-to-visible under load: {n} requests, C={c}");
    let (load, seen) = visible_under_load(&stack, tokens, n, c, "l", None).await;
    accepted += load.ok as i64;
    rows.push(Row {
        mode,
        what: format!("visible (poll ANY, 1 ms), C={c}"),
        load,
        visible: Some(seen),
    });

    // The same at a held arrival rate: 50% and 80% of the plain phase's
    // maximum (the issue's visibility targets are stated at those loads).
    if let Some(max) = max_rate {
        for share in [0.5, 0.8] {
            let rate = max * share;
            eprintln!(
                "[{mode}] accepted-to-visible at {:.0}% of the maximum ({rate:.0}/s): {n} requests",
                share * 100.0
            );
            let tag = format!("r{}", (share * 100.0) as u32);
            let (load, seen) = visible_under_load(&stack, tokens, n, c, &tag, Some(rate)).await;
            accepted += load.ok as i64;
            rows.push(Row {
                mode,
                what: format!("visible, {:.0}% of max = {rate:.0}/s", share * 100.0),
                load,
                visible: Some(seen),
            });
        }
    }

    let p = cfg.paced_samples;
    eprintln!("[{mode}] accepted-to-visible paced: {p} requests, one at a time");
    let (load, seen) = run_paced(&stack.url, &tokens[0], &stack.bench_pool, p).await;
    accepted += load.ok as i64;
    rows.push(Row {
        mode,
        what: "visible (poll id, 1 ms), paced C=1".into(),
        load,
        visible: Some(seen),
    });

    // The deployments' events only: each token's subject also opens its
    // user (one `UserRegistered`) on its first request.
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'deployment'")
            .fetch_one(&stack.bench_pool)
            .await?;
    let views: i64 = sqlx::query_scalar("SELECT count(*) FROM deployment_views")
        .fetch_one(&stack.bench_pool)
        .await?;
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&stack.bench_pool)
        .await?;
    notes.push(format!(
        "[{mode}] accepted {accepted}; events stored {events}; views {views}; dead letters {dead}"
    ));
    if events != accepted || views != accepted || dead != 0 {
        ok = false;
    }
    stack.stop().await?;
    Ok(ok)
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<12} {:<36} {:>6} {:>5} {:>7} {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}",
        "mode",
        "phase",
        "ok",
        "fail",
        "secs",
        "cmd/s",
        "202 p50",
        "p99",
        "max",
        "vis p50",
        "p99",
        "max"
    );
    println!("{}", "-".repeat(142));
    for r in rows {
        let l = &r.load;
        let secs = l.elapsed.as_secs_f64();
        let (v50, v99, vmax) = match &r.visible {
            Some(v) => (
                format!("{:.2}", pct(v, 0.50)),
                format!("{:.2}", pct(v, 0.99)),
                format!("{:.2}", pct(v, 1.0)),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (l50, l99, lmax) = if l.latencies.is_empty() {
            ("-".into(), "-".into(), "-".into())
        } else {
            (
                format!("{:.2}", pct(&l.latencies, 0.50)),
                format!("{:.2}", pct(&l.latencies, 0.99)),
                format!("{:.2}", pct(&l.latencies, 1.0)),
            )
        };
        println!(
            "{:<12} {:<36} {:>6} {:>5} {:>7.2} {:>8.0} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}",
            r.mode,
            r.what,
            l.ok,
            l.failed,
            secs,
            l.ok as f64 / secs,
            l50,
            l99,
            lmax,
            v50,
            v99,
            vmax
        );
    }
    println!("(times in ms; 202 = request sent to 202 headers received; vis = 202 received to row visible in deployment_views)");
}

/// What verifying one RS256 token costs the API (every request does it).
async fn verify_cost(key: &SigningKey, token: &str) -> String {
    let auth = Authenticator::new(AuthConfig {
        jwks_url: "http://127.0.0.1:9/unused/jwks.json".into(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        roles_claim: ROLES_CLAIM.into(),
        leeway_secs: 30,
    });
    auth.preload(&key.jwks()).await;
    let n = 500;
    let started = Instant::now();
    for _ in 0..n {
        auth.verify(token).await.expect("bench token verifies");
    }
    let per = started.elapsed() / n;
    format!(
        "RS256 token verification (Authenticator::verify, one task): {:.0} µs per request",
        per.as_secs_f64() * 1e6
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::from_env();
    let key = SigningKey::generate()?;
    let now = chrono::Utc::now().timestamp();
    let tokens: Vec<String> = (0..cfg.concurrency)
        .map(|w| {
            key.sign(&json!({
                "iss": ISSUER, "aud": AUDIENCE, "sub": format!("bench{w}"),
                "iat": now, "nbf": now - 1, "exp": now + 4 * 3600,
                ROLES_CLAIM: ["cloud-user"],
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    eprintln!(
        "requests {} (after {} warm-up), concurrency {}, latency samples {} + {} paced",
        cfg.requests, cfg.warmup, cfg.concurrency, cfg.latency_samples, cfg.paced_samples
    );

    let mut rows = Vec::new();
    let mut notes = vec![machine_line(
        "client, API, projection runner and PostgreSQL",
    )];
    notes.push(verify_cost(&key, &tokens[0]).await);
    let mut ok = true;
    for durable in cfg.modes.clone() {
        ok &= run_mode(durable, &cfg, &key, &tokens, &mut rows, &mut notes).await?;
    }

    // The API shares this process with the load generator and the runner:
    // the process's peak resident set bounds the API's.
    if let Some(peak) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
    {
        notes.push(format!(
            "peak resident set of this process (client, API and runner together): {}",
            peak.trim_start_matches("VmHWM:").trim()
        ));
    }
    print_table(&rows);
    println!();
    for n in &notes {
        println!("{n}");
    }
    let failed: usize = rows.iter().map(|r| r.load.failed).sum();
    for r in rows.iter().filter(|r| r.load.failed > 0) {
        for e in &r.load.errors {
            println!("[{}] {}: {e}", r.mode, r.what);
        }
    }
    if failed > 0 || !ok {
        eprintln!("FAILED: {failed} commands not accepted or never visible, or store/view counts disagree");
        std::process::exit(1);
    }
    Ok(())
}
