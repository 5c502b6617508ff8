//! The chain's bills and grace periods on a deployment's contracts.

use super::*;
use crate::chain::{ChainEventRef, ContractBill};
use crate::money::TftAmount;
use crate::pricing::DiscountLevel;

fn bill(block_number: u32, base_units: u64) -> ContractBill {
    ContractBill {
        event: ChainEventRef {
            block_number,
            event_index: 0,
        },
        contract_id: 1,
        amount: TftAmount::from_base_units(base_units),
        discount_level: DiscountLevel::Default,
        billed_at: t0(),
    }
}

fn record(bill: ContractBill) -> DeploymentCommand {
    DeploymentCommand::RecordBill { bill, at: t0() }
}

fn chain_grace(contract_id: u64) -> DeploymentCommand {
    DeploymentCommand::StartGracePeriod {
        contract_id: Some(contract_id),
        at: t0(),
    }
}

fn chain_resume(contract_id: u64) -> DeploymentCommand {
    DeploymentCommand::EndGracePeriod {
        contract_id: Some(contract_id),
        at: t0(),
    }
}

#[test]
fn bills_add_up_to_the_billed_to_date_once_per_chain_event() {
    let d = Deployment::given(running_vm());
    let once = d.when(record(bill(600, 1_000))).then_accepted();
    once.when(record(bill(600, 1_000))).then_expect_no_events();
    let twice = once.when(record(bill(1_200, 2_500))).then_accepted();
    let billing = twice.state().map(|s| s.billing).unwrap_or_default();
    assert_eq!(billing.billed_to_date, TftAmount::from_base_units(3_500));
    assert_eq!(billing.bills, 2);
    assert_eq!(billing.last_bill.map(|b| b.event.block_number), Some(1_200));
}

#[test]
fn a_final_bill_after_cancellation_is_still_recorded() {
    let mut events = running_vm();
    events.push(DeploymentEvent::DeploymentCancelled {
        by: alice(),
        reason: None,
        at: t0(),
    });
    Deployment::given(events)
        .when(record(bill(700, 10)))
        .then_expect_events(vec![DeploymentEvent::DeploymentBilled {
            bill: bill(700, 10),
            at: t0(),
        }]);
}

#[test]
fn the_deployment_resumes_only_when_none_of_its_contracts_is_in_grace() {
    let d = Deployment::given(running_vm());
    let one = d.when(chain_grace(1)).then_accepted();
    assert_eq!(one.state().map(|s| s.status), Some(Status::Suspended));
    // The same chain grace again changes nothing.
    one.when(chain_grace(1)).then_expect_no_events();
    let two = one.when(chain_grace(2)).then_accepted();
    assert_eq!(
        two.state().map(|s| s.grace_since),
        one.state().map(|s| s.grace_since)
    );
    let still = two.when(chain_resume(1)).then_accepted();
    assert_eq!(still.state().map(|s| s.status), Some(Status::Suspended));
    let resumed = still.when(chain_resume(2)).then_accepted();
    assert_eq!(resumed.state().map(|s| s.status), Some(Status::Running));
    assert_eq!(resumed.state().and_then(|s| s.grace_since), None);
    // A contract not in grace resuming is no news.
    resumed.when(chain_resume(2)).then_expect_no_events();
}

#[test]
fn chain_grace_on_a_deployment_with_nothing_running_changes_nothing() {
    let mut events = running_vm();
    events.push(DeploymentEvent::DeploymentCancelled {
        by: alice(),
        reason: None,
        at: t0(),
    });
    Deployment::given(events)
        .when(chain_grace(1))
        .then_expect_no_events();
}

#[test]
fn an_operator_override_ends_every_contracts_grace() {
    let d = Deployment::given(running_vm())
        .when(chain_grace(1))
        .then_accepted()
        .when(chain_grace(2))
        .then_accepted();
    let ended = d
        .when(DeploymentCommand::EndGracePeriod {
            contract_id: None,
            at: t0(),
        })
        .then_accepted();
    assert_eq!(ended.state().map(|s| s.status), Some(Status::Running));
    assert!(ended.state().is_some_and(|s| s.grace_contracts.is_empty()));
}

// ---- grace periods as the operator overrides them ----

#[test]
fn a_running_deployment_enters_and_leaves_its_grace_period() {
    let d = Deployment::given(running_vm());
    d.when(DeploymentCommand::StartGracePeriod {
        contract_id: None,
        at: t0(),
    })
    .then_expect_events(vec![grace_started(t0())]);
    let mut events = running_vm();
    events.push(grace_started(t0()));
    let d = Deployment::given(events);
    assert_eq!(d.state().map(|s| s.status), Some(Status::Suspended));
    d.when(DeploymentCommand::EndGracePeriod {
        contract_id: None,
        at: t0(),
    })
    .then_expect_events(vec![DeploymentEvent::GracePeriodEnded {
        at: t0(),
        contract_id: None,
    }]);
}

#[test]
fn grace_period_cannot_end_when_not_suspended() {
    Deployment::given(running_vm())
        .when(DeploymentCommand::EndGracePeriod {
            contract_id: None,
            at: t0(),
        })
        .then_expect_error(DeploymentError::InvalidTransition {
            command: "end_grace_period",
            status: Status::Running,
        });
}

#[test]
fn out_of_funds_deletion_waits_fourteen_days() {
    let mut events = running_vm();
    events.push(grace_started(t0()));
    let d = Deployment::given(events);
    let almost = t0() + Duration::days(14) - Duration::seconds(1);
    d.when(DeploymentCommand::Delete {
        cause: DeletionCause::OutOfFunds,
        at: almost,
    })
    .then_expect_error(DeploymentError::GracePeriodNotElapsed {
        until: t0() + Duration::days(14),
    });
    let due = t0() + Duration::days(14);
    d.when(DeploymentCommand::Delete {
        cause: DeletionCause::OutOfFunds,
        at: due,
    })
    .then_expect_events(vec![DeploymentEvent::DeploymentDeleted {
        cause: DeletionCause::OutOfFunds,
        at: due,
    }]);
}

#[test]
fn out_of_funds_needs_a_grace_period() {
    Deployment::given(running_vm())
        .when(DeploymentCommand::Delete {
            cause: DeletionCause::OutOfFunds,
            at: t0(),
        })
        .then_expect_error(DeploymentError::CauseNotAllowed {
            cause: DeletionCause::OutOfFunds,
            status: Status::Running,
        });
}
