//! The deployment views: the owner's list and the detail view with its
//! history of states. Every column comes from events, never from the clock,
//! so a rebuild reproduces the table exactly (ARCHITECTURE.md, invariant 6).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use marketplace_domain::deployment::{DeploymentEvent, Status, WorkloadSpec, EVENT_VERSION};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use std::collections::{HashMap, HashSet};

use crate::copy::BinaryRows;
use crate::{ApplyError, Projection, StoredEvent};

mod changes;
mod fold;

/// Builds `deployment_views` and `deployment_history`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeploymentProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "deployments";

/// Reads a stored deployment event, upcasting older payload versions.
pub fn upcast(event: &StoredEvent) -> Result<DeploymentEvent, ApplyError> {
    crate::decode_event(event, EVENT_VERSION)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ApplyError> {
    serde_json::to_value(value).map_err(|e| ApplyError::Poison(format!("cannot serialise: {e}")))
}

#[async_trait::async_trait]
impl Projection for DeploymentProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["deployment"]
    }

    /// One event on its own: the view change and its history row by one
    /// statement, the change guarded by `version = sequence - 1`. When it changes no row,
    /// a second look tells a duplicate (no-op) from a gap or a missing row
    /// (poison).
    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let id = Uuid::parse_str(&stored.aggregate_id)
            .map_err(|e| ApplyError::Poison(format!("aggregate id is not a uuid: {e}")))?;
        let event = upcast(stored)?;
        let Some(change) = changes::of(&event)? else {
            if stored.sequence != 1 {
                return Err(ApplyError::Poison(format!(
                    "DeploymentRequested at sequence {}",
                    stored.sequence
                )));
            }
            return insert_requests(conn, &mut vec![Requested::of(stored)?]).await;
        };
        if changes::apply_one(conn, id, stored, &event, change).await? {
            return Ok(());
        }
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM deployment_views WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        crate::unchanged(current, stored, "deployment")
    }

    /// Set-based. A deployment whose request is in the batch is folded:
    /// its final row is computed from the request and the contiguous run
    /// of its events after it ([`fold`]), and written once, with its
    /// history, by `COPY`. Every other event (a deployment already in the
    /// view, what the fold stopped at, a redelivered request's followers)
    /// takes the guarded waves ([`apply_waves`]), after the fold's rows.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ApplyError> {
        // Each deployment's events in batch order, a duplicate delivery
        // in the same batch kept once.
        let mut seen: HashSet<(&str, i64)> = HashSet::with_capacity(events.len());
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(events.len());
        let mut per: Vec<Vec<&StoredEvent>> = Vec::new();
        for stored in events {
            if !seen.insert((stored.aggregate_id.as_str(), stored.sequence)) {
                continue;
            }
            let slot = *index
                .entry(stored.aggregate_id.as_str())
                .or_insert_with(|| {
                    per.push(Vec::new());
                    per.len() - 1
                });
            per[slot].push(*stored);
        }
        let mut folds: Vec<(fold::Folded, &[&StoredEvent], usize)> = Vec::new();
        let mut rest: Vec<&StoredEvent> = Vec::new();
        for evs in &per {
            match fold_run(evs) {
                Some((folded, consumed)) => folds.push((folded, evs.as_slice(), consumed)),
                None => rest.extend(evs.iter().copied()),
            }
        }
        let written = write_folded(conn, &folds).await?;
        for (folded, evs, consumed) in &folds {
            if written.contains(&folded.id()) {
                rest.extend(evs[*consumed..].iter().copied());
            } else {
                // Already in the view: the request is a duplicate, and its
                // followers go the guarded way, which skips those applied.
                rest.extend(evs[1..].iter().copied());
            }
        }
        apply_waves(conn, &rest).await
    }

    fn tables(&self) -> &'static [&'static str] {
        &["deployment_views", "deployment_history"]
    }

    /// Every statement here finds a row by its deployment id (the key).
    fn rebuild_indexes_after_rows(&self) -> bool {
        true
    }
}

