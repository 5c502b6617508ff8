//! Rebuild speed: a view rebuilt aside from a store of BENCH_EVENTS
//! (1,000,000) deployment events and swapped in, set-based against the
//! baseline of one statement per event, in the same process on the same
//! store.
//!
//! A private PostgreSQL (durable) with migrations. One deployment is taken
//! through the command bus from request to running (request, node
//! assigned, contract created, running: four events as the domain writes
//! them, metadata and hash chain included), then copied under new ids with
//! SQL until the store holds BENCH_EVENTS events (the trigger hashing each).
//! Then `deployments` is rebuilt (`tail::rebuild`, two lanes, built aside
//! and swapped in) with each event applied on its own (the baseline: the
//! projection's `apply`, one statement per event), and set-based with
//! batches of each size in BENCH_BATCHES ("1000,5000"); then the audit
//! index, which indexes every event, set-based.
//!
//! `cargo bench --bench rebuild`.

mod common;

use std::str::FromStr;
use std::time::Instant;

use common::*;
use marketplace_app::{EventMetadata, Exec, Stores};
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_domain::deployment::{
    Deployment, DeploymentCommand, NodeAssignment, WorkloadState, WorkloadStatus,
};
use marketplace_projections::deployments::DeploymentProjection;
use marketplace_projections::{tail, ApplyError, Projection, StoredEvent};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

/// A projection applied one event at a time: the trait's default batch.
struct OneByOne<P>(P);

#[async_trait::async_trait]
impl<P: Projection> Projection for OneByOne<P> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        self.0.aggregate_types()
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
        self.0.apply(conn, event).await
    }

    fn tables(&self) -> &'static [&'static str] {
        self.0.tables()
    }

    fn rebuild_indexes_after_rows(&self) -> bool {
        self.0.rebuild_indexes_after_rows()
    }
}

/// One deployment from request to running through the bus; its id.
async fn template(stores: &Stores) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let meta = || EventMetadata::for_worker("bench", "bench");
    let commands = vec![
        request_command("template"),
        DeploymentCommand::AssignNode {
            node: NodeAssignment {
                node_id: 11,
                farm_id: 1,
            },
            reason: Some("bench".into()),
            at: chrono::Utc::now(),
        },
        DeploymentCommand::RecordContractCreated {
            contract_id: 42,
            rent_contract_id: None,
            at: chrono::Utc::now(),
        },
        DeploymentCommand::MarkRunning {
            workloads: vec![WorkloadStatus::new("template", WorkloadState::Ok, None)],
            at: chrono::Utc::now(),
        },
    ];
    for command in commands {
        Exec::<Deployment>::new(&stores.deployments, id.clone(), meta())
            .run(move |_| Ok(command.clone()))
            .await
            .map_err(|e| anyhow::anyhow!("template command: {e:?}"))?;
    }
    Ok(id)
}

/// Copies the template's events under new ids until the store holds `target`.
async fn fill(pool: &PgPool, template: &str, target: i64) -> anyhow::Result<i64> {
    let per: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(template)
        .fetch_one(pool)
        .await?;
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let mut copies = (target - have).max(0) / per;
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
        .bind(template)
        .bind(chunk)
        .execute(pool)
        .await?;
        copies -= chunk;
    }
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    Ok(sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?)
}

/// Whether PostgreSQL counts statements (MARKETPLACE_PG_SETTINGS with
/// `shared_preload_libraries=pg_stat_statements`): then each rebuild prints
/// where the database's time went.
fn profiling() -> bool {
    std::env::var("MARKETPLACE_PG_SETTINGS").is_ok_and(|v| v.contains("pg_stat_statements"))
}

/// Rebuilds `projection` with batches of `batch`; events/s.
async fn rebuild<P: Projection>(
    pool: &PgPool,
    projection: &P,
    batch: i64,
    what: &str,
) -> anyhow::Result<f64> {
    if profiling() {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(pool)
            .await?;
    }
    let started = Instant::now();
    let read = tail::rebuild(pool, projection, batch).await?;
    let secs = started.elapsed().as_secs_f64();
    let rate = read as f64 / secs;
    println!("{what}: {read} events in {secs:.1} s = {rate:.0} events/s");
    if profiling() {
        for line in top_statements(pool, "rebuild").await {
            println!("  {line}");
        }
    }
    Ok(rate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = env_num("BENCH_EVENTS", 1_000_000) as i64;
    let batches: Vec<i64> = std::env::var("BENCH_BATCHES")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|b| b.trim().parse().ok())
        .collect();
    let dir =
        std::env::temp_dir().join(format!("marketplace-bench-rebuild-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable: true,
        max_connections: 50,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(PgConnectOptions::from_str(&pg.url("bench"))?.application_name("bench"))
        .await?;
    marketplace::MIGRATOR.run(&pool).await?;
    if profiling() {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&pool)
            .await?;
    }
    println!("{}", machine_line("PostgreSQL and the bench"));
    let stores = Stores::new(&pool);
    let id = template(&stores).await?;
    let filled = Instant::now();
    let total = fill(&pool, &id, target).await?;
    println!(
        "store: {total} events ({} deployments of 4 events) in {:.0} s",
        total / 4,
        filled.elapsed().as_secs_f64()
    );

    let baseline = rebuild(
        &pool,
        &OneByOne(DeploymentProjection),
        1000,
        "deployments, one statement per event (baseline), batch 1000",
    )
    .await?;
    for batch in batches {
        let rate = rebuild(
            &pool,
            &DeploymentProjection,
            batch,
            &format!("deployments, set-based, batch {batch}"),
        )
        .await?;
        println!("  ratio to the baseline: {:.2}x", rate / baseline);
    }
    // What was measured is a rebuild, not a run of dead letters: every
    // copy ends running at version 4, and nothing was set aside.
    let (rows, running): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status = 'running' AND version = 4) FROM deployment_views",
    )
    .fetch_one(&pool)
    .await?;
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_dead_letters")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(
        rows == total / 4 && running == rows && dead == 0,
        "the rebuilt view holds {rows} rows, {running} running at version 4, with {dead} dead letters"
    );
    rebuild(
        &pool,
        &marketplace_projections::audit::AuditIndexProjection,
        5000,
        "audit index, set-based, batch 5000",
    )
    .await?;
    pool.close().await;
    pg.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
