//! A view as it stood at a past instant, for an audit: built from the
//! events committed up to then, in commit order, into a scratch schema of
//! the operator's naming, beside the live view and never swapped in. The
//! projection's own `apply` builds it, so it is exactly the view the live
//! runner had at that point (events a runner had not reached yet aside).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tracing::info;

use crate::{Projection, StoredEvent};

/// Why a view could not be built as of a time.
#[derive(Debug, thiserror::Error)]
pub enum AsOfError {
    /// The schema name is not one a scratch view may take.
    #[error("schema {0:?} must be 1 to 63 lowercase letters, digits or underscores, start with a letter, and not be public or a rebuild's")]
    BadSchema(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Whether `schema` may be a scratch view's: a plain identifier, not one
/// the store or rebuilds use.
pub fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63
        && !matches!(schema, "public" | "information_schema")
        && !schema.starts_with("pg_")
        && !schema.starts_with("rebuild_")
        && !schema.starts_with("retired_")
}

/// Builds `projection`'s tables in `schema` (dropped and made anew) from
/// every event recorded at or before `until`, `batch` events per
/// transaction; events the projection refuses are dead-lettered into the
/// schema's own `projection_dead_letters`. Returns the events read.
pub async fn build<P: Projection>(
    pool: &PgPool,
    projection: &P,
    until: DateTime<Utc>,
    schema: &str,
    batch: i64,
) -> Result<usize, AsOfError> {
    if !valid_schema(schema) {
        return Err(AsOfError::BadSchema(schema.to_string()));
    }
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut *tx)
        .await?;
    for table in projection
        .tables()
        .iter()
        .chain(["projection_dead_letters"].iter())
    {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;

    let mut after = (0_i64, 0_i64);
    let mut done = 0;
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
            .execute(&mut *tx)
            .await?;
        let events: Vec<StoredEvent> = sqlx::query_as(
            "SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type, event_version,
                    payload, metadata, recorded_at
               FROM public.events
              WHERE (txid, position) > ($1, $2) AND recorded_at <= $3
              ORDER BY txid, position
              LIMIT $4",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(until)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = events.last() else {
            break;
        };
        after = (last.txid, last.position);
        crate::apply_events(&mut tx, projection, &events, true).await?;
        tx.commit().await?;
        done += events.len();
        if (events.len() as i64) < batch {
            break;
        }
    }
    info!(
        projection = projection.name(),
        %until,
        schema,
        events = done,
        "view built as of {until} in schema {schema}"
    );
    Ok(done)
}
