//! Monthly statements: given a ledger built from wallet events, when a
//! month is stated, then its lines and totals add up to the base unit.

use proptest::prelude::*;

use super::*;
use crate::chain::ContractBill;
use crate::pricing::DiscountLevel;

fn at(month: u32, day: u32, hour: u32, min: u32, sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, min, sec)
        .single()
        .expect("valid time")
}

/// The first instant of November 2026.
fn november() -> DateTime<Utc> {
    at(11, 1, 0, 0, 0)
}

/// The first instant of December 2026: the end of November.
fn december() -> DateTime<Utc> {
    at(12, 1, 0, 0, 0)
}

fn second() -> Duration {
    Duration::seconds(1)
}

fn credit_at(n: u32, amount: TftAmount, when: DateTime<Utc>) -> [WalletEvent; 2] {
    [
        created(n, 1_000, cent_price(), amount),
        WalletEvent::TopUpCredited {
            top_up_id: top_up_id(n),
            payment_intent_id: pi(n),
            charge_id: ch(n),
            tft_amount: amount,
            receipt_url: None,
            at: when,
        },
    ]
}

fn debit_at(id: &str, amount: TftAmount, when: DateTime<Utc>) -> WalletEvent {
    WalletEvent::WalletDebited {
        debit_id: debit_id(id),
        amount,
        reason: "support plan".into(),
        at: when,
    }
}

fn refund_at(n: u32, refund_id: &str, amount: TftAmount, when: DateTime<Utc>) -> WalletEvent {
    WalletEvent::RefundRecorded {
        refund_id: stripe(refund_id),
        charge_id: ch(n),
        top_up_id: top_up_id(n),
        amount_cents: 100,
        tft_amount: amount,
        at: when,
    }
}

fn dispute_at(n: u32, dispute_id: &str, amount: TftAmount, when: DateTime<Utc>) -> WalletEvent {
    WalletEvent::DisputeRecorded {
        dispute_id: stripe(dispute_id),
        charge_id: ch(n),
        top_up_id: top_up_id(n),
        amount_cents: 100,
        tft_amount: amount,
        at: when,
    }
}

fn bill_at(
    block_number: u32,
    deployment: Option<&str>,
    contract_id: u64,
    amount: TftAmount,
    billed_at: DateTime<Utc>,
) -> WalletEvent {
    WalletEvent::BillPaid {
        bill: ContractBill {
            event: ChainEventRef {
                block_number,
                event_index: 1,
            },
            contract_id,
            amount,
            discount_level: DiscountLevel::None,
            billed_at,
        },
        deployment_id: deployment.map(str::to_string),
        // Recorded later than billed: the statement goes by the bill's time.
        at: billed_at + Duration::hours(1),
    }
}

fn given(events: impl IntoIterator<Item = WalletEvent>) -> Wallet {
    Wallet::given(std::iter::once(opened()).chain(events))
}

fn stated(wallet: &Wallet, year: i32, month: u32) -> Statement {
    let state = wallet.state().expect("an open wallet");
    Statement::for_month(state, year, month).expect("a valid month")
}

/// The ledger's sum over entries before `end`.
fn sum_before(wallet: &Wallet, end: DateTime<Utc>) -> i128 {
    wallet
        .ledger()
        .iter()
        .filter(|e| e.at < end)
        .map(|e| e.amount)
        .sum()
}

#[track_caller]
fn assert_adds_up(s: &Statement) {
    assert_eq!(
        s.opening_balance + s.total_credits - s.total_bills - s.total_other_debits,
        s.closing_balance,
        "opening + credits - bills - other debits must be the closing balance"
    );
    assert_eq!(
        s.total_credits,
        s.credits.iter().map(|l| l.amount).sum::<i128>()
    );
    assert_eq!(
        s.total_other_debits,
        s.other_debits.iter().map(|l| l.amount).sum::<i128>()
    );
    assert_eq!(s.total_bills, s.bills.iter().map(|d| d.total).sum::<i128>());
    for d in &s.bills {
        assert_eq!(d.total, d.contracts.iter().map(|c| c.total).sum::<i128>());
    }
}

