//! `Idempotency-Key` records: the first answer to a keyed command is kept
//! and replayed to retries, so a retry emits no second event.
//!
//! A record is claimed (`pending`) before the command runs and settled
//! (`done`) after. The command's events carry the key in their metadata: a
//! record left pending by a crash is settled from the event store when a
//! retry finds it stale, instead of running the command a second time.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::dto::CommandAccepted;

/// A pending record older than this is presumed abandoned by a crash.
fn stale_after() -> Duration {
    Duration::seconds(30)
}

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is ours: run the command.
    Fresh,
    /// Answered before: send this again.
    Replay {
        /// The first answer's status.
        status: u16,
        /// The first answer's body.
        body: Value,
    },
    /// Another request with this key is running now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

#[derive(sqlx::FromRow)]
struct Record {
    request_hash: Vec<u8>,
    aggregate_id: String,
    state: String,
    status_code: Option<i16>,
    response_body: Option<Value>,
    created_at: DateTime<Utc>,
}

/// Claims `key` for a request with fingerprint `hash` on `aggregate_id`.
pub async fn claim(
    pool: &PgPool,
    subject: &str,
    key: &str,
    hash: &[u8],
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Claim, sqlx::Error> {
    // Two rounds at most: a record deleted between our insert and our read
    // (its command failed transiently) is claimed afresh.
    for _ in 0..2 {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (subject, key, request_hash, aggregate_id, state)
             VALUES ($1, $2, $3, $4, 'pending') ON CONFLICT (subject, key) DO NOTHING",
        )
        .bind(subject)
        .bind(key)
        .bind(hash)
        .bind(aggregate_id)
        .execute(pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Fresh);
        }
        let Some(record): Option<Record> = sqlx::query_as(
            "SELECT request_hash, aggregate_id, state, status_code, response_body, created_at
               FROM idempotency_keys WHERE subject = $1 AND key = $2",
        )
        .bind(subject)
        .bind(key)
        .fetch_optional(pool)
        .await?
        else {
            continue;
        };
        if record.request_hash != hash {
            return Ok(Claim::Mismatch);
        }
        if record.state == "done" {
            return Ok(Claim::Replay {
                status: record.status_code.unwrap_or(200) as u16,
                body: record.response_body.unwrap_or(Value::Null),
            });
        }
        if Utc::now() - record.created_at < stale_after() {
            return Ok(Claim::InProgress);
        }
        // Stale: did the abandoned command commit before the crash?
        let committed: Option<i64> = sqlx::query_scalar(
            "SELECT max(sequence) FROM events
              WHERE aggregate_type = $4 AND aggregate_id = $1
                AND metadata ? 'idempotency_key'
                AND metadata->>'idempotency_key' = $2 AND metadata->>'actor_subject' = $3",
        )
        .bind(&record.aggregate_id)
        .bind(key)
        .bind(subject)
        .bind(aggregate_type)
        .fetch_one(pool)
        .await?;
        if let Some(version) = committed {
            let body = serde_json::to_value(CommandAccepted {
                id: record.aggregate_id.clone(),
                version: version as u64,
            })
            .unwrap_or(Value::Null);
            finish(pool, subject, key, 202, &body).await?;
            return Ok(Claim::Replay { status: 202, body });
        }
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET created_at = now()
              WHERE subject = $1 AND key = $2 AND state = 'pending' AND created_at = $3",
        )
        .bind(subject)
        .bind(key)
        .bind(record.created_at)
        .execute(pool)
        .await?;
        return Ok(if taken.rows_affected() == 1 {
            Claim::Fresh
        } else {
            Claim::InProgress
        });
    }
    Ok(Claim::InProgress)
}

/// Keeps the answer for replays.
pub async fn finish(
    pool: &PgPool,
    subject: &str,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', status_code = $3, response_body = $4
          WHERE subject = $1 AND key = $2",
    )
    .bind(subject)
    .bind(key)
    .bind(status as i16)
    .bind(body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets a claim whose command failed transiently, so a retry runs it again.
pub async fn abandon(pool: &PgPool, subject: &str, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE subject = $1 AND key = $2 AND state = 'pending'",
    )
    .bind(subject)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}
