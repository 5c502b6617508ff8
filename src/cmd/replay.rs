//! `marketplace replay NAME`: rebuilds one projection aside and swaps it in;
//! with `--until T`, builds it as it stood at T into a scratch schema
//! instead, for an audit, leaving the live view alone.

use marketplace_projections::{as_of, tail};
use tracing::info;

use crate::cli::ReplayArgs;
use crate::wiring::connect;

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let projection =
        marketplace_projections::known(&args.projection).map_err(anyhow::Error::msg)?;
    let pool = connect(&args.db.database_url, 4).await?;
    if let Some(until) = args.until {
        let schema = args
            .into
            .unwrap_or_else(|| format!("audit_{}", projection.name()));
        let n = as_of::build(&pool, &projection, until, &schema, args.batch_size).await?;
        println!("{schema}");
        info!(
            projection = projection.name(),
            events = n,
            "built as of {until} into schema {schema}: query it as {schema}.<table>"
        );
        return Ok(());
    }
    let n = tail::rebuild(&pool, &projection, args.batch_size).await?;
    info!(
        projection = projection.name(),
        events = n,
        "rebuilt and swapped in"
    );
    Ok(())
}
