//! The deployment's state, its decisions and how events change it.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::commands::DeploymentCommand;
use super::events::DeploymentEvent;
use super::values::*;
use crate::actor::Actor;

/// How long a contract may stay in its grace period before it is deleted
/// for want of funds (TFChain: 14 days).
pub fn grace_period() -> Duration {
    Duration::days(14)
}

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Asked for, waiting for a node.
    Requested,
    /// A node is chosen; no contract yet.
    Placed,
    /// The contract exists; workloads are being deployed.
    Provisioning,
    /// Every workload is up.
    Running,
    /// Deployment failed.
    Failed,
    /// In its grace period: workloads paused until a top-up.
    Suspended,
    /// Cancelled; waiting for the contract to be removed.
    Cancelled,
    /// Gone.
    Deleted,
}

impl Status {
    /// The status name as stored in views and filtered on.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Placed => "placed",
            Status::Provisioning => "provisioning",
            Status::Running => "running",
            Status::Failed => "failed",
            Status::Suspended => "suspended",
            Status::Cancelled => "cancelled",
            Status::Deleted => "deleted",
        }
    }

    /// Every status, for validating filters.
    pub const ALL: [Status; 8] = [
        Status::Requested,
        Status::Placed,
        Status::Provisioning,
        Status::Running,
        Status::Failed,
        Status::Suspended,
        Status::Cancelled,
        Status::Deleted,
    ];

    /// Parses a status name.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a decision about an existing deployment needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentState {
    /// The owning user's subject.
    pub owner: String,
    /// Its name.
    pub name: DeploymentName,
    /// What it runs now.
    pub spec: WorkloadSpec,
    /// Placement criteria.
    pub placement: Placement,
    /// Where it is in its life.
    pub status: Status,
    /// The node, once assigned.
    pub node: Option<NodeAssignment>,
    /// The chain contract, once created.
    pub contract_id: Option<u64>,
    /// When the current grace period began.
    pub grace_since: Option<DateTime<Utc>>,
    /// The workload states last reported by the node.
    pub workloads: Vec<WorkloadStatus>,
    /// The rent contract of a dedicated node, once created.
    pub rent_contract_id: Option<u64>,
    /// Why the current node was chosen, when placement chose it.
    pub placement_reason: Option<String>,
    /// Nodes an attempt failed on, oldest first: never chosen again.
    pub tried_nodes: Vec<u32>,
    /// Why the last failed attempt failed.
    pub last_attempt_failure: Option<String>,
    /// The spec's revision: 0 as requested, one more per resize. The node's
    /// deployment carries it as its version.
    pub revision: u32,
    /// The revision last reported running, if any.
    pub running_revision: Option<u32>,
    /// The VM's standby, when it asks for one and it has been placed.
    pub standby: Option<Standby>,
    /// The last takeover by a standby.
    pub failover: Option<Failover>,
    /// The QSFS disks' `zdb` backends placed so far.
    pub zdbs: Vec<ZdbBackend>,
    /// A spread cluster's workers placed so far.
    pub spread_workers: Vec<SpreadWorker>,
    /// Its contracts the chain has in grace now.
    #[serde(default)]
    pub grace_contracts: BTreeSet<u64>,
    /// What the chain billed so far.
    #[serde(default)]
    pub billing: Billing,
}

impl DeploymentState {
    /// Whether the node runs an older revision than the spec asks for (a
    /// resize to provision).
    pub fn update_pending(&self) -> bool {
        self.status == Status::Running && self.running_revision != Some(self.revision)
    }
}

