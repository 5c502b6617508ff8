//! Operators' audit reads of the event store: an aggregate's history, event
//! by event with its metadata and commit position, and its state at any
//! version or time, folded by the domain's own `apply` (no second
//! implementation of any rule); searches over the audit index
//! ([`search`]); tamper evidence ([`integrity`]). Payloads are read through
//! the same decoding and upcasting as aggregate loads and projections use.

use chrono::{DateTime, Utc};
use marketplace_domain::deployment::{self, Deployment};
use marketplace_domain::node::{self, Node};
use marketplace_domain::pricing::{self, PricingPolicyAggregate};
use marketplace_domain::provider::{self, ProviderRequest};
use marketplace_domain::tft_price::{self, TftPriceFeed};
use marketplace_domain::wallet::{self, Wallet};
use marketplace_domain::EventSourced;
use marketplace_projections::{decode_event, ApplyError, StoredEvent};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

pub mod integrity;
pub mod search;

pub use integrity::{verify, Broken, Verification};
pub use marketplace_domain::upcast::AGGREGATE_TYPES;

/// One event as an auditor reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Its aggregate type.
    pub aggregate_type: String,
    /// Its aggregate.
    pub aggregate_id: String,
    /// Its sequence in the aggregate, from 1.
    pub sequence: i64,
    /// Its type.
    pub event_type: String,
    /// The payload version as stored.
    pub event_version: String,
    /// The payload, decoded (and upcast) to the current version.
    pub payload: Value,
    /// Actor, role, correlation, causation and request ids, recorded-at,
    /// idempotency key.
    pub metadata: Value,
    /// Its insertion position in the store.
    pub position: i64,
    /// The committing transaction's id (commit order is by it).
    pub txid: i64,
    /// When the store committed it.
    pub recorded_at: DateTime<Utc>,
}

/// Up to where a state is folded: through `version`, and through the
/// last event committed at or before `at`; both bounds hold when both are
/// given, and with neither the fold goes to the latest event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Until {
    /// Through this sequence.
    pub version: Option<i64>,
    /// Through the last event committed at or before this instant.
    pub at: Option<DateTime<Utc>>,
}

impl Until {
    /// Through this sequence.
    pub fn version(v: i64) -> Self {
        Self {
            version: Some(v),
            at: None,
        }
    }

    /// Through the last event committed at or before `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self {
            version: None,
            at: Some(at),
        }
    }

    /// How the access log writes the question (`version=3 at=...`, or `latest`).
    pub fn describe(&self) -> String {
        match (self.version, self.at) {
            (None, None) => "latest".to_string(),
            (Some(v), None) => format!("version={v}"),
            (None, Some(t)) => format!("at={}", t.to_rfc3339()),
            (Some(v), Some(t)) => format!("version={v} at={}", t.to_rfc3339()),
        }
    }
}

/// Why an audit read failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Not an aggregate type the marketplace has.
    #[error("unknown aggregate type {0:?}; known: {known}", known = AGGREGATE_TYPES.join(", "))]
    UnknownType(String),
    /// A stored event cannot be read.
    #[error("event {sequence} of {aggregate_type} {aggregate_id} cannot be read: {reason}")]
    Unreadable {
        /// Its aggregate type.
        aggregate_type: String,
        /// Its aggregate.
        aggregate_id: String,
        /// Its sequence.
        sequence: i64,
        /// Why.
        reason: String,
    },
    /// The store could not be read.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn unreadable(e: &StoredEvent, reason: ApplyError) -> AuditError {
    AuditError::Unreadable {
        aggregate_type: e.aggregate_type.clone(),
        aggregate_id: e.aggregate_id.clone(),
        sequence: e.sequence,
        reason: reason.to_string(),
    }
}

pub(crate) fn known(aggregate_type: &str) -> Result<(), AuditError> {
    if AGGREGATE_TYPES.contains(&aggregate_type) {
        Ok(())
    } else {
        Err(AuditError::UnknownType(aggregate_type.to_string()))
    }
}

