//! The Idempotency-Key protocol, one for every keyed command: the first
//! answer (status, meaningful headers and body, whatever its shape) is kept
//! and replayed to retries, so a retry emits no second event and sees what
//! the first request saw. The same key with a different request is refused.
//!
//! A record is claimed (`pending`) before the command runs and settled
//! (`done`) after. An answer that may change on a retry (a transient
//! failure) is not kept: the claim is released. The command's events carry
//! the key in their metadata; a record left pending by a crash is settled
//! when a retry finds it stale, as the command's [`Recovery`] says.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::error::CommandError;

/// A pending record older than this is presumed abandoned by a crash.
fn stale_after() -> Duration {
    Duration::seconds(30)
}

/// An answer as kept for replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Headers that carry meaning (`content-type`, `location`, `etag`), by
    /// lower-case name.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`null` when there was none).
    pub body: Value,
}

/// What a command's run produced, for the protocol.
#[derive(Debug)]
pub enum Outcome {
    /// The answer stands: keep it for retries.
    Final(Answer),
    /// The answer may differ next time (a dependency down, a lost race):
    /// send it, keep nothing, release the key.
    Transient(Answer),
}

/// How a retry settles a claim that a crashed request left pending.
#[derive(Debug, Clone)]
pub enum Recovery {
    /// The command answers 202 with its aggregate's id and version: if its
    /// events committed, answer that from the store.
    Accepted {
        /// The aggregate type the events are under.
        aggregate_type: &'static str,
        /// The resource's path, for `Location`.
        location: String,
    },
    /// The command is safe to run again and answers the same when it finds
    /// its own effect (its ids derive from the key): run it again.
    Rerun,
}

/// One keyed request.
#[derive(Debug, Clone)]
pub struct Keyed<'a> {
    /// Whose key it is (keys are per caller).
    pub subject: &'a str,
    /// The Idempotency-Key.
    pub key: &'a str,
    /// What makes two requests the same: see [`fingerprint`].
    pub fingerprint: Vec<u8>,
    /// The aggregate the command targets.
    pub aggregate_id: &'a str,
    /// How a stale claim is settled.
    pub recovery: Recovery,
}

/// A digest of what makes two requests "the same" for an Idempotency-Key:
/// the operation and its body.
pub fn fingerprint(request: impl serde::Serialize) -> Vec<u8> {
    Sha256::digest(serde_json::to_vec(&request).unwrap_or_default()).to_vec()
}

/// The answer 202 for an aggregate at `version`, as every accepting
/// command gives it.
pub fn accepted(id: &str, version: u64, location: &str) -> Answer {
    Answer {
        status: 202,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), location.to_string()),
            ("etag".into(), format!("\"{version}\"")),
        ],
        body: serde_json::json!({ "id": id, "version": version }),
    }
}

/// Runs `command` under the protocol for `request`: a fresh key runs it
/// and keeps its answer; a retry gets the first answer again.
pub async fn run<F>(pool: &PgPool, request: Keyed<'_>, command: F) -> Result<Answer, CommandError>
where
    F: Future<Output = Outcome>,
{
    match claim(pool, &request).await? {
        Claim::Mismatch => Err(CommandError::IdempotencyKeyReused),
        Claim::InProgress => Err(CommandError::IdempotencyInProgress),
        Claim::Replay(answer) => Ok(answer),
        Claim::Fresh => match command.await {
            Outcome::Final(answer) => {
                if let Err(e) = finish(pool, request.subject, request.key, &answer).await {
                    // The command's outcome stands; a retry settles the record.
                    tracing::warn!(error = %e, "could not record the idempotency answer");
                }
                Ok(answer)
            }
            Outcome::Transient(answer) => {
                if let Err(e) = abandon(pool, request.subject, request.key).await {
                    tracing::warn!(error = %e, "could not release the idempotency key");
                }
                Ok(answer)
            }
        },
    }
}

enum Claim {
    Fresh,
    Replay(Answer),
    InProgress,
    Mismatch,
}

#[derive(sqlx::FromRow)]
struct Record {
    request_hash: Vec<u8>,
    aggregate_id: String,
    state: String,
    status_code: Option<i16>,
    response_headers: Option<Value>,
    response_body: Option<Value>,
    created_at: DateTime<Utc>,
}

impl Record {
    fn answer(self) -> Answer {
        let status = self.status_code.map_or(200, |s| s as u16);
        let headers = self
            .response_headers
            .and_then(|h| serde_json::from_value::<Vec<(String, String)>>(h).ok())
            // Kept before answers kept their headers: a problem or a JSON body.
            .unwrap_or_else(|| {
                let kind = if status >= 400 {
                    "application/problem+json"
                } else {
                    "application/json"
                };
                vec![("content-type".to_string(), kind.to_string())]
            });
        Answer {
            status,
            headers,
            body: self.response_body.unwrap_or(Value::Null),
        }
    }
}

async fn claim(pool: &PgPool, request: &Keyed<'_>) -> Result<Claim, sqlx::Error> {
    let (subject, key) = (request.subject, request.key);
    // Two rounds at most: a record deleted between our insert and our read
    // (its command failed transiently) is claimed afresh.
    for _ in 0..2 {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (subject, key, request_hash, aggregate_id, state)
             VALUES ($1, $2, $3, $4, 'pending') ON CONFLICT (subject, key) DO NOTHING",
        )
        .bind(subject)
        .bind(key)
        .bind(&request.fingerprint)
        .bind(request.aggregate_id)
        .execute(pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Fresh);
        }
        let Some(record): Option<Record> = sqlx::query_as(
            "SELECT request_hash, aggregate_id, state, status_code, response_headers,
                    response_body, created_at
               FROM idempotency_keys WHERE subject = $1 AND key = $2",
        )
        .bind(subject)
        .bind(key)
        .fetch_optional(pool)
        .await?
        else {
            continue;
        };
        if record.request_hash != request.fingerprint {
            return Ok(Claim::Mismatch);
        }
        if record.state == "done" {
            return Ok(Claim::Replay(record.answer()));
        }
        if Utc::now() - record.created_at < stale_after() {
            return Ok(Claim::InProgress);
        }
        // Stale: the request that claimed it crashed, before or after its
        // command committed.
        if let Recovery::Accepted {
            aggregate_type,
            location,
        } = &request.recovery
        {
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
                let answer = accepted(&record.aggregate_id, version as u64, location);
                finish(pool, subject, key, &answer).await?;
                return Ok(Claim::Replay(answer));
            }
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

async fn finish(
    pool: &PgPool,
    subject: &str,
    key: &str,
    answer: &Answer,
) -> Result<(), sqlx::Error> {
    let headers = serde_json::to_value(&answer.headers).unwrap_or(Value::Null);
    sqlx::query(
        "UPDATE idempotency_keys
            SET state = 'done', status_code = $3, response_headers = $4, response_body = $5
          WHERE subject = $1 AND key = $2",
    )
    .bind(subject)
    .bind(key)
    .bind(answer.status as i16)
    .bind(headers)
    .bind(&answer.body)
    .execute(pool)
    .await?;
    Ok(())
}

async fn abandon(pool: &PgPool, subject: &str, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE subject = $1 AND key = $2 AND state = 'pending'",
    )
    .bind(subject)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}