/// The Deployment aggregate: `None` until requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    state: Option<DeploymentState>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeploymentError {
    /// A request for an id that already has a deployment.
    #[error("a deployment with this id already exists")]
    AlreadyExists,
    /// A command other than a request for an id with no deployment.
    #[error("no such deployment")]
    NotFound,
    /// The command is not allowed in the deployment's current status.
    #[error("cannot {command} a deployment that is {status}")]
    InvalidTransition {
        /// The refused command.
        command: &'static str,
        /// The status it met.
        status: Status,
    },
    /// Only the owner or an operator may do this.
    #[error("only the deployment's owner or an operator may do this")]
    NotPermitted,
    /// A field of the spec is out of range.
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// Running needs every workload `ok`.
    #[error("workload {workload} is {state:?}, not ok")]
    WorkloadNotReady {
        /// The workload that is not ok.
        workload: String,
        /// Its reported state.
        state: WorkloadState,
    },
    /// The reported workloads do not match the deployment's.
    #[error("reported workloads do not match the deployment: expected {expected:?}")]
    WorkloadsMismatch {
        /// The workload names the deployment has.
        expected: Vec<String>,
    },
    /// A failure needs a reason.
    #[error("a failure needs a reason")]
    MissingReason,
    /// The resize changes nothing.
    #[error("the new size equals the current one")]
    ResizeUnchanged,
    /// Disks can grow, never shrink: the data would not fit.
    #[error("the root disk cannot shrink from {from_gb} GB to {to_gb} GB")]
    DiskShrink {
        /// Current size.
        from_gb: u32,
        /// Asked size.
        to_gb: u32,
    },
    /// A worker count given for a plain VM.
    #[error("only a Kubernetes cluster has workers")]
    NotACluster,
    /// Deletion for want of funds before the grace period ran out.
    #[error("the grace period runs until {until}")]
    GracePeriodNotElapsed {
        /// When it runs out.
        until: DateTime<Utc>,
    },
    /// That cause does not fit the deployment's status.
    #[error("a {status} deployment cannot be deleted as {cause:?}")]
    CauseNotAllowed {
        /// The cause given.
        cause: DeletionCause,
        /// The status met.
        status: Status,
    },
    /// The contract id is not a chain contract id.
    #[error("node {node_id} already holds part of this deployment (the VM, a worker, or a backend of the same QSFS disk)")]
    NodeTaken { node_id: u32 },
    #[error("only a VM that asks for a standby has one")]
    NoStandby,
    #[error("a standby must be in another farm than the VM's (farm {farm_id})")]
    StandbySameFarm { farm_id: u32 },
    #[error("contract ids start at 1")]
    InvalidContractId,
    /// The reason or another free text is too long.
    #[error("text too long: at most {max} characters")]
    TextTooLong {
        /// The limit.
        max: usize,
    },
}

const MAX_TEXT: usize = 1_000;

fn check_text(text: &str) -> Result<(), DeploymentError> {
    if text.chars().count() > MAX_TEXT {
        Err(DeploymentError::TextTooLong { max: MAX_TEXT })
    } else {
        Ok(())
    }
}

impl Deployment {
    /// The current state, if requested.
    pub fn state(&self) -> Option<&DeploymentState> {
        self.state.as_ref()
    }