async fn stored(
    pool: &PgPool,
    aggregate_type: &str,
    id: &str,
    after: i64,
    limit: Option<i64>,
    until: Option<Until>,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let Until { version, at } = until.unwrap_or_default();
    sqlx::query_as(
        "SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type,
                event_version, payload, metadata, recorded_at
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
            AND ($4::bigint IS NULL OR sequence <= $4)
            AND ($5::timestamptz IS NULL OR recorded_at <= $5)
          ORDER BY sequence
          LIMIT $6",
    )
    .bind(aggregate_type)
    .bind(id)
    .bind(after)
    .bind(version)
    .bind(at)
    .bind(limit.unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
}

/// The decoded payload of `e`, by its aggregate type's current event type.
fn payload(e: &StoredEvent) -> Result<Value, AuditError> {
    fn as_json<E: cqrs_es::DomainEvent>(
        e: &StoredEvent,
        version: &str,
    ) -> Result<Value, AuditError> {
        let event: E = decode_event(e, version).map_err(|r| unreadable(e, r))?;
        serde_json::to_value(event).map_err(|r| unreadable(e, ApplyError::Poison(r.to_string())))
    }
    match e.aggregate_type.as_str() {
        "alliance" => as_json::<marketplace_domain::alliance::AllianceEvent>(
            e,
            marketplace_domain::alliance::EVENT_VERSION,
        ),
        "deployment" => as_json::<deployment::DeploymentEvent>(e, deployment::EVENT_VERSION),
        "node" => as_json::<node::NodeEvent>(e, node::EVENT_VERSION),
        "pricing_policy" => as_json::<pricing::PricingPolicyEvent>(e, pricing::EVENT_VERSION),
        "provider_request" => as_json::<provider::ProviderRequestEvent>(e, provider::EVENT_VERSION),
        "tft_price" => as_json::<tft_price::TftPriceEvent>(e, tft_price::EVENT_VERSION),
        "user" => as_json::<marketplace_domain::user::UserEvent>(
            e,
            marketplace_domain::user::EVENT_VERSION,
        ),
        "wallet" => as_json::<wallet::WalletEvent>(e, wallet::EVENT_VERSION),
        other => Err(AuditError::UnknownType(other.to_string())),
    }
}

/// Up to `limit` events of an aggregate after sequence `after`, oldest
/// first.
pub async fn history(
    pool: &PgPool,
    aggregate_type: &str,
    id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditEvent>, AuditError> {
    known(aggregate_type)?;
    stored(pool, aggregate_type, id, after, Some(limit), None)
        .await?
        .into_iter()
        .map(audit_event)
        .collect()
}

/// A stored event as an auditor reads it: its payload decoded and upcast.
pub fn audit_event(e: StoredEvent) -> Result<AuditEvent, AuditError> {
    Ok(AuditEvent {
        payload: payload(&e)?,
        aggregate_type: e.aggregate_type,
        aggregate_id: e.aggregate_id,
        sequence: e.sequence,
        event_type: e.event_type,
        event_version: e.event_version,
        metadata: e.metadata,
        position: e.position,
        txid: e.txid,
        recorded_at: e.recorded_at,
    })
}

fn fold<A>(events: &[StoredEvent], version: &str) -> Result<Value, AuditError>
where
    A: EventSourced + Default + Serialize,
    A::Event: serde::de::DeserializeOwned,
{
    let mut aggregate = A::default();
    for e in events {
        let event: A::Event = decode_event(e, version).map_err(|r| unreadable(e, r))?;
        aggregate.apply_one(&event);
    }
    serde_json::to_value(&aggregate).map_err(|r| AuditError::Unreadable {
        aggregate_type: A::TYPE.to_string(),
        aggregate_id: events
            .first()
            .map(|e| e.aggregate_id.clone())
            .unwrap_or_default(),
        sequence: events.last().map_or(0, |e| e.sequence),
        reason: r.to_string(),
    })
}

/// The aggregate's state folded from its events up to `until` by the
/// domain's own `apply`: `(version, state)`, or `None` when it had no event
/// by then.
pub async fn state(
    pool: &PgPool,
    aggregate_type: &str,
    id: &str,
    until: Until,
) -> Result<Option<(i64, Value)>, AuditError> {
    known(aggregate_type)?;
    let events = stored(pool, aggregate_type, id, 0, None, Some(until)).await?;
    let Some(version) = events.last().map(|e| e.sequence) else {
        return Ok(None);
    };
    let state = match aggregate_type {
        "alliance" => fold::<marketplace_domain::alliance::Alliance>(
            &events,
            marketplace_domain::alliance::EVENT_VERSION,
        )?,
        "deployment" => fold::<Deployment>(&events, deployment::EVENT_VERSION)?,
        "node" => fold::<Node>(&events, node::EVENT_VERSION)?,
        "pricing_policy" => fold::<PricingPolicyAggregate>(&events, pricing::EVENT_VERSION)?,
        "provider_request" => fold::<ProviderRequest>(&events, provider::EVENT_VERSION)?,
        "tft_price" => fold::<TftPriceFeed>(&events, tft_price::EVENT_VERSION)?,
        "user" => fold::<marketplace_domain::user::User>(
            &events,
            marketplace_domain::user::EVENT_VERSION,
        )?,
        "wallet" => fold::<Wallet>(&events, wallet::EVENT_VERSION)?,
        other => return Err(AuditError::UnknownType(other.to_string())),
    };
    Ok(Some((version, state)))
}

/// What changed between two versions of an aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// The version the patch starts from.
    pub from: i64,
    /// The version the patch leads to (older than `from` for a patch
    /// that undoes).
    pub to: i64,
    /// An RFC 6902 JSON Patch turning the state at `from` into the state at
    /// `to` (`op`, `path`, `value`), field by field.
    pub changes: Value,
    /// The events between the two, oldest first: sequences from the lower
    /// version + 1 to the higher, at most [`DIFF_EVENTS`].
    pub events: Vec<AuditEvent>,
    /// Whether there were more events between than listed.
    pub events_truncated: bool,
}

/// The most events a diff lists.
pub const DIFF_EVENTS: i64 = 500;

/// What changed from version `from` to version `to` (either order; equal
/// versions give an empty patch): `None` when the aggregate has not
/// reached the higher of the two.
pub async fn diff(
    pool: &PgPool,
    aggregate_type: &str,
    id: &str,
    from: i64,
    to: i64,
) -> Result<Option<Diff>, AuditError> {
    let (low, high) = (from.min(to), from.max(to));
    let Some((reached, at_high)) = state(pool, aggregate_type, id, Until::version(high)).await?
    else {
        return Ok(None);
    };
    if reached < high {
        return Ok(None);
    }
    let Some((_, at_low)) = state(pool, aggregate_type, id, Until::version(low)).await? else {
        return Ok(None);
    };
    let (before, after) = if from <= to {
        (&at_low, &at_high)
    } else {
        (&at_high, &at_low)
    };
    let changes =
        serde_json::to_value(json_patch::diff(before, after)).unwrap_or(Value::Array(Vec::new()));
    let listed = (high - low).min(DIFF_EVENTS);
    let events = if listed == 0 {
        Vec::new()
    } else {
        history(pool, aggregate_type, id, low, listed).await?
    };
    Ok(Some(Diff {
        from,
        to,
        changes,
        events_truncated: high - low > listed,
        events,
    }))
}

/// One audit read, as the access log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Access {
    /// Its place in the log, increasing.
    pub position: i64,
    /// The operator who read.
    pub actor_subject: String,
    /// What they read.
    pub aggregate_type: String,
    /// Which one.
    pub aggregate_id: String,
    /// `events`, `state` or `diff`, with the question's parameters.
    pub request: String,
    /// The HTTP request's id.
    pub request_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Records an audit read before it is answered.
pub async fn record_access(
    pool: &PgPool,
    actor: &str,
    aggregate_type: &str,
    id: &str,
    request: &str,
    request_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_access_log (actor_subject, aggregate_type, aggregate_id, request, request_id)
         VALUES ($1, $2, $3, $4, NULLIF($5, ''))",
    )
    .bind(actor)
    .bind(aggregate_type)
    .bind(id)
    .bind(request)
    .bind(request_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Up to `limit` audit reads after `after`, oldest first, optionally one
/// operator's.
pub async fn accesses(
    pool: &PgPool,
    actor: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<Access>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, actor_subject, aggregate_type, aggregate_id, request, request_id, at
           FROM audit_access_log
          WHERE position > $1 AND ($2::text IS NULL OR actor_subject = $2)
          ORDER BY position LIMIT $3",
    )
    .bind(after)
    .bind(actor)
    .bind(limit)
    .fetch_all(pool)
    .await
}
