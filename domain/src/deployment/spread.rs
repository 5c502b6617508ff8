//! A spread Kubernetes cluster: its masters on the deployment's node, each
//! worker a deployment and contract of its own on a node that is neither
//! the masters' nor another worker's. Scaling adds or releases workers; a
//! resize brings each to the new revision; the cluster runs when the
//! masters and every worker run at the current revision.

use super::aggregate::{DeploymentError, DeploymentState, Status};
use super::commands::DeploymentCommand;
use super::events::DeploymentEvent;
use super::values::*;

/// The spread cluster's spec, when the deployment is one.
pub fn cluster(s: &DeploymentState) -> Option<&KubernetesSpec> {
    match &s.spec {
        WorkloadSpec::Kubernetes(k) if k.spread => Some(k),
        _ => None,
    }
}

/// Worker `index`, if placed.
pub fn worker(s: &DeploymentState, index: u8) -> Option<&SpreadWorker> {
    s.spread_workers.iter().find(|w| w.index == index)
}

/// Decides a spread worker command.
pub(super) fn decide(
    s: &DeploymentState,
    command: DeploymentCommand,
) -> Result<Vec<DeploymentEvent>, DeploymentError> {
    use DeploymentCommand as C;
    use DeploymentEvent as E;
    let name = command.name();
    let refuse = || DeploymentError::InvalidTransition {
        command: name,
        status: s.status,
    };
    let Some(k) = cluster(s) else {
        return Err(DeploymentError::NotACluster);
    };
    let live = matches!(s.status, Status::Provisioning | Status::Running);
    match command {
        C::AssignWorker { index, node, at } => {
            if !live || index >= k.workers || worker(s, index).is_some() {
                return Err(refuse());
            }
            let taken = s.node.map(|n| n.node_id) == Some(node.node_id)
                || s.spread_workers
                    .iter()
                    .any(|w| w.node.node_id == node.node_id);
            if taken {
                return Err(DeploymentError::NodeTaken {
                    node_id: node.node_id,
                });
            }
            Ok(vec![E::WorkerAssigned { index, node, at }])
        }
        C::RecordWorkerContract {
            index,
            contract_id,
            at,
        } => match worker(s, index) {
            _ if contract_id == 0 => Err(DeploymentError::InvalidContractId),
            Some(w) if w.contract_id.is_none() => Ok(vec![E::WorkerContractCreated {
                index,
                contract_id,
                at,
            }]),
            _ => Err(refuse()),
        },
        C::MarkWorkerRunning {
            index,
            workload,
            at,
        } => match worker(s, index) {
            Some(w) if w.contract_id.is_some() && live => {
                if workload.state != WorkloadState::Ok {
                    return Err(DeploymentError::WorkloadNotReady {
                        workload: workload.name,
                        state: workload.state,
                    });
                }
                Ok(vec![E::WorkerRunning {
                    index,
                    workload,
                    at,
                }])
            }
            _ => Err(refuse()),
        },
        C::ReleaseWorker { index, failure, at } => match worker(s, index) {
            Some(w) => Ok(vec![E::WorkerReleased {
                index,
                node_id: w.node.node_id,
                failure,
                at,
            }]),
            None => Err(refuse()),
        },
        _ => Ok(vec![]),
    }
}

/// Applies a spread worker event.
pub(super) fn apply(s: &mut DeploymentState, event: &DeploymentEvent) {
    use DeploymentEvent as E;
    match event {
        E::WorkerAssigned { index, node, .. } => s.spread_workers.push(SpreadWorker {
            index: *index,
            node: *node,
            contract_id: None,
            running: None,
        }),
        E::WorkerContractCreated {
            index, contract_id, ..
        } => {
            if let Some(w) = s.spread_workers.iter_mut().find(|w| w.index == *index) {
                w.contract_id = Some(*contract_id);
            }
        }
        E::WorkerRunning {
            index, workload, ..
        } => {
            let revision = s.revision;
            if let Some(w) = s.spread_workers.iter_mut().find(|w| w.index == *index) {
                w.running = Some((revision, workload.clone()));
            }
        }
        E::WorkerReleased {
            index,
            node_id,
            failure,
            ..
        } => {
            s.spread_workers.retain(|w| w.index != *index);
            if failure.is_some() {
                s.tried_nodes.push(*node_id);
            }
        }
        _ => {}
    }
}
