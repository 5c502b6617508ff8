//! Read models and the runners that build them from the event store.
//!
//! A projection turns stored events into rows of its view tables. The same
//! projection code runs behind any event source; the one here tails the
//! PostgreSQL store in commit order ([`tail`]), committing its checkpoint in
//! the same transaction as the view change, so a crash at any point neither
//! loses nor doubles an event.

pub mod alliances;
pub mod as_of;
pub mod audit;
mod copy;
pub mod deployments;
pub mod nodes;
pub mod notifications;
pub mod pricing;
pub mod providers;
pub mod tail;
pub mod tft_price;
pub mod users;
pub mod wallets;

use std::borrow::Borrow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

/// The registry: every projection the marketplace runs. Runners, rebuilds,
/// dead-letter retries, the relay's topics and the operators' lists all
/// read it, so adding a view is its module plus one line here.
pub fn registry() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(deployments::DeploymentProjection),
        Arc::new(nodes::NodeProjection),
        Arc::new(providers::ProviderRequestProjection),
        Arc::new(pricing::PricingPolicyProjection),
        Arc::new(wallets::WalletProjection),
        Arc::new(tft_price::TftPriceProjection),
        Arc::new(alliances::AllianceProjection),
        Arc::new(audit::AuditIndexProjection),
        Arc::new(users::UserProjection),
    ]
}

/// Every projection's name, in registry order.
pub fn names() -> Vec<&'static str> {
    registry().iter().map(|p| p.name()).collect()
}

/// The projection called `name`, if there is one.
pub fn named(name: &str) -> Option<Arc<dyn Projection>> {
    registry().into_iter().find(|p| p.name() == name)
}

/// The projection called `name`, or an error that lists the known ones.
pub fn known(name: &str) -> Result<Arc<dyn Projection>, String> {
    named(name).ok_or_else(|| format!("unknown projection {name:?}; known: {}", names().join(", ")))
}

/// Every aggregate type some projection reads (the Kafka relay makes their
/// topics up front), from the projections themselves.
pub fn aggregate_types() -> Vec<&'static str> {
    let mut types: Vec<&'static str> = registry()
        .iter()
        .flat_map(|p| p.aggregate_types().iter().copied())
        .collect();
    types.sort_unstable();
    types.dedup();
    types
}

/// One event as stored, with its place in the store. Serialised as JSON, it
/// is also the envelope the relay publishes to Kafka.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct StoredEvent {
    /// Insertion position (unique, not commit order).
    pub position: i64,
    /// The writing transaction's id.
    pub txid: i64,
    /// Aggregate type (`deployment`).
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Sequence within the aggregate, from 1.
    pub sequence: i64,
    /// Event type name.
    pub event_type: String,
    /// Payload version, for upcasting.
    pub event_version: String,
    /// The event itself.
    pub payload: Value,
    /// Actor, correlation, causation and request ids.
    pub metadata: Value,
    /// When the store committed it.
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// A metadata entry, if present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// Why a projection could not apply an event. The runner dead-letters it and
/// goes on.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event does not fit the view (unknown version, malformed payload,
    /// a gap in the aggregate's sequence): retrying will not help until the
    /// cause is fixed.
    #[error("{0}")]
    Poison(String),
    /// The database failed; the whole batch is retried.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A read model built from events. Object-safe, so the [`registry`] can
/// hold every projection in one list.
#[async_trait::async_trait]
pub trait Projection: Send + Sync + 'static {
    /// The projection's name: its checkpoint and dead letters are kept under it.
    fn name(&self) -> &'static str;

    /// The aggregate types whose events the projection reads (a Kafka worker
    /// subscribes to their topics).
    fn aggregate_types(&self) -> &'static [&'static str];

    /// Whether the projection reads events of this aggregate type.
    fn handles(&self, aggregate_type: &str) -> bool {
        self.aggregate_types().contains(&aggregate_type)
    }

    /// Applies one event inside the caller's transaction. Must be a no-op
    /// for an event already applied (each row remembers its last sequence).
    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError>;

    /// Applies a batch of its events, in commit order, inside the caller's
    /// transaction, with the same effect as applying each in turn. A
    /// projection overrides it to apply runs of events as set-based
    /// statements; the default applies each. On poison the runner applies
    /// the batch again event by event, so the poison is isolated.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ApplyError> {
        for event in events {
            self.apply(conn, event).await?;
        }
        Ok(())
    }

    /// The projection's view tables. Its SQL names them unqualified, so a
    /// rebuild can build them aside in another schema (through the
    /// `search_path`) and swap them in.
    fn tables(&self) -> &'static [&'static str];

    /// Whether a rebuild may build the tables' indexes that only serve
    /// reads (not unique, no constraint) after the rows are in, one sort
    /// each: only for a projection whose own statements find rows by their
    /// keys alone (otherwise each lookup would scan the table).
    fn rebuild_indexes_after_rows(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl Projection for Arc<dyn Projection> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        (**self).aggregate_types()
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
        (**self).apply(conn, event).await
    }

    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ApplyError> {
        (**self).apply_batch(conn, events).await
    }

    fn tables(&self) -> &'static [&'static str] {
        (**self).tables()
    }

    fn rebuild_indexes_after_rows(&self) -> bool {
        (**self).rebuild_indexes_after_rows()
    }
}

