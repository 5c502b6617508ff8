//! Recurring top-ups: a monthly subscription's life, its invoices credited
//! once each, failures recorded once, cancellation and Stripe's state.

use super::*;

fn sub() -> StripeId {
    stripe("sub_1")
}

fn inv(n: u32) -> StripeId {
    stripe(&format!("in_{n}"))
}

fn start(id: &str, usd_cents: u64, card_id: &str) -> WalletCommand {
    WalletCommand::StartSubscription {
        subscription_id: stripe(id),
        price_id: stripe("price_2500"),
        usd_cents,
        payment_method_id: stripe(card_id),
        status: SubscriptionStatus::Active,
        current_period_end: Some(t0() + Duration::days(30)),
        at: t0(),
    }
}

fn started() -> WalletEvent {
    WalletEvent::SubscriptionStarted {
        subscription_id: sub(),
        price_id: stripe("price_2500"),
        usd_cents: 2_500,
        payment_method_id: stripe("pm_1"),
        status: SubscriptionStatus::Active,
        current_period_end: Some(t0() + Duration::days(30)),
        at: t0(),
    }
}

fn paid_cmd(n: u32, cents: u64, price: TftPrice) -> WalletCommand {
    WalletCommand::RecordSubscriptionInvoicePaid {
        subscription_id: sub(),
        invoice_id: inv(n),
        top_up_id: top_up_id(100 + n),
        amount_paid_cents: cents,
        charge_id: Some(ch(100 + n)),
        tft_price: price,
        period_end: Some(t0() + Duration::days(30 * i64::from(n))),
        at: t0() + Duration::days(30 * i64::from(n - 1)),
    }
}

fn failed_cmd(n: u32, attempt: u32) -> WalletCommand {
    WalletCommand::RecordSubscriptionPaymentFailed {
        subscription_id: sub(),
        invoice_id: inv(n),
        attempt,
        code: "card_declined".into(),
        message: "Your card was declined.".into(),
        next_attempt_at: Some(t0() + Duration::days(33)),
        at: t0() + Duration::days(30),
    }
}

fn subscribed() -> Wallet {
    Wallet::given(vec![opened(), saved("pm_1"), started()])
}

fn subscription(w: &Wallet) -> Subscription {
    w.state()
        .and_then(|s| s.subscriptions.get(&sub()).cloned())
        .expect("subscription recorded")
}

#[test]
fn a_subscription_starts_on_a_saved_card_once() {
    let w = Wallet::given(vec![opened(), saved("pm_1")]);
    w.when(start("sub_1", 2_500, "pm_1"))
        .then_expect_events(vec![started()]);
    // The same subscription again (a retried request): nothing new.
    subscribed()
        .when(start("sub_1", 2_500, "pm_1"))
        .then_expect_no_events();
    let s = subscription(&subscribed());
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.usd_cents, 2_500);
    assert!(!s.cancel_at_period_end);
    assert_eq!(
        subscribed()
            .state()
            .and_then(|s| s.current_subscription().cloned()),
        Some(s)
    );
}

#[test]
fn a_second_subscription_while_one_runs_is_refused() {
    subscribed()
        .when(start("sub_2", 1_000, "pm_1"))
        .then_expect_error(WalletError::AlreadySubscribed(sub()));
}

#[test]
fn a_new_subscription_may_start_once_the_last_one_ended() {
    let ended = subscribed()
        .when(WalletCommand::EndSubscription {
            subscription_id: sub(),
            at: t0() + mins(5),
        })
        .then_accepted();
    let again = ended.when(start("sub_2", 1_000, "pm_1")).then_accepted();
    let state = again.state().expect("open");
    assert_eq!(
        state
            .current_subscription()
            .map(|s| s.subscription_id.clone()),
        Some(stripe("sub_2"))
    );
    assert_eq!(state.subscriptions.len(), 2);
}