#[test]
fn a_month_states_its_opening_credits_bills_other_debits_and_closing() {
    let w = given(
        credit_at(1, tft(1_000), at(10, 20, 9, 0, 0))
            .into_iter()
            .chain(credit_at(2, tft(500), at(11, 3, 9, 0, 0)))
            .chain([
                debit_at("plan-11", tft(10), at(11, 4, 0, 0, 0)),
                refund_at(2, "re_1", tft(50), at(11, 5, 0, 0, 0)),
                dispute_at(2, "dp_1", tft(25), at(11, 6, 0, 0, 0)),
                bill_at(10, Some("dep-b"), 9, tft(2), at(11, 7, 0, 0, 0)),
                bill_at(11, Some("dep-a"), 8, tft(3), at(11, 7, 1, 0, 0)),
                bill_at(12, Some("dep-a"), 7, tft(4), at(11, 7, 2, 0, 0)),
                bill_at(13, Some("dep-a"), 8, tft(5), at(11, 7, 3, 0, 0)),
            ]),
    );

    let s = stated(&w, 2026, 11);

    assert_eq!(s.month.to_string(), "2026-11");
    assert_eq!(s.opening_balance, units(tft(1_000)));
    assert_eq!(
        s.credits,
        vec![StatementLine {
            kind: EntryKind::TopUp,
            reference: "pi_2".into(),
            at: at(11, 3, 9, 0, 0),
            amount: units(tft(500)),
        }]
    );
    let kinds: Vec<_> = s.other_debits.iter().map(|l| (l.kind, l.amount)).collect();
    assert_eq!(
        kinds,
        vec![
            (EntryKind::Debit, units(tft(10))),
            (EntryKind::Refund, units(tft(50))),
            (EntryKind::Dispute, units(tft(25))),
        ]
    );
    assert_eq!(
        s.bills,
        vec![
            DeploymentBills {
                reference: "dep-a".into(),
                contracts: vec![
                    ContractBills {
                        contract_id: 7,
                        count: 1,
                        total: units(tft(4)),
                    },
                    ContractBills {
                        contract_id: 8,
                        count: 2,
                        total: units(tft(8)),
                    },
                ],
                total: units(tft(12)),
            },
            DeploymentBills {
                reference: "dep-b".into(),
                contracts: vec![ContractBills {
                    contract_id: 9,
                    count: 1,
                    total: units(tft(2)),
                }],
                total: units(tft(2)),
            },
        ]
    );
    assert_eq!(s.total_credits, units(tft(500)));
    assert_eq!(s.total_bills, units(tft(14)));
    assert_eq!(s.total_other_debits, units(tft(85)));
    assert_eq!(s.closing_balance, units(tft(1_000 + 500 - 14 - 85)));
    assert_eq!(s.closing_balance, w.balance());
    assert_adds_up(&s);
}

#[test]
fn an_entry_at_midnight_on_the_first_belongs_to_the_month_it_opens() {
    let w = given(
        credit_at(1, tft(100), november())
            .into_iter()
            .chain(credit_at(2, tft(7), november() - second()))
            .chain([
                bill_at(10, Some("dep-1"), 7, tft(1), december() - second()),
                bill_at(11, Some("dep-1"), 7, tft(2), december()),
            ]),
    );

    let october = stated(&w, 2026, 10);
    let nov = stated(&w, 2026, 11);
    let dec = stated(&w, 2026, 12);

    assert_eq!(october.total_credits, units(tft(7)));
    assert_eq!(october.closing_balance, units(tft(7)));
    assert_eq!(nov.opening_balance, units(tft(7)));
    assert_eq!(nov.credits.len(), 1);
    assert_eq!(nov.credits[0].at, november());
    assert_eq!(nov.total_bills, units(tft(1)));
    assert_eq!(nov.closing_balance, units(tft(106)));
    assert_eq!(dec.opening_balance, nov.closing_balance);
    assert_eq!(dec.total_bills, units(tft(2)));
    assert_eq!(dec.closing_balance, w.balance());
    for s in [&october, &nov, &dec] {
        assert_adds_up(s);
    }
}

