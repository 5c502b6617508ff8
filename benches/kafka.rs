//! The Kafka path, measured on one machine: relay throughput into Kafka,
//! command-accepted-to-visible latency through store -> relay -> Kafka ->
//! projection worker -> view at a steady command rate, and rebuild speed over
//! a large store.
//!
//! Everything runs here: a private PostgreSQL (durable: fsync and
//! synchronous_commit on), an Apache Kafka broker (`KAFKA_BROKERS`, or one
//! started from `.ci/kafka/broker`), and in this process the API, the relay
//! and the deployments projection worker. They all share the machine's CPUs.
//!
//! Phases:
//! 1. relay: `BENCH_RELAY_EVENTS` (200,000) events inserted into the store,
//!    then a relay started; time until its checkpoint reaches the last one.
//! 2. end to end: `POST /v1/deployments` at `BENCH_RATE` (500) per second
//!    for `BENCH_SECONDS` (20); a poller (1 ms) times each accepted command
//!    until its row is in the Kafka-fed view.
//! 3. rebuild: the store grown to `BENCH_REBUILD_EVENTS` (1,000,000)
//!    deployment events (copies of a real requested + placed pair under new
//!    ids), then `replay deployments`' rebuild timed.
//!
//! `cargo bench --bench kafka`. Exits non-zero if a command is refused or
//! never becomes visible.

use std::collections::HashMap;
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
use marketplace_projections::deployments::DeploymentProjection;
use marketplace_projections::tail;
use marketplace_workers::kafka::consumer::WorkerOptions;
use marketplace_workers::kafka::relay::{self, RelayOptions};
use marketplace_workers::kafka::KafkaConfig;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A broker from KAFKA_BROKERS, or one of our own for the run.
struct Broker {
    addr: String,
    child: Option<std::process::Child>,
    dir: Option<std::path::PathBuf>,
}

