//! `marketplace payments`: the payment workers without the API.

use anyhow::Context;
use marketplace_domain::TftPrice;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::PaymentsWorkerArgs;
use crate::wiring::{connect, join_all, payments_client, shutdown_signal, spawn_payment_workers};

pub async fn run(args: PaymentsWorkerArgs) -> anyhow::Result<()> {
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let payments = payments_client(&args.payments)?;
    let tft_price =
        TftPrice::from_usd_units(args.tft_price_usd).context("MARKETPLACE_TFT_PRICE_USD")?;
    let cancel = CancellationToken::new();
    let workers = spawn_payment_workers(&pool, payments, &args.payments, tft_price, true, &cancel);
    info!("payment workers running");
    shutdown_signal().await;
    cancel.cancel();
    join_all(workers).await;
    pool.close().await;
    Ok(())
}
