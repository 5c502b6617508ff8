//! Recurring top-ups: a monthly Stripe subscription on a saved card, whose
//! paid invoices buy TFT.
//!
//! - **One at a time.** A wallet has at most one subscription that has not
//!   ended; starting another is [`WalletError::AlreadySubscribed`]. Starting
//!   the same one again (a retried request) is a no-op.
//! - **Each invoice credits once.** A paid invoice is recorded as a top-up
//!   of origin `subscription` keyed by the invoice's id, at the TFT price
//!   quoted when the payment is recorded, so the same `invoice.paid` again
//!   finds it and does nothing; refunds, disputes, statements and the
//!   treasury's transfer treat it as any credited top-up.
//! - **A failure credits nothing** and is recorded once per invoice and
//!   attempt; a failure reported after its invoice was paid is out of order
//!   and ignored.
//! - **Stripe's state wins, newest first.** `RecordSubscriptionState`
//!   applies Stripe's status, period and `cancel_at_period_end` unless a
//!   newer report was applied; an ended subscription stays ended.

use super::aggregate::WalletState;
use super::commands::WalletCommand;
use super::errors::WalletError;
use super::events::WalletEvent;
use super::values::*;
use crate::money::TftAmount;

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn known<'a>(s: &'a WalletState, id: &StripeId) -> Result<&'a Subscription, WalletError> {
    s.subscriptions
        .get(id)
        .ok_or_else(|| WalletError::UnknownSubscription(id.clone()))
}

/// Decides a subscription command (any other command decides nothing).
pub(super) fn decide(
    s: &WalletState,
    command: WalletCommand,
) -> Result<Vec<WalletEvent>, WalletError> {
    use WalletCommand as C;
    use WalletEvent as E;
    match command {
        C::StartSubscription {
            subscription_id,
            price_id,
            usd_cents,
            payment_method_id,
            status,
            current_period_end,
            at,
        } => {
            if s.subscriptions.contains_key(&subscription_id) {
                return Ok(vec![]);
            }
            if let Some(current) = s.current_subscription() {
                return Err(WalletError::AlreadySubscribed(
                    current.subscription_id.clone(),
                ));
            }
            check_subscription_cents("usd_cents", usd_cents)?;
            if !s.cards.contains_key(&payment_method_id) {
                return Err(WalletError::UnknownPaymentMethod(payment_method_id));
            }
            Ok(vec![E::SubscriptionStarted {
                subscription_id,
                price_id,
                usd_cents,
                payment_method_id,
                status,
                current_period_end,
                at,
            }])
        }
        C::RecordSubscriptionInvoicePaid {
            subscription_id,
            invoice_id,
            top_up_id,
            amount_paid_cents,
            charge_id,
            tft_price,
            period_end,
            at,
        } => {
            known(s, &subscription_id)?;
            if s.top_ups.contains_key(&invoice_id) {
                // The webhook again: this invoice was credited once already.
                return Ok(vec![]);
            }
            if amount_paid_cents == 0 {
                // Nothing was taken (a zero invoice): nothing to credit.
                return Ok(vec![]);
            }
            if s.top_up_by_id(top_up_id).is_some() {
                return Err(WalletError::DuplicateTopUp);
            }
            let tft_amount = tft_for_cents(amount_paid_cents, tft_price)
                .filter(|t| t.base_units() > 0)
                .ok_or_else(|| SpecError::new("tft_price", "the payment must buy some TFT"))?;
            Ok(vec![E::SubscriptionInvoicePaid {
                subscription_id,
                invoice_id,
                top_up_id,
                usd_cents: amount_paid_cents,
                tft_price,
                tft_amount,
                charge_id,
                period_end,
                at,
            }])
        }
        C::RecordSubscriptionPaymentFailed {
            subscription_id,
            invoice_id,
            attempt,
            code,
            message,
            next_attempt_at,
            at,
        } => {
            let sub = known(s, &subscription_id)?;
            if s.top_ups.contains_key(&invoice_id)
                || sub.failures.contains(&(invoice_id.clone(), attempt))
            {
                // Paid since (a late failure), or this attempt was recorded.
                return Ok(vec![]);
            }
            Ok(vec![E::SubscriptionPaymentFailed {
                subscription_id,
                invoice_id,
                attempt,
                code: cut(&code, MAX_FAILURE_CODE),
                message: cut(&message, MAX_FAILURE_MESSAGE),
                next_attempt_at,
                at,
            }])
        }
        C::ScheduleSubscriptionCancel {
            subscription_id,
            at,
        } => {
            let sub = known(s, &subscription_id)?;
            if sub.status.is_ended() {
                return Err(WalletError::SubscriptionEnded(subscription_id));
            }
            if sub.cancel_at_period_end {
                return Ok(vec![]);
            }
            Ok(vec![E::SubscriptionCancelScheduled {
                subscription_id,
                at,
            }])
        }
        C::RecordSubscriptionState {
            subscription_id,
            status,
            cancel_at_period_end,
            current_period_end,
            observed_at,
            at,
        } => {
            let sub = known(s, &subscription_id)?;
            // Stripe's event times are whole seconds: a report from the
            // second the subscription was recorded in is not older.
            if sub.status.is_ended() || observed_at.timestamp() < sub.observed_at.timestamp() {
                // Over for good, or an older report arriving late.
                return Ok(vec![]);
            }
            if status.is_ended() {
                return Ok(vec![E::SubscriptionEnded {
                    subscription_id,
                    at,
                }]);
            }
            if sub.status == status
                && sub.cancel_at_period_end == cancel_at_period_end
                && sub.current_period_end == current_period_end
            {
                return Ok(vec![]);
            }
            Ok(vec![E::SubscriptionUpdated {
                subscription_id,
                status,
                cancel_at_period_end,
                current_period_end,
                observed_at,
                at,
            }])
        }
        C::EndSubscription {
            subscription_id,
            at,
        } => {
            let sub = known(s, &subscription_id)?;
            if sub.status.is_ended() {
                return Ok(vec![]);
            }
            Ok(vec![E::SubscriptionEnded {
                subscription_id,
                at,
            }])
        }
        _ => Ok(vec![]),
    }
}

