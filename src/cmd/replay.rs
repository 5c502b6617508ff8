//! `marketplace replay NAME`: rebuilds one projection aside and swaps it in.

use marketplace_projections::tail;
use tracing::info;

use crate::cli::ReplayArgs;
use crate::wiring::connect;

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let projection =
        marketplace_projections::known(&args.projection).map_err(anyhow::Error::msg)?;
    let pool = connect(&args.db.database_url, 4).await?;
    let n = tail::rebuild(&pool, &projection, args.batch_size).await?;
    info!(
        projection = projection.name(),
        events = n,
        "rebuilt and swapped in"
    );
    Ok(())
}