#[test]
fn a_subscription_needs_a_saved_card_and_an_amount_in_range() {
    let w = Wallet::given(vec![opened(), saved("pm_1")]);
    w.when(start("sub_1", 2_500, "pm_other"))
        .then_expect_error(WalletError::UnknownPaymentMethod(stripe("pm_other")));
    for cents in [0, MIN_SUBSCRIPTION_CENTS - 1, MAX_SUBSCRIPTION_CENTS + 1] {
        assert!(matches!(
            w.decide(start("sub_1", cents, "pm_1")),
            Err(WalletError::Invalid(_))
        ));
    }
    w.when(start("sub_1", MIN_SUBSCRIPTION_CENTS, "pm_1"))
        .then_accepted();
    w.when(start("sub_1", MAX_SUBSCRIPTION_CENTS, "pm_1"))
        .then_accepted();
}

#[test]
fn each_paid_invoice_credits_once_at_the_price_quoted_then() {
    let w = subscribed();
    let first = w.when(paid_cmd(1, 2_500, cent_price())).then_accepted();
    assert_eq!(first.balance(), units(tft(2_500)));
    // The same invoice again, even at another price: credited once.
    first
        .when(paid_cmd(1, 2_500, three_dollars()))
        .then_expect_no_events();
    // The second month's invoice, at the price of that moment ($3 a TFT).
    let second = first
        .when(paid_cmd(2, 2_500, three_dollars()))
        .then_accepted();
    let at_three = tft_for_cents(2_500, three_dollars()).expect("fits");
    assert_eq!(second.balance(), units(tft(2_500)) + units(at_three));
    let state = second.state().expect("open");
    let credited = state.top_up(&inv(2)).expect("recorded as a top-up");
    assert_eq!(credited.origin, TopUpOrigin::Subscription);
    assert_eq!(credited.status, TopUpStatus::Credited);
    assert_eq!(credited.tft_amount, at_three);
    assert_eq!(credited.charge_id, Some(ch(102)));
    let s = subscription(&second);
    assert_eq!(s.invoices_paid, 2);
    assert_eq!(s.current_period_end, Some(t0() + Duration::days(60)));
    assert_eq!(s.last_invoice.map(|i| i.invoice_id), Some(inv(2)));
    assert_eq!(second.ledger().len(), 2);
}

#[test]
fn an_invoice_before_its_subscription_is_recorded_waits() {
    Wallet::given(vec![opened(), saved("pm_1")])
        .when(paid_cmd(1, 2_500, cent_price()))
        .then_expect_error(WalletError::UnknownSubscription(sub()));
}

#[test]
fn a_zero_invoice_credits_nothing() {
    subscribed()
        .when(paid_cmd(1, 0, cent_price()))
        .then_expect_no_events();
}

#[test]
fn a_subscription_credit_is_refunded_like_any_top_up() {
    let w = subscribed()
        .when(paid_cmd(1, 2_500, cent_price()))
        .then_accepted();
    let refunded = w
        .when(WalletCommand::RecordRefund {
            charge_id: ch(101),
            refund_id: stripe("re_1"),
            amount_cents: 2_500,
            at: t0() + mins(1),
        })
        .then_accepted();
    assert_eq!(refunded.balance(), 0);
}

#[test]
fn a_declined_renewal_is_recorded_once_and_credits_nothing() {
    let w = subscribed()
        .when(paid_cmd(1, 2_500, cent_price()))
        .then_accepted();
    let failed = w.when(failed_cmd(2, 1)).then_accepted();
    assert_eq!(failed.balance(), units(tft(2_500)));
    let last = subscription(&failed).last_invoice.expect("last invoice");
    assert!(!last.paid);
    assert_eq!(
        last.failure.map(|f| f.code),
        Some("card_declined".to_string())
    );
    // The same failure again: once. Stripe's next attempt: recorded too.
    failed.when(failed_cmd(2, 1)).then_expect_no_events();
    failed.when(failed_cmd(2, 2)).then_accepted();
    // A failure of an invoice already paid (out of order): ignored.
    w.when(failed_cmd(1, 1)).then_expect_no_events();
}

