//! `marketplace audit verify|history`: thin wrappers over the same library
//! code as the audit endpoints (`marketplace_app::audit`).

use crate::cli::AuditCommand;
use crate::wiring::connect;

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { db } => {
            let pool = connect(&db.database_url, 2).await?;
            let found = marketplace_app::audit::verify(&pool).await?;
            println!("{}", serde_json::to_string(&found)?);
            if let Some(b) = &found.broken {
                anyhow::bail!(
                    "the event store's history is broken at {} {} sequence {}: {}",
                    b.aggregate_type,
                    b.aggregate_id,
                    b.sequence,
                    b.reason
                );
            }
            Ok(())
        }
        AuditCommand::History {
            aggregate_type,
            id,
            db,
        } => {
            let pool = connect(&db.database_url, 2).await?;
            let mut after = 0;
            loop {
                let page = marketplace_app::audit::history(&pool, &aggregate_type, &id, after, 500)
                    .await?;
                let Some(last) = page.last().map(|e| e.sequence) else {
                    return Ok(());
                };
                for e in &page {
                    println!("{}", serde_json::to_string(e)?);
                }
                after = last;
            }
        }
    }
}
