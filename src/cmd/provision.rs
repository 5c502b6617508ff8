//! `marketplace provision`: the provisioning manager and the treasury's
//! transfers alone, beside an API and projections running elsewhere.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::ProvisionArgs;
use crate::wiring::{chain_ports, connect, join_all, shutdown_signal, spawn_provisioning};

pub async fn run(args: ProvisionArgs) -> anyhow::Result<()> {
    let p = &args.provisioning;
    let chain_url = p.chain_url.as_deref().context("TFCHAIN_URL is required")?;
    let seed = p
        .chain_seed
        .as_ref()
        .context("MARKETPLACE_CHAIN_SEED is required")?;
    let ports = chain_ports(chain_url, p.rmb_url.as_deref(), seed)?;
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let cancel = CancellationToken::new();
    let tasks = spawn_provisioning(&pool, p, ports, &cancel);
    shutdown_signal().await;
    cancel.cancel();
    join_all(tasks).await;
    pool.close().await;
    Ok(())
}