#[test]
fn a_failed_renewal_paid_later_is_credited_and_the_subscription_is_active_again() {
    let past_due = subscribed()
        .when(failed_cmd(2, 1))
        .then_accepted()
        .when(WalletCommand::RecordSubscriptionState {
            subscription_id: sub(),
            status: SubscriptionStatus::PastDue,
            cancel_at_period_end: false,
            current_period_end: Some(t0() + Duration::days(60)),
            observed_at: t0() + Duration::days(30),
            at: t0() + Duration::days(30),
        })
        .then_accepted();
    assert_eq!(subscription(&past_due).status, SubscriptionStatus::PastDue);
    let paid = past_due
        .when(paid_cmd(2, 2_500, cent_price()))
        .then_accepted();
    assert_eq!(subscription(&paid).status, SubscriptionStatus::Active);
    assert_eq!(paid.balance(), units(tft(2_500)));
}

#[test]
fn cancel_at_period_end_is_recorded_once_and_ends_later() {
    let cancel = WalletCommand::ScheduleSubscriptionCancel {
        subscription_id: sub(),
        at: t0() + mins(1),
    };
    let scheduled = subscribed().when(cancel.clone()).then_accepted();
    let s = subscription(&scheduled);
    assert!(s.cancel_at_period_end);
    assert_eq!(s.status, SubscriptionStatus::Active);
    scheduled.when(cancel.clone()).then_expect_no_events();
    // The period ends: Stripe deletes it.
    let ended = scheduled
        .when(WalletCommand::EndSubscription {
            subscription_id: sub(),
            at: t0() + Duration::days(30),
        })
        .then_accepted();
    let s = subscription(&ended);
    assert_eq!(s.status, SubscriptionStatus::Canceled);
    assert_eq!(s.ended_at, Some(t0() + Duration::days(30)));
    assert!(ended
        .state()
        .expect("open")
        .current_subscription()
        .is_none());
    ended
        .when(cancel)
        .then_expect_error(WalletError::SubscriptionEnded(sub()));
}

#[test]
fn an_ended_subscription_stays_ended_and_older_reports_change_nothing() {
    let ended = subscribed()
        .when(WalletCommand::EndSubscription {
            subscription_id: sub(),
            at: t0() + mins(5),
        })
        .then_accepted();
    ended
        .when(WalletCommand::EndSubscription {
            subscription_id: sub(),
            at: t0() + mins(6),
        })
        .then_expect_no_events();
    let report = |status, observed_at| WalletCommand::RecordSubscriptionState {
        subscription_id: sub(),
        status,
        cancel_at_period_end: false,
        current_period_end: Some(t0() + Duration::days(30)),
        observed_at,
        at: t0() + mins(7),
    };
    // A late `active` after the end: still ended.
    ended
        .when(report(SubscriptionStatus::Active, t0() + mins(7)))
        .then_expect_no_events();
    // While it runs: a report older than the newest applied changes nothing.
    let updated = subscribed()
        .when(report(SubscriptionStatus::PastDue, t0() + mins(10)))
        .then_accepted();
    updated
        .when(report(SubscriptionStatus::Active, t0() + mins(9)))
        .then_expect_no_events();
    // Stripe reporting it canceled ends it.
    updated
        .when(report(SubscriptionStatus::Canceled, t0() + mins(11)))
        .then_expect_events(vec![WalletEvent::SubscriptionEnded {
            subscription_id: sub(),
            at: t0() + mins(7),
        }]);
}

#[test]
fn invoices_of_an_ended_subscription_still_credit() {
    let ended = subscribed()
        .when(WalletCommand::EndSubscription {
            subscription_id: sub(),
            at: t0() + mins(5),
        })
        .then_accepted();
    let paid = ended.when(paid_cmd(1, 2_500, cent_price())).then_accepted();
    assert_eq!(paid.balance(), units(tft(2_500)));
}

#[test]
fn subscription_events_round_trip_and_are_named() {
    let w = subscribed()
        .when(paid_cmd(1, 2_500, cent_price()))
        .then_accepted();
    let events = [
        started(),
        w.decide(paid_cmd(2, 2_500, cent_price()))
            .expect("paid")
            .remove(0),
        w.decide(failed_cmd(2, 1)).expect("failed").remove(0),
    ];
    let names: Vec<String> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        names,
        [
            "SubscriptionStarted",
            "SubscriptionInvoicePaid",
            "SubscriptionPaymentFailed"
        ]
    );
    for e in events {
        let json = serde_json::to_value(&e).expect("serialises");
        let back: WalletEvent = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, e);
    }
}
