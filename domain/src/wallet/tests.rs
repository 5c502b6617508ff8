//! Given / when / then: every rule of the Wallet aggregate. Every scenario
//! also checks the ledger invariant: the balance is the sum of the ledger.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::DomainEvent;
use uuid::Uuid;

use super::*;
use crate::money::{TftAmount, TftPrice};
use crate::testing::Scenario;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn mins(m: i64) -> Duration {
    Duration::minutes(m)
}

impl Scenario for Wallet {
    /// The balance is the sum of the ledger.
    #[track_caller]
    fn check_invariants(&self) {
        let sum: i128 = self.ledger().iter().map(|e| e.amount).sum();
        assert_eq!(self.balance(), sum, "balance must equal the ledger's sum");
    }
}

fn tft(whole: u64) -> TftAmount {
    TftAmount::from_base_units(whole * 10_000_000)
}

fn units(tft: TftAmount) -> i128 {
    i128::from(tft.base_units())
}

/// $0.01 per TFT.
fn cent_price() -> TftPrice {
    TftPrice::from_usd_units(100_000).expect("positive price")
}

/// $3 per TFT: a price that does not divide evenly.
fn three_dollars() -> TftPrice {
    TftPrice::from_usd_units(30_000_000).expect("positive price")
}

fn stripe(id: &str) -> StripeId {
    StripeId::new("id", id).expect("valid stripe id")
}

fn pi(n: u32) -> StripeId {
    stripe(&format!("pi_{n}"))
}

fn ch(n: u32) -> StripeId {
    stripe(&format!("ch_{n}"))
}

fn top_up_id(n: u32) -> Uuid {
    Uuid::from_u128(0x7000 + u128::from(n))
}

fn challenge_id(n: u32) -> Uuid {
    Uuid::from_u128(0xc000 + u128::from(n))
}

fn account() -> TfchainAccount {
    TfchainAccount::new("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY").expect("valid")
}

fn other_account() -> TfchainAccount {
    TfchainAccount::new("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty").expect("valid")
}

fn nonce() -> LinkNonce {
    LinkNonce::new("3f9a1c0be7d24a55b1e0c9d8f7a6b5c4").expect("valid nonce")
}

fn debit_id(id: &str) -> DebitId {
    DebitId::new(id).expect("valid debit id")
}

fn opened() -> WalletEvent {
    WalletEvent::WalletOpened {
        owner: "alice".into(),
        at: t0(),
    }
}

fn issued(n: u32, account: TfchainAccount) -> WalletEvent {
    WalletEvent::LinkChallengeIssued {
        challenge_id: challenge_id(n),
        nonce: nonce(),
        account,
        key_type: KeyType::Sr25519,
        expires_at: t0() + mins(10),
        at: t0(),
    }
}

fn linked(n: u32, account: TfchainAccount) -> WalletEvent {
    WalletEvent::AccountLinked {
        challenge_id: challenge_id(n),
        account,
        key_type: KeyType::Sr25519,
        at: t0() + mins(1),
    }
}

fn complete(n: u32, signature_verified: bool, at: DateTime<Utc>) -> WalletCommand {
    WalletCommand::CompleteLink {
        challenge_id: challenge_id(n),
        signature_verified,
        at,
    }
}

fn create(n: u32, usd_cents: u64, tft_price: TftPrice) -> WalletCommand {
    WalletCommand::CreateTopUp {
        top_up_id: top_up_id(n),
        payment_intent_id: pi(n),
        usd_cents,
        tft_price,
        quote_expires_at: t0() + mins(15),
        at: t0(),
    }
}

fn created(n: u32, usd_cents: u64, tft_price: TftPrice, tft_amount: TftAmount) -> WalletEvent {
    WalletEvent::TopUpCreated {
        top_up_id: top_up_id(n),
        payment_intent_id: pi(n),
        usd_cents,
        tft_amount,
        tft_price,
        quote_expires_at: t0() + mins(15),
        origin: TopUpOrigin::Manual,
        at: t0(),
    }
}

fn succeeded(n: u32, amount_received_cents: u64, at: DateTime<Utc>) -> WalletCommand {
    WalletCommand::RecordPaymentSucceeded {
        payment_intent_id: pi(n),
        amount_received_cents,
        charge_id: ch(n),
        receipt_url: None,
        at,
    }
}

fn credited(n: u32, tft_amount: TftAmount) -> WalletEvent {
    WalletEvent::TopUpCredited {
        top_up_id: top_up_id(n),
        payment_intent_id: pi(n),
        charge_id: ch(n),
        tft_amount,
        receipt_url: None,
        at: t0() + mins(2),
    }
}

fn failed_cmd(n: u32, code: &str) -> WalletCommand {
    WalletCommand::RecordPaymentFailed {
        payment_intent_id: pi(n),
        code: code.into(),
        message: "Your card was declined.".into(),
        at: t0() + mins(1),
    }
}

fn failed(n: u32, code: &str) -> WalletEvent {
    WalletEvent::TopUpFailed {
        top_up_id: top_up_id(n),
        payment_intent_id: pi(n),
        code: code.into(),
        message: "Your card was declined.".into(),
        at: t0() + mins(1),
    }
}

fn debit(id: &str, amount: TftAmount) -> WalletCommand {
    WalletCommand::Debit {
        debit_id: debit_id(id),
        amount,
        reason: "contract 42 bill".into(),
        at: t0() + mins(5),
    }
}

fn debited(id: &str, amount: TftAmount) -> WalletEvent {
    WalletEvent::WalletDebited {
        debit_id: debit_id(id),
        amount,
        reason: "contract 42 bill".into(),
        at: t0() + mins(5),
    }
}

fn refund(n: u32, refund_id: &str, amount_cents: u64) -> WalletCommand {
    WalletCommand::RecordRefund {
        charge_id: ch(n),
        refund_id: stripe(refund_id),
        amount_cents,
        at: t0() + mins(30),
    }
}

fn refunded(n: u32, refund_id: &str, amount_cents: u64, tft_amount: TftAmount) -> WalletEvent {
    WalletEvent::RefundRecorded {
        refund_id: stripe(refund_id),
        charge_id: ch(n),
        top_up_id: top_up_id(n),
        amount_cents,
        tft_amount,
        at: t0() + mins(30),
    }
}

fn dispute(n: u32, dispute_id: &str, amount_cents: u64) -> WalletCommand {
    WalletCommand::RecordDispute {
        charge_id: ch(n),
        dispute_id: stripe(dispute_id),
        amount_cents,
        at: t0() + mins(40),
    }
}