impl Broker {
    fn start() -> anyhow::Result<Broker> {
        if let Ok(addr) = std::env::var("KAFKA_BROKERS") {
            return Ok(Broker {
                addr,
                child: None,
                dir: None,
            });
        }
        let port = || -> anyhow::Result<u16> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        let (p, c) = (port()?, port()?);
        let dir =
            std::env::temp_dir().join(format!("marketplace-bench-kafka-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("broker.log"))?;
        let child =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/kafka/broker"))
                .args([
                    p.to_string(),
                    c.to_string(),
                    dir.join("broker").display().to_string(),
                ])
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
        let started = Instant::now();
        while !std::fs::read_to_string(dir.join("broker.log"))?.contains("Kafka Server started") {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "the broker did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Broker {
            addr: format!("127.0.0.1:{p}"),
            child: Some(child),
            dir: Some(dir),
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn kafka(addr: &str, prefix: &str) -> KafkaConfig {
    let mut config = KafkaConfig::local(addr);
    config.topic_prefix = prefix.into();
    config
}

async fn database(pg: &EmbeddedPostgres, name: &str) -> anyhow::Result<(PgPool, String)> {
    pg.ensure_database(name).await?;
    let url = pg.url(name);
    let pool = marketplace::wiring::connect(&url.clone().into(), 32).await?;
    marketplace::MIGRATOR.run(&pool).await?;
    Ok((pool, url))
}

async fn relay_at_head(pool: &PgPool) -> anyhow::Result<bool> {
    let behind: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e WHERE (e.txid, e.position) > coalesce(
            (SELECT (last_txid, last_position) FROM relay_checkpoints WHERE relay = 'main'),
            (0::bigint, 0::bigint))",
    )
    .fetch_one(pool)
    .await?;
    Ok(behind == 0)
}

fn relay_options() -> RelayOptions {
    let mut options = RelayOptions::new("main");
    options.aggregate_types = vec!["deployment".into()];
    options
}

/// Phase 1: events/s the relay gets acknowledged by Kafka.
async fn relay_phase(pg: &EmbeddedPostgres, broker: &Broker) -> anyhow::Result<String> {
    let n = env_num("BENCH_RELAY_EVENTS", 200_000);
    let (pool, _) = database(pg, "relay_bench").await?;
    let payload = json!({ "DeploymentRequested": { "owner": "bench", "name": "relaybench", "spec": vm_body("x")["spec"], "placement": vm_body("x")["placement"], "at": "2026-11-22T00:00:00Z" } });
    let meta = json!({ "actor_subject": "bench", "actor_role": "cloud-user", "correlation_id": Uuid::new_v4().to_string(), "request_id": Uuid::new_v4().to_string() });
    let mut left = n;
    while left > 0 {
        let chunk = left.min(50_000);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'deployment', gen_random_uuid()::text, 1, 'DeploymentRequested', '1', $1, $2
               FROM generate_series(1, $3)",
        )
        .bind(&payload)
        .bind(&meta)
        .bind(chunk as i64)
        .execute(&pool)
        .await?;
        left -= chunk;
    }
    let bytes: i64 = sqlx::query_scalar(
        "SELECT avg(length(payload::text) + length(metadata::text))::bigint FROM events",
    )
    .fetch_one(&pool)
    .await?;
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(relay::run(
        pool.clone(),
        kafka(&broker.addr, "relaybench"),
        relay_options(),
        cancel.clone(),
    ));
    while !relay_at_head(&pool).await? {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    cancel.cancel();
    let _ = task.await;
    pool.close().await;
    Ok(format!(
        "relay: {n} events (~{bytes} B of JSON each) published and acknowledged in {secs:.1} s = {:.0} events/s (includes the relay's start: leader lock, producer, topic creation)",
        n as f64 / secs
    ))
}

/// Phase 2 and 3 share this store.
async fn end_to_end_phase(
    pg: &EmbeddedPostgres,
    broker: &Broker,
    key: &SigningKey,
) -> anyhow::Result<(String, bool, PgPool)> {
    let rate = env_num("BENCH_RATE", 500);
    let seconds = env_num("BENCH_SECONDS", 20);
    let (pool, _) = database(pg, "e2e_bench").await?;
    let config = kafka(&broker.addr, "e2ebench");
    let cancel = CancellationToken::new();
    let auth = Authenticator::new(AuthConfig {
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
        dev_jwks: None,
        // Measures something else: the limiter off (benches/rate_limit.rs measures it).
        rate_limit: marketplace_api::rate_limit::RateLimitConfig::off(),
        metrics: marketplace_api::metrics::MetricsAccess::open(),
        payments: None,
    };
    let state = marketplace::wiring::app_state(pool.clone(), auth, settings, &cancel);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    marketplace::wiring::spawn_api(listener, state, cancel.clone());
    tokio::spawn(relay::run(
        pool.clone(),
        config.clone(),
        relay_options(),
        cancel.clone(),
    ));
    marketplace::wiring::spawn_kafka_workers(
        &pool,
        &config,
        &WorkerOptions::default(),
        vec![marketplace_projections::named("deployments").expect("registered")],
        &cancel,
    );

    let now = chrono::Utc::now().timestamp();
    let token = key.sign(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "bench",
        "iat": now, "nbf": now - 1, "exp": now + 4 * 3600,
        ROLES_CLAIM: ["cloud-user"],
    }))?;
    let operator = key.sign(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "ops",
        "iat": now, "nbf": now - 1, "exp": now + 4 * 3600,
        ROLES_CLAIM: ["cloud-operator"],
    }))?;
    let client = reqwest::Client::new();

    // Warm up: the group joins and the first batch goes through.
    let warm: Value = client
        .post(format!("{base}/v1/deployments"))
        .bearer_auth(&token)
        .json(&vm_body("warmup"))
        .send()
        .await?
        .json()
        .await?;
    let warm_id = warm["id"].as_str().unwrap_or_default().to_string();
    let placed = client
        .post(format!("{base}/v1/deployments/{warm_id}/node"))
        .bearer_auth(&operator)
        .json(&json!({ "node_id": 11, "farm_id": 1 }))
        .send()
        .await?;
    anyhow::ensure!(
        placed.status() == 202,
        "placing the warm-up deployment failed"
    );
    loop {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT version FROM deployment_views WHERE id = $1::uuid")
                .bind(&warm_id)
                .fetch_optional(&pool)
                .await?;
        if v == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pending: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let seen: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (pool, pending, seen, stop) =
            (pool.clone(), pending.clone(), seen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut stopped: Option<Instant> = None;
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let ids: Vec<Uuid> = pending.lock().unwrap().keys().copied().collect();
                if stop.load(Ordering::Acquire) {
                    let since = *stopped.get_or_insert_with(Instant::now);
                    if ids.is_empty() || since.elapsed() > Duration::from_secs(60) {
                        return;
                    }
                }
                if ids.is_empty() {
                    continue;
                }
                let found: Vec<Uuid> =
                    sqlx::query_scalar("SELECT id FROM deployment_views WHERE id = ANY($1)")
                        .bind(&ids)
                        .fetch_all(&pool)
                        .await
                        .unwrap_or_default();
                let now = Instant::now();
                let mut p = pending.lock().unwrap();
                let mut s = seen.lock().unwrap();
                for id in found {
                    if let Some(at) = p.remove(&id) {
                        s.push(now - at);
                    }
                }
            }
        })
    };
    let total = rate * seconds;
    let refused = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let (client, base, token, pending, refused) = (
            client.clone(),
            base.clone(),
            token.clone(),
            pending.clone(),
            refused.clone(),
        );
        sends.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/v1/deployments"))
                .bearer_auth(&token)
                .json(&vm_body(&format!("e{i}")))
                .send()
                .await;
            let accepted = Instant::now();
            match r {
                Ok(r) if r.status() == 202 => {
                    let v: Value = r.json().await.unwrap_or_default();
                    match v["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                        Some(id) => {
                            pending.lock().unwrap().insert(id, accepted);
                        }
                        None => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                _ => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for s in sends {
        let _ = s.await;
    }
    let sent_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let _ = poller.await;
    let mut lat = seen.lock().unwrap().clone();
    lat.sort_unstable();
    let missing = pending.lock().unwrap().len();
    let refused = refused.load(Ordering::Relaxed);
    cancel.cancel();
    let ok = missing == 0 && refused == 0;
    Ok((
        format!(
            "end to end at {rate}/s for {seconds} s ({total} commands sent in {sent_secs:.1} s, {refused} refused, {missing} never visible): accepted -> visible in the Kafka-fed view p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(&lat, 0.5),
            pct(&lat, 0.9),
            pct(&lat, 0.99),
            pct(&lat, 1.0)
        ),
        ok,
        pool,
    ))
}

/// Phase 3: the store grown to BENCH_REBUILD_EVENTS, then a rebuild.
async fn rebuild_phase(pool: &PgPool) -> anyhow::Result<String> {
    let target = env_num("BENCH_REBUILD_EVENTS", 1_000_000) as i64;
    let template: String = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE sequence = 2 AND aggregate_type = 'deployment' LIMIT 1",
    )
    .fetch_one(pool)
    .await?;
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let mut copies = ((target - have).max(0) + 1) / 2;
    let filled = Instant::now();
    while copies > 0 {
        let chunk = copies.min(50_000);
        sqlx::query(
            // MATERIALIZED: the ids are drawn once per copy. Unmaterialized,
            // the planner may rescan the series for each template event,
            // drawing new ids, so that every copied event starts an
            // aggregate of its own (a gap the projection dead-letters).
            "WITH ids AS MATERIALIZED (SELECT n, gen_random_uuid()::text AS id FROM generate_series(1, $2) n)
             INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT t.aggregate_type, ids.id, t.sequence, t.event_type, t.event_version, t.payload, t.metadata
               FROM ids CROSS JOIN (SELECT * FROM events WHERE aggregate_id = $1) t
              ORDER BY ids.n, t.sequence",
        )
        .bind(&template)
        .bind(chunk)
        .execute(pool)
        .await?;
        copies -= chunk;
    }
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    eprintln!(
        "store filled to {total} events in {:.0} s",
        filled.elapsed().as_secs_f64()
    );
    let batch = env_num("BENCH_REBUILD_BATCH", 1000) as i64;
    let started = Instant::now();
    let read = tail::rebuild(pool, &DeploymentProjection, batch).await?;
    let secs = started.elapsed().as_secs_f64();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM deployment_views")
        .fetch_one(pool)
        .await?;
    Ok(format!(
        "rebuild of deployments over {total} stored events (batch {batch}): {read} events in {secs:.1} s = {:.0} events/s, {rows} view rows, swapped in",
        read as f64 / secs
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let broker = Broker::start()?;
    let dir =
        std::env::temp_dir().join(format!("marketplace-bench-kafka-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable: true,
        max_connections: 200,
    })
    .await?;
    let key = SigningKey::generate()?;
    let mut lines = vec![machine_line(
        "PostgreSQL, Kafka, API, relay, worker and load",
    )];
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "relay,e2e,rebuild".into());
    if phases.contains("relay") {
        lines.push(relay_phase(&pg, &broker).await?);
        eprintln!("{}", lines.last().unwrap());
    }
    let mut ok = true;
    if phases.contains("e2e") || phases.contains("rebuild") {
        let (line, fine, pool) = end_to_end_phase(&pg, &broker, &key).await?;
        ok = fine;
        lines.push(line);
        eprintln!("{}", lines.last().unwrap());
        if phases.contains("rebuild") {
            lines.push(rebuild_phase(&pool).await?);
        }
        pool.close().await;
    }
    for l in &lines {
        println!("{l}");
    }
    pg.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(ok, "some commands were refused or never became visible");
    Ok(())
}
