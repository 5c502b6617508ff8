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

    /// One insert for the whole batch, each row's hash read from the store
    /// in the same statement; duplicates insert nothing.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ApplyError> {
        let column = |f: fn(&StoredEvent) -> Option<&str>| -> Vec<Option<&str>> {
            events.iter().map(|e| f(e)).collect()
        };
        let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
        let txids: Vec<i64> = events.iter().map(|e| e.txid).collect();
        let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
        let recorded: Vec<chrono::DateTime<chrono::Utc>> =
            events.iter().map(|e| e.recorded_at).collect();
        sqlx::query(
            "INSERT INTO audit_events
                (position, txid, aggregate_type, aggregate_id, sequence, event_type, actor_subject,
                 actor_role, correlation_id, causation_id, request_id, recorded_at, hash)
             SELECT r.p, r.x, r.t, r.i, r.s, r.et, r.a, r.ar, r.c, r.ca, r.rq, r.at, e.hash
               FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[])
                    AS r(p, x, t, i, s, et, a, ar, c, ca, rq, at)
               LEFT JOIN events e
                 ON e.aggregate_type = r.t AND e.aggregate_id = r.i AND e.sequence = r.s
             ON CONFLICT (position) DO NOTHING",
        )
        .bind(&positions)
        .bind(&txids)
        .bind(column(|e| Some(e.aggregate_type.as_str())))
        .bind(column(|e| Some(e.aggregate_id.as_str())))
        .bind(&sequences)
        .bind(column(|e| Some(e.event_type.as_str())))
        .bind(column(|e| e.meta("actor_subject")))
        .bind(column(|e| e.meta("actor_role")))
        .bind(column(|e| e.meta("correlation_id")))
        .bind(column(|e| e.meta("causation_id")))
        .bind(column(|e| e.meta("request_id")))
        .bind(&recorded)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &["audit_events"]
    }

    /// It only inserts, by position (the key), and reads the store.
    fn rebuild_indexes_after_rows(&self) -> bool {
        true
    }
}