/// Folds a deployment's events (in batch order) when the first is its
/// request: the fold and how many events it took.
fn fold_run(evs: &[&StoredEvent]) -> Option<(fold::Folded, usize)> {
    let first = evs.first()?;
    if first.sequence != 1 || first.event_type != "DeploymentRequested" {
        return None;
    }
    let request = upcast(first).ok()?;
    let mut folded = fold::Folded::start(Requested::from_event(first, &request).ok()?);
    let mut consumed = 1;
    for stored in &evs[1..] {
        if stored.sequence != folded.row.version + 1 {
            break;
        }
        let Ok(event) = upcast(stored) else { break };
        if !folded.step(stored, &event) {
            break;
        }
        consumed += 1;
    }
    Some((folded, consumed))
}

/// The columns `COPY` writes of a view row, in [`copy_view_row`]'s order.
const VIEW_COLUMNS: &str = "id, owner, name, kind, status, spec, placement, node_id, farm_id, \
    contract_id, placement_reason, rent_contract_id, tried_nodes, revision, running_revision, \
    standby, failover, qsfs_backends, spread_workers, workloads, failure_reason, cancel_reason, \
    deletion_cause, grace_since, grace_contracts, billed_to_date, bills, last_billed_at, \
    last_discount_level, created_at, updated_at, version";

fn copy_view_row(rows: &mut BinaryRows, r: &DeploymentRow) {
    rows.row(32)
        .uuid(r.id)
        .text(&r.owner)
        .text(&r.name)
        .text(&r.kind)
        .text(&r.status)
        .jsonb(&r.spec)
        .jsonb(&r.placement)
        .opt_int8(r.node_id)
        .opt_int8(r.farm_id)
        .opt_int8(r.contract_id)
        .opt_text(r.placement_reason.as_deref())
        .opt_int8(r.rent_contract_id)
        .int8_array(&r.tried_nodes)
        .int4(r.revision)
        .opt_int4(r.running_revision)
        .opt_jsonb(r.standby.as_ref())
        .opt_jsonb(r.failover.as_ref())
        .jsonb(&r.qsfs_backends)
        .jsonb(&r.spread_workers)
        .jsonb(&r.workloads)
        .opt_text(r.failure_reason.as_deref())
        .opt_text(r.cancel_reason.as_deref())
        .opt_text(r.deletion_cause.as_deref())
        .opt_timestamptz(r.grace_since)
        .int8_array(&r.grace_contracts)
        .int8(r.billed_to_date)
        .int8(r.bills)
        .opt_timestamptz(r.last_billed_at)
        .opt_text(r.last_discount_level.as_deref())
        .timestamptz(r.created_at)
        .timestamptz(r.updated_at)
        .int8(r.version);
}

