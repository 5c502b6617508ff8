//! A VM's QSFS disks: each spread over [`QSFS_BACKENDS`] `zdb` backends,
//! each its own deployment and contract on a node that is neither the VM's
//! nor another backend's of that disk. Backends are placed and brought up
//! while the VM is `placed`, before its own contract, because the VM's
//! `qsfs` workload names their endpoints.

use super::aggregate::{DeploymentError, DeploymentState, Status};
use super::commands::DeploymentCommand;
use super::events::DeploymentEvent;
use super::values::*;

/// The QSFS disks' sizes (GB), empty when the spec has none.
pub fn disks(s: &DeploymentState) -> &[u32] {
    match &s.spec {
        WorkloadSpec::Vm(vm) => &vm.qsfs_gb,
        WorkloadSpec::Kubernetes(_) => &[],
    }
}

/// The backend `(disk, index)`, if placed.
pub fn backend(s: &DeploymentState, disk: u8, index: u8) -> Option<&ZdbBackend> {
    s.zdbs.iter().find(|z| z.disk == disk && z.index == index)
}

/// Whether every backend of every disk is up.
pub fn ready(s: &DeploymentState) -> bool {
    let wanted = disks(s).len() * usize::from(QSFS_BACKENDS);
    s.zdbs.iter().filter(|z| z.endpoint.is_some()).count() >= wanted
}

/// Decides a QSFS backend command.
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
    if s.status != Status::Placed {
        return Err(refuse());
    }
    let known = |disk: u8, index: u8| usize::from(disk) < disks(s).len() && index < QSFS_BACKENDS;
    match command {
        C::AssignZdb {
            disk,
            index,
            node,
            at,
        } => {
            if !known(disk, index) || backend(s, disk, index).is_some() {
                return Err(refuse());
            }
            let taken = s.node.map(|n| n.node_id) == Some(node.node_id)
                || s.zdbs
                    .iter()
                    .any(|z| z.disk == disk && z.node.node_id == node.node_id);
            if taken {
                return Err(DeploymentError::NodeTaken {
                    node_id: node.node_id,
                });
            }
            Ok(vec![E::ZdbAssigned {
                disk,
                index,
                node,
                at,
            }])
        }
        C::RecordZdbContract {
            disk,
            index,
            contract_id,
            at,
        } => match backend(s, disk, index) {
            _ if contract_id == 0 => Err(DeploymentError::InvalidContractId),
            Some(z) if z.contract_id.is_none() => Ok(vec![E::ZdbContractCreated {
                disk,
                index,
                contract_id,
                at,
            }]),
            _ => Err(refuse()),
        },
        C::MarkZdbReady {
            disk,
            index,
            endpoint,
            at,
        } => match backend(s, disk, index) {
            Some(z) if z.contract_id.is_some() && z.endpoint.is_none() => Ok(vec![E::ZdbReady {
                disk,
                index,
                endpoint,
                at,
            }]),
            _ => Err(refuse()),
        },
        C::AbandonZdb {
            disk,
            index,
            reason,
            at,
        } => match backend(s, disk, index) {
            Some(z) => {
                if reason.trim().is_empty() {
                    return Err(DeploymentError::MissingReason);
                }
                Ok(vec![E::ZdbAbandoned {
                    disk,
                    index,
                    node_id: z.node.node_id,
                    reason,
                    at,
                }])
            }
            None => Err(refuse()),
        },
        _ => Ok(vec![]),
    }
}

/// Applies a QSFS backend event.
pub(super) fn apply(s: &mut DeploymentState, event: &DeploymentEvent) {
    use DeploymentEvent as E;
    match event {
        E::ZdbAssigned {
            disk, index, node, ..
        } => s.zdbs.push(ZdbBackend {
            disk: *disk,
            index: *index,
            node: *node,
            contract_id: None,
            endpoint: None,
        }),
        E::ZdbContractCreated {
            disk,
            index,
            contract_id,
            ..
        } => {
            if let Some(z) = s
                .zdbs
                .iter_mut()
                .find(|z| z.disk == *disk && z.index == *index)
            {
                z.contract_id = Some(*contract_id);
            }
        }
        E::ZdbReady {
            disk,
            index,
            endpoint,
            ..
        } => {
            if let Some(z) = s
                .zdbs
                .iter_mut()
                .find(|z| z.disk == *disk && z.index == *index)
            {
                z.endpoint = Some(endpoint.clone());
            }
        }
        E::ZdbAbandoned {
            disk,
            index,
            node_id,
            ..
        } => {
            s.zdbs.retain(|z| !(z.disk == *disk && z.index == *index));
            s.tried_nodes.push(*node_id);
        }
        _ => {}
    }
}