#[test]
fn a_month_without_entries_carries_the_balance_through() {
    let w = given(credit_at(1, tft(40), at(10, 2, 0, 0, 0)));

    let s = stated(&w, 2026, 11);

    assert!(s.credits.is_empty() && s.other_debits.is_empty() && s.bills.is_empty());
    assert_eq!(
        (s.total_credits, s.total_bills, s.total_other_debits),
        (0, 0, 0)
    );
    assert_eq!(s.opening_balance, units(tft(40)));
    assert_eq!(s.closing_balance, units(tft(40)));
}

#[test]
fn a_month_before_the_wallet_opened_or_still_to_come_is_stated() {
    let w = given(credit_at(1, tft(40), at(11, 2, 0, 0, 0)));

    let before = stated(&w, 2020, 1);
    let after = stated(&w, 2099, 12);

    assert_eq!((before.opening_balance, before.closing_balance), (0, 0));
    assert_eq!(after.opening_balance, units(tft(40)));
    assert_eq!(after.closing_balance, units(tft(40)));
    assert!(after.credits.is_empty());
}

#[test]
fn a_bill_without_a_deployment_is_grouped_under_its_contract() {
    let w = given([bill_at(10, None, 42, tft(1), at(11, 9, 0, 0, 0))]);

    let s = stated(&w, 2026, 11);

    assert_eq!(s.bills.len(), 1);
    assert_eq!(s.bills[0].reference, "contract-42");
    assert_eq!(s.bills[0].contracts[0].contract_id, 42);
    // The chain took it beyond the balance: the statement shows the debt.
    assert_eq!(s.closing_balance, -units(tft(1)));
    assert_adds_up(&s);
}

#[test]
fn entries_are_stated_by_when_they_happened_not_where_the_ledger_holds_them() {
    // The bill is recorded after the top-up but the chain billed it before.
    let w = given(
        credit_at(1, tft(10), at(11, 10, 0, 0, 0))
            .into_iter()
            .chain([bill_at(10, Some("dep-1"), 7, tft(1), at(10, 31, 23, 0, 0))]),
    );

    let october = stated(&w, 2026, 10);
    let nov = stated(&w, 2026, 11);

    assert_eq!(october.total_bills, units(tft(1)));
    assert_eq!(nov.opening_balance, -units(tft(1)));
    assert_eq!(nov.closing_balance, units(tft(9)));
}

#[test]
fn a_month_must_be_one_to_twelve_of_a_four_digit_year() {
    let w = given([]);
    let state = w.state().expect("open");
    for (year, month) in [(2026, 0), (2026, 13), (0, 5), (10_000, 1)] {
        let e = Statement::for_month(state, year, month).expect_err("refused");
        assert_eq!(e.field, "month");
    }
    assert!(Statement::for_month(state, 9999, 12).is_ok());
}