    /// Decides what a command does: the events, or why not.
    pub fn decide(
        &self,
        command: DeploymentCommand,
    ) -> Result<Vec<DeploymentEvent>, DeploymentError> {
        use DeploymentCommand as C;
        use DeploymentEvent as E;

        let name = command.name();
        let Some(s) = &self.state else {
            return match command {
                C::Request {
                    owner,
                    name,
                    spec,
                    placement,
                    at,
                } => Ok(vec![E::DeploymentRequested {
                    owner,
                    name,
                    kind: spec.kind(),
                    spec,
                    placement,
                    at,
                }]),
                _ => Err(DeploymentError::NotFound),
            };
        };
        let refuse = || DeploymentError::InvalidTransition {
            command: name,
            status: s.status,
        };
        let may_act = |by: &Actor| by.is_operator() || by.subject == s.owner;

        match command {
            C::Request { .. } => Err(DeploymentError::AlreadyExists),
            C::AssignNode { node, reason, at } => match s.status {
                Status::Requested => {
                    if let Some(r) = &reason {
                        check_text(r)?;
                    }
                    Ok(vec![E::NodeAssigned { node, reason, at }])
                }
                _ => Err(refuse()),
            },
            C::RecordContractCreated {
                contract_id,
                rent_contract_id,
                at,
            } => match s.status {
                Status::Placed if contract_id == 0 || rent_contract_id == Some(0) => {
                    Err(DeploymentError::InvalidContractId)
                }
                Status::Placed => Ok(vec![E::ContractCreated {
                    contract_id,
                    rent_contract_id,
                    at,
                }]),
                _ => Err(refuse()),
            },
            worker @ (C::AssignWorker { .. }
            | C::RecordWorkerContract { .. }
            | C::MarkWorkerRunning { .. }
            | C::ReleaseWorker { .. }) => super::spread::decide(s, worker),
            zdb @ (C::AssignZdb { .. }
            | C::RecordZdbContract { .. }
            | C::MarkZdbReady { .. }
            | C::AbandonZdb { .. }) => super::qsfs::decide(s, zdb),
            standby @ (C::AssignStandby { .. }
            | C::RecordStandbyContract { .. }
            | C::MarkStandbyReady { .. }
            | C::AbandonStandby { .. }
            | C::FailOver { .. }) => super::standby::decide(s, standby),
            C::AbandonAttempt { reason, at } => match (s.status, s.node) {
                (Status::Placed | Status::Provisioning, Some(node)) => {
                    if reason.trim().is_empty() {
                        return Err(DeploymentError::MissingReason);
                    }
                    check_text(&reason)?;
                    Ok(vec![E::ProvisioningAttemptFailed {
                        node_id: node.node_id,
                        contract_id: s.contract_id,
                        reason,
                        at,
                    }])
                }
                _ => Err(refuse()),
            },
            C::MarkRunning { workloads, at } => match s.status {
                Status::Provisioning | Status::Running => {
                    self.check_workloads(&workloads)?;
                    if let Some(w) = workloads.iter().find(|w| w.state != WorkloadState::Ok) {
                        return Err(DeploymentError::WorkloadNotReady {
                            workload: w.name.clone(),
                            state: w.state,
                        });
                    }
                    Ok(vec![E::DeploymentRunning { workloads, at }])
                }
                _ => Err(refuse()),
            },
            C::MarkFailed {
                workloads,
                reason,
                at,
            } => match s.status {
                Status::Requested | Status::Placed | Status::Provisioning | Status::Running => {
                    if reason.trim().is_empty() {
                        return Err(DeploymentError::MissingReason);
                    }
                    check_text(&reason)?;
                    Ok(vec![E::DeploymentFailed {
                        workloads,
                        reason,
                        at,
                    }])
                }
                _ => Err(refuse()),
            },
            C::Resize { by, resize, at } => {
                if !may_act(&by) {
                    return Err(DeploymentError::NotPermitted);
                }
                if s.status != Status::Running {
                    return Err(refuse());
                }
                let spec = resized(&s.spec, resize)?;
                Ok(vec![E::DeploymentResized { spec, by, at }])
            }
            grace @ (C::StartGracePeriod { .. }
            | C::EndGracePeriod { .. }
            | C::RecordBill { .. }) => super::billing::decide(s, grace),
            C::Cancel { by, reason, at } => {
                if !may_act(&by) {
                    return Err(DeploymentError::NotPermitted);
                }
                if let Some(r) = &reason {
                    check_text(r)?;
                }
                match s.status {
                    Status::Cancelled | Status::Deleted => Err(refuse()),
                    _ => Ok(vec![E::DeploymentCancelled { by, reason, at }]),
                }
            }
            C::Delete { cause, at } => {
                use DeletionCause as D;
                match (s.status, cause) {
                    (Status::Deleted, _) => Err(refuse()),
                    (_, D::CanceledByCollective) => Ok(vec![E::DeploymentDeleted { cause, at }]),
                    (Status::Cancelled | Status::Failed, D::CanceledByUser) => {
                        Ok(vec![E::DeploymentDeleted { cause, at }])
                    }
                    (Status::Suspended, D::OutOfFunds) => {
                        let since = s.grace_since.unwrap_or(at);
                        let until = since + grace_period();
                        if at < until {
                            Err(DeploymentError::GracePeriodNotElapsed { until })
                        } else {
                            Ok(vec![E::DeploymentDeleted { cause, at }])
                        }
                    }
                    (status, cause) => Err(DeploymentError::CauseNotAllowed { cause, status }),
                }
            }
        }
    }

    fn check_workloads(&self, reported: &[WorkloadStatus]) -> Result<(), DeploymentError> {
        let Some(s) = &self.state else {
            return Err(DeploymentError::NotFound);
        };
        let mut expected = s.spec.workload_names(&s.name);
        let mut got: Vec<String> = reported.iter().map(|w| w.name.clone()).collect();
        expected.sort();
        got.sort();
        if expected != got {
            return Err(DeploymentError::WorkloadsMismatch { expected });
        }
        Ok(())
    }

