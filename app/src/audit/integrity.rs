//! Tamper evidence (ARCHITECTURE.md invariant 11). Three checks, each
//! catching what the one before cannot:
//! 1. every aggregate's hash chain (`migrations/0016_event_hashes.sql`): an
//!    event edited in place, or one removed from the middle of its
//!    aggregate;
//! 2. the store against the audit index, which keeps each event's key and
//!    hash as first committed: an aggregate's last event removed, or a chain
//!    recomputed after an edit;
//! 3. the global checkpoints over commit order (`audit_checkpoints`): any
//!    change to events they cover, even with the index doctored as well.

use std::time::Instant;

use serde::Serialize;
use sqlx::PgPool;
use tracing::info;

/// Where the store's history was found broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The aggregate type, when one event is named.
    pub aggregate_type: Option<String>,
    /// The aggregate, when one event is named.
    pub aggregate_id: Option<String>,
    /// The first event of it that does not check out.
    pub sequence: Option<i64>,
    /// The checkpoint that no longer matches, for a checkpoint finding.
    pub checkpoint: Option<i64>,
    /// `edited` (its hash does not match its bytes and its predecessor's
    /// hash), `missing before it` (a sequence was removed before it),
    /// `removed` (the index saw it committed; the store no longer has it),
    /// `rehashed` (its hash differs from the one committed) or `checkpoint`
    /// (the events a checkpoint covers changed).
    pub reason: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Events checked.
    pub checked: i64,
    /// Checkpoints recomputed.
    pub checkpoints: i64,
    /// The first break, if any: chains first, in (aggregate type, id,
    /// sequence) order, then the index, then the checkpoints.
    pub broken: Option<Broken>,
}

fn event(row: (String, String, i64, String)) -> Broken {
    Broken {
        aggregate_type: Some(row.0),
        aggregate_id: Some(row.1),
        sequence: Some(row.2),
        checkpoint: None,
        reason: row.3,
    }
}

