//! A deployment's events within one batch folded into its final row: when
//! the batch holds the request, the row is computed in memory from the
//! request and the contiguous run of events after it, and written once
//! (with one history row per event), instead of an insert and then one
//! guarded update per event. Each step below does to the row what the
//! event's `SET` clause in [`super::changes`] does in SQL (every right-hand
//! side reading the row as it was before the event); an event whose effect
//! the fold would not reproduce exactly (a JSON shape the SQL would treat
//! otherwise, an overflow the database would refuse) ends the run, and the
//! rest of the deployment's events take the guarded set-based path.

use chrono::{DateTime, Utc};
use marketplace_domain::deployment::DeploymentEvent;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::changes::{
    deletion_cause, failover_json, standby_json, worker_json, worker_key, zdb_json, zdb_key,
};
use super::{contract_id_column, history_detail, to_json, DeploymentRow, Requested};
use crate::{ApplyError, StoredEvent};

/// One history row, as the one-event path writes it.
pub(super) struct HistoryEntry {
    pub sequence: i64,
    pub event_type: String,
    pub status: String,
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub role: Option<String>,
    pub detail: Value,
}

/// A deployment's final row after the folded events, and their history.
pub(super) struct Folded {
    pub row: DeploymentRow,
    pub history: Vec<HistoryEntry>,
}

impl Folded {
    /// The row a request inserts (the table's defaults for the rest).
    pub fn start(request: Requested) -> Self {
        let row = DeploymentRow {
            id: request.id,
            owner: request.owner,
            name: request.name,
            kind: request.kind.to_string(),
            status: "requested".into(),
            spec: request.spec,
            placement: request.placement,
            node_id: None,
            farm_id: None,
            contract_id: None,
            placement_reason: None,
            rent_contract_id: None,
            tried_nodes: Vec::new(),
            revision: 0,
            running_revision: None,
            standby: None,
            failover: None,
            qsfs_backends: Value::Object(Map::new()),
            spread_workers: Value::Object(Map::new()),
            workloads: Value::Array(Vec::new()),
            failure_reason: None,
            cancel_reason: None,
            deletion_cause: None,
            grace_since: None,
            grace_contracts: Vec::new(),
            billed_to_date: 0,
            bills: 0,
            last_billed_at: None,
            last_discount_level: None,
            created_at: request.at,
            updated_at: request.at,
            version: 1,
        };
        let history = vec![HistoryEntry {
            sequence: 1,
            event_type: "DeploymentRequested".into(),
            status: row.status.clone(),
            at: request.at,
            actor: request.actor,
            role: request.role,
            detail: request.detail,
        }];
        Self { row, history }
    }

    /// The deployment's id.
    pub fn id(&self) -> Uuid {
        self.row.id
    }

    /// Folds in the event after the row's version; false (the row
    /// untouched) when the fold cannot reproduce it, so the event and the
    /// rest go the guarded way. The caller checks the sequence.
    pub fn step(&mut self, stored: &StoredEvent, event: &DeploymentEvent) -> bool {
        debug_assert_eq!(stored.sequence, self.row.version + 1);
        let next = &mut self.row;
        if !matches!(change(next, event), Ok(true)) {
            return false;
        }
        next.version = stored.sequence;
        next.updated_at = event.at();
        self.history.push(HistoryEntry {
            sequence: stored.sequence,
            event_type: stored.event_type.clone(),
            status: next.status.clone(),
            at: event.at(),
            actor: stored.meta("actor_subject").map(str::to_string),
            role: stored.meta("actor_role").map(str::to_string),
            detail: history_detail(event),
        });
        true
    }
}

/// `jsonb_set(target, ARRAY[key], value)` on an object: sets the key.
/// False when the target is not an object (the SQL would not do the same).
fn set_key(target: &mut Value, key: String, value: Value) -> bool {
    match target.as_object_mut() {
        Some(object) => {
            object.insert(key, value);
            true
        }
        None => false,
    }
}

