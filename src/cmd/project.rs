//! `marketplace project`: the projection runners alone, tailing the store
//! or consuming Kafka; `--only` runs just the projections it names,
//! `--rebuild` rebuilds them first, `--once` catches them up and exits.

use anyhow::{bail, Context};
use marketplace_projections::tail::{self, TailOptions};
use marketplace_workers::kafka::consumer::WorkerOptions;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::{ProjectArgs, Source};
use crate::wiring::{
    connect, select_projections, shutdown_signal, spawn_kafka_workers, spawn_projection_runners,
};

pub async fn run(args: ProjectArgs) -> anyhow::Result<()> {
    let selected = select_projections(&args.only).context("PROJECTIONS")?;
    let kafka = match args.source {
        Source::Store => None,
        Source::Kafka => {
            if args.once {
                bail!("--once tails the store; it does not apply with PROJECTION_SOURCE=kafka");
            }
            Some(args.kafka.config().map_err(anyhow::Error::msg)?)
        }
    };
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    if args.rebuild {
        for projection in &selected {
            let n = tail::rebuild(&pool, projection, args.batch_size).await?;
            info!(projection = projection.name(), events = n, "views rebuilt");
        }
    }
    if args.once {
        let mut n = 0;
        for projection in &selected {
            n += tail::catch_up(&pool, projection, args.batch_size).await?;
        }
        info!(events = n, "caught up");
        return Ok(());
    }
    let names: Vec<&str> = selected.iter().map(|p| p.name()).collect();
    info!(projections = ?names, "projection runners starting");
    let cancel = CancellationToken::new();
    let runners = match kafka {
        None => spawn_projection_runners(
            &pool,
            selected,
            &TailOptions {
                batch_size: args.batch_size,
                ..TailOptions::default()
            },
            &cancel,
        ),
        Some(config) => {
            let options = WorkerOptions {
                batch_size: usize::try_from(args.batch_size)?,
                ..WorkerOptions::default()
            };
            spawn_kafka_workers(&pool, &config, &options, selected, &cancel)
        }
    };
    shutdown_signal().await;
    cancel.cancel();
    for runner in runners {
        runner.await.context("projection task")?;
    }
    Ok(())
}
