//! Given / when / then: settling periods, dissolving, and recording payouts.

use super::*;

// ---- settlement ----

#[test]
fn a_period_is_settled_by_its_rule_once_it_is_over() {
    let decided = given(with_members())
        .when(settle_nov(vec![
            income(2, 400, 10_000),
            income(1, 600, 10_000),
        ]))
        .then_accepted();
    let s = decided.state().expect("founded");
    let nov_settled = s.settlements.get(&nov()).expect("settled");
    assert_eq!(nov_settled.income, 1_000);
    assert_eq!(
        nov_settled.shares,
        [("bob".to_string(), 250), ("founder".to_string(), 750)].into()
    );
    assert_eq!(s.next_to_settle(), dec());
}

#[test]
fn settling_is_refused_early_twice_out_of_order_or_with_wrong_nodes() {
    let a = given(with_members());
    a.when(AllianceCommand::Settle {
        period: nov(),
        nodes: vec![income(1, 1, 10_000), income(2, 1, 10_000)],
        now: time(2026, 11, 30),
    })
    .then_expect_error(AllianceError::PeriodNotOver(nov()));
    a.when(AllianceCommand::Settle {
        period: dec(),
        nodes: vec![],
        now: t2(),
    })
    .then_expect_error(AllianceError::OutOfOrder { expected: nov() });
    a.when(settle_nov(vec![income(1, 1, 10_000)]))
        .then_expect_error(AllianceError::MissingNode(2));
    a.when(settle_nov(vec![
        income(1, 1, 10_000),
        income(2, 1, 10_000),
        income(5, 1, 10_000),
    ]))
    .then_expect_error(AllianceError::NodeNotCounted(5));
    a.when(settle_nov(vec![
        income(1, 1, 10_000),
        income(1, 1, 10_000),
        income(2, 1, 10_000),
    ]))
    .then_expect_error(AllianceError::Settlement(SettlementError::DuplicateNode(1)));
    settled_nov()
        .when(settle_nov(vec![]))
        .then_expect_error(AllianceError::AlreadySettled(nov()));
}

#[test]
fn what_cannot_be_shared_is_carried_into_the_next_settlement() {
    // Uptime-weighted from December; both nodes down all December.
    let mut events = with_members();
    events.push(AllianceEvent::SharingRuleChanged {
        by: "founder".into(),
        rule: SharingRule::UptimeWeightedCapacity,
        effective_from: dec(),
        at: t0(),
    });
    let a = given(events)
        .when(settle_nov(vec![
            income(1, 600, 10_000),
            income(2, 400, 10_000),
        ]))
        .then_accepted();
    let a = a
        .when(AllianceCommand::Settle {
            period: dec(),
            nodes: vec![income(1, 30, 0), income(2, 70, 0)],
            now: t2(),
        })
        .then_accepted();
    let dec_settled = a
        .state()
        .and_then(|s| s.settlements.get(&dec()))
        .expect("settled");
    assert_eq!(dec_settled.carried, 100);
    let a = a
        .when(AllianceCommand::Settle {
            period: jan(),
            nodes: vec![income(1, 0, 10_000), income(2, 0, 10_000)],
            now: time(2027, 2, 1),
        })
        .then_accepted();
    let jan_settled = a
        .state()
        .and_then(|s| s.settlements.get(&jan()))
        .expect("settled");
    assert_eq!(jan_settled.carried_in, 100);
    assert_eq!(
        jan_settled.shares,
        [("bob".to_string(), 25), ("founder".to_string(), 75)].into()
    );
}

#[test]
fn a_node_withdrawn_in_a_period_is_settled_in_it_and_not_after() {
    let mut events = with_members();
    events.push(withdrawn("bob", 2, dec()));
    let a = given(events)
        .when(settle_nov(vec![
            income(1, 600, 10_000),
            income(2, 400, 10_000),
        ]))
        .then_accepted();
    a.when(AllianceCommand::Settle {
        period: dec(),
        nodes: vec![income(1, 10, 10_000), income(2, 10, 10_000)],
        now: t2(),
    })
    .then_expect_error(AllianceError::NodeNotCounted(2));
    a.when(AllianceCommand::Settle {
        period: dec(),
        nodes: vec![income(1, 10, 10_000)],
        now: t2(),
    })
    .then_accepted();
}

// ---- dissolution ----