/// `jsonb_set(target, ARRAY[key, field], value)`: sets the field of an
/// entry that is an object, leaves the target as it is when there is no
/// such entry; false for any other shape.
fn set_field(target: &mut Value, key: &str, field: &str, value: Value) -> bool {
    let Some(object) = target.as_object_mut() else {
        return false;
    };
    match object.get_mut(key) {
        None => true,
        Some(Value::Object(entry)) => {
            entry.insert(field.to_string(), value);
            true
        }
        Some(_) => false,
    }
}

/// `target - key` on an object.
fn remove_key(target: &mut Value, key: &str) -> bool {
    match target.as_object_mut() {
        Some(object) => {
            object.remove(key);
            true
        }
        None => false,
    }
}

/// `jsonb_set(standby, ARRAY[field], value)`: NULL stays NULL.
fn set_standby(standby: &mut Option<Value>, field: &str, value: Value) -> bool {
    match standby {
        None => true,
        Some(Value::Object(object)) => {
            object.insert(field.to_string(), value);
            true
        }
        Some(_) => false,
    }
}

/// The event's change to `row` (the row as it was before, on entry); false
/// or an error, with the row untouched, when the fold does not reproduce
/// it. Every check comes before the first change to the row.
fn change(row: &mut DeploymentRow, event: &DeploymentEvent) -> Result<bool, ApplyError> {
    use DeploymentEvent as E;
    Ok(match event {
        E::DeploymentRequested { .. } => false,
        E::NodeAssigned { node, reason, .. } => {
            row.status = "placed".into();
            row.node_id = Some(node.node_id.into());
            row.farm_id = Some(node.farm_id.into());
            row.placement_reason = reason.clone();
            true
        }
        E::ContractCreated {
            contract_id,
            rent_contract_id,
            ..
        } => {
            let contract = contract_id_column(*contract_id)?;
            let rent = rent_contract_id.map(contract_id_column).transpose()?;
            row.status = "provisioning".into();
            row.contract_id = Some(contract);
            row.rent_contract_id = rent;
            true
        }
        E::ProvisioningAttemptFailed { node_id, .. } => {
            row.status = "requested".into();
            row.tried_nodes.push((*node_id).into());
            row.node_id = None;
            row.farm_id = None;
            row.contract_id = None;
            row.rent_contract_id = None;
            row.placement_reason = None;
            row.workloads = Value::Array(Vec::new());
            true
        }
        E::WorkerAssigned { index, node, .. } => set_key(
            &mut row.spread_workers,
            worker_key(*index),
            worker_json(node),
        ),
        E::WorkerContractCreated {
            index, contract_id, ..
        } => set_field(
            &mut row.spread_workers,
            &worker_key(*index),
            "contract_id",
            Value::from(contract_id_column(*contract_id)?),
        ),
        E::WorkerRunning {
            index, workload, ..
        } => {
            let key = worker_key(*index);
            let revision = Value::from(row.revision);
            set_field(
                &mut row.spread_workers,
                &key,
                "workload",
                to_json(workload)?,
            ) && set_field(&mut row.spread_workers, &key, "running_revision", revision)
        }
        E::WorkerReleased {
            index,
            node_id,
            failure,
            ..
        } => {
            let removed = remove_key(&mut row.spread_workers, &worker_key(*index));
            if removed && failure.is_some() {
                row.tried_nodes.push((*node_id).into());
            }
            removed
        }
        E::ZdbAssigned {
            disk, index, node, ..
        } => set_key(
            &mut row.qsfs_backends,
            zdb_key(*disk, *index),
            zdb_json(node),
        ),
        E::ZdbContractCreated {
            disk,
            index,
            contract_id,
            ..
        } => set_field(
            &mut row.qsfs_backends,
            &zdb_key(*disk, *index),
            "contract_id",
            Value::from(contract_id_column(*contract_id)?),
        ),
        E::ZdbReady {
            disk,
            index,
            endpoint,
            ..
        } => set_field(
            &mut row.qsfs_backends,
            &zdb_key(*disk, *index),
            "endpoint",
            to_json(endpoint)?,
        ),
        E::ZdbAbandoned {
            disk,
            index,
            node_id,
            ..
        } => {
            let removed = remove_key(&mut row.qsfs_backends, &zdb_key(*disk, *index));
            if removed {
                row.tried_nodes.push((*node_id).into());
            }
            removed
        }
        E::StandbyAssigned { node, reason, .. } => {
            row.standby = Some(standby_json(node, reason));
            true
        }
        E::StandbyContractCreated { contract_id, .. } => set_standby(
            &mut row.standby,
            "contract_id",
            Value::from(contract_id_column(*contract_id)?),
        ),
        E::StandbyReady { .. } => set_standby(&mut row.standby, "ready", Value::Bool(true)),
        E::StandbyAbandoned { node_id, .. } => {
            row.standby = None;
            row.tried_nodes.push((*node_id).into());
            true
        }
        E::FailedOver {
            from_node,
            to_node,
            to_contract_id,
            reason,
            at,
            ..
        } => {
            let Some(revision) = row.revision.checked_add(1) else {
                return Ok(false);
            };
            let contract = contract_id_column(*to_contract_id)?;
            row.node_id = Some(to_node.node_id.into());
            row.farm_id = Some(to_node.farm_id.into());
            row.contract_id = Some(contract);
            row.rent_contract_id = None;
            row.standby = None;
            row.failover = Some(failover_json(*from_node, to_node, reason, at));
            row.tried_nodes.push((*from_node).into());
            row.revision = revision;
            true
        }
        E::DeploymentRunning { workloads, .. } => {
            let workloads = to_json(workloads)?;
            row.status = "running".into();
            row.workloads = workloads;
            row.running_revision = Some(row.revision);
            true
        }
        E::DeploymentFailed {
            workloads, reason, ..
        } => {
            let workloads = to_json(workloads)?;
            row.status = "failed".into();
            row.workloads = workloads;
            row.failure_reason = Some(reason.clone());
            true
        }
        E::DeploymentResized { spec, .. } => {
            let Some(revision) = row.revision.checked_add(1) else {
                return Ok(false);
            };
            row.spec = to_json(spec)?;
            row.revision = revision;
            true
        }
        E::GracePeriodStarted { at, contract_id } => {
            let contract = contract_id.map(contract_id_column).transpose()?;
            if row.status != "suspended" {
                row.grace_since = Some(*at);
            }
            row.status = "suspended".into();
            if let Some(c) = contract {
                row.grace_contracts.retain(|x| *x != c);
                row.grace_contracts.push(c);
            }
            true
        }
        E::GracePeriodEnded { contract_id, .. } => {
            let contract = contract_id.map(contract_id_column).transpose()?;
            match contract {
                None => row.grace_contracts.clear(),
                Some(c) => row.grace_contracts.retain(|x| *x != c),
            }
            if row.grace_contracts.is_empty() {
                row.status = "running".into();
                row.grace_since = None;
            }
            true
        }
        E::DeploymentBilled { bill, .. } => {
            let Ok(amount) = i64::try_from(bill.amount.base_units()) else {
                return Ok(false);
            };
            let (Some(billed), Some(bills)) = (
                row.billed_to_date.checked_add(amount),
                row.bills.checked_add(1),
            ) else {
                return Ok(false);
            };
            row.billed_to_date = billed;
            row.bills = bills;
            row.last_billed_at = Some(bill.billed_at);
            row.last_discount_level = Some(bill.discount_level.as_str().to_string());
            true
        }
        E::DeploymentCancelled { reason, .. } => {
            row.status = "cancelled".into();
            row.cancel_reason = reason.clone();
            true
        }
        E::DeploymentDeleted { cause, .. } => {
            let cause = deletion_cause(cause)?;
            row.status = "deleted".into();
            row.deletion_cause = cause;
            true
        }
    })
}
