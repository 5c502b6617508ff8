//! The chain's bills: recorded once per chain event, whatever the balance.

use super::*;
use crate::chain::ContractBill;
use crate::pricing::DiscountLevel;

fn bill(block_number: u32, amount: TftAmount, level: DiscountLevel) -> ContractBill {
    ContractBill {
        event: ChainEventRef {
            block_number,
            event_index: 3,
        },
        contract_id: 7,
        amount,
        discount_level: level,
        billed_at: t0() + mins(60),
    }
}

fn record(bill: ContractBill) -> WalletCommand {
    WalletCommand::RecordBill {
        bill,
        deployment_id: Some("dep-1".into()),
        at: t0(),
    }
}

fn paid(bill: ContractBill) -> WalletEvent {
    WalletEvent::BillPaid {
        bill,
        deployment_id: Some("dep-1".into()),
        at: t0(),
    }
}

#[test]
fn a_bill_debits_the_ledger_and_names_its_deployment_and_contract() {
    let amount = tft(500);
    let w = Wallet::given(vec![
        opened(),
        created(1, 500, cent_price(), amount),
        credited(1, amount),
    ]);
    let b = bill(600, tft(3), DiscountLevel::Bronze);
    let billed = w.when(record(b)).then_accepted();
    assert_eq!(billed.balance(), units(tft(497)));
    let entry = billed.ledger().last().cloned().expect("a ledger line");
    assert_eq!(entry.kind, EntryKind::Bill);
    assert_eq!(entry.amount, -units(tft(3)));
    assert_eq!(entry.reference, "dep-1");
    assert_eq!(entry.contract_id, Some(7));
    assert_eq!(
        billed
            .state()
            .and_then(|s| s.last_bill)
            .map(|l| l.discount_level),
        Some(DiscountLevel::Bronze)
    );
}

#[test]
fn the_same_chain_event_twice_or_an_older_one_debits_once() {
    let b = bill(600, tft(3), DiscountLevel::None);
    let w = Wallet::given(vec![opened(), paid(b)]);
    w.when(record(b)).then_expect_no_events();
    w.when(record(bill(599, tft(3), DiscountLevel::None)))
        .then_expect_no_events();
    let next = bill(1_200, tft(3), DiscountLevel::None);
    w.when(record(next)).then_expect_events(vec![paid(next)]);
}

#[test]
fn a_bill_is_recorded_even_beyond_the_balance_since_the_chain_already_took_it() {
    // The ledger can be behind the chain (a refund it never clawed back on
    // chain): the bill is a fact, and the mismatch shows as a negative
    // balance that reconciliation reports.
    let w = Wallet::given(vec![opened()]);
    let billed = w
        .when(record(bill(600, tft(2), DiscountLevel::None)))
        .then_accepted();
    assert_eq!(billed.balance(), -units(tft(2)));
}

#[test]
fn a_zero_bill_records_nothing() {
    Wallet::given(vec![opened()])
        .when(record(bill(
            600,
            TftAmount::from_base_units(0),
            DiscountLevel::None,
        )))
        .then_expect_no_events();
}

#[test]
fn credits_not_yet_delivered_on_chain_are_what_the_ledger_is_ahead_by() {
    let amount = tft(500);
    let w = Wallet::given(vec![
        opened(),
        created(1, 500, cent_price(), amount),
        credited(1, amount),
    ]);
    assert_eq!(
        w.state().map(WalletState::undelivered),
        Some(u128::from(amount.base_units()))
    );
    let delivered = w
        .when(WalletCommand::StartChainTransfer {
            top_up_id: top_up_id(1),
            to: "5Custodial".into(),
            from_block: 7,
            at: t0(),
        })
        .then_accepted()
        .when(WalletCommand::CompleteChainTransfer {
            top_up_id: top_up_id(1),
            event: ChainEventRef {
                block_number: 8,
                event_index: 1,
            },
            at: t0(),
        })
        .then_accepted();
    assert_eq!(delivered.state().map(WalletState::undelivered), Some(0));
}

#[test]
fn a_contracts_bills_of_one_day_share_a_ledger_line_and_the_balance_counts_each() {
    let at = |hours: i64| t0() + mins(60 * hours);
    let bill_at = |block: u32, contract_id: u64, hours: i64| ContractBill {
        contract_id,
        billed_at: at(hours),
        ..bill(block, tft(1), DiscountLevel::None)
    };
    // t0 is noon: hours 1 to 11 are that day, 12 the next.
    let w = Wallet::given(vec![
        opened(),
        paid(bill_at(1, 7, 1)),
        paid(bill_at(2, 8, 1)),
        paid(bill_at(3, 7, 2)),
        paid(bill_at(4, 7, 12)),
    ]);
    let bills: Vec<(Option<u64>, i128)> = w
        .ledger()
        .iter()
        .filter(|e| e.kind == EntryKind::Bill)
        .map(|e| (e.contract_id, e.amount))
        .collect();
    assert_eq!(
        bills,
        vec![
            (Some(7), -units(tft(2))),
            (Some(8), -units(tft(1))),
            (Some(7), -units(tft(1)))
        ]
    );
    assert_eq!(w.balance(), -units(tft(4)));
}

fn sla_credit(credit_id: &str, amount: TftAmount) -> WalletCommand {
    WalletCommand::RecordSlaCredit {
        credit_id: credit_id.into(),
        amount,
        transfer: ChainEventRef {
            block_number: 900,
            event_index: 2,
        },
        at: t0() + mins(90),
    }
}

#[test]
fn an_sla_credit_credits_the_ledger_once_per_credit_id() {
    let w = Wallet::given(vec![opened()]);
    let credited = w
        .when(sla_credit("alliance:a1:2026-12", tft(4)))
        .then_accepted();
    assert_eq!(credited.balance(), units(tft(4)));
    let entry = credited.ledger().last().cloned().expect("a ledger line");
    assert_eq!(entry.kind, EntryKind::SlaCredit);
    assert_eq!(entry.amount, units(tft(4)));
    assert_eq!(entry.reference, "alliance:a1:2026-12");
    // The same credit again (a worker's retry) records nothing.
    credited
        .clone()
        .when(sla_credit("alliance:a1:2026-12", tft(4)))
        .then_expect_no_events();
    // Another period's credit is another credit.
    let again = credited
        .when(sla_credit("alliance:a1:2027-01", tft(1)))
        .then_accepted();
    assert_eq!(again.balance(), units(tft(5)));
}

#[test]
fn an_sla_credit_needs_an_opened_wallet_and_a_credit_id() {
    Wallet::default()
        .when(sla_credit("alliance:a1:2026-12", tft(4)))
        .then_expect_error(WalletError::NotOpened);
    let refused = Wallet::given(vec![opened()])
        .when(sla_credit("  ", tft(4)))
        .then_refused();
    assert!(matches!(refused, WalletError::Invalid(_)), "{refused:?}");
}
