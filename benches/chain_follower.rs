//! The chain-event follower: throughput over many simulated chain events,
//! and the lag from a bill on the chain to the debit visible in
//! `GET /v1/wallet`.
//!
//! Everything runs in this process, as `marketplace dev` wires it: a private
//! PostgreSQL (durable by default), migrations, the grid SIMULATOR billing
//! every BENCH_CYCLE blocks (10: a simulated minute), every projection
//! runner and the API, on one pool of 32 connections. BENCH_USERS users
//! each get a custodial account (funded), a twin, a wallet that knows it,
//! and a rent contract on a node of their own (a whole node billed every
//! cycle, no deployment needed). The clock then advances until the chain
//! holds about BENCH_EVENTS events (bills, and nodes' uptime reports).
//!
//! - **Throughput**: first the chain port alone reads every event, page by
//!   page (the baseline: what the follower cannot beat), then the follower
//!   applies them all from an empty cursor (BENCH_CONCURRENCY wallets at a
//!   time, pages of 500): events/s of each, and their ratio.
//! - **Lag**: with the follower running (poll BENCH_POLL_MS, the
//!   production default 1000, then 50), the clock advances one cycle at a
//!   time, BENCH_LAG_SAMPLES times; the time from the advance's answer (the
//!   bills are on chain) to user 0's `GET /v1/wallet` showing the new
//!   balance, p50 and p99.
//!
//! `cargo bench --bench chain_follower`. Environment: BENCH_USERS (100),
//! BENCH_EVENTS (100000), BENCH_CYCLE (10), BENCH_CONCURRENCY (8),
//! BENCH_POLL_MS (`1000,50`), BENCH_LAG_SAMPLES (40), BENCH_DURABLE (1).

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use marketplace_app::grid::types::{NodePower, NodeStatus, PowerState};
use marketplace_app::tfchain::http::HttpChain;
use marketplace_app::tfchain::{Chain, Custody, EventId};
use marketplace_app::{EventMetadata, Exec, Stores};
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::grid_sim::{self as sim, Seed, SimOptions};
use marketplace_dev::keys::SigningKey;
use marketplace_domain::wallet::WalletCommand;
use marketplace_workers::chain::{ChainFollower, FollowerOptions};
use marketplace_workers::runtime::Round;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The custodial accounts' master secret (a bench's, worth nothing).
const CHAIN_SEED: &str = "0x5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

struct Config {
    users: u32,
    events: usize,
    cycle: u32,
    concurrency: usize,
    polls: Vec<u64>,
    samples: usize,
    durable: bool,
}

impl Config {
    fn from_env() -> Self {
        Self {
            users: env_num("BENCH_USERS", 100) as u32,
            events: env_num("BENCH_EVENTS", 100_000),
            cycle: env_num("BENCH_CYCLE", 10) as u32,
            concurrency: env_num("BENCH_CONCURRENCY", 8).max(1),
            polls: std::env::var("BENCH_POLL_MS")
                .unwrap_or_else(|_| "1000,50".into())
                .split(',')
                .map(|s| s.trim().parse().expect("BENCH_POLL_MS: numbers"))
                .collect(),
            samples: env_num("BENCH_LAG_SAMPLES", 40).max(1),
            durable: env_num("BENCH_DURABLE", 1) != 0,
        }
    }
}

/// One rentable node per user, up and reporting.
fn catalog(cfg: &Config) -> Seed {
    let mut seed = Seed::generate((cfg.users / 10).max(1), cfg.users, 7);
    seed.now = Some(Utc::now().timestamp());
    for n in &mut seed.nodes {
        n.status = NodeStatus::Up;
        n.power = NodePower {
            state: PowerState::Up,
            target: PowerState::Up,
        };
        n.healthy = true;
        n.uptime = 45 * 86_400;
        n.rentable = true;
        n.rented = false;
        n.rented_by_twin_id = 0;
        n.rent_contract_id = 0;
        n.dedicated = false;
        n.used_resources = Default::default();
    }
    seed
}

