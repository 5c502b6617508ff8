//! What each deployment event after the request changes in its view row,
//! written once as a `SET` clause over numbered parameters (`$8` on), and
//! the two ways of running it: one event on its own (`$8` bound), or every
//! event of one kind in a batch in one statement (`$8` read from a JSON
//! record set). Both carry the same guard, `version = sequence - 1`, and
//! write the history row from the changed row, so the two paths build the
//! same rows.

use chrono::{DateTime, Utc};
use marketplace_domain::deployment::{DeletionCause, DeploymentEvent, NodeAssignment};
use serde_json::{json, Value};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use super::{contract_id_column, history_detail, to_json};
use crate::{ApplyError, StoredEvent};

/// A parameter of a change, with its SQL type.
#[derive(Debug, Clone)]
pub(super) enum Param {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Json(Value),
    Time(DateTime<Utc>),
    Bool(bool),
}

impl Param {
    fn sql_type(&self) -> &'static str {
        match self {
            Param::Int(_) | Param::OptInt(_) => "bigint",
            Param::Text(_) | Param::OptText(_) => "text",
            Param::Json(_) => "jsonb",
            Param::Time(_) => "timestamptz",
            Param::Bool(_) => "boolean",
        }
    }

    fn bind<'q>(self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        match self {
            Param::Int(v) => query.bind(v),
            Param::OptInt(v) => query.bind(v),
            Param::Text(v) => query.bind(v),
            Param::OptText(v) => query.bind(v),
            Param::Json(v) => query.bind(v),
            Param::Time(v) => query.bind(v),
            Param::Bool(v) => query.bind(v),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Param::Int(v) => json!(v),
            Param::OptInt(v) => json!(v),
            Param::Text(v) => json!(v),
            Param::OptText(v) => json!(v),
            Param::Json(v) => v.clone(),
            Param::Time(v) => json!(micros(v)),
            Param::Bool(v) => json!(v),
        }
    }
}

/// A timestamp as text at the microsecond the database keeps, cut as the
/// driver cuts a bound value (not rounded as PostgreSQL rounds text).
pub(super) fn micros(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A spread worker's entry as its assignment writes it.
pub(super) fn worker_json(node: &NodeAssignment) -> Value {
    json!({
        "node_id": node.node_id, "farm_id": node.farm_id,
        "contract_id": null, "running_revision": null, "workload": null,
    })
}

/// A zdb backend's entry as its assignment writes it.
pub(super) fn zdb_json(node: &NodeAssignment) -> Value {
    json!({
        "node_id": node.node_id, "farm_id": node.farm_id,
        "contract_id": null, "endpoint": null,
    })
}

/// A standby as its assignment writes it.
pub(super) fn standby_json(node: &NodeAssignment, reason: &Option<String>) -> Value {
    json!({
        "node_id": node.node_id, "farm_id": node.farm_id, "reason": reason,
        "contract_id": null, "ready": false,
    })
}

/// The last takeover, as the view keeps it.
pub(super) fn failover_json(
    from_node: u32,
    to_node: &NodeAssignment,
    reason: &str,
    at: &DateTime<Utc>,
) -> Value {
    json!({ "from_node": from_node, "to_node": to_node.node_id, "reason": reason, "at": at })
}

/// The deletion cause's column: its serialised name.
pub(super) fn deletion_cause(cause: &DeletionCause) -> Result<Option<String>, ApplyError> {
    Ok(to_json(cause)?.as_str().map(str::to_string))
}

/// A spread worker's key in `spread_workers`.
pub(super) fn worker_key(index: u8) -> String {
    index.to_string()
}

/// A zdb backend's key in `qsfs_backends`.
pub(super) fn zdb_key(disk: u8, index: u8) -> String {
    format!("{disk}/{index}")
}

/// What one event does to its row: a `SET` clause and its parameters.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub set: &'static str,
    pub params: Vec<Param>,
}

