//! What happened to a deployment. Event payloads are versioned by
//! [`EVENT_VERSION`]; an old payload is upcast on read, never rewritten.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::values::*;
use crate::actor::Actor;
use crate::chain::ContractBill;

/// The payload version every deployment event is written with today.
/// Version 2 added `kind` to `DeploymentRequested`; version 1 payloads are
/// read as version 2 by [`crate::upcast`].
pub const EVENT_VERSION: &str = "2";

/// An event of the Deployment aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeploymentEvent {
    /// A user asked for a deployment.
    DeploymentRequested {
        /// The owning user's subject.
        owner: String,
        /// Its name.
        name: DeploymentName,
        /// VM or Kubernetes, on the event itself so a reader can route on
        /// it without knowing the spec's shape (since version 2; version 1
        /// events take it from their spec).
        kind: DeploymentKind,
        /// What it runs.
        spec: WorkloadSpec,
        /// Where it may go.
        placement: Placement,
        /// When.
        at: DateTime<Utc>,
    },
    /// A node was chosen.
    NodeAssigned {
        /// The node.
        node: NodeAssignment,
        /// Why this node, when placement chose it (absent on an operator's
        /// manual assignment and on events recorded before placement).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The node contract exists on chain.
    ContractCreated {
        /// TFChain contract id.
        contract_id: u64,
        /// The rent contract of a dedicated node, if one was taken.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rent_contract_id: Option<u64>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An attempt failed on the assigned node (its contracts cancelled):
    /// the deployment is to be placed again, never on this node.
    ProvisioningAttemptFailed {
        /// The node given up.
        node_id: u32,
        /// The node contract that was cancelled, if one had been created.
        contract_id: Option<u64>,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A node was chosen for a spread cluster's worker.
    WorkerAssigned {
        /// Which worker.
        index: u8,
        /// The node.
        node: NodeAssignment,
        /// When.
        at: DateTime<Utc>,
    },
    /// A spread worker's node contract exists.
    WorkerContractCreated {
        /// Which worker.
        index: u8,
        /// TFChain contract id.
        contract_id: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A spread worker runs at the revision current then.
    WorkerRunning {
        /// Which worker.
        index: u8,
        /// How its node reports it.
        workload: WorkloadStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// A spread worker is gone, its contract cancelled.
    WorkerReleased {
        /// Which worker.
        index: u8,
        /// Its node.
        node_id: u32,
        /// Why, when it failed.
        failure: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A node was chosen for a QSFS disk's backend.
    ZdbAssigned {
        /// The disk.
        disk: u8,
        /// The backend.
        index: u8,
        /// The node.
        node: NodeAssignment,
        /// When.
        at: DateTime<Utc>,
    },
    /// A backend's node contract exists.
    ZdbContractCreated {
        /// The disk.
        disk: u8,
        /// The backend.
        index: u8,
        /// TFChain contract id.
        contract_id: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A backend is up.
    ZdbReady {
        /// The disk.
        disk: u8,
        /// The backend.
        index: u8,
        /// Where it answers.
        endpoint: ZdbEndpoint,
        /// When.
        at: DateTime<Utc>,
    },
    /// A backend failed and its contract was cancelled.
    ZdbAbandoned {
        /// The disk.
        disk: u8,
        /// The backend.
        index: u8,
        /// Its node.
        node_id: u32,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A node was chosen for the VM's standby.
    StandbyAssigned {
        /// The node.
        node: NodeAssignment,
        /// Why.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The standby's node contract exists.
    StandbyContractCreated {
        /// TFChain contract id.
        contract_id: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The standby's node reports it up.
    StandbyReady {
        /// When.
        at: DateTime<Utc>,
    },
    /// The standby failed and its contract was cancelled.
    StandbyAbandoned {
        /// Its node.
        node_id: u32,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The standby took over from the primary's node.
    FailedOver {
        /// The node given up.
        from_node: u32,
        /// Its contract (cancelled).
        from_contract_id: Option<u64>,
        /// The standby's node, now the VM's.
        to_node: NodeAssignment,
        /// The standby's contract, now the VM's.
        to_contract_id: u64,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Every workload is up.
    DeploymentRunning {
        /// Reported states.
        workloads: Vec<WorkloadStatus>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The deployment failed.
    DeploymentFailed {
        /// Reported states.
        workloads: Vec<WorkloadStatus>,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The deployment was resized.
    DeploymentResized {
        /// The spec after the resize.
        spec: WorkloadSpec,
        /// Who resized it.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// Workloads paused: the balance could not pay a bill. A second
    /// contract of a deployment already in grace records it too.
    GracePeriodStarted {
        /// When.
        at: DateTime<Utc>,
        /// The contract in grace (none from an operator's override).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contract_id: Option<u64>,
    },
    /// A contract left its grace period; the workloads resume once none is
    /// left in grace.
    GracePeriodEnded {
        /// When.
        at: DateTime<Utc>,
        /// The contract out of grace (none from an operator's override,
        /// which ends them all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contract_id: Option<u64>,
    },
    /// The chain billed one of the deployment's contracts.
    DeploymentBilled {
        /// The bill.
        bill: ContractBill,
        /// When it was recorded.
        at: DateTime<Utc>,
    },
    /// The owner or an operator cancelled.
    DeploymentCancelled {
        /// Who.
        by: Actor,
        /// Why, if said.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The deployment is gone.
    DeploymentDeleted {
        /// Why.
        cause: DeletionCause,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DeploymentEvent {
    /// When the event happened, by the clock of whoever issued the command.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            DeploymentEvent::DeploymentRequested { at, .. }
            | DeploymentEvent::NodeAssigned { at, .. }
            | DeploymentEvent::ContractCreated { at, .. }
            | DeploymentEvent::ProvisioningAttemptFailed { at, .. }
            | DeploymentEvent::WorkerAssigned { at, .. }
            | DeploymentEvent::WorkerContractCreated { at, .. }
            | DeploymentEvent::WorkerRunning { at, .. }
            | DeploymentEvent::WorkerReleased { at, .. }
            | DeploymentEvent::ZdbAssigned { at, .. }
            | DeploymentEvent::ZdbContractCreated { at, .. }
            | DeploymentEvent::ZdbReady { at, .. }
            | DeploymentEvent::ZdbAbandoned { at, .. }
            | DeploymentEvent::StandbyAssigned { at, .. }
            | DeploymentEvent::StandbyContractCreated { at, .. }
            | DeploymentEvent::StandbyReady { at }
            | DeploymentEvent::StandbyAbandoned { at, .. }
            | DeploymentEvent::FailedOver { at, .. }
            | DeploymentEvent::DeploymentRunning { at, .. }
            | DeploymentEvent::DeploymentFailed { at, .. }
            | DeploymentEvent::DeploymentResized { at, .. }
            | DeploymentEvent::GracePeriodStarted { at, .. }
            | DeploymentEvent::GracePeriodEnded { at, .. }
            | DeploymentEvent::DeploymentBilled { at, .. }
            | DeploymentEvent::DeploymentCancelled { at, .. }
            | DeploymentEvent::DeploymentDeleted { at, .. } => *at,
        }
    }
}

impl DomainEvent for DeploymentEvent {
    fn event_type(&self) -> String {
        match self {
            DeploymentEvent::DeploymentRequested { .. } => "DeploymentRequested",
            DeploymentEvent::NodeAssigned { .. } => "NodeAssigned",
            DeploymentEvent::ContractCreated { .. } => "ContractCreated",
            DeploymentEvent::ProvisioningAttemptFailed { .. } => "ProvisioningAttemptFailed",
            DeploymentEvent::WorkerAssigned { .. } => "WorkerAssigned",
            DeploymentEvent::WorkerContractCreated { .. } => "WorkerContractCreated",
            DeploymentEvent::WorkerRunning { .. } => "WorkerRunning",
            DeploymentEvent::WorkerReleased { .. } => "WorkerReleased",
            DeploymentEvent::ZdbAssigned { .. } => "ZdbAssigned",
            DeploymentEvent::ZdbContractCreated { .. } => "ZdbContractCreated",
            DeploymentEvent::ZdbReady { .. } => "ZdbReady",
            DeploymentEvent::ZdbAbandoned { .. } => "ZdbAbandoned",
            DeploymentEvent::StandbyAssigned { .. } => "StandbyAssigned",
            DeploymentEvent::StandbyContractCreated { .. } => "StandbyContractCreated",
            DeploymentEvent::StandbyReady { .. } => "StandbyReady",
            DeploymentEvent::StandbyAbandoned { .. } => "StandbyAbandoned",
            DeploymentEvent::FailedOver { .. } => "FailedOver",
            DeploymentEvent::DeploymentRunning { .. } => "DeploymentRunning",
            DeploymentEvent::DeploymentFailed { .. } => "DeploymentFailed",
            DeploymentEvent::DeploymentResized { .. } => "DeploymentResized",
            DeploymentEvent::GracePeriodStarted { .. } => "GracePeriodStarted",
            DeploymentEvent::GracePeriodEnded { .. } => "GracePeriodEnded",
            DeploymentEvent::DeploymentBilled { .. } => "DeploymentBilled",
            DeploymentEvent::DeploymentCancelled { .. } => "DeploymentCancelled",
            DeploymentEvent::DeploymentDeleted { .. } => "DeploymentDeleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