/// Reads a stored event's payload as the domain event of `current_version`,
/// refusing unknown versions and payloads whose tag disagrees with the row.
/// An older version is upcast first ([`marketplace_domain::upcast`]), the
/// same steps aggregate loads and the audit API take.
pub fn decode_event<E>(stored: &StoredEvent, current_version: &str) -> Result<E, ApplyError>
where
    E: cqrs_es::DomainEvent,
{
    let malformed = |e: serde_json::Error| {
        ApplyError::Poison(format!("malformed {} payload: {e}", stored.event_type))
    };
    // The payload is `{ "<EventType>": { ... } }`; its tag must agree with
    // event_type. A current one is read in place (a rebuild reads every
    // event: no copy of each payload first).
    let parsed: E = if stored.event_version == current_version {
        serde::Deserialize::deserialize(&stored.payload).map_err(malformed)?
    } else {
        let payload = marketplace_domain::upcast::upcast(
            &stored.aggregate_type,
            &stored.event_type,
            &stored.event_version,
            stored.payload.clone(),
        )
        .map_err(|e| ApplyError::Poison(e.to_string()))?;
        serde_json::from_value(payload).map_err(malformed)?
    };
    let tag = parsed.event_type();
    if tag != stored.event_type {
        return Err(ApplyError::Poison(format!(
            "payload is a {tag} but the row says {}",
            stored.event_type
        )));
    }
    Ok(parsed)
}

/// What a change guarded by `version = sequence - 1` that changed no row
/// means, given the row's version (`None`: no row): a duplicate is a no-op;
/// a gap or a missing row is poison.
pub fn unchanged(
    current: Option<i64>,
    stored: &StoredEvent,
    subject: &str,
) -> Result<(), ApplyError> {
    let seq = stored.sequence;
    match current {
        Some(v) if v >= seq => Ok(()), // already applied
        Some(v) => Err(ApplyError::Poison(format!(
            "sequence gap: view at {v}, event at {seq}"
        ))),
        None => Err(ApplyError::Poison(format!(
            "{} at sequence {seq} for a {subject} the view does not have",
            stored.event_type
        ))),
    }
}

/// Applies `events` (those the projection handles) inside the caller's
/// transaction. Without `isolate_each_event` the first poison event stops the
/// attempt and `None` is returned: the caller rolls back and tries again with
/// isolation. With it, each event runs in a savepoint and poison is
/// dead-lettered; the number dead-lettered is returned.
pub async fn apply_events<P: Projection, S: Borrow<StoredEvent> + Sync>(
    tx: &mut PgConnection,
    projection: &P,
    events: &[S],
    isolate_each_event: bool,
) -> Result<Option<Vec<(usize, String)>>, sqlx::Error> {
    use sqlx::Acquire;
    let mut dead = Vec::new();
    if !isolate_each_event {
        let mine: Vec<&StoredEvent> = events
            .iter()
            .map(Borrow::borrow)
            .filter(|e: &&StoredEvent| projection.handles(&e.aggregate_type))
            .collect();
        if mine.is_empty() {
            return Ok(Some(dead));
        }
        return match projection.apply_batch(tx, &mine).await {
            Ok(()) => Ok(Some(dead)),
            Err(ApplyError::Poison(_)) => Ok(None),
            Err(ApplyError::Database(e)) => Err(e),
        };
    }
    for (i, event) in events.iter().map(Borrow::borrow).enumerate() {
        if !projection.handles(&event.aggregate_type) {
            continue;
        }
        let mut savepoint = tx.begin().await?;
        match projection.apply(&mut savepoint, event).await {
            Ok(()) => savepoint.commit().await?,
            Err(ApplyError::Poison(reason)) => {
                savepoint.rollback().await?;
                tracing::warn!(
                    projection = projection.name(),
                    position = event.position,
                    aggregate_id = %event.aggregate_id,
                    sequence = event.sequence,
                    event_type = %event.event_type,
                    error = %reason,
                    "event dead-lettered"
                );
                tail::dead_letter(tx, projection.name(), event, &reason).await?;
                dead.push((i, reason));
            }
            Err(ApplyError::Database(e)) => return Err(e),
        }
    }
    Ok(Some(dead))
}
