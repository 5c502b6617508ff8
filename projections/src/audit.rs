//! The audit index: one row per event of every aggregate, with the
//! metadata operators search on (actor, correlation, causation, request,
//! type, time) and the event's hash as first seen. Searches read it and
//! join back to `events` for payloads; verification compares it with the
//! store (an event removed from the store is still named here).

use sqlx::PgConnection;

use crate::{ApplyError, Projection, StoredEvent};

/// Builds `audit_events`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditIndexProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "audit_index";

#[async_trait::async_trait]
impl Projection for AuditIndexProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        marketplace_domain::upcast::AGGREGATE_TYPES
    }

    /// One insert keyed by the event's position: a duplicate inserts
    /// nothing. The hash is read from the stored row in the same statement
    /// (the Kafka envelope does not carry it).
    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        sqlx::query(
            "INSERT INTO audit_events
                (position, txid, aggregate_type, aggregate_id, sequence, event_type, actor_subject,
                 actor_role, correlation_id, causation_id, request_id, recorded_at, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                     (SELECT hash FROM events
                       WHERE aggregate_type = $3 AND aggregate_id = $4 AND sequence = $5))
             ON CONFLICT (position) DO NOTHING",
        )
        .bind(stored.position)
        .bind(stored.txid)
        .bind(&stored.aggregate_type)
        .bind(&stored.aggregate_id)
        .bind(stored.sequence)
        .bind(&stored.event_type)
        .bind(stored.meta("actor_subject"))
        .bind(stored.meta("actor_role"))
        .bind(stored.meta("correlation_id"))
        .bind(stored.meta("causation_id"))
        .bind(stored.meta("request_id"))
        .bind(stored.recorded_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &["audit_events"]
    }
}
