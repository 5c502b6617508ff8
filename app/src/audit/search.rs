//! Searches over the audit index (`audit_events`, the `audit_index`
//! projection): events by correlation, actor, event type, aggregate type and
//! time range, combined; and a request's whole tree, followed from its
//! correlation id through causation across aggregates. Each answer joins
//! back to the store for payloads, read as [`AuditEvent`]s.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use marketplace_projections::StoredEvent;
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::{audit_event, known, AuditError, AuditEvent};

/// Where a search page ends: the last event's commit time and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Its `recorded_at`.
    pub at: DateTime<Utc>,
    /// Its position.
    pub position: i64,
}

impl Cursor {
    /// `<unix microseconds>.<position>`, opaque to callers.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.timestamp_micros(), self.position)
    }

    /// Reads [`Cursor::encode`]'s text.
    pub fn decode(text: &str) -> Option<Self> {
        let (micros, position) = text.split_once('.')?;
        Some(Self {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            position: position.parse().ok()?,
        })
    }
}

/// What to search for; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Events of this correlation id.
    pub correlation_id: Option<String>,
    /// Events caused by this actor (a token's subject or a worker's name).
    pub actor: Option<String>,
    /// Events of this type (`DeploymentRequested`).
    pub event_type: Option<String>,
    /// Events of this aggregate type (`wallet`).
    pub aggregate_type: Option<String>,
    /// Committed at or after.
    pub from: Option<DateTime<Utc>>,
    /// Committed before.
    pub to: Option<DateTime<Utc>>,
    /// After this page's end.
    pub after: Option<Cursor>,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The events, by commit time then position.
    pub items: Vec<AuditEvent>,
    /// The cursor for the next page, when this one was full.
    pub next: Option<String>,
}

const COLUMNS: &str = "e.position, e.txid, e.aggregate_type, e.aggregate_id, e.sequence,
    e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at";

/// Up to `limit` events matching `query`, oldest first.
pub async fn search(pool: &PgPool, query: &Query, limit: i64) -> Result<Page, AuditError> {
    if let Some(t) = &query.aggregate_type {
        known(t)?;
    }
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM (SELECT aggregate_type, aggregate_id, sequence, recorded_at, position
           FROM audit_events WHERE true"
    ));
    let text_filters = [
        ("correlation_id", &query.correlation_id),
        ("actor_subject", &query.actor),
        ("event_type", &query.event_type),
        ("aggregate_type", &query.aggregate_type),
    ];
    for (column, value) in text_filters {
        if let Some(v) = value {
            sql.push(format_args!(" AND {column} = "))
                .push_bind(v.clone());
        }
    }
    if let Some(from) = query.from {
        sql.push(" AND recorded_at >= ").push_bind(from);
    }
    if let Some(to) = query.to {
        sql.push(" AND recorded_at < ").push_bind(to);
    }
    if let Some(c) = query.after {
        sql.push(" AND (recorded_at, position) > (")
            .push_bind(c.at)
            .push(", ")
            .push_bind(c.position)
            .push(")");
    }
    sql.push(" ORDER BY recorded_at, position LIMIT ")
        .push_bind(limit)
        .push(
            ") a JOIN events e USING (aggregate_type, aggregate_id, sequence)
             ORDER BY a.recorded_at, a.position",
        );
    let rows: Vec<StoredEvent> = sql.build_query_as().fetch_all(pool).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|e| {
            Cursor {
                at: e.recorded_at,
                position: e.position,
            }
            .encode()
        });
    Ok(Page {
        items: rows
            .into_iter()
            .map(audit_event)
            .collect::<Result<_, _>>()?,
        next,
    })
}

/// One event of a request's tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeEvent {
    /// 0 for the root correlation's own events; each step through
    /// causation adds one.
    pub depth: u32,
    /// The event.
    pub event: AuditEvent,
}