#[test]
fn a_dissolved_alliance_refuses_everything_but_its_bookkeeping() {
    let a = given(with_members());
    a.when(AllianceCommand::Dissolve {
        by: bob(),
        at: t0(),
    })
    .then_expect_error(AllianceError::NotPermitted);
    let dissolved = a
        .when(AllianceCommand::Dissolve {
            by: founder(),
            at: t0(),
        })
        .then_accepted();
    a.when(AllianceCommand::Dissolve {
        by: founder(),
        at: t0(),
    })
    .then_expect_events(vec![AllianceEvent::AllianceDissolved {
        by: "founder".into(),
        effective_from: dec(),
        at: t0(),
    }]);
    for refused in [
        invite(founder(), "carol"),
        contribute(bob(), 3, t0()),
        AllianceCommand::Leave {
            by: bob(),
            at: t0(),
        },
        AllianceCommand::Dissolve {
            by: founder(),
            at: t0(),
        },
        AllianceCommand::AssignFarm {
            farm: farm(),
            at: t0(),
        },
        AllianceCommand::WithdrawNode {
            by: bob(),
            node_id: 2,
            at: t0(),
        },
        AllianceCommand::ChangeSharingRule {
            by: founder(),
            rule: SharingRule::Equal,
            at: t0(),
        },
        AllianceCommand::ChangeSla {
            by: founder(),
            sla: Sla::none(),
            at: t0(),
        },
    ] {
        dissolved
            .when(refused)
            .then_expect_error(AllianceError::Dissolved);
    }
    // Its last period is still settled and paid out; the next is not.
    let settled = dissolved
        .when(settle_nov(vec![
            income(1, 600, 10_000),
            income(2, 400, 10_000),
        ]))
        .then_accepted();
    settled
        .when(AllianceCommand::Settle {
            period: dec(),
            nodes: vec![],
            now: t2(),
        })
        .then_expect_error(AllianceError::NotActive(dec()));
    settled
        .when(record_payout("bob", 250, "0xabc"))
        .then_accepted();
    settled
        .when(AllianceCommand::LinkPayoutAccount {
            by: bob(),
            account: account('Z'),
            at: t1(),
        })
        .then_accepted();
}

// ---- payouts ----

fn record_payout(member: &str, amount: u128, transfer: &str) -> AllianceCommand {
    AllianceCommand::RecordPayout {
        period: nov(),
        member: member.into(),
        amount,
        to: account('Z'),
        transfer: transfer.into(),
        at: t1(),
    }
}

fn payout_sent() -> AllianceEvent {
    AllianceEvent::PayoutSent {
        period: nov(),
        member: "bob".into(),
        amount: 250,
        to: account('Z'),
        transfer: "0xabc".into(),
        at: t1(),
    }
}

#[test]
fn a_payout_is_recorded_once_and_a_different_one_refused() {
    let a = settled_nov();
    a.when(record_payout("bob", 250, "0xabc"))
        .then_expect_events(vec![payout_sent()]);
    let paid = a.when(record_payout("bob", 250, "0xabc")).then_accepted();
    paid.when(record_payout("bob", 250, "0xabc"))
        .then_expect_no_events();
    paid.when(record_payout("bob", 250, "0xdef"))
        .then_expect_error(AllianceError::PayoutConflict);
    paid.when(record_payout("bob", 251, "0xabc"))
        .then_expect_error(AllianceError::PayoutConflict);
}

#[test]
fn a_payout_must_be_a_settled_share_in_full() {
    let a = settled_nov();
    a.when(record_payout("bob", 200, "0xabc"))
        .then_expect_error(AllianceError::PayoutMismatch {
            share: 250,
            amount: 200,
        });
    a.when(record_payout("carol", 1, "0xabc"))
        .then_expect_error(AllianceError::PayoutMismatch {
            share: 0,
            amount: 1,
        });
    a.when(record_payout("bob", 250, " "))
        .then_expect_invalid("transfer");
    given(with_members())
        .when(record_payout("bob", 250, "0xabc"))
        .then_expect_error(AllianceError::NotSettled(nov()));
}

#[test]
fn members_link_the_account_their_payouts_go_to() {
    let link = |by| AllianceCommand::LinkPayoutAccount {
        by,
        account: account('Z'),
        at: t0(),
    };
    let linked = AllianceEvent::PayoutAccountLinked {
        member: "bob".into(),
        account: account('Z'),
        at: t0(),
    };
    given(with_members())
        .when(link(bob()))
        .then_expect_events(vec![linked.clone()]);
    let mut events = with_members();
    events.push(linked);
    let a = given(events);
    a.when(link(bob())).then_expect_no_events();
    assert_eq!(
        a.state()
            .and_then(|s| s.members.get("bob"))
            .and_then(|m| m.payout_account.clone()),
        Some(account('Z'))
    );
    a.when(link(provider("carol")))
        .then_expect_error(AllianceError::NotAMember("carol".into()));
}

#[test]
fn events_round_trip_through_json_values_with_their_large_amounts() {
    // The event store writes payloads as serde_json::Value.
    let big = u128::from(u64::MAX) - 10;
    let command = || settle_nov(vec![income(1, big, 9_000), income(2, 3, 10_000)]);
    let a = given(with_members()).when(command()).then_accepted();
    let events = given(with_members()).decide(command()).expect("settles");
    let value = serde_json::to_value(&events).expect("serialises");
    let back: Vec<AllianceEvent> = serde_json::from_value(value).expect("deserialises");
    assert_eq!(back, events);
    let state = serde_json::to_value(&a).expect("serialises");
    assert_eq!(
        serde_json::from_value::<Alliance>(state).expect("deserialises"),
        a
    );
    use cqrs_es::DomainEvent;
    assert_eq!(events[0].event_type(), "AllianceSettled");
}

#[test]
fn amounts_events_cannot_hold_are_refused() {
    let a = given(with_members());
    let too_big = u128::from(u64::MAX);
    a.when(settle_nov(vec![
        income(1, too_big, 10_000),
        income(2, 1, 10_000),
    ]))
    .then_expect_error(AllianceError::AmountTooLarge);
    let mut billed = income(2, 1, 10_000);
    billed.billed = [("u1".to_string(), too_big + 1)].into();
    a.when(settle_nov(vec![income(1, 1, 10_000), billed]))
        .then_expect_error(AllianceError::AmountTooLarge);
}
