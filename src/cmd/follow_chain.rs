//! `marketplace follow-chain`: the chain-event follower (and the
//! reconciliation of custodial ledgers) alone, beside an API and
//! projections running elsewhere.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marketplace_app::tfchain::http::HttpChain;
use tokio_util::sync::CancellationToken;

use crate::cli::FollowChainArgs;
use crate::wiring::{connect, join_all, shutdown_signal, spawn_chain_follower};

pub async fn run(args: FollowChainArgs) -> anyhow::Result<()> {
    let chain = Arc::new(HttpChain::new(&args.chain_url).context("TFCHAIN_URL")?);
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let cancel = CancellationToken::new();
    let tasks = spawn_chain_follower(
        &pool,
        chain,
        args.follower.indexer_url.as_deref(),
        args.follower.options(),
        Duration::from_secs(args.follower.reconcile_secs),
        &cancel,
    )?;
    shutdown_signal().await;
    cancel.cancel();
    join_all(tasks).await;
    pool.close().await;
    Ok(())
}