/// Writes the folded rows of deployments not yet in the view, and their
/// history, by `COPY`; the ids written. One runner holds a projection's
/// tables at a time (the runner lock), so a row absent at the look is
/// still absent at the copy; had another writer come between, the copy
/// fails on the key and the batch is retried, never applied twice. (Not
/// a copy in a savepoint with the look only on a conflict: rows written
/// in a savepoint carry a subtransaction's id, not the id of the
/// transaction that stores the checkpoint.)
async fn write_folded(
    conn: &mut PgConnection,
    folds: &[(fold::Folded, &[&StoredEvent], usize)],
) -> Result<HashSet<Uuid>, ApplyError> {
    if folds.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<Uuid> = folds.iter().map(|(f, _, _)| f.id()).collect();
    // One probe of the key per id (a LATERAL with a LIMIT is not turned
    // into a join): on a table a rebuild is filling, `id = ANY($1)` of 625
    // ids was planned as a sequential scan (77 ms a batch), and a join as
    // a hash join over the table (7.6 ms).
    let present: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(
        "SELECT u.id FROM UNNEST($1::uuid[]) AS u(id),
                LATERAL (SELECT 1 FROM deployment_views v WHERE v.id = u.id LIMIT 1) AS found",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    Ok(copy_folded(conn, folds, &present).await?)
}

/// Copies the folded rows but those of `skip`; the ids copied.
async fn copy_folded(
    conn: &mut PgConnection,
    folds: &[(fold::Folded, &[&StoredEvent], usize)],
    skip: &HashSet<Uuid>,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let mut views = BinaryRows::new();
    let mut history = BinaryRows::new();
    let mut written = HashSet::with_capacity(folds.len());
    for (folded, _, _) in folds {
        // A batch holds a deployment's request once (duplicates dropped above).
        if skip.contains(&folded.id()) {
            continue;
        }
        written.insert(folded.id());
        copy_view_row(&mut views, &folded.row);
        for h in &folded.history {
            history
                .row(8)
                .uuid(folded.id())
                .int8(h.sequence)
                .text(&h.event_type)
                .text(&h.status)
                .timestamptz(h.at)
                .opt_text(h.actor.as_deref())
                .opt_text(h.role.as_deref())
                .jsonb(&h.detail);
        }
    }
    views
        .copy(
            conn,
            &format!("COPY deployment_views ({VIEW_COLUMNS}) FROM STDIN (FORMAT binary)"),
        )
        .await?;
    history
        .copy(
            conn,
            "COPY deployment_history (deployment_id, sequence, event_type, status, at, \
             actor_subject, actor_role, detail) FROM STDIN (FORMAT binary)",
        )
        .await?;
    Ok(written)
}

/// The guarded set-based path: the events are cut into waves, each
/// holding at most one event per deployment (a deployment's k-th event
/// here is in wave k), applied in order; within a wave the requests are
/// inserted by one statement and every other kind of change by one
/// statement per kind. Events the guard refused are then told apart: a
/// duplicate is skipped, a gap or an unknown deployment is poison (the
/// runner then applies the batch one event at a time and dead-letters it).
async fn apply_waves(conn: &mut PgConnection, events: &[&StoredEvent]) -> Result<(), ApplyError> {
    let mut waves: Vec<Vec<&StoredEvent>> = Vec::new();
    let mut depth: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for stored in events {
        let wave = depth.entry(stored.aggregate_id.as_str()).or_default();
        if waves.len() <= *wave {
            waves.push(Vec::new());
        }
        waves[*wave].push(*stored);
        *wave += 1;
    }
    for wave in waves {
        let mut requests: Vec<Requested> = Vec::new();
        let mut groups: Vec<Vec<changes::Pending>> = Vec::new();
        for stored in wave {
            let id = Uuid::parse_str(&stored.aggregate_id)
                .map_err(|e| ApplyError::Poison(format!("aggregate id is not a uuid: {e}")))?;
            let event = upcast(stored)?;
            let Some(change) = changes::of(&event)? else {
                if stored.sequence != 1 {
                    return Err(ApplyError::Poison(format!(
                        "DeploymentRequested at sequence {}",
                        stored.sequence
                    )));
                }
                requests.push(Requested::from_event(stored, &event)?);
                continue;
            };
            let pending = changes::Pending {
                id,
                stored,
                event,
                change,
            };
            match groups
                .iter_mut()
                .find(|g| g[0].change.set == pending.change.set)
            {
                Some(group) => group.push(pending),
                None => groups.push(vec![pending]),
            }
        }
        insert_requests(conn, &mut requests).await?;
        let mut refused = Vec::new();
        for group in groups {
            refused.extend(changes::apply_group(conn, group).await?);
        }
        if refused.is_empty() {
            continue;
        }
        let ids: Vec<Uuid> = refused.iter().map(|p| p.id).collect();
        let versions: HashMap<Uuid, i64> = sqlx::query_as::<_, (Uuid, i64)>(
            "SELECT id, version FROM deployment_views WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        for p in &refused {
            crate::unchanged(versions.get(&p.id).copied(), p.stored, "deployment")?;
        }
    }
    Ok(())
}

/// A request's columns, for a set-based insert.
struct Requested {
    id: Uuid,
    owner: String,
    name: String,
    kind: &'static str,
    spec: Value,
    placement: Value,
    at: DateTime<Utc>,
    actor: Option<String>,
    role: Option<String>,
    detail: Value,
}

impl Requested {
    fn of(stored: &StoredEvent) -> Result<Self, ApplyError> {
        Self::from_event(stored, &upcast(stored)?)
    }

    fn from_event(stored: &StoredEvent, event: &DeploymentEvent) -> Result<Self, ApplyError> {
        let id = Uuid::parse_str(&stored.aggregate_id)
            .map_err(|e| ApplyError::Poison(format!("aggregate id is not a uuid: {e}")))?;
        let DeploymentEvent::DeploymentRequested {
            owner,
            name,
            kind,
            spec,
            placement,
            at,
        } = event
        else {
            return Err(ApplyError::Poison(format!(
                "payload is not a request: {}",
                stored.event_type
            )));
        };
        Ok(Self {
            id,
            owner: owner.clone(),
            name: name.as_str().to_string(),
            kind: kind.as_str(),
            spec: to_json(spec)?,
            placement: to_json(placement)?,
            at: *at,
            actor: stored.meta("actor_subject").map(str::to_string),
            role: stored.meta("actor_role").map(str::to_string),
            detail: history_detail(event),
        })
    }
}

/// Inserts a run of requests (and their history rows) in one statement,
/// leaving the run empty. A request already in the view inserts nothing.
async fn insert_requests(
    conn: &mut PgConnection,
    run: &mut Vec<Requested>,
) -> Result<(), ApplyError> {
    if run.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(run);
    sqlx::query(
        "WITH r AS (
            SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                                 $7::timestamptz[], $8::text[], $9::text[], $10::jsonb[])
                AS r(id, owner, name, kind, spec, placement, at, actor, role, detail)),
         created AS (
            INSERT INTO deployment_views
                (id, owner, name, kind, status, spec, placement, created_at, updated_at, version)
            SELECT id, owner, name, kind, 'requested', spec, placement, at, at, 1 FROM r
            ON CONFLICT (id) DO NOTHING RETURNING id, status)
         INSERT INTO deployment_history
            (deployment_id, sequence, event_type, status, at, actor_subject, actor_role, detail)
         SELECT r.id, 1, 'DeploymentRequested', c.status, r.at, r.actor, r.role, r.detail
           FROM created c JOIN r ON r.id = c.id",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| &r.spec).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| &r.placement).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.actor.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.role.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| &r.detail).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn contract_id_column(id: u64) -> Result<i64, ApplyError> {
    i64::try_from(id).map_err(|_| ApplyError::Poison("contract id out of range".into()))
}

