//! `marketplace relay`: publishes the event store to Kafka in commit order.

use anyhow::Context;
use marketplace_workers::kafka::relay::{self, RelayOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::RelayArgs;
use crate::wiring::{connect, shutdown_signal};

pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let config = args.kafka.config().map_err(anyhow::Error::msg)?;
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let mut options = RelayOptions::new(args.relay_name);
    options.batch_size = args.batch_size;
    options.aggregate_types = marketplace_projections::aggregate_types()
        .into_iter()
        .map(String::from)
        .collect();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(relay::run(pool, config, options, cancel.clone()));
    shutdown_signal().await;
    cancel.cancel();
    task.await.context("relay task")?;
    Ok(())
}