fn disputed(n: u32, dispute_id: &str, amount_cents: u64, tft_amount: TftAmount) -> WalletEvent {
    WalletEvent::DisputeRecorded {
        dispute_id: stripe(dispute_id),
        charge_id: ch(n),
        top_up_id: top_up_id(n),
        amount_cents,
        tft_amount,
        at: t0() + mins(40),
    }
}

/// An open wallet credited with $10 of TFT at $0.01: 1,000 TFT.
fn funded() -> Vec<WalletEvent> {
    vec![
        opened(),
        created(1, 1_000, cent_price(), tft(1_000)),
        credited(1, tft(1_000)),
    ]
}

/// $7 at $3 per TFT: 2.3333333 TFT (rounded down from 2.33333333…).
const SEVEN_DOLLARS_AT_THREE: u64 = 23_333_333;

fn funded_at_three() -> Vec<WalletEvent> {
    let amount = TftAmount::from_base_units(SEVEN_DOLLARS_AT_THREE);
    vec![
        opened(),
        created(1, 700, three_dollars(), amount),
        credited(1, amount),
    ]
}

// ---- opening ----

#[test]
fn a_new_wallet_opens() {
    Wallet::given(vec![])
        .when(WalletCommand::Open {
            owner: "alice".into(),
            at: t0(),
        })
        .then_expect_events(vec![opened()]);
    let w = Wallet::given(vec![opened()]);
    assert_eq!(w.state().map(|s| s.owner.as_str()), Some("alice"));
    assert_eq!(w.balance(), 0);
    assert!(w.ledger().is_empty());
}

#[test]
fn a_wallet_opens_once() {
    Wallet::given(vec![opened()])
        .when(WalletCommand::Open {
            owner: "alice".into(),
            at: t0(),
        })
        .then_expect_error(WalletError::AlreadyOpened);
}

#[test]
fn an_owner_must_be_a_subject() {
    let err = Wallet::given(vec![]).decide(WalletCommand::Open {
        owner: " ".into(),
        at: t0(),
    });
    assert!(matches!(err, Err(WalletError::Invalid(e)) if e.field == "owner"));
}

#[test]
fn nothing_else_happens_to_an_unopened_wallet() {
    let w = Wallet::given(vec![]);
    w.when(create(1, 1_000, cent_price()))
        .then_expect_error(WalletError::NotOpened);
    w.when(debit("d1", tft(1)))
        .then_expect_error(WalletError::NotOpened);
    w.when(succeeded(1, 1_000, t0()))
        .then_expect_error(WalletError::NotOpened);
    assert_eq!(w.balance(), 0);
    assert_eq!(w.spendable(), TftAmount::default());
}

// ---- linking a TFChain account ----

#[test]
fn a_link_challenge_is_issued() {
    Wallet::given(vec![opened()])
        .when(WalletCommand::IssueLinkChallenge {
            challenge_id: challenge_id(1),
            nonce: nonce(),
            account: account(),
            key_type: KeyType::Sr25519,
            expires_at: t0() + mins(10),
            at: t0(),
        })
        .then_expect_events(vec![issued(1, account())]);
}

#[test]
fn a_challenge_id_is_issued_once() {
    Wallet::given(vec![opened(), issued(1, account())])
        .when(WalletCommand::IssueLinkChallenge {
            challenge_id: challenge_id(1),
            nonce: nonce(),
            account: other_account(),
            key_type: KeyType::Ed25519,
            expires_at: t0() + mins(10),
            at: t0(),
        })
        .then_expect_error(WalletError::DuplicateChallenge);
}

#[test]
fn a_challenge_expires_after_now_and_within_fifteen_minutes() {
    let w = Wallet::given(vec![opened()]);
    for expires_at in [t0(), t0() - mins(1), t0() + mins(16)] {
        let err = w.decide(WalletCommand::IssueLinkChallenge {
            challenge_id: challenge_id(1),
            nonce: nonce(),
            account: account(),
            key_type: KeyType::Sr25519,
            expires_at,
            at: t0(),
        });
        assert!(matches!(err, Err(WalletError::Invalid(e)) if e.field == "expires_at"));
    }
}

#[test]
fn a_verified_signature_links_the_account() {
    let w = Wallet::given(vec![opened(), issued(1, account())]);
    w.when(complete(1, true, t0() + mins(1)))
        .then_expect_events(vec![linked(1, account())]);
    let w = Wallet::given(vec![opened(), issued(1, account()), linked(1, account())]);
    let s = w.state().expect("open");
    let link = s.linked.as_ref().expect("linked");
    assert_eq!(link.account, account());
    assert_eq!(link.key_type, KeyType::Sr25519);
    assert_eq!(
        s.challenge(challenge_id(1)).map(|c| c.status),
        Some(ChallengeStatus::Linked)
    );
}

#[test]
fn a_wrong_signature_burns_the_challenge_and_is_answered_as_invalid() {
    let w = Wallet::given(vec![opened(), issued(1, account())]);
    let failed = WalletEvent::LinkAttemptFailed {
        challenge_id: challenge_id(1),
        account: account(),
        at: t0() + mins(1),
    };
    w.when(complete(1, false, t0() + mins(1)))
        .then_expect_events(vec![failed.clone()]);
    assert_eq!(failed.refusal(), Some(WalletError::SignatureInvalid));

    let w = Wallet::given(vec![opened(), issued(1, account()), failed]);
    assert_eq!(w.state().and_then(|s| s.linked.clone()), None);
    // One attempt per challenge: even a good signature now needs a new one.
    w.when(complete(1, true, t0() + mins(2)))
        .then_expect_error(WalletError::ChallengeUsed);
}

#[test]
fn a_used_challenge_cannot_be_replayed() {
    let w = Wallet::given(vec![opened(), issued(1, account()), linked(1, account())]);
    w.when(complete(1, true, t0() + mins(2)))
        .then_expect_error(WalletError::ChallengeUsed);
}

#[test]
fn an_expired_challenge_is_refused() {
    let w = Wallet::given(vec![opened(), issued(1, account())]);
    for at in [t0() + mins(10), t0() + mins(11)] {
        w.when(complete(1, true, at))
            .then_expect_error(WalletError::ChallengeExpired {
                expires_at: t0() + mins(10),
            });
    }
}

