//! Whether appending slows as the store grows: commands/s through the
//! command bus on an empty store, then on the same store holding
//! BENCH_EVENTS events (10,000,000), in the same process.
//!
//! A private PostgreSQL (durable by default) with migrations. First
//! BENCH_COMMANDS new deployments' requests (20,000) from BENCH_CLIENTS
//! tasks (16) through the bus (group commit, hash chain on) on the empty
//! store; then BENCH_EVENTS events are stored with SQL in chunks of
//! 200,000 (the trigger hashing each), the tables vacuumed and analysed
//! and a checkpoint taken (so the fill's dirty pages are not written during
//! the measurement),
//! and the same commands run again (after the same warm-up). Prints both rates and their ratio.
//!
//! `cargo bench --bench store_size`.

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use common::*;
use marketplace_app::Stores;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env_num("BENCH_EVENTS", 10_000_000) as i64;
    let n = env_num("BENCH_COMMANDS", 20_000);
    let clients = env_num("BENCH_CLIENTS", 16).max(1);
    let durable = env_num("BENCH_DURABLE", 1) != 0;
    let dir = std::env::temp_dir().join(format!("marketplace-bench-size-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable,
        max_connections: 100,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let pool = PgPoolOptions::new()
        .max_connections(32)
        .connect_with(PgConnectOptions::from_str(&pg.url("bench"))?.application_name("bench"))
        .await?;
    marketplace::MIGRATOR.run(&pool).await?;
    println!("{}", machine_line("PostgreSQL and the bench"));
    let stores = Arc::new(Stores::new(&pool));

    bus_requests(&stores, n / 4, clients, "warm", true).await;
    let empty = bus_requests(&stores, n, clients, "empty", true).await;
    println!("empty store: {empty:.0} commands/s ({n} commands, {clients} tasks)");

    let model: serde_json::Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'DeploymentRequested' LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let t = Instant::now();
    let chunk = 200_000;
    let mut from = 0;
    while from < events {
        let k = chunk.min(events - from);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'deployment', 'fill-' || (i / 5), i % 5 + 1, 'DeploymentRequested', '2', $1,
                    jsonb_build_object('actor_subject', 'user-' || (i % 1000), 'actor_role', 'cloud-user',
                                       'correlation_id', 'c-' || (i / 5), 'causation_id', 'r-' || (i / 5),
                                       'request_id', 'r-' || (i / 5))
               FROM generate_series($2::bigint, $2::bigint + $3 - 1) AS i",
        )
        .bind(&model)
        .bind(from)
        .bind(k)
        .execute(&pool)
        .await?;
        from += k;
        if from % 2_000_000 == 0 {
            eprintln!("stored {from} events");
        }
    }
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;
    // The fill's own checkpoint debt is written now, not charged to the
    // commands measured after it.
    sqlx::query("CHECKPOINT").execute(&pool).await?;
    println!(
        "stored {events} events in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    bus_requests(&stores, n / 4, clients, "warmfull", true).await;
    let full = bus_requests(&stores, n, clients, "full", true).await;
    println!(
        "store of {events} events: {full:.0} commands/s = {:.2}x the empty store's",
        full / empty
    );
    drop(pool);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