/// What the history keeps of an event besides its type and resulting status.
fn history_detail(event: &DeploymentEvent) -> Value {
    use DeploymentEvent as E;
    match event {
        E::NodeAssigned {
            node,
            reason: Some(reason),
            ..
        } => json!({ "node_id": node.node_id, "farm_id": node.farm_id, "reason": reason }),
        E::NodeAssigned { node, .. } => json!({ "node_id": node.node_id, "farm_id": node.farm_id }),
        E::ContractCreated {
            contract_id,
            rent_contract_id: None,
            ..
        } => json!({ "contract_id": contract_id }),
        E::ContractCreated {
            contract_id,
            rent_contract_id: Some(rent),
            ..
        } => json!({ "contract_id": contract_id, "rent_contract_id": rent }),
        E::ProvisioningAttemptFailed {
            node_id,
            contract_id,
            reason,
            ..
        } => json!({ "node_id": node_id, "contract_id": contract_id, "reason": reason }),
        E::DeploymentFailed { reason, .. } => json!({ "reason": reason }),
        E::StandbyAssigned { node, reason, .. } => {
            json!({ "node_id": node.node_id, "farm_id": node.farm_id, "reason": reason })
        }
        E::StandbyContractCreated { contract_id, .. } => json!({ "contract_id": contract_id }),
        E::ZdbAssigned {
            disk, index, node, ..
        } => json!({ "disk": disk, "index": index, "node_id": node.node_id }),
        E::WorkerAssigned { index, node, .. } => {
            json!({ "worker": index, "node_id": node.node_id })
        }
        E::WorkerContractCreated {
            index, contract_id, ..
        } => json!({ "worker": index, "contract_id": contract_id }),
        E::WorkerReleased {
            index,
            node_id,
            failure,
            ..
        } => json!({ "worker": index, "node_id": node_id, "failure": failure }),
        E::ZdbContractCreated {
            disk,
            index,
            contract_id,
            ..
        } => json!({ "disk": disk, "index": index, "contract_id": contract_id }),
        E::ZdbAbandoned {
            disk,
            index,
            node_id,
            reason,
            ..
        } => json!({ "disk": disk, "index": index, "node_id": node_id, "reason": reason }),
        E::StandbyAbandoned {
            node_id, reason, ..
        } => json!({ "node_id": node_id, "reason": reason }),
        E::FailedOver {
            from_node,
            to_node,
            reason,
            ..
        } => json!({ "from_node": from_node, "to_node": to_node.node_id, "reason": reason }),
        E::DeploymentCancelled { reason, .. } => json!({ "reason": reason }),
        E::DeploymentDeleted { cause, .. } => json!({ "cause": cause }),
        E::GracePeriodStarted {
            contract_id: Some(c),
            ..
        }
        | E::GracePeriodEnded {
            contract_id: Some(c),
            ..
        } => json!({ "contract_id": c }),
        E::DeploymentBilled { bill, .. } => json!({
            "contract_id": bill.contract_id,
            "amount": bill.amount.base_units().to_string(),
            "discount_level": bill.discount_level,
            "chain_event": bill.event.to_string(),
        }),
        _ => json!({}),
    }
}