#[test]
fn an_unknown_challenge_is_not_found() {
    Wallet::given(vec![opened(), issued(1, account())])
        .when(complete(2, true, t0() + mins(1)))
        .then_expect_error(WalletError::ChallengeNotFound);
}

#[test]
fn a_new_link_replaces_the_old_one() {
    let w = Wallet::given(vec![
        opened(),
        issued(1, account()),
        linked(1, account()),
        issued(2, other_account()),
    ]);
    let w = w.when(complete(2, true, t0() + mins(3))).then_accepted();
    let link = w.state().and_then(|s| s.linked.clone()).expect("linked");
    assert_eq!(link.account, other_account());
    assert_eq!(link.challenge_id, challenge_id(2));
}

#[test]
fn the_challenge_message_binds_user_account_challenge_and_nonce() {
    let w = Wallet::given(vec![opened(), issued(1, account())]);
    let c = w
        .state()
        .and_then(|s| s.challenge(challenge_id(1)))
        .expect("issued");
    let text = c.message("alice");
    assert!(text.contains("user alice"));
    assert!(text.contains(account().as_str()));
    assert!(text.contains(&challenge_id(1).to_string()));
    assert!(text.contains(nonce().as_str()));
    assert!(text.contains("2026-11-01T12:10:00Z"));
    assert_ne!(text, c.message("mallory"));
}

#[test]
fn an_account_must_look_like_an_ss58_address() {
    assert!(TfchainAccount::new("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY").is_ok());
    assert!(TfchainAccount::new("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQ").is_ok());
    for bad in [
        "",
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKut",
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQYZ",
        "0GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutOY",
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutlY",
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKut Y",
    ] {
        assert!(TfchainAccount::new(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn a_nonce_is_long_and_plain() {
    assert!(LinkNonce::new("abcdef0123456789").is_ok());
    assert!(LinkNonce::new("short").is_err());
    assert!(LinkNonce::new("abcdef0123456789 with spaces").is_err());
    assert!(LinkNonce::new(&"a".repeat(129)).is_err());
}

// ---- quotes ----

#[test]
fn a_top_up_quotes_tft_exactly() {
    Wallet::given(vec![opened()])
        .when(create(1, 1_000, cent_price()))
        .then_expect_events(vec![created(1, 1_000, cent_price(), tft(1_000))]);
}

#[test]
fn a_quote_rounds_down_to_a_base_unit() {
    Wallet::given(vec![opened()])
        .when(create(1, 700, three_dollars()))
        .then_expect_events(vec![created(
            1,
            700,
            three_dollars(),
            TftAmount::from_base_units(SEVEN_DOLLARS_AT_THREE),
        )]);
    // $5 at $3: 1.66666666… TFT.
    assert_eq!(
        tft_for_cents(500, three_dollars()),
        Some(TftAmount::from_base_units(16_666_666))
    );
    // The largest top-up at the smallest price still fits.
    let tiny = TftPrice::from_usd_units(1).expect("positive");
    assert_eq!(
        tft_for_cents(MAX_TOP_UP_CENTS, tiny),
        Some(TftAmount::from_base_units(1_000_000_000_000_000_000))
    );
}

#[test]
fn a_top_up_is_between_five_and_ten_thousand_dollars() {
    let w = Wallet::given(vec![opened()]);
    for cents in [0, 499, 1_000_001] {
        let err = w.decide(create(1, cents, cent_price()));
        assert!(matches!(err, Err(WalletError::Invalid(e)) if e.field == "usd_cents"));
    }
    assert!(w.decide(create(1, 500, cent_price())).is_ok());
    assert!(w.decide(create(1, 1_000_000, cent_price())).is_ok());
}

#[test]
fn a_quote_expires_after_now_and_within_thirty_minutes() {
    let w = Wallet::given(vec![opened()]);
    for quote_expires_at in [t0(), t0() + mins(31)] {
        let err = w.decide(WalletCommand::CreateTopUp {
            top_up_id: top_up_id(1),
            payment_intent_id: pi(1),
            usd_cents: 1_000,
            tft_price: cent_price(),
            quote_expires_at,
            at: t0(),
        });
        assert!(matches!(err, Err(WalletError::Invalid(e)) if e.field == "quote_expires_at"));
    }
}

#[test]
fn a_quote_must_buy_some_tft() {
    let absurd = TftPrice::from_usd_units(u64::MAX).expect("positive");
    let err = Wallet::given(vec![opened()]).decide(create(1, 500, absurd));
    assert!(matches!(err, Err(WalletError::Invalid(e)) if e.field == "tft_price"));
}

#[test]
fn a_top_up_id_and_payment_intent_are_used_once() {
    let w = Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))]);
    w.when(create(1, 2_000, cent_price()))
        .then_expect_error(WalletError::DuplicateTopUp);
    let same_id_other_intent = WalletCommand::CreateTopUp {
        top_up_id: top_up_id(1),
        payment_intent_id: pi(2),
        usd_cents: 1_000,
        tft_price: cent_price(),
        quote_expires_at: t0() + mins(15),
        at: t0(),
    };
    w.when(same_id_other_intent)
        .then_expect_error(WalletError::DuplicateTopUp);
    let other_id_same_intent = WalletCommand::CreateTopUp {
        top_up_id: top_up_id(2),
        payment_intent_id: pi(1),
        usd_cents: 1_000,
        tft_price: cent_price(),
        quote_expires_at: t0() + mins(15),
        at: t0(),
    };
    w.when(other_id_same_intent)
        .then_expect_error(WalletError::DuplicateTopUp);
}

#[test]
fn a_top_up_is_pending_until_paid() {
    let w = Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))]);
    let t = w.state().and_then(|s| s.top_up(&pi(1))).expect("created");
    assert_eq!(t.status, TopUpStatus::Pending);
    assert!(t.quote_valid_at(t0() + mins(14)));
    assert!(!t.quote_valid_at(t0() + mins(15)));
    assert_eq!(w.balance(), 0, "nothing is credited before payment");
}

// ---- payments ----

#[test]
fn a_successful_payment_credits_the_quoted_tft() {
    let w = Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))]);
    w.when(succeeded(1, 1_000, t0() + mins(2)))
        .then_expect_events(vec![credited(1, tft(1_000))]);
    let w = Wallet::given(funded());
    assert_eq!(w.balance(), units(tft(1_000)));
    assert_eq!(
        w.ledger(),
        &[LedgerEntry {
            kind: EntryKind::TopUp,
            amount: units(tft(1_000)),
            reference: "pi_1".into(),
            at: t0() + mins(2),
            contract_id: None,
            bills: 0,
        }]
    );
    let t = w.state().and_then(|s| s.top_up(&pi(1))).expect("created");
    assert_eq!(t.status, TopUpStatus::Credited);
    assert_eq!(t.charge_id, Some(ch(1)));
}

