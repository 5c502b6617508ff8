//! `marketplace dead-letters list|retry`: the events projections set aside.

use anyhow::bail;

use crate::cli::DeadLettersCommand;
use crate::wiring::connect;

pub async fn run(command: DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List { db, projection } => {
            if let Some(name) = &projection {
                marketplace_projections::known(name).map_err(anyhow::Error::msg)?;
            }
            let pool = connect(&db.database_url, 2).await?;
            let rows: Vec<marketplace_api::dead_letters::DeadLetter> = sqlx::query_as(
                "SELECT id, projection, event_position, aggregate_type, aggregate_id, sequence,
                        event_type, error, failed_at, resolved_at
                   FROM projection_dead_letters
                  WHERE resolved_at IS NULL AND ($1::text IS NULL OR projection = $1)
                  ORDER BY id",
            )
            .bind(projection.as_deref())
            .fetch_all(&pool)
            .await?;
            for row in rows {
                println!("{}", serde_json::to_string(&row)?);
            }
            Ok(())
        }
        DeadLettersCommand::Retry { projection, db } => {
            let known = marketplace_projections::known(&projection).map_err(anyhow::Error::msg)?;
            let pool = connect(&db.database_url, 2).await?;
            let (resolved, failing) =
                marketplace_projections::tail::retry_dead_letters(&pool, &known).await?;
            println!("{resolved} resolved, {failing} still failing");
            if failing > 0 {
                bail!("{failing} dead letters of {projection} still fail; see `dead-letters list`");
            }
            Ok(())
        }
    }
}