async fn control(
    http: &reqwest::Client,
    sim: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let r = http.post(format!("{sim}{path}")).json(&body).send().await?;
    anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
    Ok(r.json().await.unwrap_or(Value::Null))
}

async fn events_on_chain(chain: &dyn Chain) -> anyhow::Result<(usize, Duration)> {
    let t = Instant::now();
    let (mut after, mut n): (Option<EventId>, usize) = (None, 0);
    loop {
        let page = chain.events(after, 500).await?;
        let Some(last) = page.last() else {
            return Ok((n, t.elapsed()));
        };
        after = Some(last.id);
        n += page.len();
    }
}

async fn balance(http: &reqwest::Client, api: &str, token: &str) -> anyhow::Result<i64> {
    let w: Value = http
        .get(format!("{api}/v1/wallet"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    w["balance_tft_units"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no balance in {w}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::from_env();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("marketplace-bench-follower-{pid}"));
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
    let pool = marketplace::wiring::connect(&db_url.clone().into(), 32).await?;
    marketplace::MIGRATOR.run(&pool).await?;
    let bench_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(PgConnectOptions::from_str(&db_url)?.application_name("bench"))
        .await?;
    let cancel = CancellationToken::new();
    let http = reqwest::Client::new();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let sim_url = format!("http://{}", listener.local_addr()?);
    let options = SimOptions {
        workload_delay: Duration::ZERO,
        billing_cycle_blocks: cfg.cycle,
        ..SimOptions::default()
    };
    let simulator = sim::serve(listener, catalog(&cfg), options, cancel.clone());
    let mut tasks = vec![
        tokio::spawn(async move { simulator.await.expect("grid simulator") }),
        marketplace::wiring::spawn_projections(pool.clone(), 500, cancel.clone()),
    ];
    let key = SigningKey::generate()?;
    let auth = authenticator(&key).await;
    let state = marketplace::wiring::app_state(pool.clone(), auth, api_settings(), &cancel);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let server = marketplace::wiring::spawn_api(listener, state, cancel.clone());
    tasks.push(tokio::spawn(async move {
        server.await.expect("API task").expect("API");
    }));

    // Users: funded accounts, twins, wallets that know them, rent contracts.
    let chain = Arc::new(HttpChain::new(&sim_url)?);
    let custody = Custody::from_seed(&SecretString::from(CHAIN_SEED))?;
    let stores = Stores::new(&pool);
    let t = Instant::now();
    for u in 0..cfg.users {
        let user = format!("user{u}");
        let signer = custody.wallet(&user);
        control(
            &http,
            &sim_url,
            "/sim/chain/fund",
            json!({ "account": signer.address(), "amount": 10_000_000u64 * 10_000_000 }),
        )
        .await?;
        chain.create_twin(&signer, None).await?;
        let twin = chain
            .twin_id_by_account(signer.address())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no twin for {user}"))?;
        let now = Utc::now();
        let address = signer.address().to_string();
        Exec::new(
            &stores.wallets,
            user.clone(),
            EventMetadata::for_worker("bench", "setup"),
        )
        .opening(|| WalletCommand::Open {
            owner: user.clone(),
            at: now,
        })
        .run(|_| {
            Ok(WalletCommand::RecordChainTwin {
                address: address.clone(),
                twin_id: twin,
                at: now,
            })
        })
        .await?;
        chain.create_rent_contract(&signer, u + 1, None).await?;
    }
    eprintln!(
        "{} users with a rent contract each in {:.1} s",
        cfg.users,
        t.elapsed().as_secs_f64()
    );

    // Advance until the chain holds the events asked for.
    let t = Instant::now();
    let per_minute = f64::from(cfg.users) * 60.0 / (6.0 * f64::from(cfg.cycle));
    let minutes = (cfg.events as f64 / per_minute).ceil() as u32;
    let mut left = minutes;
    while left > 0 {
        let step = left.min(120);
        control(
            &http,
            &sim_url,
            &format!("/sim/clock/advance?minutes={step}"),
            json!({}),
        )
        .await?;
        left -= step;
    }
    eprintln!(
        "{minutes} simulated minutes advanced in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Baseline: the chain port reading every event.
    let (total, read) = events_on_chain(&*chain).await?;
    let read_rate = total as f64 / read.as_secs_f64();

    // The follower applying them all from an empty cursor.
    let follower = ChainFollower::new(
        pool.clone(),
        chain.clone(),
        FollowerOptions {
            batch: 500,
            poll: Duration::from_millis(50),
            concurrency: cfg.concurrency,
        },
    );
    let t = Instant::now();
    while follower.round().await? == Round::More {}
    let applied = t.elapsed();
    let stats = follower.stats();
    let seen = stats.events.load(std::sync::atomic::Ordering::Relaxed);
    let recorded = stats.recorded.load(std::sync::atomic::Ordering::Relaxed);
    let bills: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'wallet' AND event_type = 'BillPaid'",
    )
    .fetch_one(&bench_pool)
    .await?;
    let apply_rate = seen as f64 / applied.as_secs_f64();

    // Lag: bill on chain -> debit visible to user 0.
    let now = Utc::now().timestamp();
    let token = key.sign(&json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user0",
        "iat": now, "nbf": now - 1, "exp": now + 4 * 3600,
        ROLES_CLAIM: ["cloud-user"],
    }))?;
    let mut lags = Vec::new();
    for &poll in &cfg.polls {
        let stop = cancel.child_token();
        let running = ChainFollower::new(
            pool.clone(),
            chain.clone(),
            FollowerOptions {
                batch: 500,
                poll: Duration::from_millis(poll),
                concurrency: cfg.concurrency,
            },
        );
        let handle = tokio::spawn(running.run(stop.clone()));
        let mut samples = Vec::new();
        for _ in 0..cfg.samples {
            // Settle first: the previous advance's bills are in the view.
            let mut before = balance(&http, &api, &token).await?;
            tokio::time::sleep(Duration::from_millis(poll.min(200))).await;
            loop {
                let again = balance(&http, &api, &token).await?;
                if again == before {
                    break;
                }
                before = again;
                tokio::time::sleep(Duration::from_millis(poll.min(200))).await;
            }
            let minutes = cfg.cycle.div_ceil(10).max(1);
            control(
                &http,
                &sim_url,
                &format!("/sim/clock/advance?minutes={minutes}"),
                json!({}),
            )
            .await?;
            let t = Instant::now();
            loop {
                if balance(&http, &api, &token).await? != before {
                    break;
                }
                anyhow::ensure!(
                    t.elapsed() < Duration::from_secs(30),
                    "no debit within 30 s"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples.push(t.elapsed());
        }
        stop.cancel();
        let _ = handle.await;
        samples.sort();
        lags.push((poll, pct(&samples, 0.5), pct(&samples, 0.99)));
    }

    println!(
        "{}",
        machine_line("the simulator, API, projection runners, the follower and PostgreSQL")
    );
    println!(
        "PostgreSQL {}; {} users, a rent contract each, billed every {} blocks; {} chain events ({} BillPaid recorded)",
        if cfg.durable { "durable" } else { "non-durable" },
        cfg.users,
        cfg.cycle,
        total,
        bills
    );
    println!();
    println!("| run | events | seconds | events/s | ratio |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| chain port read only (baseline) | {total} | {:.2} | {read_rate:.0} | 1.00x |",
        read.as_secs_f64()
    );
    println!(
        "| follower, {} wallets at a time | {seen} | {:.2} | {apply_rate:.0} | {:.4}x |",
        cfg.concurrency,
        applied.as_secs_f64(),
        apply_rate / read_rate
    );
    println!("({recorded} commands recorded something)");
    println!();
    println!("| follower poll | lag p50 (ms) | lag p99 (ms) | samples |");
    println!("|---:|---:|---:|---:|");
    for (poll, p50, p99) in &lags {
        println!("| {poll} ms | {p50:.0} | {p99:.0} | {} |", cfg.samples);
    }

    cancel.cancel();
    for task in tasks {
        let _ = task.await;
    }
    bench_pool.close().await;
    pool.close().await;
    pg.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
