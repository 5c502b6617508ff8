//! `marketplace audit ...`: thin wrappers over the same library code as the
//! audit endpoints (`marketplace_app::audit`). Every read of an aggregate is
//! recorded in the access log as `cli:<user>`.

use std::io::Write;

use marketplace_app::audit::{self, search, Until};

use crate::cli::AuditCommand;
use crate::wiring::connect;

fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { db } => {
            let pool = connect(&db.database_url, 2).await?;
            let found = audit::integrity::verify_and_record(&pool).await?;
            print(&found)?;
            if let Some(b) = &found.broken {
                anyhow::bail!(
                    "the event store's history is broken: {}",
                    match (&b.aggregate_type, &b.aggregate_id, b.sequence) {
                        (Some(t), Some(id), Some(seq)) =>
                            format!("{t} {id} sequence {seq}: {}", b.reason),
                        _ => b.reason.clone(),
                    }
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
            audit::record_access(
                &pool,
                &cli_actor(),
                &aggregate_type,
                &id,
                "events (cli)",
                "",
            )
            .await?;
            let mut after = 0;
            loop {
                let page = audit::history(&pool, &aggregate_type, &id, after, 500).await?;
                let Some(last) = page.last().map(|e| e.sequence) else {
                    return Ok(());
                };
                for e in &page {
                    print(e)?;
                }
                after = last;
            }
        }
        AuditCommand::State {
            aggregate_type,
            id,
            at,
            version,
            db,
        } => {
            let pool = connect(&db.database_url, 2).await?;
            let until = Until { version, at };
            let asked = format!("state {} (cli)", until.describe());
            audit::record_access(&pool, &cli_actor(), &aggregate_type, &id, &asked, "").await?;
            let Some((version, state)) = audit::state(&pool, &aggregate_type, &id, until).await?
            else {
                anyhow::bail!("{aggregate_type} {id} had no event by then");
            };
            print(&serde_json::json!({ "version": version, "state": state }))
        }
        AuditCommand::Diff {
            aggregate_type,
            id,
            from,
            to,
            db,
        } => {
            let pool = connect(&db.database_url, 2).await?;
            let asked = format!("diff from={from} to={to} (cli)");
            audit::record_access(&pool, &cli_actor(), &aggregate_type, &id, &asked, "").await?;
            let Some(diff) = audit::diff(&pool, &aggregate_type, &id, from, to).await? else {
                anyhow::bail!(
                    "{aggregate_type} {id} has not reached version {}",
                    from.max(to)
                );
            };
            print(&diff)
        }
        AuditCommand::Correlate { correlation_id, db } => {
            let pool = connect(&db.database_url, 2).await?;
            let asked = format!("correlate {correlation_id} (cli)");
            audit::record_access(&pool, &cli_actor(), "*", "*", &asked, "").await?;
            let tree = search::correlate(&pool, &correlation_id).await?;
            if tree.events.is_empty() {
                anyhow::bail!("no event has correlation id {correlation_id:?}");
            }
            for e in &tree.events {
                print(e)?;
            }
            if tree.truncated {
                tracing::warn!(
                    "the tree was cut at {} events or {} steps",
                    search::TREE_EVENTS,
                    search::TREE_DEPTH
                );
            }
            Ok(())
        }
        AuditCommand::Export {
            from,
            to,
            actor,
            aggregate_type,
            db,
        } => {
            if from >= to {
                anyhow::bail!("--from must be before --to");
            }
            let pool = connect(&db.database_url, 2).await?;
            let query = search::Query {
                actor,
                aggregate_type,
                from: Some(from),
                to: Some(to),
                ..search::Query::default()
            };
            let asked = format!(
                "export from={} to={} (cli)",
                from.to_rfc3339(),
                to.to_rfc3339()
            );
            audit::record_access(
                &pool,
                &cli_actor(),
                query.aggregate_type.as_deref().unwrap_or("*"),
                "*",
                &asked,
                "",
            )
            .await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let n = search::export(&pool, query, &mut out).await?;
            tracing::info!(events = n, "exported");
            Ok(())
        }
    }
}
