//! A VM's standby (ours; the grid has no backup workload): a node of
//! another farm holds the VM's network and disks under its own contract;
//! when the primary's node has been unreachable long enough, the standby
//! takes over (`FailedOver`): its node and contract become the VM's, the
//! primary's contract is cancelled, and the revision moves on so that the
//! VM is started there. A new standby is then chosen.

use super::aggregate::{DeploymentError, DeploymentState, Status};
use super::commands::DeploymentCommand;
use super::events::DeploymentEvent;
use super::values::*;

/// Whether the deployment asks for a standby.
pub fn wanted(s: &DeploymentState) -> bool {
    matches!(&s.spec, WorkloadSpec::Vm(vm) if vm.standby)
}

/// Decides a standby command.
pub(super) fn decide(
    s: &DeploymentState,
    command: DeploymentCommand,
) -> Result<Vec<DeploymentEvent>, DeploymentError> {
    use DeploymentCommand as C;
    use DeploymentEvent as E;
    let refuse = |command: &'static str| DeploymentError::InvalidTransition {
        command,
        status: s.status,
    };
    let live = matches!(s.status, Status::Running | Status::Suspended);
    match command {
        C::AssignStandby { node, reason, at } => {
            if !wanted(s) {
                return Err(DeploymentError::NoStandby);
            }
            if !live || s.standby.is_some() {
                return Err(refuse("assign_standby"));
            }
            if s.node.is_some_and(|p| p.farm_id == node.farm_id) {
                return Err(DeploymentError::StandbySameFarm {
                    farm_id: node.farm_id,
                });
            }
            Ok(vec![E::StandbyAssigned { node, reason, at }])
        }
        C::RecordStandbyContract { contract_id, at } => match &s.standby {
            _ if contract_id == 0 => Err(DeploymentError::InvalidContractId),
            Some(sb) if sb.contract_id.is_none() => {
                Ok(vec![E::StandbyContractCreated { contract_id, at }])
            }
            _ => Err(refuse("record_standby_contract")),
        },
        C::MarkStandbyReady { at } => match &s.standby {
            Some(sb) if sb.contract_id.is_some() && !sb.ready => Ok(vec![E::StandbyReady { at }]),
            _ => Err(refuse("mark_standby_ready")),
        },
        C::AbandonStandby { reason, at } => match &s.standby {
            Some(sb) => {
                if reason.trim().is_empty() {
                    return Err(DeploymentError::MissingReason);
                }
                Ok(vec![E::StandbyAbandoned {
                    node_id: sb.node.node_id,
                    reason,
                    at,
                }])
            }
            None => Err(refuse("abandon_standby")),
        },
        C::FailOver { reason, at } => match (&s.standby, s.node) {
            (Some(sb), Some(primary)) if live && sb.ready => {
                if reason.trim().is_empty() {
                    return Err(DeploymentError::MissingReason);
                }
                Ok(vec![E::FailedOver {
                    from_node: primary.node_id,
                    from_contract_id: s.contract_id,
                    to_node: sb.node,
                    to_contract_id: sb.contract_id.unwrap_or_default(),
                    reason,
                    at,
                }])
            }
            _ => Err(refuse("fail_over")),
        },
        _ => Ok(vec![]),
    }
}

/// Applies a standby event.
pub(super) fn apply(s: &mut DeploymentState, event: &DeploymentEvent) {
    use DeploymentEvent as E;
    match event {
        E::StandbyAssigned { node, reason, .. } => {
            s.standby = Some(Standby {
                node: *node,
                reason: reason.clone(),
                contract_id: None,
                ready: false,
            });
        }
        E::StandbyContractCreated { contract_id, .. } => {
            if let Some(sb) = &mut s.standby {
                sb.contract_id = Some(*contract_id);
            }
        }
        E::StandbyReady { .. } => {
            if let Some(sb) = &mut s.standby {
                sb.ready = true;
            }
        }
        E::StandbyAbandoned { node_id, .. } => {
            s.standby = None;
            s.tried_nodes.push(*node_id);
        }
        E::FailedOver {
            from_node,
            to_node,
            to_contract_id,
            reason,
            ..
        } => {
            s.failover = Some(Failover {
                from_node: *from_node,
                to_node: to_node.node_id,
                reason: reason.clone(),
            });
            s.tried_nodes.push(*from_node);
            s.node = Some(*to_node);
            s.contract_id = Some(*to_contract_id);
            s.rent_contract_id = None;
            s.standby = None;
            // The VM is to be started on the standby's node.
            s.revision += 1;
        }
        _ => {}
    }
}
