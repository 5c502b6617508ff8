//! The pricing policy's history: one row per change an operator made,
//! keyed by the aggregate's sequence (the policy's version). The newest row
//! is the policy in force; before any change there is no row and the grid's
//! default policy applies (`PricingPolicy::default()`).
//!
//! Every column comes from events, so a rebuild reproduces the table exactly
//! (ARCHITECTURE.md, invariant 6).

use chrono::{DateTime, Utc};
use marketplace_domain::pricing::{PricingPolicy, PricingPolicyEvent, AGGREGATE_ID, EVENT_VERSION};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::{ApplyError, Projection, StoredEvent};

/// Builds `pricing_policy_history`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PricingPolicyProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "pricing_policy";

/// The aggregate type it reads.
pub const AGGREGATE_TYPE: &str = "pricing_policy";

/// Reads a stored pricing policy event, upcasting older payload versions.
pub fn upcast(event: &StoredEvent) -> Result<PricingPolicyEvent, ApplyError> {
    crate::decode_event(event, EVENT_VERSION)
}

#[async_trait::async_trait]
impl Projection for PricingPolicyProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    /// One insert per change, keyed by the sequence, made only when the
    /// previous change is there; when it inserts nothing, a second look
    /// tells a duplicate (no-op) from a gap (poison).
    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        if stored.aggregate_id != AGGREGATE_ID {
            return Err(ApplyError::Poison(format!(
                "pricing policy aggregate {:?}; there is only {AGGREGATE_ID:?}",
                stored.aggregate_id
            )));
        }
        let seq = stored.sequence;
        let PricingPolicyEvent::PricingPolicyChanged { policy, by, at, .. } = upcast(stored)?;
        let policy = serde_json::to_value(&policy)
            .map_err(|e| ApplyError::Poison(format!("cannot serialise: {e}")))?;
        let inserted = sqlx::query(
            "INSERT INTO pricing_policy_history (version, policy, changed_by, changed_at)
             SELECT $1, $2, $3, $4
              WHERE $1 = 1 OR EXISTS (SELECT 1 FROM pricing_policy_history WHERE version = $1 - 1)
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(seq)
        .bind(policy)
        .bind(&by.subject)
        .bind(at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(());
        }
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM pricing_policy_history")
                .fetch_one(&mut *conn)
                .await?;
        match newest {
            Some(v) if v >= seq => Ok(()), // already applied
            Some(v) => Err(ApplyError::Poison(format!(
                "sequence gap: history at {v}, event at {seq}"
            ))),
            None => Err(ApplyError::Poison(format!(
                "sequence gap: history empty, event at {seq}"
            ))),
        }
    }

    fn tables(&self) -> &'static [&'static str] {
        &["pricing_policy_history"]
    }
}

/// One change of the pricing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyChange {
    /// The aggregate's sequence: 1 for the first change.
    pub version: i64,
    /// The policy from this change on.
    pub policy: PricingPolicy,
    /// The operator's subject.
    pub changed_by: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    version: i64,
    policy: Value,
    changed_by: String,
    changed_at: DateTime<Utc>,
}

impl TryFrom<HistoryRow> for PolicyChange {
    type Error = sqlx::Error;

    fn try_from(row: HistoryRow) -> Result<Self, Self::Error> {
        Ok(PolicyChange {
            version: row.version,
            policy: serde_json::from_value(row.policy)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            changed_by: row.changed_by,
            changed_at: row.changed_at,
        })
    }
}

/// The policy in force: (version, policy, changed by, changed at) of the
/// newest change; `None` while the grid default applies.
pub async fn current(
    pool: &PgPool,
) -> Result<Option<(i64, PricingPolicy, String, DateTime<Utc>)>, sqlx::Error> {
    let row: Option<HistoryRow> = sqlx::query_as(
        "SELECT version, policy, changed_by, changed_at
           FROM pricing_policy_history ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    row.map(PolicyChange::try_from)
        .transpose()
        .map(|c| c.map(|c| (c.version, c.policy, c.changed_by, c.changed_at)))
}

/// The policy in force as the view knows it: the newest change's, or the
/// grid default (version 0) while nothing changed it.
pub async fn current_policy(pool: &PgPool) -> Result<(i64, PricingPolicy), sqlx::Error> {
    Ok(current(pool).await?.map_or_else(
        || (0, PricingPolicy::default()),
        |(version, policy, _, _)| (version, policy),
    ))
}

/// Up to `limit` changes, newest first, older than `before_version` when given
/// (pass the last version of a page to get the next one).
pub async fn history(
    pool: &PgPool,
    limit: i64,
    before_version: Option<i64>,
) -> Result<Vec<PolicyChange>, sqlx::Error> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT version, policy, changed_by, changed_at
           FROM pricing_policy_history
          WHERE $1::bigint IS NULL OR version < $1
          ORDER BY version DESC LIMIT $2",
    )
    .bind(before_version)
    .bind(limit.max(1))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(PolicyChange::try_from).collect()
}