#[test]
fn the_receipt_is_kept() {
    let w = Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))]);
    let receipt = ReceiptUrl::new("https://pay.stripe.com/receipts/acct_1/ch_1/rcpt_x").ok();
    let w = w
        .when(WalletCommand::RecordPaymentSucceeded {
            payment_intent_id: pi(1),
            amount_received_cents: 1_000,
            charge_id: ch(1),
            receipt_url: receipt.clone(),
            at: t0() + mins(2),
        })
        .then_accepted();
    let t = w.state().and_then(|s| s.top_up(&pi(1))).expect("created");
    assert_eq!(t.receipt_url, receipt);
    assert!(ReceiptUrl::new("http://pay.stripe.com/receipts/x").is_err());
}

#[test]
fn the_same_webhook_twice_credits_once() {
    let w = Wallet::given(funded());
    w.when(succeeded(1, 1_000, t0() + mins(3)))
        .then_expect_no_events();
    // Even a redelivery with other figures changes nothing once credited.
    w.when(succeeded(1, 999, t0() + mins(4)))
        .then_expect_no_events();
    let w = w.when(succeeded(1, 1_000, t0() + mins(5))).then_accepted();
    assert_eq!(w.ledger().len(), 1);
    assert_eq!(w.balance(), units(tft(1_000)));
}

#[test]
fn a_payment_for_an_unknown_intent_is_refused() {
    Wallet::given(vec![opened()])
        .when(succeeded(9, 1_000, t0()))
        .then_expect_error(WalletError::UnknownPaymentIntent(pi(9)));
    Wallet::given(vec![opened()])
        .when(failed_cmd(9, "card_declined"))
        .then_expect_error(WalletError::UnknownPaymentIntent(pi(9)));
}

#[test]
fn a_payment_of_another_amount_is_refused() {
    Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))])
        .when(succeeded(1, 900, t0() + mins(2)))
        .then_expect_error(WalletError::AmountMismatch {
            expected_cents: 1_000,
            received_cents: 900,
        });
}

#[test]
fn a_payment_reported_after_the_quote_expired_is_credited_at_the_quote() {
    let w = Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))]);
    let late = t0() + Duration::hours(3);
    let w = w.when(succeeded(1, 1_000, late)).then_accepted();
    assert_eq!(w.balance(), units(tft(1_000)));
}

#[test]
fn a_failed_payment_marks_the_top_up_failed() {
    let w = Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))]);
    w.when(failed_cmd(1, "card_declined"))
        .then_expect_events(vec![failed(1, "card_declined")]);
    let w = Wallet::given(vec![
        opened(),
        created(1, 1_000, cent_price(), tft(1_000)),
        failed(1, "card_declined"),
    ]);
    let t = w.state().and_then(|s| s.top_up(&pi(1))).expect("created");
    assert_eq!(t.status, TopUpStatus::Failed);
    assert_eq!(
        t.last_failure.as_ref().map(|f| f.code.as_str()),
        Some("card_declined")
    );
    assert_eq!(w.balance(), 0);
}

#[test]
fn a_failure_after_the_success_is_ignored() {
    let w = Wallet::given(funded());
    w.when(failed_cmd(1, "card_declined"))
        .then_expect_no_events();
    let t = w.state().and_then(|s| s.top_up(&pi(1))).expect("created");
    assert_eq!(t.status, TopUpStatus::Credited);
    assert_eq!(w.balance(), units(tft(1_000)));
}

#[test]
fn the_same_failure_twice_is_recorded_once_and_another_is_recorded() {
    let w = Wallet::given(vec![
        opened(),
        created(1, 1_000, cent_price(), tft(1_000)),
        failed(1, "card_declined"),
    ]);
    w.when(failed_cmd(1, "card_declined"))
        .then_expect_no_events();
    w.when(failed_cmd(1, "expired_card"))
        .then_expect_events(vec![failed(1, "expired_card")]);
}

#[test]
fn a_failed_intent_paid_on_a_later_attempt_is_credited() {
    let w = Wallet::given(vec![
        opened(),
        created(1, 1_000, cent_price(), tft(1_000)),
        failed(1, "card_declined"),
    ]);
    w.when(succeeded(1, 1_000, t0() + mins(2)))
        .then_expect_events(vec![credited(1, tft(1_000))]);
}

#[test]
fn failure_texts_are_cut_to_their_limits() {
    let w = Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))]);
    let events = w
        .decide(WalletCommand::RecordPaymentFailed {
            payment_intent_id: pi(1),
            code: "c".repeat(500),
            message: "é".repeat(5_000),
            at: t0(),
        })
        .expect("recorded");
    match events.as_slice() {
        [WalletEvent::TopUpFailed { code, message, .. }] => {
            assert_eq!(code.chars().count(), MAX_FAILURE_CODE);
            assert_eq!(message.chars().count(), MAX_FAILURE_MESSAGE);
        }
        other => panic!("unexpected events {other:?}"),
    }
}

// ---- debits ----

#[test]
fn a_debit_takes_from_the_balance() {
    let w = Wallet::given(funded());
    w.when(debit("bill-42-1", tft(100)))
        .then_expect_events(vec![debited("bill-42-1", tft(100))]);
    let w = w.when(debit("bill-42-1", tft(100))).then_accepted();
    assert_eq!(w.balance(), units(tft(900)));
    assert_eq!(w.ledger().len(), 2);
    assert_eq!(w.ledger()[1].kind, EntryKind::Debit);
    assert_eq!(w.ledger()[1].amount, -units(tft(100)));
    assert_eq!(w.ledger()[1].reference, "bill-42-1");
}

#[test]
fn the_same_debit_twice_debits_once() {
    let mut events = funded();
    events.push(debited("bill-42-1", tft(100)));
    let w = Wallet::given(events);
    w.when(debit("bill-42-1", tft(100))).then_expect_no_events();
    assert_eq!(w.balance(), units(tft(900)));
}

#[test]
fn a_debit_id_reused_for_another_amount_is_a_conflict() {
    let mut events = funded();
    events.push(debited("bill-42-1", tft(100)));
    Wallet::given(events)
        .when(debit("bill-42-1", tft(200)))
        .then_expect_error(WalletError::IdConflict {
            id: "bill-42-1".into(),
        });
}

