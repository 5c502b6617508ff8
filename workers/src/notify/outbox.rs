//! The notification outbox: one row per notification and channel
//! (`email`, `webhook:<endpoint>`), drained by the delivery workers.
//!
//! A delivery takes three steps: the lease records the attempt
//! (`attempts + 1`, `attempting_since`) and commits; the worker sends;
//! the result is recorded (sent, or due again after a backoff, or failed
//! once retries have run for their window). A worker that dies between
//! the send and the record leaves the row leased with `attempting_since`
//! set; when the lease lapses another worker sends again, under the same
//! id (the notification's), for the receiver to recognise. That is the
//! boundary: at least once on the wire, once per id.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A leased outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Leased {
    /// The notification.
    pub notification_id: String,
    /// The channel: `email` or `webhook:<endpoint id>`.
    pub channel: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// Since when retries run.
    pub retry_since: DateTime<Utc>,
}

/// How deliveries are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The wait after the first failure; doubled after each further one.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How long to keep trying before the delivery is marked failed.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 30 s doubling up to an hour, for a day.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts.
    pub fn wait(&self, attempts: i32) -> Duration {
        let doublings = (attempts.max(1) - 1).min(20) as u32;
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

/// Leases up to `limit` due rows whose channel is like `pattern`,
/// recording the attempt before anything is sent.
pub async fn lease(
    pool: &PgPool,
    pattern: &str,
    holder: &str,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Leased>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE notification_outbox SET leased_until = now() + $4 * interval '1 millisecond',
                leased_by = $3, attempts = attempts + 1, attempting_since = now()
          WHERE (notification_id, channel) IN (
                SELECT notification_id, channel FROM notification_outbox
                 WHERE status = 'pending' AND due_at <= now() AND channel LIKE $1
                   AND (leased_until IS NULL OR leased_until < now())
                 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
          RETURNING notification_id, channel, attempts, retry_since",
    )
    .bind(pattern)
    .bind(limit)
    .bind(holder)
    .bind(lease.as_millis() as i64)
    .fetch_all(pool)
    .await
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Sent,
    /// Not delivered: retried later, or marked failed past the window.
    Failed(String),
    /// Nothing to send any more (the endpoint was deleted, the address
    /// is gone): marked failed at once.
    Dropped(String),
}

/// Records the result of an attempt at `row`, if `holder` still holds it.
/// Answers the row's new status.
pub async fn settle(
    pool: &PgPool,
    row: &Leased,
    holder: &str,
    outcome: &Outcome,
    policy: &RetryPolicy,
) -> Result<&'static str, sqlx::Error> {
    let (status, error, wait) = match outcome {
        Outcome::Sent => ("sent", None, Duration::ZERO),
        Outcome::Dropped(e) => ("failed", Some(e.as_str()), Duration::ZERO),
        Outcome::Failed(e) => {
            let given_up = (Utc::now() - row.retry_since)
                .to_std()
                .map(|d| d >= policy.give_up_after)
                .unwrap_or(false);
            (
                if given_up { "failed" } else { "pending" },
                Some(e.as_str()),
                policy.wait(row.attempts),
            )
        }
    };
    sqlx::query(
        "UPDATE notification_outbox SET status = $3, last_error = $4,
                sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END,
                due_at = now() + $5 * interval '1 millisecond',
                leased_until = NULL, leased_by = NULL, attempting_since = NULL
          WHERE notification_id = $1 AND channel = $2 AND leased_by = $6",
    )
    .bind(&row.notification_id)
    .bind(&row.channel)
    .bind(status)
    .bind(error)
    .bind(wait.as_millis() as i64)
    .bind(holder)
    .execute(pool)
    .await?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.wait(1), Duration::from_secs(30));
        assert_eq!(p.wait(3), Duration::from_secs(120));
        assert_eq!(p.wait(40), Duration::from_secs(3600));
    }
}
