//! Notification fan-out: domain events to every channel queued. BENCH_USERS
//! users (100), each with a profile (an email address) and BENCH_ENDPOINTS
//! webhook endpoints (2), own BENCH_EVENTS deployments (5,000) whose
//! requests and failures are committed through the command bus first; then
//! the notification process manager catches up over the whole store as its
//! runner does (batches of BENCH_BATCH, 500), writing each failure's
//! notification and its outbox rows (one email, one per endpoint).
//! Reported: notifications/s and outbox rows/s from event to queued; the
//! events it only reads (the requests, which record owners) count in the
//! elapsed time.
//!
//! `cargo bench --bench notification_fanout`. Environment: BENCH_USERS,
//! BENCH_ENDPOINTS, BENCH_EVENTS, BENCH_BATCH, BENCH_DURABLE (1).

mod common;

use std::time::Instant;

use common::*;
use marketplace_app::{EventMetadata, Exec, Stores};
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_domain::deployment::{Deployment, DeploymentCommand};
use marketplace_projections::tail;
use marketplace_workers::notify::NotificationManager;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users = env_num("BENCH_USERS", 100).max(1);
    let endpoints = env_num("BENCH_ENDPOINTS", 2);
    let events = env_num("BENCH_EVENTS", 5_000).max(1);
    let batch = env_num("BENCH_BATCH", 500).max(1) as i64;
    let durable = env_num("BENCH_DURABLE", 1) != 0;
    let dir = std::env::temp_dir().join(format!("marketplace-bench-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable,
        max_connections: 100,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let pool = marketplace::wiring::connect(&pg.url("bench").into(), 16).await?;
    marketplace::MIGRATOR.run(&pool).await?;
    let stores = std::sync::Arc::new(Stores::new(&pool));

    for u in 0..users {
        let user = format!("user-{u:04}");
        sqlx::query(
            "INSERT INTO users (user_id, email, time_zone, version, created_at, updated_at)
             VALUES ($1, $2, 'Europe/Brussels', 1, now(), now())",
        )
        .bind(&user)
        .bind(format!("{user}@example.com"))
        .execute(&pool)
        .await?;
        for _ in 0..endpoints {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, owner, url, secret, created_at)
                 VALUES ($1, $2, 'https://hooks.invalid/x', 'whsec_bench', now())",
            )
            .bind(uuid::Uuid::new_v4())
            .bind(&user)
            .execute(&pool)
            .await?;
        }
    }

    let built = Instant::now();
    let clients = 8;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let stores = stores.clone();
            tokio::spawn(async move {
                for i in (c..events).step_by(clients) {
                    let id = uuid::Uuid::new_v4().to_string();
                    let owner = format!("user-{:04}", i % users);
                    let meta = EventMetadata::for_worker("bench", "notify");
                    let mut request = request_command(&format!("n{i}"));
                    if let DeploymentCommand::Request { owner: o, .. } = &mut request {
                        *o = owner;
                    }
                    Exec::<Deployment>::new(&stores.deployments, id.clone(), meta.clone())
                        .fresh()
                        .run(|_| Ok(request.clone()))
                        .await
                        .expect("request");
                    Exec::<Deployment>::new(&stores.deployments, id, meta)
                        .run(|_| {
                            Ok(DeploymentCommand::MarkFailed {
                                workloads: vec![],
                                reason: "bench".into(),
                                at: chrono::Utc::now(),
                            })
                        })
                        .await
                        .expect("fail");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    println!(
        "setup: {users} users x {endpoints} endpoints, {events} deployments requested and failed in {:.1} s",
        built.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let applied = tail::catch_up(&pool, &NotificationManager, batch).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let (notifications, outbox): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notifications), (SELECT count(*) FROM notification_outbox)",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "fan-out: {applied} events read, {notifications} notifications, {outbox} outbox rows queued in {elapsed:.2} s"
    );
    println!(
        "         {:.0} notifications/s to all channels queued ({:.0} outbox rows/s, {:.0} events read/s)",
        notifications as f64 / elapsed,
        outbox as f64 / elapsed,
        applied as f64 / elapsed
    );
    println!(
        "{}",
        machine_line("PostgreSQL and the manager share the machine")
    );
    drop(pool);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