#[test]
fn a_debit_never_takes_the_balance_below_zero() {
    let w = Wallet::given(funded());
    w.when(debit(
        "bill-42-1",
        TftAmount::from_base_units(tft(1_000).base_units() + 1),
    ))
    .then_expect_error(WalletError::InsufficientBalance {
        balance: units(tft(1_000)),
        needed: TftAmount::from_base_units(tft(1_000).base_units() + 1),
    });
    let w = w.when(debit("bill-42-1", tft(1_000))).then_accepted();
    assert_eq!(w.balance(), 0);
    w.when(debit("bill-42-2", TftAmount::from_base_units(1)))
        .then_expect_error(WalletError::InsufficientBalance {
            balance: 0,
            needed: TftAmount::from_base_units(1),
        });
}

#[test]
fn a_debit_needs_an_amount_and_a_reason() {
    let w = Wallet::given(funded());
    let err = w.decide(debit("d1", TftAmount::default()));
    assert!(matches!(err, Err(WalletError::Invalid(e)) if e.field == "amount"));
    for reason in ["", "  ", &"x".repeat(MAX_REASON + 1)] {
        let err = w.decide(WalletCommand::Debit {
            debit_id: debit_id("d1"),
            amount: tft(1),
            reason: reason.to_string(),
            at: t0(),
        });
        assert!(matches!(err, Err(WalletError::Invalid(e)) if e.field == "reason"));
    }
    assert!(DebitId::new("").is_err());
    assert!(DebitId::new("bill 1").is_err());
    assert!(DebitId::new("bill:7312:4").is_ok());
}

// ---- refunds ----

#[test]
fn a_full_refund_takes_back_every_tft_credited() {
    let w = Wallet::given(funded());
    w.when(refund(1, "re_1", 1_000))
        .then_expect_events(vec![refunded(1, "re_1", 1_000, tft(1_000))]);
    let w = w.when(refund(1, "re_1", 1_000)).then_accepted();
    assert_eq!(w.balance(), 0);
    assert_eq!(w.ledger()[1].kind, EntryKind::Refund);
    assert_eq!(w.ledger()[1].reference, "re_1");
}

#[test]
fn partial_refunds_round_up_and_never_drift() {
    let w = Wallet::given(funded_at_three());
    // $1 of $7: 23,333,333 / 7 = 3,333,333.29 -> 3,333,334.
    w.when(refund(1, "re_1", 100))
        .then_expect_events(vec![refunded(
            1,
            "re_1",
            100,
            TftAmount::from_base_units(3_333_334),
        )]);
    let w = w.when(refund(1, "re_1", 100)).then_accepted();
    // The remaining $6 takes back exactly what is left of the credit.
    w.when(refund(1, "re_2", 600))
        .then_expect_events(vec![refunded(
            1,
            "re_2",
            600,
            TftAmount::from_base_units(19_999_999),
        )]);
    let w = w.when(refund(1, "re_2", 600)).then_accepted();
    assert_eq!(w.balance(), 0);
}

#[test]
fn the_same_refund_twice_counts_once() {
    let mut events = funded();
    events.push(refunded(1, "re_1", 300, tft(300)));
    let w = Wallet::given(events);
    w.when(refund(1, "re_1", 300)).then_expect_no_events();
    assert_eq!(w.balance(), units(tft(700)));
    w.when(refund(1, "re_1", 400))
        .then_expect_error(WalletError::IdConflict { id: "re_1".into() });
}

#[test]
fn a_refund_cannot_return_more_than_was_paid() {
    let w = Wallet::given(funded());
    w.when(refund(1, "re_1", 1_001))
        .then_expect_error(WalletError::RefundExceedsPayment {
            paid_cents: 1_000,
            returned_cents: 0,
            asked_cents: 1_001,
        });
    let w = w.when(refund(1, "re_1", 600)).then_accepted();
    w.when(refund(1, "re_2", 401))
        .then_expect_error(WalletError::RefundExceedsPayment {
            paid_cents: 1_000,
            returned_cents: 600,
            asked_cents: 401,
        });
}

#[test]
fn a_refund_of_an_unknown_or_unpaid_charge_is_refused() {
    Wallet::given(funded())
        .when(refund(2, "re_1", 100))
        .then_expect_error(WalletError::UnknownCharge(ch(2)));
    Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))])
        .when(refund(1, "re_1", 100))
        .then_expect_error(WalletError::UnknownCharge(ch(1)));
}

#[test]
fn a_refund_needs_an_amount() {
    let err = Wallet::given(funded()).decide(refund(1, "re_1", 0));
    assert!(matches!(err, Err(WalletError::Invalid(e)) if e.field == "amount_cents"));
}

#[test]
fn a_refund_of_spent_tft_leaves_a_debt() {
    let mut events = funded();
    events.push(debited("bill-42-1", tft(800)));
    let w = Wallet::given(events);
    let w = w.when(refund(1, "re_1", 1_000)).then_accepted();
    assert_eq!(w.balance(), -units(tft(800)));
    assert_eq!(w.spendable(), TftAmount::default());
    w.when(debit("bill-42-2", tft(1)))
        .then_expect_error(WalletError::InsufficientBalance {
            balance: -units(tft(800)),
            needed: tft(1),
        });
    // A new top-up pays the debt first.
    let w = w.when(create(2, 1_000, cent_price())).then_accepted();
    let w = w
        .when(succeeded(2, 1_000, t0() + Duration::hours(1)))
        .then_accepted();
    assert_eq!(w.balance(), units(tft(200)));
}

// ---- disputes ----

#[test]
fn a_dispute_takes_back_tft_like_a_refund() {
    let w = Wallet::given(funded());
    w.when(dispute(1, "dp_1", 1_000))
        .then_expect_events(vec![disputed(1, "dp_1", 1_000, tft(1_000))]);
    let w = w.when(dispute(1, "dp_1", 1_000)).then_accepted();
    assert_eq!(w.balance(), 0);
    assert_eq!(w.ledger()[1].kind, EntryKind::Dispute);
}

#[test]
fn the_same_dispute_twice_counts_once() {
    let mut events = funded();
    events.push(disputed(1, "dp_1", 1_000, tft(1_000)));
    let w = Wallet::given(events);
    w.when(dispute(1, "dp_1", 1_000)).then_expect_no_events();
    assert_eq!(w.balance(), 0);
}