/// Runs the three checks and answers the first break.
pub async fn verify(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    let checked: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let checkpoints: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_checkpoints")
        .fetch_one(pool)
        .await?;
    let found = |broken| Verification {
        checked,
        checkpoints,
        broken: Some(broken),
    };
    let chained: Option<(String, String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, sequence,
                CASE WHEN sequence <> coalesce(prev_sequence, 0) + 1 THEN 'missing before it'
                     ELSE 'edited' END
           FROM (SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.hash,
                        lag(e.sequence) OVER w AS prev_sequence,
                        event_hash(lag(e.hash) OVER w, e) AS expected
                   FROM events e
                 WINDOW w AS (PARTITION BY e.aggregate_type, e.aggregate_id ORDER BY e.sequence)) c
          WHERE hash IS DISTINCT FROM expected
             OR sequence <> coalesce(prev_sequence, 0) + 1
          ORDER BY aggregate_type, aggregate_id, sequence
          LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    if let Some(row) = chained {
        return Ok(found(event(row)));
    }
    let indexed: Option<(String, String, i64, String)> = sqlx::query_as(
        "SELECT a.aggregate_type, a.aggregate_id, a.sequence,
                CASE WHEN e.sequence IS NULL THEN 'removed' ELSE 'rehashed' END
           FROM audit_events a
           LEFT JOIN events e USING (aggregate_type, aggregate_id, sequence)
          WHERE e.sequence IS NULL OR (a.hash IS NOT NULL AND e.hash IS DISTINCT FROM a.hash)
          ORDER BY a.position
          LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    if let Some(row) = indexed {
        return Ok(found(event(row)));
    }
    let checkpoint: Option<(i64, i64, i64)> = sqlx::query_as(
        "WITH c AS (
            SELECT id, last_txid, last_position, events, hash,
                   lag(hash) OVER (ORDER BY id) AS prev_hash,
                   lag(last_txid) OVER (ORDER BY id) AS prev_txid,
                   lag(last_position) OVER (ORDER BY id) AS prev_position
              FROM audit_checkpoints)
         SELECT c.id, c.events, r.n
           FROM c CROSS JOIN LATERAL (
                SELECT count(*) AS n,
                       sha256(coalesce(c.prev_hash, ''::bytea) || coalesce(
                           string_agg(coalesce(e.hash, '\\x00'::bytea), ''::bytea ORDER BY e.txid, e.position),
                           ''::bytea)) AS h
                  FROM events e
                 WHERE (e.txid, e.position) > (coalesce(c.prev_txid, 0), coalesce(c.prev_position, 0))
                   AND (e.txid, e.position) <= (c.last_txid, c.last_position)) r
          WHERE r.n <> c.events OR r.h <> c.hash
          ORDER BY c.id
          LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(Verification {
        checked,
        checkpoints,
        broken: checkpoint.map(|(id, expected, found)| Broken {
            aggregate_type: None,
            aggregate_id: None,
            sequence: None,
            checkpoint: Some(id),
            reason: format!("checkpoint: it covered {expected} events; {found} are there now, or their hashes changed"),
        }),
    })
}

/// Verifies and records what was found (the metric and the operators'
/// page read the latest record); logs a break as an error.
pub async fn verify_and_record(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    let started = Instant::now();
    let found = verify(pool).await?;
    let seconds = started.elapsed().as_secs_f64();
    sqlx::query("INSERT INTO audit_verifications (checked, broken, seconds) VALUES ($1, $2, $3)")
        .bind(found.checked)
        .bind(
            found
                .broken
                .as_ref()
                .map(|b| serde_json::to_value(b).unwrap_or_default()),
        )
        .bind(seconds)
        .execute(pool)
        .await?;
    match &found.broken {
        Some(b) => {
            tracing::error!(broken = ?b, checked = found.checked, "the event store's history is broken")
        }
        None => info!(
            checked = found.checked,
            checkpoints = found.checkpoints,
            seconds,
            "event store verified"
        ),
    }
    Ok(found)
}

/// The most events one checkpoint covers: a backlog takes several.
pub const CHECKPOINT_EVENTS: i64 = 100_000;

/// A checkpoint recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Checkpoint {
    /// Its id, increasing.
    pub id: i64,
    /// Events it covers.
    pub events: i64,
    /// Events covered by it and every earlier one.
    pub total: i64,
    /// Its hash, hex.
    pub hash: String,
    /// When it was recorded.
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// Up to `limit` checkpoints after id `after`, oldest first.
pub async fn checkpoints(
    pool: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<Checkpoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, events, total, encode(hash, 'hex') AS hash, recorded_at
           FROM audit_checkpoints WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records the next checkpoint over events committed since the last one
/// (at most [`CHECKPOINT_EVENTS`], from transactions that have all ended),
/// or none when there are none. One writer at a time.
pub async fn checkpoint(pool: &PgPool) -> Result<Option<Checkpoint>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('audit_checkpoints', 7))")
        .execute(&mut *tx)
        .await?;
    let row: Option<Checkpoint> = sqlx::query_as(
        "WITH prev AS (
            SELECT last_txid, last_position, total, hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1),
         batch AS (
            SELECT txid, position, hash FROM events
             WHERE (txid, position) > (coalesce((SELECT last_txid FROM prev), 0),
                                       coalesce((SELECT last_position FROM prev), 0))
               AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
             ORDER BY txid, position LIMIT $1),
         last AS (SELECT txid, position FROM batch ORDER BY txid DESC, position DESC LIMIT 1)
         INSERT INTO audit_checkpoints (last_txid, last_position, events, total, hash)
         SELECT last.txid, last.position, n.n, coalesce((SELECT total FROM prev), 0) + n.n,
                sha256(coalesce((SELECT hash FROM prev), ''::bytea) ||
                       (SELECT string_agg(coalesce(hash, '\\x00'::bytea), ''::bytea ORDER BY txid, position) FROM batch))
           FROM last, (SELECT count(*) AS n FROM batch) n
         RETURNING id, events, total, encode(hash, 'hex') AS hash, recorded_at",
    )
    .bind(CHECKPOINT_EVENTS)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|c| {
        // A copy outside the database: whoever rewrites history must also
        // rewrite the logs.
        info!(checkpoint = c.id, events = c.events, total = c.total, hash = %c.hash, "audit checkpoint recorded");
        c
    }))
}