/// Everything a correlation id caused, across aggregates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tree {
    /// The correlation id asked about.
    pub correlation_id: String,
    /// Its events in commit order.
    pub events: Vec<TreeEvent>,
    /// The aggregates they touched, `type/id`, sorted.
    pub aggregates: Vec<String>,
    /// Whether the tree was cut at [`TREE_EVENTS`] events or
    /// [`TREE_DEPTH`] steps.
    pub truncated: bool,
}

/// The most events a tree holds.
pub const TREE_EVENTS: usize = 10_000;
/// The most causation steps a tree follows.
pub const TREE_DEPTH: u32 = 8;

/// The tree `correlation_id` caused: its own events, then, step by step,
/// every event whose correlation or causation is the request or
/// correlation id of an event already in the tree (a worker's run caused by
/// a request, the commands that run issued, ...).
pub async fn correlate(pool: &PgPool, correlation_id: &str) -> Result<Tree, AuditError> {
    let mut seen_ids: HashSet<String> = HashSet::from([correlation_id.to_string()]);
    let mut frontier = vec![correlation_id.to_string()];
    let mut depth_of: BTreeMap<i64, u32> = BTreeMap::new();
    let mut truncated = false;
    let mut depth = 0;
    while !frontier.is_empty() {
        if depth > TREE_DEPTH {
            truncated = true;
            break;
        }
        let rows: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT position, correlation_id, request_id FROM audit_events
              WHERE correlation_id = ANY($1) OR causation_id = ANY($1)
              ORDER BY position LIMIT $2",
        )
        .bind(&frontier)
        .bind(TREE_EVENTS as i64 + 1)
        .fetch_all(pool)
        .await?;
        let mut next = Vec::new();
        for (position, correlation, request) in rows {
            if depth_of.contains_key(&position) {
                continue;
            }
            if depth_of.len() == TREE_EVENTS {
                truncated = true;
                break;
            }
            depth_of.insert(position, depth);
            for id in [correlation, request].into_iter().flatten() {
                if seen_ids.insert(id.clone()) {
                    next.push(id);
                }
            }
        }
        if truncated {
            break;
        }
        frontier = next;
        depth += 1;
    }
    let positions: Vec<i64> = depth_of.keys().copied().collect();
    let rows: Vec<StoredEvent> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_events a
           JOIN events e USING (aggregate_type, aggregate_id, sequence)
          WHERE a.position = ANY($1)
          ORDER BY e.txid, e.position"
    ))
    .bind(&positions)
    .fetch_all(pool)
    .await?;
    let mut aggregates: Vec<String> = rows
        .iter()
        .map(|e| format!("{}/{}", e.aggregate_type, e.aggregate_id))
        .collect();
    aggregates.sort_unstable();
    aggregates.dedup();
    let events = rows
        .into_iter()
        .map(|e| {
            let depth = depth_of.get(&e.position).copied().unwrap_or_default();
            Ok(TreeEvent {
                depth,
                event: audit_event(e)?,
            })
        })
        .collect::<Result<_, AuditError>>()?;
    Ok(Tree {
        correlation_id: correlation_id.to_string(),
        events,
        aggregates,
        truncated,
    })
}

/// Writes every event matching `query` as JSON lines to `out`, page by
/// page ([`EXPORT_PAGE`] at a time), so memory stays the same however many
/// there are. Returns how many were written.
pub async fn export(
    pool: &PgPool,
    mut query: Query,
    out: &mut impl std::io::Write,
) -> Result<u64, ExportError> {
    let mut written = 0;
    loop {
        let page = search(pool, &query, EXPORT_PAGE).await?;
        for event in &page.items {
            serde_json::to_writer(&mut *out, event).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        match page.next.as_deref().and_then(Cursor::decode) {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    out.flush()?;
    Ok(written)
}

/// Events per page of an export.
pub const EXPORT_PAGE: i64 = 1_000;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Writing failed.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}