#[test]
fn refunds_and_disputes_of_a_charge_together_stay_within_what_it_paid() {
    let mut events = funded();
    events.push(refunded(1, "re_1", 400, tft(400)));
    let w = Wallet::given(events);
    w.when(dispute(1, "dp_1", 700))
        .then_expect_error(WalletError::RefundExceedsPayment {
            paid_cents: 1_000,
            returned_cents: 400,
            asked_cents: 700,
        });
    let w = w.when(dispute(1, "dp_1", 600)).then_accepted();
    assert_eq!(w.balance(), 0);
    let t = w.state().and_then(|s| s.top_up(&pi(1))).expect("created");
    assert_eq!(t.returned_cents, 1_000);
    assert_eq!(t.returned_tft, tft(1_000));
}

#[test]
fn a_disputed_spent_top_up_leaves_a_debt() {
    let mut events = funded();
    events.push(debited("bill-42-1", tft(1_000)));
    let w = Wallet::given(events)
        .when(dispute(1, "dp_1", 500))
        .then_accepted();
    assert_eq!(w.balance(), -units(tft(500)));
}

// ---- auto top-up ----

fn rule() -> AutoTopUpConfig {
    AutoTopUpConfig::new(tft(100), 1_000, 2_500, stripe("pm_card")).expect("valid rule")
}

fn configured() -> WalletEvent {
    WalletEvent::AutoTopUpConfigured {
        config: rule(),
        at: t0(),
    }
}

fn auto(n: u32, at: DateTime<Utc>) -> WalletCommand {
    WalletCommand::CreateAutoTopUp {
        top_up_id: top_up_id(n),
        payment_intent_id: pi(n),
        tft_price: cent_price(),
        quote_expires_at: at + mins(15),
        at,
    }
}

fn auto_created(n: u32, at: DateTime<Utc>) -> WalletEvent {
    WalletEvent::TopUpCreated {
        top_up_id: top_up_id(n),
        payment_intent_id: pi(n),
        usd_cents: 1_000,
        tft_amount: tft(1_000),
        tft_price: cent_price(),
        quote_expires_at: at + mins(15),
        origin: TopUpOrigin::Auto,
        at,
    }
}

#[test]
fn auto_top_up_is_configured_and_disabled() {
    let w = Wallet::given(vec![opened()]);
    w.when(WalletCommand::ConfigureAutoTopUp {
        config: rule(),
        at: t0(),
    })
    .then_expect_events(vec![configured()]);
    let w = Wallet::given(vec![opened(), configured()]);
    assert_eq!(w.state().and_then(|s| s.auto_top_up.clone()), Some(rule()));
    w.when(WalletCommand::ConfigureAutoTopUp {
        config: rule(),
        at: t0(),
    })
    .then_expect_no_events();
    w.when(WalletCommand::DisableAutoTopUp { at: t0() })
        .then_expect_events(vec![WalletEvent::AutoTopUpDisabled { at: t0() }]);
    let w = w
        .when(WalletCommand::DisableAutoTopUp { at: t0() })
        .then_accepted();
    assert_eq!(w.state().and_then(|s| s.auto_top_up.clone()), None);
    w.when(WalletCommand::DisableAutoTopUp { at: t0() })
        .then_expect_no_events();
}

#[test]
fn an_auto_top_up_rule_is_validated() {
    let pm = stripe("pm_card");
    let field = |r: Result<AutoTopUpConfig, SpecError>| r.err().map(|e| e.field);
    assert_eq!(
        field(AutoTopUpConfig::new(
            TftAmount::default(),
            1_000,
            2_000,
            pm.clone()
        )),
        Some("threshold".into())
    );
    assert_eq!(
        field(AutoTopUpConfig::new(tft(1), 100, 2_000, pm.clone())),
        Some("amount_cents".into())
    );
    assert_eq!(
        field(AutoTopUpConfig::new(tft(1), 1_000, 999, pm.clone())),
        Some("monthly_cap_cents".into())
    );
    assert_eq!(
        field(AutoTopUpConfig::new(
            tft(1),
            1_000,
            MAX_MONTHLY_CAP_CENTS + 1,
            pm
        )),
        Some("monthly_cap_cents".into())
    );
}

#[test]
fn an_auto_top_up_charges_the_rules_amount_below_the_threshold() {
    Wallet::given(vec![opened(), configured()])
        .when(auto(1, t0()))
        .then_expect_events(vec![auto_created(1, t0())]);
}

#[test]
fn an_auto_top_up_needs_a_rule() {
    Wallet::given(vec![opened()])
        .when(auto(1, t0()))
        .then_expect_error(WalletError::AutoTopUpNotConfigured);
}

#[test]
fn an_auto_top_up_waits_for_the_balance_to_fall_below_the_threshold() {
    let mut events = funded();
    events.push(configured());
    let w = Wallet::given(events);
    w.when(auto(2, t0()))
        .then_expect_error(WalletError::AutoTopUpNotNeeded {
            balance: units(tft(1_000)),
            threshold: tft(100),
        });
    // Exactly at the threshold is not below it.
    let w = w.when(debit("bill-42-1", tft(900))).then_accepted();
    assert!(matches!(
        w.decide(auto(2, t0())),
        Err(WalletError::AutoTopUpNotNeeded { .. })
    ));
    let w = w
        .when(debit("bill-42-2", TftAmount::from_base_units(1)))
        .then_accepted();
    assert!(w.decide(auto(2, t0())).is_ok());
}

#[test]
fn one_auto_top_up_is_pending_at_a_time() {
    let w = Wallet::given(vec![opened(), configured(), auto_created(1, t0())]);
    w.when(auto(2, t0()))
        .then_expect_error(WalletError::AutoTopUpPending);
}

#[test]
fn auto_top_ups_stay_within_the_monthly_cap() {
    // Cap $25, $10 each: two fit, the third does not.
    let w = Wallet::given(vec![opened(), configured()]);
    let w = w.when(auto(1, t0())).then_accepted();
    let w = w.when(succeeded(1, 1_000, t0() + mins(1))).then_accepted();
    let w = w.when(debit("bill-1", tft(1_000))).then_accepted();
    let w = w.when(auto(2, t0() + mins(2))).then_accepted();
    let w = w.when(succeeded(2, 1_000, t0() + mins(3))).then_accepted();
    let w = w.when(debit("bill-2", tft(1_000))).then_accepted();
    assert_eq!(
        w.state().map(|s| s.auto_top_up_cents_in_month(t0())),
        Some(2_000)
    );
    w.when(auto(3, t0() + mins(4)))
        .then_expect_error(WalletError::MonthlyCapReached {
            cap_cents: 2_500,
            used_cents: 2_000,
            asked_cents: 1_000,
        });
    // A new calendar month starts afresh.
    let december = Utc
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .expect("valid time");
    assert!(w.decide(auto(3, december)).is_ok());
}