fn change(set: &'static str, params: Vec<Param>) -> Change {
    Change { set, params }
}

/// The change an event after the request makes; `None` for the request.
pub(super) fn of(event: &DeploymentEvent) -> Result<Option<Change>, ApplyError> {
    use DeploymentEvent as E;
    use Param::*;
    let contract = |id: u64| contract_id_column(id).map(Int);
    let opt_contract = |id: Option<u64>| id.map(contract_id_column).transpose().map(OptInt);
    Ok(Some(match event {
        E::DeploymentRequested { .. } => return Ok(None),
        E::NodeAssigned { node, reason, .. } => change(
            "status = 'placed', node_id = $8, farm_id = $9, placement_reason = $10",
            vec![
                Int(node.node_id.into()),
                Int(node.farm_id.into()),
                OptText(reason.clone()),
            ],
        ),
        E::ContractCreated {
            contract_id,
            rent_contract_id,
            ..
        } => change(
            "status = 'provisioning', contract_id = $8, rent_contract_id = $9",
            vec![contract(*contract_id)?, opt_contract(*rent_contract_id)?],
        ),
        E::ProvisioningAttemptFailed { node_id, .. } => change(
            "status = 'requested', tried_nodes = array_append(tried_nodes, $8), \
             node_id = NULL, farm_id = NULL, contract_id = NULL, rent_contract_id = NULL, \
             placement_reason = NULL, workloads = '[]'",
            vec![Int((*node_id).into())],
        ),
        E::WorkerAssigned { index, node, .. } => change(
            "spread_workers = jsonb_set(spread_workers, ARRAY[$8], $9)",
            vec![
                Text(worker_key(*index)),
                Json(worker_json(node)),
            ],
        ),
        E::WorkerContractCreated {
            index, contract_id, ..
        } => change(
            "spread_workers = jsonb_set(spread_workers, ARRAY[$8, 'contract_id'], to_jsonb($9::bigint))",
            vec![Text(worker_key(*index)), contract(*contract_id)?],
        ),
        E::WorkerRunning {
            index, workload, ..
        } => change(
            "spread_workers = jsonb_set(jsonb_set(spread_workers, ARRAY[$8, 'workload'], $9), \
             ARRAY[$8, 'running_revision'], to_jsonb(revision))",
            vec![Text(worker_key(*index)), Json(to_json(workload)?)],
        ),
        E::WorkerReleased {
            index,
            node_id,
            failure,
            ..
        } => change(
            "spread_workers = spread_workers - $8, \
             tried_nodes = CASE WHEN $10 THEN array_append(tried_nodes, $9) ELSE tried_nodes END",
            vec![
                Text(worker_key(*index)),
                Int((*node_id).into()),
                Bool(failure.is_some()),
            ],
        ),
        E::ZdbAssigned {
            disk, index, node, ..
        } => change(
            "qsfs_backends = jsonb_set(qsfs_backends, ARRAY[$8], $9)",
            vec![
                Text(zdb_key(*disk, *index)),
                Json(zdb_json(node)),
            ],
        ),
        E::ZdbContractCreated {
            disk,
            index,
            contract_id,
            ..
        } => change(
            "qsfs_backends = jsonb_set(qsfs_backends, ARRAY[$8, 'contract_id'], to_jsonb($9::bigint))",
            vec![Text(zdb_key(*disk, *index)), contract(*contract_id)?],
        ),
        E::ZdbReady {
            disk,
            index,
            endpoint,
            ..
        } => change(
            "qsfs_backends = jsonb_set(qsfs_backends, ARRAY[$8, 'endpoint'], $9)",
            vec![Text(zdb_key(*disk, *index)), Json(to_json(endpoint)?)],
        ),
        E::ZdbAbandoned {
            disk,
            index,
            node_id,
            ..
        } => change(
            "qsfs_backends = qsfs_backends - $8, tried_nodes = array_append(tried_nodes, $9)",
            vec![Text(zdb_key(*disk, *index)), Int((*node_id).into())],
        ),
        E::StandbyAssigned { node, reason, .. } => change(
            "standby = $8",
            vec![Json(standby_json(node, reason))],
        ),
        E::StandbyContractCreated { contract_id, .. } => change(
            "standby = jsonb_set(standby, '{contract_id}', to_jsonb($8::bigint))",
            vec![contract(*contract_id)?],
        ),
        E::StandbyReady { .. } => change("standby = jsonb_set(standby, '{ready}', 'true')", vec![]),
        E::StandbyAbandoned { node_id, .. } => change(
            "standby = NULL, tried_nodes = array_append(tried_nodes, $8)",
            vec![Int((*node_id).into())],
        ),
        E::FailedOver {
            from_node,
            to_node,
            to_contract_id,
            reason,
            at,
            ..
        } => change(
            "node_id = $8, farm_id = $9, contract_id = $10, rent_contract_id = NULL, \
             standby = NULL, failover = $11, tried_nodes = array_append(tried_nodes, $12), \
             revision = revision + 1",
            vec![
                Int(to_node.node_id.into()),
                Int(to_node.farm_id.into()),
                contract(*to_contract_id)?,
                Json(failover_json(*from_node, to_node, reason, at)),
                Int((*from_node).into()),
            ],
        ),
        E::DeploymentRunning { workloads, .. } => change(
            "status = 'running', workloads = $8, running_revision = revision",
            vec![Json(to_json(workloads)?)],
        ),
        E::DeploymentFailed {
            workloads, reason, ..
        } => change(
            "status = 'failed', workloads = $8, failure_reason = $9",
            vec![Json(to_json(workloads)?), Text(reason.clone())],
        ),
        E::DeploymentResized { spec, .. } => change(
            "spec = $8, revision = revision + 1",
            vec![Json(to_json(spec)?)],
        ),
        E::GracePeriodStarted { at, contract_id } => change(
            "status = 'suspended', \
             grace_since = CASE WHEN status = 'suspended' THEN grace_since ELSE $8 END, \
             grace_contracts = CASE WHEN $9::bigint IS NULL THEN grace_contracts \
                ELSE array_append(array_remove(grace_contracts, $9::bigint), $9::bigint) END",
            vec![Time(*at), opt_contract(*contract_id)?],
        ),
        E::GracePeriodEnded { contract_id, .. } => change(
            "grace_contracts = CASE WHEN $8::bigint IS NULL THEN '{}' \
                ELSE array_remove(grace_contracts, $8::bigint) END, \
             status = CASE WHEN $8::bigint IS NULL \
                OR cardinality(array_remove(grace_contracts, $8::bigint)) = 0 \
                THEN 'running' ELSE status END, \
             grace_since = CASE WHEN $8::bigint IS NULL \
                OR cardinality(array_remove(grace_contracts, $8::bigint)) = 0 \
                THEN NULL ELSE grace_since END",
            vec![opt_contract(*contract_id)?],
        ),
        E::DeploymentBilled { bill, .. } => change(
            "billed_to_date = billed_to_date + $8, bills = bills + 1, \
             last_billed_at = $9, last_discount_level = $10",
            vec![
                Int(i64::try_from(bill.amount.base_units())
                    .map_err(|_| ApplyError::Poison("bill out of range".into()))?),
                Time(bill.billed_at),
                Text(bill.discount_level.as_str().to_string()),
            ],
        ),
        E::DeploymentCancelled { reason, .. } => {
            change("status = 'cancelled', cancel_reason = $8", vec![OptText(reason.clone())])
        }
        E::DeploymentDeleted { cause, .. } => change(
            "status = 'deleted', deletion_cause = $8",
            vec![OptText(deletion_cause(cause)?)],
        ),
    }))
}