#[test]
fn a_month_is_read_as_yyyy_mm() {
    let m = StatementMonth::parse("2026-02").expect("valid");
    assert_eq!((m.year(), m.month()), (2026, 2));
    assert_eq!(m.to_string(), "2026-02");
    assert_eq!(m.end(), at(3, 1, 0, 0, 0));
    let dec = StatementMonth::parse("2026-12").expect("valid");
    assert_eq!(dec.end().to_rfc3339(), "2027-01-01T00:00:00+00:00");
    for bad in [
        "2026-13",
        "2026-00",
        "2026-1",
        "26-11",
        "2026/11",
        "2026-11-01",
        "+026-11",
        "２０２６-11",
        "",
    ] {
        assert!(
            StatementMonth::parse(bad).is_err(),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn tft_is_written_with_seven_decimals_and_its_sign() {
    assert_eq!(tft_with_seven_decimals(0), "0.0000000");
    assert_eq!(tft_with_seven_decimals(1), "0.0000001");
    assert_eq!(tft_with_seven_decimals(-123_400_000), "-12.3400000");
    assert_eq!(tft_with_seven_decimals(10_000_000), "1.0000000");
    assert_eq!(
        tft_with_seven_decimals(i128::MIN),
        "-17014118346046923173168730371588.4105728"
    );
}

// ---- property: the closing balance is the ledger's sum ----

/// The boundaries of August 2026 to March 2027, and a spread between.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let boundaries: Vec<DateTime<Utc>> = (8..=12)
        .map(|m| at(m, 1, 0, 0, 0))
        .chain((1..=3).map(|m| {
            Utc.with_ymd_and_hms(2027, m, 1, 0, 0, 0)
                .single()
                .expect("valid time")
        }))
        .collect();
    let spread_from = at(8, 1, 0, 0, 0);
    prop_oneof![
        (prop::sample::select(boundaries), -1i64..=1).prop_map(|(b, s)| b + Duration::seconds(s)),
        (0i64..(200 * 86_400)).prop_map(move |s| spread_from + Duration::seconds(s)),
    ]
}

#[derive(Debug, Clone)]
enum Entry {
    TopUp,
    Debit,
    Refund,
    Dispute,
    Bill { deployment: u8, contract: u64 },
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        Just(Entry::TopUp),
        Just(Entry::Debit),
        Just(Entry::Refund),
        Just(Entry::Dispute),
        (0u8..4, 1u64..5).prop_map(|(deployment, contract)| Entry::Bill {
            deployment,
            contract
        }),
    ]
}

fn events(entries: &[(Entry, u64, DateTime<Utc>)]) -> Vec<WalletEvent> {
    let mut events = Vec::new();
    for (i, (kind, amount, when)) in entries.iter().enumerate() {
        let n = u32::try_from(i).expect("few entries");
        let amount = TftAmount::from_base_units(*amount);
        match kind {
            Entry::TopUp => events.extend(credit_at(n, amount, *when)),
            Entry::Debit => events.push(debit_at(&format!("d-{n}"), amount, *when)),
            Entry::Refund => events.push(refund_at(0, &format!("re_{n}"), amount, *when)),
            Entry::Dispute => events.push(dispute_at(0, &format!("dp_{n}"), amount, *when)),
            Entry::Bill {
                deployment,
                contract,
            } => {
                let deployment = format!("dep-{deployment}");
                let deployment = (deployment != "dep-0").then_some(deployment.as_str());
                events.push(bill_at(n, deployment, *contract, amount, *when));
            }
        }
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_months_closing_is_the_ledgers_sum_up_to_its_end(
        entries in prop::collection::vec((entry(), 1u64..1_000_000_000_000, instant()), 0..40),
        month in 7u32..=15,
    ) {
        let w = given(events(&entries));
        let (year, month) = if month > 12 { (2027, month - 12) } else { (2026, month) };
        let this = StatementMonth::new(year, month).expect("valid");
        let s = stated(&w, year, month);

        prop_assert_eq!(s.opening_balance, sum_before(&w, this.start()));
        prop_assert_eq!(s.closing_balance, sum_before(&w, this.end()));
        prop_assert_eq!(
            s.opening_balance + s.total_credits - s.total_bills - s.total_other_debits,
            s.closing_balance
        );
        let lines = s.credits.len()
            + s.other_debits.len()
            + s.bills.iter().flat_map(|d| &d.contracts).map(|c| c.count as usize).sum::<usize>();
        // A bill line sums a contract's bills of one day: count each bill.
        let recorded: usize = w
            .ledger()
            .iter()
            .filter(|e| this.contains(e.at))
            .map(|e| if e.kind == EntryKind::Bill { e.bills.max(1) as usize } else { 1 })
            .sum();
        prop_assert_eq!(lines, recorded);
        let next = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        prop_assert_eq!(stated(&w, next.0, next.1).opening_balance, s.closing_balance);
        let references: Vec<&str> = s.bills.iter().map(|d| d.reference.as_str()).collect();
        let mut sorted = references.clone();
        sorted.sort_unstable();
        prop_assert_eq!(references, sorted);
        for d in &s.bills {
            prop_assert!(d.contracts.windows(2).all(|p| p[0].contract_id < p[1].contract_id));
        }
    }
}
