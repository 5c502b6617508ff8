//! `marketplace sync`: the grid sync worker, or one run with `--once`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use marketplace_app::grid::GridClient;
use marketplace_workers::grid::{GridSync, GridSyncOptions, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::cli::SyncArgs;
use crate::wiring::{connect, shutdown_signal};

pub async fn run(args: SyncArgs) -> anyhow::Result<()> {
    let client = GridClient::new(&args.grid_url)
        .context("GRID_PROXY_URL")?
        .with_page_size(args.page_size);
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let options = GridSyncOptions {
        interval: Duration::from_secs(args.interval_secs),
        concurrency: args.concurrency as usize,
        ..GridSyncOptions::default()
    };
    let worker = GridSync::new(client, pool.clone(), Arc::new(SystemClock), options);
    if args.once {
        let stats = worker.sync_once().await.context("grid sync failed")?;
        pool.close().await;
        if stats.failed > 0 {
            bail!("{} of {} nodes failed to sync", stats.failed, stats.fetched);
        }
        return Ok(());
    }
    let cancel = CancellationToken::new();
    let task = tokio::spawn(worker.run(cancel.clone()));
    shutdown_signal().await;
    cancel.cancel();
    task.await.context("grid sync task")?;
    pool.close().await;
    Ok(())
}
