//! The rate limiter's added latency per request, in one process: three API
//! instances on one private PostgreSQL and one database, the same except
//! for the limiter: **off**; **on** (leases of up to `RATE_LIMIT_LEASE_MAX`
//! tokens, 32 by default); **on, lease 1** (every request asks PostgreSQL).
//! Budgets far above what is sent, so every request is allowed: this
//! measures the cost of counting, not of refusing.
//!
//! One keep-alive client sends `GET /v1/pricing` (a small read), one at a
//! time, in rounds that visit the three instances in turn (so drift in the
//! machine's load falls on all three alike), for two callers:
//! - **hot**: one subject sending back to back (leases serve most requests);
//! - **spread**: `BENCH_SUBJECTS` (default 2,000) subjects in turn, each
//!   seen again only after its lease expired (every request a round trip).
//!
//! Prints p50 and p99 per instance and caller, and the ratio to **off**.
//! `cargo bench --bench rate_limit`; knobs: `BENCH_REQUESTS` (per instance
//! and caller, default 4,000), `BENCH_SUBJECTS`.

mod common;

use std::time::{Duration, Instant};

use common::{authenticator, env_num, machine_line, pct, AUDIENCE, ISSUER, ROLES_CLAIM};
use marketplace_api::rate_limit::{Budget, RateLimitConfig};
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::keys::SigningKey;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ROUND: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests = env_num("BENCH_REQUESTS", 4_000);
    let subjects = env_num("BENCH_SUBJECTS", 2_000).max(1);

    let dir = std::env::temp_dir().join(format!(
        "marketplace-bench-rate-limit-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable: true,
        max_connections: 200,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let pool = marketplace::wiring::connect(&pg.url("bench").into(), 32).await?;
    marketplace::MIGRATOR.run(&pool).await?;
    let key = SigningKey::generate()?;
    let cancel = CancellationToken::new();

    let high = Budget::new(1_000_000, 1_000_000);
    let on = RateLimitConfig {
        commands: high,
        reads: high,
        anonymous: high,
        webhook: high,
        ..RateLimitConfig::default()
    };
    let configs = [
        ("off", RateLimitConfig::off()),
        ("on", on.clone()),
        (
            "on, lease 1",
            RateLimitConfig {
                lease_max: 1,
                ..on.clone()
            },
        ),
    ];
    let mut bases = Vec::new();
    for (_, config) in &configs {
        let mut settings = common::api_settings();
        settings.rate_limit = config.clone();
        let state = marketplace::wiring::app_state(
            pool.clone(),
            authenticator(&key).await,
            settings,
            &cancel,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        bases.push(format!("http://{}/v1/pricing", listener.local_addr()?));
        marketplace::wiring::spawn_api(listener, state, cancel.clone());
    }
    let now = chrono::Utc::now().timestamp();
    let tokens: Vec<String> = (0..subjects)
        .map(|s| {
            key.sign(&json!({
                "iss": ISSUER, "aud": AUDIENCE, "sub": format!("bench{s}"),
                "iat": now, "nbf": now - 1, "exp": now + 4 * 3600,
                ROLES_CLAIM: ["cloud-user"],
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let client = reqwest::Client::new();
    // Warm-up: connections, the token cache, the statement caches.
    for base in &bases {
        for token in tokens.iter().take(200) {
            let r = client.get(base).bearer_auth(token).send().await?;
            anyhow::ensure!(r.status() == 200, "warm-up answered {}", r.status());
        }
    }

    println!(
        "{}",
        machine_line("the client, the three API instances and PostgreSQL")
    );
    println!("{requests} sequential GET /v1/pricing per instance and caller, {subjects} subjects when spread");
    for (caller, spread) in [("hot", false), ("spread", true)] {
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(requests); bases.len()];
        let mut next_subject = 0usize;
        let mut sent = 0;
        while sent < requests {
            let n = ROUND.min(requests - sent);
            for (i, base) in bases.iter().enumerate() {
                for k in 0..n {
                    let token = if spread {
                        &tokens[(next_subject + k) % subjects]
                    } else {
                        &tokens[0]
                    };
                    let started = Instant::now();
                    let r = client.get(base).bearer_auth(token).send().await?;
                    let status = r.status();
                    r.bytes().await?;
                    samples[i].push(started.elapsed());
                    anyhow::ensure!(status == 200, "{} answered {status}", configs[i].0);
                }
            }
            next_subject += n;
            sent += n;
        }
        let (off50, off99) = {
            let mut s = samples[0].clone();
            s.sort();
            (pct(&s, 0.50), pct(&s, 0.99))
        };
        for (i, (name, _)) in configs.iter().enumerate() {
            let mut s = samples[i].clone();
            s.sort();
            let (p50, p99) = (pct(&s, 0.50), pct(&s, 0.99));
            println!(
                "{caller:>6} {name:<12} p50 {p50:.3} ms  p99 {p99:.3} ms  ratio to off: p50 x{:.2}, p99 x{:.2}  (added p50 {:+.3} ms)",
                p50 / off50,
                p99 / off99,
                p50 - off50
            );
        }
    }
    let leases: i64 = sqlx::query_scalar("SELECT count(*) FROM rate_limit_buckets")
        .fetch_one(&pool)
        .await?;
    println!("buckets in PostgreSQL at the end: {leases}");
    cancel.cancel();
    pg.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
