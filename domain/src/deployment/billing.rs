//! What the chain does to a deployment's contracts: it bills them
//! (`ContractBilled`) and, when the owner's balance cannot pay, puts them in
//! grace (`ContractGracePeriodStarted/Ended`). A deployment is suspended
//! while any of its contracts is in grace and resumes when none is; an
//! operator's override (no contract named) starts or ends it as a whole.
//! Bills are recorded once per chain event, in chain order, in any status:
//! a contract's last bill comes when it is cancelled, after the deployment
//! was.

use super::aggregate::{DeploymentError, DeploymentState, Status};
use super::commands::DeploymentCommand;
use super::events::DeploymentEvent;
use crate::chain::is_new;

/// Decides a grace or bill command (any other command decides nothing).
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
    match command {
        C::RecordBill { bill, at } => {
            let last = s.billing.last_bill.map(|b| b.event);
            if !is_new(last, bill.event) || bill.amount.base_units() == 0 {
                return Ok(vec![]);
            }
            Ok(vec![E::DeploymentBilled { bill, at }])
        }
        C::StartGracePeriod {
            contract_id: None,
            at,
        } => match s.status {
            Status::Running => Ok(vec![E::GracePeriodStarted {
                at,
                contract_id: None,
            }]),
            _ => Err(refuse("start_grace_period")),
        },
        C::StartGracePeriod {
            contract_id: Some(contract_id),
            at,
        } => match s.status {
            _ if s.grace_contracts.contains(&contract_id) => Ok(vec![]),
            Status::Running | Status::Suspended => Ok(vec![E::GracePeriodStarted {
                at,
                contract_id: Some(contract_id),
            }]),
            // Nothing runs to pause: the chain's grace changes nothing here.
            Status::Failed | Status::Cancelled | Status::Deleted => Ok(vec![]),
            Status::Requested | Status::Placed | Status::Provisioning => {
                Err(refuse("start_grace_period"))
            }
        },
        C::EndGracePeriod {
            contract_id: None,
            at,
        } => match s.status {
            Status::Suspended => Ok(vec![E::GracePeriodEnded {
                at,
                contract_id: None,
            }]),
            _ => Err(refuse("end_grace_period")),
        },
        C::EndGracePeriod {
            contract_id: Some(contract_id),
            at,
        } => {
            if s.status == Status::Suspended && s.grace_contracts.contains(&contract_id) {
                Ok(vec![E::GracePeriodEnded {
                    at,
                    contract_id: Some(contract_id),
                }])
            } else {
                Ok(vec![])
            }
        }
        _ => Ok(vec![]),
    }
}

/// Applies a grace or bill event (any other event changes nothing here).
pub(super) fn apply(s: &mut DeploymentState, event: &DeploymentEvent) {
    use DeploymentEvent as E;
    match event {
        E::GracePeriodStarted { at, contract_id } => {
            if s.status != Status::Suspended {
                s.grace_since = Some(*at);
                s.status = Status::Suspended;
            }
            if let Some(id) = contract_id {
                s.grace_contracts.insert(*id);
            }
        }
        E::GracePeriodEnded { contract_id, .. } => {
            match contract_id {
                Some(id) => {
                    s.grace_contracts.remove(id);
                }
                None => s.grace_contracts.clear(),
            }
            if s.grace_contracts.is_empty() {
                s.grace_since = None;
                s.status = Status::Running;
            }
        }
        E::DeploymentBilled { bill, .. } => {
            s.billing.billed_to_date = s.billing.billed_to_date.saturating_add(bill.amount);
            s.billing.bills += 1;
            s.billing.last_bill = Some(*bill);
        }
        _ => {}
    }
}
