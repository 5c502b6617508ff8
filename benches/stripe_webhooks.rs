//! Stripe webhook intake throughput and payment-to-balance latency.
//!
//! Everything runs in this process, as `marketplace dev` wires it: a private
//! durable PostgreSQL, migrations, the API on 127.0.0.1:0 (pool of 32), the
//! projection runners, and the Stripe inbox worker (woken by NOTIFY). No
//! Stripe server is involved: the events are built in the shape the real
//! API sends and signed with the endpoint secret, as Stripe signs them.
//!
//! 1. **Intake**: `BENCH_EVENTS` (default 3000) distinct signed events
//!    (`customer.updated`, which the worker ignores) posted by
//!    `BENCH_CONCURRENCY` (16) keep-alive clients; verified events stored per
//!    second (signature checked, JSON parsed, inbox row inserted, 200 sent).
//! 2. **Payment to balance**: `BENCH_PAYMENTS` (200) wallets each with a
//!    pending top-up (committed through the wallet command path); for each,
//!    one `payment_intent.succeeded` is delivered, one at a time, and the
//!    time from its 200 to the credited balance being visible through
//!    `GET /v1/wallet` (polled every 1 ms) is recorded: p50, p99, max.
//!
//! `cargo bench --bench stripe_webhooks`. Exits non-zero if an event is
//! refused or a balance never shows.

mod common;

use common::{env_num, AUDIENCE, ISSUER, ROLES_CLAIM};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hmac::{Hmac, Mac};
use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_api::ApiSettings;
use marketplace_app::{store, EventMetadata, Exec};
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::keys::SigningKey;
use marketplace_domain::wallet::{StripeId, Wallet, WalletCommand};
use marketplace_domain::TftPrice;
use marketplace_workers::stripe::{InboxOptions, StripeInboxWorker};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SECRET: &str = "whsec_bench";

fn sign(t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn event(kind: &str, object: Value) -> String {
    json!({
        "id": format!("evt_{}", Uuid::new_v4().simple()),
        "object": "event",
        "api_version": "2024-06-20",
        "created": Utc::now().timestamp(),
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind
    })
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env_num("BENCH_EVENTS", 3000);
    let concurrency = env_num("BENCH_CONCURRENCY", 16);
    let payments = env_num("BENCH_PAYMENTS", 200);

    let dir = std::env::temp_dir().join(format!("marketplace-bench-stripe-{}", std::process::id()));
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
        stripe_webhook_secret: Some(SECRET.to_string().into()),
        payments: None,
        dev_jwks: None,
        // Measures something else: the limiter off (benches/rate_limit.rs measures it).
        rate_limit: marketplace_api::rate_limit::RateLimitConfig::off(),
        metrics: marketplace_api::metrics::MetricsAccess::open(),
    };
    let cancel = CancellationToken::new();
    let state = marketplace::wiring::app_state(pool.clone(), auth, settings, &cancel);
    let runner = marketplace::wiring::spawn_projections(pool.clone(), 500, cancel.clone());
    let worker = StripeInboxWorker::new(pool.clone(), None, InboxOptions::default());
    let worker = tokio::spawn(worker.run(cancel.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let api = marketplace::wiring::spawn_api(listener, state, cancel.clone());
    let hook = format!("{base}/v1/webhooks/stripe");

    // 1. Intake throughput.
    let bodies: Vec<String> = (0..events)
        .map(|i| {
            event(
                "customer.updated",
                json!({ "id": format!("cus_{i}"), "object": "customer" }),
            )
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (bodies, next, hook) = (bodies.clone(), next.clone(), hook.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut refused = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let r = client
                    .post(&hook)
                    .header("stripe-signature", sign(Utc::now().timestamp(), body))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                if !r.is_ok_and(|r| r.status() == 200) {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await?;
    }
    let took = started.elapsed();
    anyhow::ensure!(refused == 0, "{refused} webhook deliveries refused");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_inbox")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(stored as usize == events, "stored {stored} of {events}");
    println!(
        "intake: {events} verified events in {:.2} s with {concurrency} clients: {:.0} events/s",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
    // Let the worker drain the ignored events before measuring latency.
    let drain = Instant::now();
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM stripe_inbox WHERE processed_at IS NULL")
                .fetch_one(&pool)
                .await?;
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            drain.elapsed() < Duration::from_secs(300),
            "inbox not drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "worker drained {events} ignored events in {:.2} s",
        drain.elapsed().as_secs_f64()
    );

    // 2. payment_intent.succeeded received -> balance visible.
    let wallets = store::<Wallet>(pool.clone());
    let meta = EventMetadata::for_worker("bench", "bench-setup");
    let mut pending = Vec::new();
    for i in 0..payments {
        let user = format!("bench-user-{i}");
        let pi = format!("pi_bench{i}");
        let pi_id = StripeId::new("payment_intent_id", &pi).expect("id");
        let now = Utc::now();
        let owner = user.clone();
        Exec::new(&wallets, user.as_str(), meta.clone())
            .opening(move || WalletCommand::Open {
                owner: owner.clone(),
                at: now,
            })
            .run(|_| {
                Ok(WalletCommand::CreateTopUp {
                    top_up_id: Uuid::new_v4(),
                    payment_intent_id: pi_id.clone(),
                    usd_cents: 2_500,
                    tft_price: TftPrice::from_usd_units(100_000).expect("price"),
                    quote_expires_at: now + chrono::Duration::minutes(30),
                    at: now,
                })
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        pending.push((user, pi));
    }
    let client = reqwest::Client::new();
    let mut latencies = Vec::new();
    for (i, (user, pi)) in pending.iter().enumerate() {
        let token = key.sign(&json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": user,
            "iat": Utc::now().timestamp(), "exp": Utc::now().timestamp() + 600,
            ROLES_CLAIM: ["cloud-user"],
        }))?;
        let body = event(
            "payment_intent.succeeded",
            json!({
                "id": pi, "object": "payment_intent", "amount": 2500, "amount_capturable": 0,
                "amount_received": 2500, "capture_method": "automatic_async", "confirmation_method": "automatic",
                "created": Utc::now().timestamp(), "currency": "usd", "livemode": false,
                "metadata": { "wallet_id": user, "origin": "manual" },
                "payment_method_types": ["card"], "status": "succeeded",
                "latest_charge": {
                    "id": format!("ch_bench{i}"), "object": "charge", "amount": 2500, "amount_captured": 2500,
                    "amount_refunded": 0, "refunded": false, "currency": "usd", "payment_intent": pi,
                    "metadata": { "wallet_id": user, "origin": "manual" },
                    "receipt_url": format!("https://pay.stripe.com/receipts/bench{i}")
                }
            }),
        );
        let r = client
            .post(&hook)
            .header("stripe-signature", sign(Utc::now().timestamp(), &body))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "payment event refused: {}", r.status());
        let received = Instant::now();
        loop {
            let w: Value = client
                .get(format!("{base}/v1/wallet"))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            if w["balance_tft_units"].as_i64() == Some(2_500 * 10_000_000) {
                latencies.push(received.elapsed());
                break;
            }
            anyhow::ensure!(
                received.elapsed() < Duration::from_secs(30),
                "balance of {user} never showed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    latencies.sort();
    println!(
        "payment_intent.succeeded received -> balance visible via GET /v1/wallet, {} payments one at a time: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    cancel.cancel();
    let _ = api.await;
    let _ = runner.await;
    let _ = worker.await;
    pool.close().await;
    pg.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