#[test]
fn failed_auto_top_ups_do_not_count_against_the_cap() {
    let w = Wallet::given(vec![
        opened(),
        configured(),
        auto_created(1, t0()),
        failed(1, "card_declined"),
        auto_created(2, t0() + mins(1)),
        failed(2, "card_declined"),
    ]);
    assert_eq!(
        w.state().map(|s| s.auto_top_up_cents_in_month(t0())),
        Some(0)
    );
    assert!(w.decide(auto(3, t0() + mins(2))).is_ok());
}

#[test]
fn manual_top_ups_do_not_count_against_the_cap() {
    let w = Wallet::given(vec![
        opened(),
        configured(),
        created(1, 1_000_000, cent_price(), tft(1_000_000)),
    ]);
    assert_eq!(
        w.state().map(|s| s.auto_top_up_cents_in_month(t0())),
        Some(0)
    );
    assert!(w.decide(auto(2, t0())).is_ok());
}

// ---- values, events and the aggregate as a whole ----

#[test]
fn stripe_ids_are_checked_for_shape() {
    assert!(StripeId::new("payment_intent_id", "pi_3MtwBwLkdIwHu7ix28a3tqPa").is_ok());
    for bad in [
        "",
        "pi",
        "pi_",
        "_abc",
        "pi_a b",
        "pi_a-b",
        &"x_".repeat(200),
    ] {
        let err = StripeId::new("payment_intent_id", bad);
        assert!(
            matches!(err, Err(ref e) if e.field == "payment_intent_id"),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn returning_tft_is_proportional_and_bounded() {
    let credited = TftAmount::from_base_units(10);
    let none = TftAmount::default();
    assert_eq!(tft_to_return(credited, 3, 1, none).base_units(), 4);
    assert_eq!(
        tft_to_return(credited, 3, 2, TftAmount::from_base_units(4)).base_units(),
        3
    );
    assert_eq!(
        tft_to_return(credited, 3, 3, TftAmount::from_base_units(7)).base_units(),
        3
    );
    assert_eq!(tft_to_return(credited, 3, 99, none), credited);
    assert_eq!(tft_to_return(credited, 0, 1, none), none);
}

#[test]
fn events_are_named_versioned_and_round_trip() {
    let events = vec![
        opened(),
        issued(1, account()),
        linked(1, account()),
        WalletEvent::LinkAttemptFailed {
            challenge_id: challenge_id(2),
            account: account(),
            at: t0(),
        },
        created(1, 1_000, cent_price(), tft(1_000)),
        failed(1, "card_declined"),
        credited(1, tft(1_000)),
        debited("bill-42-1", tft(10)),
        refunded(1, "re_1", 100, tft(100)),
        disputed(1, "dp_1", 100, tft(100)),
        configured(),
        WalletEvent::AutoTopUpDisabled { at: t0() },
        WalletEvent::ReceiptRecorded {
            top_up_id: top_up_id(1),
            payment_intent_id: pi(1),
            charge_id: ch(1),
            receipt_url: ReceiptUrl::new("https://pay.stripe.com/receipts/payment/ch_1")
                .expect("valid"),
            at: t0(),
        },
    ];
    let names: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        names,
        [
            "WalletOpened",
            "LinkChallengeIssued",
            "AccountLinked",
            "LinkAttemptFailed",
            "TopUpCreated",
            "TopUpFailed",
            "TopUpCredited",
            "WalletDebited",
            "RefundRecorded",
            "DisputeRecorded",
            "AutoTopUpConfigured",
            "AutoTopUpDisabled",
            "ReceiptRecorded",
        ]
    );
    for e in &events {
        assert_eq!(e.event_version(), EVENT_VERSION);
        let json = serde_json::to_string(e).expect("serialises");
        let back: WalletEvent = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(&back, e);
    }
    let w = Wallet::given(events);
    assert_eq!(w.balance(), units(tft(1_000 - 10 - 100 - 100)));
    assert_eq!(w.ledger().len(), 4);
}

#[test]
fn the_wallet_round_trips_through_json() {
    let mut events = funded();
    events.extend([
        issued(1, account()),
        linked(1, account()),
        debited("bill-42-1", tft(10)),
        refunded(1, "re_1", 100, tft(100)),
        configured(),
    ]);
    let w = Wallet::given(events);
    let json = serde_json::to_value(&w).expect("serialise");
    let back: Wallet = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, w);
    back.check_invariants();
}

#[test]
fn the_aggregate_type_is_wallet() {
    use cqrs_es::Aggregate;
    assert_eq!(Wallet::TYPE, "wallet");
}

fn card(id: &str) -> SavedCard {
    SavedCard {
        payment_method_id: stripe(id),
        brand: "visa".to_string(),
        last4: "4242".to_string(),
        exp_month: 12,
        exp_year: 2030,
    }
}

fn save(id: &str) -> WalletCommand {
    WalletCommand::SavePaymentMethod {
        card: card(id),
        at: t0(),
    }
}

fn saved(id: &str) -> WalletEvent {
    WalletEvent::PaymentMethodSaved {
        card: card(id),
        at: t0(),
    }
}

#[test]
fn the_stripe_customer_is_attached_once_and_never_replaced() {
    let w = Wallet::given(vec![opened()]);
    let attach = |id: &str| WalletCommand::AttachStripeCustomer {
        customer_id: stripe(id),
        at: t0(),
    };
    w.when(attach("cus_1"))
        .then_expect_events(vec![WalletEvent::StripeCustomerAttached {
            customer_id: stripe("cus_1"),
            at: t0(),
        }]);
    let w = w.when(attach("cus_1")).then_accepted();
    w.when(attach("cus_1")).then_expect_no_events();
    w.when(attach("cus_2"))
        .then_expect_error(WalletError::CustomerConflict(stripe("cus_1")));
}

#[test]
fn the_first_saved_card_is_the_default_and_saving_again_changes_nothing() {
    let w = Wallet::given(vec![opened()]);
    w.when(save("pm_1")).then_expect_events(vec![saved("pm_1")]);
    let w = w.when(save("pm_1")).then_accepted();
    let s = w.state().expect("open");
    assert_eq!(s.default_card, Some(stripe("pm_1")));
    w.when(save("pm_1")).then_expect_no_events();
    let w = w.when(save("pm_2")).then_accepted();
    assert_eq!(w.state().expect("open").default_card, Some(stripe("pm_1")));
    assert_eq!(w.state().expect("open").cards.len(), 2);
}

#[test]
fn only_a_saved_card_can_be_the_default() {
    let w = Wallet::given(vec![opened(), saved("pm_1"), saved("pm_2")]);
    let set = |id: &str| WalletCommand::SetDefaultPaymentMethod {
        payment_method_id: stripe(id),
        at: t0(),
    };
    w.when(set("pm_9"))
        .then_expect_error(WalletError::UnknownPaymentMethod(stripe("pm_9")));
    w.when(set("pm_1")).then_expect_no_events();
    let w = w.when(set("pm_2")).then_accepted();
    assert_eq!(w.state().expect("open").default_card, Some(stripe("pm_2")));
}

#[test]
fn removing_the_auto_top_up_card_turns_the_rule_off() {
    let rule = AutoTopUpConfig::new(tft(100), 2_000, 10_000, stripe("pm_1")).expect("valid rule");
    let w = Wallet::given(vec![
        opened(),
        saved("pm_1"),
        WalletEvent::AutoTopUpConfigured {
            config: rule,
            at: t0(),
        },
    ]);
    let remove = WalletCommand::RemovePaymentMethod {
        payment_method_id: stripe("pm_1"),
        at: t0(),
    };
    w.when(remove.clone()).then_expect_events(vec![
        WalletEvent::PaymentMethodRemoved {
            payment_method_id: stripe("pm_1"),
            at: t0(),
        },
        WalletEvent::AutoTopUpDisabled { at: t0() },
    ]);
    let w = w.when(remove.clone()).then_accepted();
    let s = w.state().expect("open");
    assert!(s.cards.is_empty() && s.default_card.is_none() && s.auto_top_up.is_none());
    // payment_method.detached after the user's own detach: nothing more.
    w.when(remove).then_expect_no_events();
}

fn observe(runway_hours: Option<u64>) -> WalletCommand {
    WalletCommand::ObserveRunway {
        runway_hours,
        thresholds_hours: vec![24, 72],
        at: t0(),
    }
}

#[test]
fn a_runway_crossing_alerts_once_and_a_recovery_rearms_it() {
    let w = Wallet::given(vec![opened()]);
    w.when(observe(None)).then_expect_no_events();
    w.when(observe(Some(100))).then_expect_no_events();
    w.when(observe(Some(50)))
        .then_expect_events(vec![WalletEvent::RunwayAlertRaised {
            threshold_hours: 72,
            runway_hours: 50,
            at: t0(),
        }]);
    let w = w.when(observe(Some(50))).then_accepted();
    // Still below: no second alert.
    w.when(observe(Some(40))).then_expect_no_events();
    w.when(observe(Some(10)))
        .then_expect_events(vec![WalletEvent::RunwayAlertRaised {
            threshold_hours: 24,
            runway_hours: 10,
            at: t0(),
        }]);
    let w = w.when(observe(Some(10))).then_accepted();
    // Topped up: both clear, and a later fall alerts again.
    w.when(observe(Some(500))).then_expect_events(vec![
        WalletEvent::RunwayAlertCleared {
            threshold_hours: 24,
            at: t0(),
        },
        WalletEvent::RunwayAlertCleared {
            threshold_hours: 72,
            at: t0(),
        },
    ]);
    let w = w.when(observe(Some(500))).then_accepted();
    assert!(w.decide(observe(Some(50))).expect("ok").len() == 1);
}

#[test]
fn a_threshold_no_longer_configured_stops_being_alerted() {
    let w = Wallet::given(vec![
        opened(),
        WalletEvent::RunwayAlertRaised {
            threshold_hours: 72,
            runway_hours: 50,
            at: t0(),
        },
    ]);
    w.when(WalletCommand::ObserveRunway {
        runway_hours: Some(50),
        thresholds_hours: vec![24],
        at: t0(),
    })
    .then_expect_events(vec![WalletEvent::RunwayAlertCleared {
        threshold_hours: 72,
        at: t0(),
    }]);
}

// ---- receipts after the credit ----

fn receipt(n: u32) -> ReceiptUrl {
    ReceiptUrl::new(&format!("https://pay.stripe.com/receipts/payment/ch_{n}")).expect("valid")
}

fn record_receipt(n: u32) -> WalletCommand {
    WalletCommand::RecordReceipt {
        charge_id: ch(n),
        receipt_url: receipt(n),
        at: t0() + mins(3),
    }
}

#[test]
fn a_receipt_fetched_after_the_credit_is_recorded_once_and_moves_no_money() {
    let w = Wallet::given(funded());
    w.when(record_receipt(1))
        .then_expect_events(vec![WalletEvent::ReceiptRecorded {
            top_up_id: top_up_id(1),
            payment_intent_id: pi(1),
            charge_id: ch(1),
            receipt_url: receipt(1),
            at: t0() + mins(3),
        }]);
    let after = w.when(record_receipt(1)).then_accepted();
    let t = after
        .state()
        .and_then(|s| s.top_up(&pi(1)))
        .expect("top-up");
    assert_eq!(t.receipt_url, Some(receipt(1)));
    assert_eq!(after.balance(), w.balance());
    assert_eq!(after.ledger(), w.ledger());
    // Fetched again (a redelivered event): nothing more.
    after.when(record_receipt(1)).then_expect_no_events();
}

#[test]
fn a_receipt_recorded_with_the_credit_is_kept() {
    let mut events = funded();
    if let Some(WalletEvent::TopUpCredited { receipt_url, .. }) = events.last_mut() {
        *receipt_url = Some(receipt(1));
    }
    Wallet::given(events)
        .when(record_receipt(1))
        .then_expect_no_events();
}

#[test]
fn a_receipt_before_its_credit_waits_for_it() {
    Wallet::given(vec![opened(), created(1, 1_000, cent_price(), tft(1_000))])
        .when(record_receipt(1))
        .then_expect_error(WalletError::UnknownCharge(ch(1)));
}

#[path = "custody_tests.rs"]
mod custody;

#[path = "billing_tests.rs"]
mod billing;

#[path = "statement_tests.rs"]
mod statement;

#[path = "subscription_tests.rs"]
mod subscription;