/// One event's change on its own: true when it changed the row (false: a
/// duplicate, a gap or a missing row, for the caller to tell apart).
pub(super) async fn apply_one(
    conn: &mut PgConnection,
    id: Uuid,
    stored: &StoredEvent,
    event: &DeploymentEvent,
    change: Change,
) -> Result<bool, ApplyError> {
    let sql = format!(
        "WITH changed AS (UPDATE deployment_views SET version = $2, updated_at = $3, {}
            WHERE id = $1 AND version = $2 - 1 RETURNING status)
         INSERT INTO deployment_history
            (deployment_id, sequence, event_type, status, at, actor_subject, actor_role, detail)
         SELECT $1, $2, $4, status, $3, $5, $6, $7 FROM changed",
        change.set
    );
    let mut query = sqlx::query(&sql)
        .bind(id)
        .bind(stored.sequence)
        .bind(event.at())
        .bind(&stored.event_type)
        .bind(stored.meta("actor_subject"))
        .bind(stored.meta("actor_role"))
        .bind(history_detail(event));
    for param in change.params {
        query = param.bind(query);
    }
    Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
}

/// One event of a batch, decoded, with its change.
pub(super) struct Pending<'a> {
    pub id: Uuid,
    pub stored: &'a StoredEvent,
    pub event: DeploymentEvent,
    pub change: Change,
}