/// One row of `deployment_views`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeploymentRow {
    /// Deployment id.
    pub id: Uuid,
    /// Owner's subject.
    pub owner: String,
    /// Name.
    pub name: String,
    /// `vm` or `kubernetes`.
    pub kind: String,
    /// Status name.
    pub status: String,
    /// The spec, as the domain serialises it.
    pub spec: Value,
    /// Placement criteria.
    pub placement: Value,
    /// Assigned node.
    pub node_id: Option<i64>,
    /// The node's farm.
    pub farm_id: Option<i64>,
    /// Chain contract.
    pub contract_id: Option<i64>,
    /// Why placement chose the node.
    pub placement_reason: Option<String>,
    /// The dedicated node's rent contract.
    pub rent_contract_id: Option<i64>,
    /// Nodes an attempt failed on, in order.
    pub tried_nodes: Vec<i64>,
    /// The spec's revision.
    pub revision: i32,
    /// The revision last running.
    pub running_revision: Option<i32>,
    /// The VM's standby.
    pub standby: Option<Value>,
    /// The last takeover by the standby.
    pub failover: Option<Value>,
    /// QSFS disks' zdb backends, by `<disk>/<index>`.
    pub qsfs_backends: Value,
    /// A spread cluster's workers, by index.
    pub spread_workers: Value,
    /// Last reported workload states.
    pub workloads: Value,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Why it was deleted.
    pub deletion_cause: Option<String>,
    /// Start of the current grace period.
    pub grace_since: Option<DateTime<Utc>>,
    /// Its contracts in grace now.
    pub grace_contracts: Vec<i64>,
    /// TFT base units the chain billed it so far.
    pub billed_to_date: i64,
    /// How many bills.
    pub bills: i64,
    /// When the chain last billed it.
    pub last_billed_at: Option<DateTime<Utc>>,
    /// The staking discount on its last bill.
    pub last_discount_level: Option<String>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Last aggregate sequence applied.
    pub version: i64,
}