    /// Changes the state by one event. Never fails: events are facts.
    pub fn apply_event(&mut self, event: &DeploymentEvent) {
        use DeploymentEvent as E;
        if let E::DeploymentRequested {
            owner,
            name,
            spec,
            placement,
            ..
        } = event
        {
            self.state = Some(DeploymentState {
                owner: owner.clone(),
                name: name.clone(),
                spec: spec.clone(),
                placement: placement.clone(),
                status: Status::Requested,
                node: None,
                contract_id: None,
                grace_since: None,
                workloads: Vec::new(),
                rent_contract_id: None,
                placement_reason: None,
                tried_nodes: Vec::new(),
                last_attempt_failure: None,
                revision: 0,
                running_revision: None,
                standby: None,
                failover: None,
                zdbs: Vec::new(),
                spread_workers: Vec::new(),
                grace_contracts: BTreeSet::new(),
                billing: Billing::default(),
            });
            return;
        }
        let Some(s) = &mut self.state else {
            return;
        };
        match event {
            E::DeploymentRequested { .. } => {}
            E::NodeAssigned { node, reason, .. } => {
                s.node = Some(*node);
                s.placement_reason = reason.clone();
                s.status = Status::Placed;
            }
            E::ContractCreated {
                contract_id,
                rent_contract_id,
                ..
            } => {
                s.contract_id = Some(*contract_id);
                s.rent_contract_id = *rent_contract_id;
                s.status = Status::Provisioning;
            }
            E::ProvisioningAttemptFailed {
                node_id, reason, ..
            } => {
                s.tried_nodes.push(*node_id);
                s.last_attempt_failure = Some(reason.clone());
                s.node = None;
                s.contract_id = None;
                s.rent_contract_id = None;
                s.placement_reason = None;
                s.workloads.clear();
                s.status = Status::Requested;
            }
            E::WorkerAssigned { .. }
            | E::WorkerContractCreated { .. }
            | E::WorkerRunning { .. }
            | E::WorkerReleased { .. } => super::spread::apply(s, event),
            E::ZdbAssigned { .. }
            | E::ZdbContractCreated { .. }
            | E::ZdbReady { .. }
            | E::ZdbAbandoned { .. } => super::qsfs::apply(s, event),
            E::StandbyAssigned { .. }
            | E::StandbyContractCreated { .. }
            | E::StandbyReady { .. }
            | E::StandbyAbandoned { .. }
            | E::FailedOver { .. } => super::standby::apply(s, event),
            E::DeploymentRunning { workloads, .. } => {
                s.workloads = workloads.clone();
                s.running_revision = Some(s.revision);
                s.status = Status::Running;
            }
            E::DeploymentFailed { workloads, .. } => {
                s.workloads = workloads.clone();
                s.status = Status::Failed;
            }
            E::DeploymentResized { spec, .. } => {
                s.spec = spec.clone();
                s.revision += 1;
            }
            E::GracePeriodStarted { .. }
            | E::GracePeriodEnded { .. }
            | E::DeploymentBilled { .. } => super::billing::apply(s, event),
            E::DeploymentCancelled { .. } => s.status = Status::Cancelled,
            E::DeploymentDeleted { .. } => s.status = Status::Deleted,
        }
    }
}

/// The spec after a resize, or why the resize is refused.
fn resized(spec: &WorkloadSpec, resize: ResizeSpec) -> Result<WorkloadSpec, DeploymentError> {
    let no_shrink = |from: &MachineSize| {
        if resize.size.rootfs_gb < from.rootfs_gb {
            Err(DeploymentError::DiskShrink {
                from_gb: from.rootfs_gb,
                to_gb: resize.size.rootfs_gb,
            })
        } else {
            Ok(())
        }
    };
    match spec {
        WorkloadSpec::Vm(vm) => {
            if resize.workers.is_some() {
                return Err(DeploymentError::NotACluster);
            }
            if resize.size == vm.size {
                return Err(DeploymentError::ResizeUnchanged);
            }
            no_shrink(&vm.size)?;
            Ok(WorkloadSpec::Vm(VmSpec {
                size: resize.size,
                ..vm.clone()
            }))
        }
        WorkloadSpec::Kubernetes(k) => {
            let workers = resize.workers.unwrap_or(k.workers);
            if resize.size == k.worker_size && workers == k.workers {
                return Err(DeploymentError::ResizeUnchanged);
            }
            no_shrink(&k.worker_size)?;
            Ok(WorkloadSpec::Kubernetes(KubernetesSpec {
                worker_size: resize.size,
                workers,
                ..k.clone()
            }))
        }
    }
}

crate::event_sourced!(
    Deployment,
    "deployment",
    DeploymentCommand,
    DeploymentEvent,
    DeploymentError
);