/// Every event of `group` (all with the same `SET` clause, at most one per
/// deployment) applied by one statement. Answers the events it did not
/// change, for the caller to tell duplicates from gaps.
pub(super) async fn apply_group<'a>(
    conn: &mut PgConnection,
    group: Vec<Pending<'a>>,
) -> Result<Vec<Pending<'a>>, ApplyError> {
    let Some(first) = group.first() else {
        return Ok(group);
    };
    let mut columns = String::from(
        "id uuid, seq bigint, at timestamptz, event_type text, actor text, role text, detail jsonb",
    );
    let mut set = first.change.set.to_string();
    // Highest first, so `$1x` is not read as `$1` followed by a digit.
    for (n, param) in first.change.params.iter().enumerate().rev() {
        let k = n + 8;
        set = set.replace(&format!("${k}"), &format!("u.p{k}"));
        columns.push_str(&format!(", p{k} {}", param.sql_type()));
    }
    let sql = format!(
        "WITH u AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS u({columns})),
         changed AS (
            UPDATE deployment_views SET version = u.seq, updated_at = u.at, {set}
              FROM u WHERE deployment_views.id = u.id AND deployment_views.version = u.seq - 1
            RETURNING deployment_views.id, deployment_views.status, u.seq, u.event_type, u.at,
                      u.actor, u.role, u.detail)
         INSERT INTO deployment_history
            (deployment_id, sequence, event_type, status, at, actor_subject, actor_role, detail)
         SELECT id, seq, event_type, status, at, actor, role, detail FROM changed
         RETURNING deployment_id"
    );
    let rows: Vec<Value> = group
        .iter()
        .map(|p| {
            let mut row = json!({
                "id": p.id,
                "seq": p.stored.sequence,
                "at": micros(&p.event.at()),
                "event_type": p.stored.event_type,
                "actor": p.stored.meta("actor_subject"),
                "role": p.stored.meta("actor_role"),
                "detail": history_detail(&p.event),
            });
            for (n, param) in p.change.params.iter().enumerate() {
                row[format!("p{}", n + 8)] = param.to_json();
            }
            row
        })
        .collect();
    let changed: Vec<Uuid> = sqlx::query_scalar(&sql)
        .bind(Value::Array(rows))
        .fetch_all(&mut *conn)
        .await?;
    if changed.len() == group.len() {
        return Ok(Vec::new());
    }
    let changed: std::collections::HashSet<Uuid> = changed.into_iter().collect();
    Ok(group
        .into_iter()
        .filter(|p| !changed.contains(&p.id))
        .collect())
}
