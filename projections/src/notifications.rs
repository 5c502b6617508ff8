//! Users' notifications, the feed's read side: the `notifications` table,
//! which the notification process manager writes
//! (`marketplace_workers::notify`, one row per cause, its id the causing
//! event), read by the feed, its unread count and the live stream, and
//! marked read here. Items the user's preferences keep out of the feed
//! (`in_feed = false`) are never listed.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// How long the chain keeps a contract in grace before deleting it.
pub fn grace_period() -> Duration {
    Duration::days(14)
}

/// One notification.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Notification {
    /// When the user marked it read.
    pub read_at: Option<DateTime<Utc>>,
    /// Its id: the cause.
    pub id: String,
    /// Its place in the feed, increasing.
    pub position: i64,
    /// What it is about.
    pub kind: String,
    /// The deployment it is about, if any.
    pub deployment_id: Option<Uuid>,
    /// The details.
    pub payload: Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Up to `limit` of `owner`'s notifications after `after` (a position),
/// oldest first.
pub async fn list(
    pool: &PgPool,
    owner: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, position, kind, deployment_id, payload, at, read_at FROM notifications
          WHERE owner = $1 AND in_feed AND position > $2 ORDER BY position LIMIT $3",
    )
    .bind(owner)
    .bind(after.unwrap_or(0))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many of `owner`'s feed items are unread.
pub async fn unread(pool: &PgPool, owner: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE owner = $1 AND in_feed AND read_at IS NULL",
    )
    .bind(owner)
    .fetch_one(pool)
    .await
}

/// Marks `owner`'s notification `id` read (kept as first read); `None`
/// when it is not theirs or not in their feed.
pub async fn mark_read(
    pool: &PgPool,
    owner: &str,
    id: &str,
) -> Result<Option<Notification>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE notifications SET read_at = coalesce(read_at, now())
          WHERE id = $1 AND owner = $2 AND in_feed
          RETURNING id, position, kind, deployment_id, payload, at, read_at",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(pool)
    .await
}

/// Marks every unread item of `owner`'s feed up to `up_to` (a position;
/// all when `None`) read. Answers how many.
pub async fn mark_all_read(
    pool: &PgPool,
    owner: &str,
    up_to: Option<i64>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE notifications SET read_at = now()
          WHERE owner = $1 AND in_feed AND read_at IS NULL AND position <= $2",
    )
    .bind(owner)
    .bind(up_to.unwrap_or(i64::MAX))
    .execute(pool)
    .await?
    .rows_affected())
}
