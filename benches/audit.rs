//! The audit's costs over a large store: search latency (a correlation id,
//! an actor's day), the audit index's rebuild, verification and checkpoint
//! throughput, and what the hash chain costs each command.
//!
//! In this process: a private PostgreSQL (durable by default) with
//! migrations. BENCH_EVENTS events (1,000,000) are stored with SQL in
//! chunks, as the trigger hashes them, spread over BENCH_DAYS days (30),
//! five per aggregate and correlation id, from BENCH_ACTORS actors (100).
//! Then:
//! - the audit index is rebuilt from the store by its projection;
//! - BENCH_SAMPLES searches (200) by a random correlation id (one page)
//!   and by a random actor's random day (every page of 500): p50 and p99;
//! - `verify` walks the whole store and every checkpoint: events/s; the
//!   checkpoints over the whole store are recorded first: events/s;
//! - BENCH_COMMANDS commands (2,000) through the command bus from
//!   BENCH_CLIENTS tasks (16), each a new deployment's request, with the
//!   hashing trigger on and off, twice each, alternating: commands/s and
//!   the ratio on/off.
//!
//! `cargo bench --bench audit`.

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use common::*;
use marketplace_app::audit::{integrity, search};
use marketplace_app::Stores;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_domain::deployment::{DeploymentEvent, DeploymentName, Placement};
use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events = env_num("BENCH_EVENTS", 1_000_000) as i64;
    let days = env_num("BENCH_DAYS", 30) as i64;
    let actors = env_num("BENCH_ACTORS", 100) as i64;
    let samples = env_num("BENCH_SAMPLES", 200);
    let n_commands = env_num("BENCH_COMMANDS", 2_000);
    let clients = env_num("BENCH_CLIENTS", 16).max(1);
    let durable = env_num("BENCH_DURABLE", 1) != 0;

    let dir = std::env::temp_dir().join(format!("marketplace-bench-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable,
        max_connections: 100,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let url = pg.url("bench");
    let pool = PgPoolOptions::new()
        .max_connections(32)
        .connect_with(PgConnectOptions::from_str(&url)?.application_name("bench"))
        .await?;
    marketplace::MIGRATOR.run(&pool).await?;
    println!("{}", machine_line("PostgreSQL and the bench"));

    // The store: real payloads, metadata as the bus writes it.
    let payload = serde_json::to_value(DeploymentEvent::DeploymentRequested {
        owner: "bench".into(),
        name: DeploymentName::new("bulk").expect("name"),
        kind: bench_vm_spec().kind(),
        spec: bench_vm_spec(),
        placement: Placement::default(),
        at: Utc::now(),
    })?;
    let start = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("date");
    let spread = days * 86_400;
    let t = Instant::now();
    let chunk = 100_000;
    let mut from = 0;
    while from < events {
        let n = chunk.min(events - from);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata, recorded_at)
             SELECT 'deployment', 'd-' || (i / 5), i % 5 + 1, 'DeploymentRequested', '2', $1,
                    jsonb_build_object('actor_subject', 'user-' || ((i / 5) % $4), 'actor_role', 'cloud-user',
                                       'correlation_id', 'c-' || (i / 5), 'causation_id', 'r-' || (i / 5),
                                       'request_id', 'r-' || (i / 5)),
                    $5::timestamptz + make_interval(secs => (i * $6::float8 / $7))
               FROM generate_series($2::bigint, $2::bigint + $3 - 1) AS i",
        )
        .bind(&payload)
        .bind(from)
        .bind(n)
        .bind(actors)
        .bind(start)
        .bind(spread as f64)
        .bind(events as f64)
        .execute(&pool)
        .await?;
        from += n;
    }
    let stored = t.elapsed();
    println!(
        "stored {events} events with their hash chain in {:.1} s ({:.0} events/s)",
        stored.as_secs_f64(),
        events as f64 / stored.as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;

    let t = Instant::now();
    let indexed = marketplace_projections::tail::rebuild(
        &pool,
        &marketplace_projections::audit::AuditIndexProjection,
        1_000,
    )
    .await?;
    let rebuild = t.elapsed();
    sqlx::query("VACUUM ANALYZE audit_events")
        .execute(&pool)
        .await?;
    println!(
        "audit index rebuilt: {indexed} events in {:.1} s ({:.0} events/s)",
        rebuild.as_secs_f64(),
        indexed as f64 / rebuild.as_secs_f64()
    );

    let mut rng = rand::thread_rng();
    let mut by_correlation = Vec::new();
    let mut trees = Vec::new();
    let mut by_actor_day = Vec::new();
    let mut day_events = 0usize;
    for _ in 0..samples {
        let c = format!("c-{}", rng.gen_range(0..events / 5));
        let q = search::Query {
            correlation_id: Some(c.clone()),
            ..search::Query::default()
        };
        let t = Instant::now();
        let page = search::search(&pool, &q, 100).await?;
        by_correlation.push(t.elapsed());
        assert_eq!(page.items.len(), 5, "{c}");
        let t = Instant::now();
        let tree = search::correlate(&pool, &c).await?;
        trees.push(t.elapsed());
        assert_eq!(tree.events.len(), 5);

        let day = start + chrono::Duration::days(rng.gen_range(0..days));
        let mut q = search::Query {
            actor: Some(format!("user-{}", rng.gen_range(0..actors))),
            from: Some(day),
            to: Some(day + chrono::Duration::days(1)),
            ..search::Query::default()
        };
        let t = Instant::now();
        loop {
            let page = search::search(&pool, &q, 500).await?;
            day_events += page.items.len();
            match page.next.as_deref().and_then(search::Cursor::decode) {
                Some(c) => q.after = Some(c),
                None => break,
            }
        }
        by_actor_day.push(t.elapsed());
    }
    for v in [&mut by_correlation, &mut trees, &mut by_actor_day] {
        v.sort();
    }
    println!(
        "search by correlation id (one page): p50 {:.2} ms, p99 {:.2} ms; its tree: p50 {:.2} ms, p99 {:.2} ms",
        pct(&by_correlation, 0.5),
        pct(&by_correlation, 0.99),
        pct(&trees, 0.5),
        pct(&trees, 0.99)
    );
    println!(
        "search by actor's day (every page, {} events a day on average): p50 {:.1} ms, p99 {:.1} ms",
        day_events / samples.max(1),
        pct(&by_actor_day, 0.5),
        pct(&by_actor_day, 0.99)
    );

    let t = Instant::now();
    let mut covered = 0;
    while let Some(c) = integrity::checkpoint(&pool).await? {
        covered += c.events;
    }
    let checkpointing = t.elapsed();
    println!(
        "checkpoints over {covered} events in {:.1} s ({:.0} events/s)",
        checkpointing.as_secs_f64(),
        covered as f64 / checkpointing.as_secs_f64()
    );
    let t = Instant::now();
    let v = integrity::verify(&pool).await?;
    let verifying = t.elapsed();
    assert!(v.broken.is_none(), "{v:?}");
    println!(
        "verify: {} events and {} checkpoints in {:.1} s ({:.0} events/s)",
        v.checked,
        v.checkpoints,
        verifying.as_secs_f64(),
        v.checked as f64 / verifying.as_secs_f64()
    );

    let stores = Arc::new(Stores::new(&pool));
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..4 {
        let hashing = round % 2 == 0;
        let switch = if hashing { "ENABLE" } else { "DISABLE" };
        sqlx::query(&format!(
            "ALTER TABLE events {switch} TRIGGER events_chain_hash"
        ))
        .execute(&pool)
        .await?;
        let rate = bus_requests(&stores, n_commands, clients, &format!("b{round}"), false).await;
        if hashing {
            on.push(rate)
        } else {
            off.push(rate)
        }
    }
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_chain_hash")
        .execute(&pool)
        .await?;
    let (on, off) = (
        on.iter().sum::<f64>() / on.len() as f64,
        off.iter().sum::<f64>() / off.len() as f64,
    );
    println!(
        "commands through the bus, {clients} tasks: {on:.0}/s with the hash chain, {off:.0}/s without ({:.2}x)",
        on / off
    );
    drop(pool);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
