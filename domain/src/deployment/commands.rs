//! What may be asked of a deployment. Each command carries everything its
//! decision needs, "now" included.

use chrono::{DateTime, Utc};

use super::values::*;
use crate::actor::Actor;
use crate::chain::ContractBill;

/// A command to the Deployment aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum DeploymentCommand {
    /// A cloud user asks for a new deployment.
    Request {
        /// The requesting user (becomes the owner).
        owner: String,
        /// Its name.
        name: DeploymentName,
        /// VM or cluster.
        spec: WorkloadSpec,
        /// Placement criteria.
        placement: Placement,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Placement chose a node.
    AssignNode {
        /// The node.
        node: NodeAssignment,
        /// Why this node (placement's explanation), if a placer chose it.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The node contract was created on chain.
    RecordContractCreated {
        /// TFChain contract id.
        contract_id: u64,
        /// The rent contract taken for a dedicated node, if any.
        rent_contract_id: Option<u64>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Every workload reported `ok`.
    MarkRunning {
        /// The states reported.
        workloads: Vec<WorkloadStatus>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Deployment failed (a workload in error, or a stall).
    /// The attempt on the assigned node failed and its contracts are
    /// cancelled: release the node and place again elsewhere.
    AbandonAttempt {
        /// Why the attempt failed.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record the node chosen for a spread cluster's worker.
    AssignWorker {
        /// Which worker.
        index: u8,
        /// The node (not the masters', not another worker's).
        node: NodeAssignment,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record a spread worker's node contract.
    RecordWorkerContract {
        /// Which worker.
        index: u8,
        /// TFChain contract id.
        contract_id: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A spread worker's node runs it at the current revision.
    MarkWorkerRunning {
        /// Which worker.
        index: u8,
        /// How its node reports it.
        workload: WorkloadStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// A spread worker is gone (scaled away, or failed; its contract
    /// cancelled).
    ReleaseWorker {
        /// Which worker.
        index: u8,
        /// Why, when it failed (its node is then not tried again).
        failure: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record the node chosen for a QSFS disk's backend.
    AssignZdb {
        /// The disk.
        disk: u8,
        /// The backend.
        index: u8,
        /// The node (not the VM's, not another backend's of the disk).
        node: NodeAssignment,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record a backend's node contract.
    RecordZdbContract {
        /// The disk.
        disk: u8,
        /// The backend.
        index: u8,
        /// TFChain contract id.
        contract_id: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A backend's node reports it up, at this endpoint.
    MarkZdbReady {
        /// The disk.
        disk: u8,
        /// The backend.
        index: u8,
        /// Where it answers.
        endpoint: ZdbEndpoint,
        /// When.
        at: DateTime<Utc>,
    },
    /// A backend failed (its contract cancelled): place it again elsewhere.
    AbandonZdb {
        /// The disk.
        disk: u8,
        /// The backend.
        index: u8,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record the node chosen for the VM's standby.
    AssignStandby {
        /// The node (of another farm than the primary's).
        node: NodeAssignment,
        /// Why.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record the standby's node contract.
    RecordStandbyContract {
        /// TFChain contract id.
        contract_id: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The standby's node reports it up.
    MarkStandbyReady {
        /// When.
        at: DateTime<Utc>,
    },
    /// The standby failed (its contract cancelled): choose another.
    AbandonStandby {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The primary's node is gone: the standby becomes the VM.
    FailOver {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    MarkFailed {
        /// The states reported.
        workloads: Vec<WorkloadStatus>,
        /// Why it failed.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Change the size of a running deployment.
    Resize {
        /// Who asks.
        by: Actor,
        /// The new size.
        resize: ResizeSpec,
        /// When.
        at: DateTime<Utc>,
    },
    /// The balance could not pay a bill: workloads pause. From the chain
    /// (`ContractGracePeriodStarted`) it names the contract; an operator's
    /// override names none.
    StartGracePeriod {
        /// The contract in grace, when the chain says so.
        contract_id: Option<u64>,
        /// When the grace period began.
        at: DateTime<Utc>,
    },
    /// A top-up paid the bill: workloads resume (once no contract of the
    /// deployment is in grace any more).
    EndGracePeriod {
        /// The contract out of grace, when the chain says so.
        contract_id: Option<u64>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The chain billed one of the deployment's contracts.
    RecordBill {
        /// The bill.
        bill: ContractBill,
        /// When.
        at: DateTime<Utc>,
    },
    /// The owner or an operator cancels the deployment.
    Cancel {
        /// Who cancels.
        by: Actor,
        /// Why, optionally.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The contract is gone; the deployment with it.
    Delete {
        /// Why.
        cause: DeletionCause,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DeploymentCommand {
    /// The command's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            DeploymentCommand::Request { .. } => "request",
            DeploymentCommand::AssignNode { .. } => "assign_node",
            DeploymentCommand::RecordContractCreated { .. } => "record_contract_created",
            DeploymentCommand::AbandonAttempt { .. } => "abandon_attempt",
            DeploymentCommand::AssignStandby { .. } => "assign_standby",
            DeploymentCommand::AssignZdb { .. } => "assign_zdb",
            DeploymentCommand::AssignWorker { .. } => "assign_worker",
            DeploymentCommand::RecordWorkerContract { .. } => "record_worker_contract",
            DeploymentCommand::MarkWorkerRunning { .. } => "mark_worker_running",
            DeploymentCommand::ReleaseWorker { .. } => "release_worker",
            DeploymentCommand::RecordZdbContract { .. } => "record_zdb_contract",
            DeploymentCommand::MarkZdbReady { .. } => "mark_zdb_ready",
            DeploymentCommand::AbandonZdb { .. } => "abandon_zdb",
            DeploymentCommand::RecordStandbyContract { .. } => "record_standby_contract",
            DeploymentCommand::MarkStandbyReady { .. } => "mark_standby_ready",
            DeploymentCommand::AbandonStandby { .. } => "abandon_standby",
            DeploymentCommand::FailOver { .. } => "fail_over",
            DeploymentCommand::MarkRunning { .. } => "mark_running",
            DeploymentCommand::MarkFailed { .. } => "mark_failed",
            DeploymentCommand::Resize { .. } => "resize",
            DeploymentCommand::StartGracePeriod { .. } => "start_grace_period",
            DeploymentCommand::EndGracePeriod { .. } => "end_grace_period",
            DeploymentCommand::RecordBill { .. } => "record_bill",
            DeploymentCommand::Cancel { .. } => "cancel",
            DeploymentCommand::Delete { .. } => "delete",
        }
    }
}