/// One entry of a deployment's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct HistoryRow {
    /// The event's sequence.
    pub sequence: i64,
    /// The event's type.
    pub event_type: String,
    /// Status after the event.
    pub status: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who caused it.
    pub actor_subject: Option<String>,
    /// In which role.
    pub actor_role: Option<String>,
    /// Event-specific facts.
    pub detail: Value,
}

/// Filters and page of a list query.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this owner's deployments (`None`: everyone's, for operators).
    pub owner: Option<String>,
    /// Only in this status.
    pub status: Option<Status>,
    /// Only `vm` or `kubernetes`.
    pub kind: Option<String>,
    /// Continue after this cursor.
    pub after: Option<Cursor>,
    /// Page size.
    pub limit: i64,
}

/// A position in the newest-first list: the last row's creation time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    created_at: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    /// The cursor after a row.
    pub fn after(row: &DeploymentRow) -> Self {
        Self {
            created_at: row.created_at,
            id: row.id,
        }
    }

    /// Opaque text form for clients.
    pub fn encode(&self) -> String {
        let raw = format!("{}|{}", self.created_at.timestamp_micros(), self.id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses a cursor a client sent back; `None` if it is not one of ours.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (micros, id) = raw.split_once('|')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Lists deployments newest first; returns the page and the cursor of the next one.
pub async fn list(
    pool: &PgPool,
    query: &ListQuery,
) -> Result<(Vec<DeploymentRow>, Option<Cursor>), sqlx::Error> {
    let mut sql = sqlx::QueryBuilder::new("SELECT * FROM deployment_views WHERE true");
    if let Some(owner) = &query.owner {
        sql.push(" AND owner = ").push_bind(owner);
    }
    if let Some(status) = query.status {
        sql.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(kind) = &query.kind {
        sql.push(" AND kind = ").push_bind(kind);
    }
    if let Some(after) = query.after {
        sql.push(" AND (created_at, id) < (")
            .push_bind(after.created_at)
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    // One extra row tells whether there is a next page.
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(query.limit + 1);
    let mut rows: Vec<DeploymentRow> = sql.build_query_as().fetch_all(pool).await?;
    let next = if rows.len() as i64 > query.limit {
        rows.truncate(query.limit as usize);
        rows.last().map(Cursor::after)
    } else {
        None
    };
    Ok((rows, next))
}

/// One deployment's row.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<DeploymentRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM deployment_views WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// One deployment's history, oldest first.
pub async fn history(pool: &PgPool, id: Uuid) -> Result<Vec<HistoryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, event_type, status, at, actor_subject, actor_role, detail
           FROM deployment_history WHERE deployment_id = $1 ORDER BY sequence",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// At most `limit` entries of a deployment's history after sequence
/// `after`, oldest first: an event stream's next page.
pub async fn history_after(
    pool: &PgPool,
    id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<HistoryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, event_type, status, at, actor_subject, actor_role, detail
           FROM deployment_history WHERE deployment_id = $1 AND sequence > $2
          ORDER BY sequence LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The workload specs of an owner's deployments that burn TFT (provisioning
/// or running), for pricing their runway.
pub async fn active_specs(pool: &PgPool, owner: &str) -> Result<Vec<WorkloadSpec>, sqlx::Error> {
    let specs: Vec<Value> = sqlx::query_scalar(
        "SELECT spec FROM deployment_views
          WHERE owner = $1 AND status IN ('provisioning', 'running')",
    )
    .bind(owner)
    .fetch_all(pool)
    .await?;
    specs
        .into_iter()
        .map(|spec| serde_json::from_value(spec).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
    }
}