/// Applies a subscription event (any other event changes nothing here).
pub(super) fn apply(s: &mut WalletState, event: &WalletEvent) {
    use WalletEvent as E;
    match event {
        E::SubscriptionStarted {
            subscription_id,
            price_id,
            usd_cents,
            payment_method_id,
            status,
            current_period_end,
            at,
        } => {
            s.subscriptions.insert(
                subscription_id.clone(),
                Subscription {
                    subscription_id: subscription_id.clone(),
                    price_id: price_id.clone(),
                    usd_cents: *usd_cents,
                    payment_method_id: payment_method_id.clone(),
                    status: *status,
                    cancel_at_period_end: false,
                    current_period_end: *current_period_end,
                    started_at: *at,
                    ended_at: None,
                    last_invoice: None,
                    invoices_paid: 0,
                    failures: Default::default(),
                    observed_at: *at,
                },
            );
        }
        E::SubscriptionInvoicePaid {
            subscription_id,
            invoice_id,
            top_up_id,
            usd_cents,
            tft_price,
            tft_amount,
            charge_id,
            period_end,
            at,
        } => {
            s.top_ups.insert(
                invoice_id.clone(),
                TopUp {
                    top_up_id: *top_up_id,
                    payment_intent_id: invoice_id.clone(),
                    usd_cents: *usd_cents,
                    tft_price: *tft_price,
                    tft_amount: *tft_amount,
                    quote_expires_at: *at,
                    origin: TopUpOrigin::Subscription,
                    created_at: *at,
                    status: TopUpStatus::Credited,
                    last_failure: None,
                    charge_id: charge_id.clone(),
                    receipt_url: None,
                    returned_cents: 0,
                    returned_tft: TftAmount::default(),
                },
            );
            s.post(
                EntryKind::TopUp,
                i128::from(tft_amount.base_units()),
                invoice_id.as_str(),
                *at,
            );
            if let Some(sub) = s.subscriptions.get_mut(subscription_id) {
                sub.invoices_paid += 1;
                sub.last_invoice = Some(SubscriptionInvoice {
                    invoice_id: invoice_id.clone(),
                    paid: true,
                    usd_cents: *usd_cents,
                    failure: None,
                    next_attempt_at: None,
                    at: *at,
                });
                if period_end.is_some() && *period_end > sub.current_period_end {
                    sub.current_period_end = *period_end;
                }
                // Stripe makes a subscription active again once its invoice is paid.
                if matches!(
                    sub.status,
                    SubscriptionStatus::Incomplete
                        | SubscriptionStatus::PastDue
                        | SubscriptionStatus::Unpaid
                ) {
                    sub.status = SubscriptionStatus::Active;
                }
            }
        }
        E::SubscriptionPaymentFailed {
            subscription_id,
            invoice_id,
            attempt,
            code,
            message,
            next_attempt_at,
            at,
        } => {
            if let Some(sub) = s.subscriptions.get_mut(subscription_id) {
                sub.failures.insert((invoice_id.clone(), *attempt));
                sub.last_invoice = Some(SubscriptionInvoice {
                    invoice_id: invoice_id.clone(),
                    paid: false,
                    usd_cents: 0,
                    failure: Some(PaymentFailure {
                        code: code.clone(),
                        message: message.clone(),
                    }),
                    next_attempt_at: *next_attempt_at,
                    at: *at,
                });
            }
        }
        E::SubscriptionCancelScheduled {
            subscription_id, ..
        } => {
            if let Some(sub) = s.subscriptions.get_mut(subscription_id) {
                sub.cancel_at_period_end = true;
            }
        }
        E::SubscriptionUpdated {
            subscription_id,
            status,
            cancel_at_period_end,
            current_period_end,
            observed_at,
            ..
        } => {
            if let Some(sub) = s.subscriptions.get_mut(subscription_id) {
                sub.status = *status;
                sub.cancel_at_period_end = *cancel_at_period_end;
                sub.current_period_end = *current_period_end;
                sub.observed_at = *observed_at;
            }
        }
        E::SubscriptionEnded {
            subscription_id,
            at,
        } => {
            if let Some(sub) = s.subscriptions.get_mut(subscription_id) {
                sub.status = SubscriptionStatus::Canceled;
                sub.ended_at = Some(*at);
            }
        }
        _ => {}
    }
}
