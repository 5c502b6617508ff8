//! The wallet's state, its decisions and how events change it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::WalletCommand;
use super::errors::WalletError;
use super::events::WalletEvent;
use super::top_ups::{clawback, returned, ClawbackKind, Quote};
use super::values::*;
use crate::money::TftAmount;

pub use super::state::WalletState;

/// The Wallet aggregate of one cloud user (the aggregate id is the user's
/// subject): `None` until opened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    state: Option<WalletState>,
}

fn check_owner(owner: &str) -> Result<(), SpecError> {
    let ok = (1..=255).contains(&owner.len())
        && !owner.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            "owner",
            "must be a subject of 1 to 255 characters without spaces",
        ))
    }
}

fn check_reason(reason: &str) -> Result<(), SpecError> {
    if reason.trim().is_empty() || reason.chars().count() > MAX_REASON {
        Err(SpecError::new(
            "reason",
            format!("must be 1 to {MAX_REASON} characters, not blank"),
        ))
    } else {
        Ok(())
    }
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl Wallet {
    /// The current state, once opened.
    pub fn state(&self) -> Option<&WalletState> {
        self.state.as_ref()
    }

    /// The balance in TFT base units; zero before the wallet is opened.
    pub fn balance(&self) -> i128 {
        self.state.as_ref().map_or(0, WalletState::balance)
    }

    /// The ledger, oldest first; empty before the wallet is opened.
    pub fn ledger(&self) -> &[LedgerEntry] {
        self.state.as_ref().map_or(&[], WalletState::ledger)
    }

    /// What may be spent: the balance, or zero when it is negative.
    pub fn spendable(&self) -> TftAmount {
        let units = u64::try_from(self.balance().max(0)).unwrap_or(u64::MAX);
        TftAmount::from_base_units(units)
    }

    /// Decides what a command does: the events (none when it was already
    /// done), or why not.
    pub fn decide(&self, command: WalletCommand) -> Result<Vec<WalletEvent>, WalletError> {
        use WalletCommand as C;
        use WalletError as Error;
        use WalletEvent as E;

        let Some(s) = &self.state else {
            return match command {
                C::Open { owner, at } => {
                    check_owner(&owner)?;
                    Ok(vec![E::WalletOpened { owner, at }])
                }
                _ => Err(Error::NotOpened),
            };
        };

        match command {
            C::Open { .. } => Err(Error::AlreadyOpened),
            custodial @ (C::RecordChainTwin { .. }
            | C::StartChainTransfer { .. }
            | C::CompleteChainTransfer { .. }) => super::custody::decide(s, custodial),
            bill @ C::RecordBill { .. } => super::billing::decide(s, bill),
            credit @ C::RecordSlaCredit { .. } => super::billing::decide_sla_credit(s, credit),
            subscription @ (C::StartSubscription { .. }
            | C::RecordSubscriptionInvoicePaid { .. }
            | C::RecordSubscriptionPaymentFailed { .. }
            | C::ScheduleSubscriptionCancel { .. }
            | C::RecordSubscriptionState { .. }
            | C::EndSubscription { .. }) => super::subscriptions::decide(s, subscription),
            C::IssueLinkChallenge {
                challenge_id,
                nonce,
                account,
                key_type,
                expires_at,
                at,
            } => {
                if s.challenge(challenge_id).is_some() {
                    return Err(Error::DuplicateChallenge);
                }
                if expires_at <= at || expires_at - at > MAX_CHALLENGE_TTL {
                    return Err(SpecError::new(
                        "expires_at",
                        format!(
                            "must be after now and at most {} minutes later",
                            MAX_CHALLENGE_TTL.num_minutes()
                        ),
                    )
                    .into());
                }
                Ok(vec![E::LinkChallengeIssued {
                    challenge_id,
                    nonce,
                    account,
                    key_type,
                    expires_at,
                    at,
                }])
            }
            C::CompleteLink {
                challenge_id,
                signature_verified,
                at,
            } => {
                let c = s.challenge(challenge_id).ok_or(Error::ChallengeNotFound)?;
                if c.status != ChallengeStatus::Open {
                    return Err(Error::ChallengeUsed);
                }
                if at >= c.expires_at {
                    return Err(Error::ChallengeExpired {
                        expires_at: c.expires_at,
                    });
                }
                let account = c.account.clone();
                if signature_verified {
                    Ok(vec![E::AccountLinked {
                        challenge_id,
                        account,
                        key_type: c.key_type,
                        at,
                    }])
                } else {
                    Ok(vec![E::LinkAttemptFailed {
                        challenge_id,
                        account,
                        at,
                    }])
                }
            }
            C::CreateTopUp {
                top_up_id,
                payment_intent_id,
                usd_cents,
                tft_price,
                quote_expires_at,
                at,
            } => {
                check_top_up_cents("usd_cents", usd_cents)?;
                let quote = Quote {
                    top_up_id,
                    payment_intent_id,
                    usd_cents,
                    tft_price,
                    quote_expires_at,
                    origin: TopUpOrigin::Manual,
                    at,
                };
                Ok(vec![quote.created(s)?])
            }
            C::CreateAutoTopUp {
                top_up_id,
                payment_intent_id,
                tft_price,
                quote_expires_at,
                at,
            } => {
                let rule = s
                    .auto_top_up
                    .as_ref()
                    .ok_or(Error::AutoTopUpNotConfigured)?;
                if s.balance >= i128::from(rule.threshold.base_units()) {
                    return Err(Error::AutoTopUpNotNeeded {
                        balance: s.balance,
                        threshold: rule.threshold,
                    });
                }
                if s.pending_auto_top_up().is_some() {
                    return Err(Error::AutoTopUpPending);
                }
                let used_cents = s.auto_top_up_cents_in_month(at);
                if used_cents.saturating_add(rule.amount_cents) > rule.monthly_cap_cents {
                    return Err(Error::MonthlyCapReached {
                        cap_cents: rule.monthly_cap_cents,
                        used_cents,
                        asked_cents: rule.amount_cents,
                    });
                }
                let quote = Quote {
                    top_up_id,
                    payment_intent_id,
                    usd_cents: rule.amount_cents,
                    tft_price,
                    quote_expires_at,
                    origin: TopUpOrigin::Auto,
                    at,
                };
                Ok(vec![quote.created(s)?])
            }
            C::RecordPaymentSucceeded {
                payment_intent_id,
                amount_received_cents,
                charge_id,
                receipt_url,
                at,
            } => {
                let t = s
                    .top_up(&payment_intent_id)
                    .ok_or_else(|| Error::UnknownPaymentIntent(payment_intent_id.clone()))?;
                if t.status == TopUpStatus::Credited {
                    // The webhook again: the money was credited once already.
                    return Ok(vec![]);
                }
                if amount_received_cents != t.usd_cents {
                    return Err(Error::AmountMismatch {
                        expected_cents: t.usd_cents,
                        received_cents: amount_received_cents,
                    });
                }
                // Credited at the quote even if the quote has expired by `at`:
                // the amount was fixed when the intent was created, and Stripe
                // may report a payment the user confirmed in time well after.
                Ok(vec![E::TopUpCredited {
                    top_up_id: t.top_up_id,
                    payment_intent_id,
                    charge_id,
                    tft_amount: t.tft_amount,
                    receipt_url,
                    at,
                }])
            }
            C::RecordReceipt {
                charge_id,
                receipt_url,
                at,
            } => {
                // Only a credited top-up has a charge: before the credit the
                // receipt waits (retried), like a refund before its payment.
                let t = s
                    .top_up_by_charge(&charge_id)
                    .ok_or_else(|| Error::UnknownCharge(charge_id.clone()))?;
                if t.receipt_url.is_some() {
                    // Recorded with the credit, or already after it.
                    return Ok(vec![]);
                }
                Ok(vec![E::ReceiptRecorded {
                    top_up_id: t.top_up_id,
                    payment_intent_id: t.payment_intent_id.clone(),
                    charge_id,
                    receipt_url,
                    at,
                }])
            }
            C::RecordPaymentFailed {
                payment_intent_id,
                code,
                message,
                at,
            } => {
                let t = s
                    .top_up(&payment_intent_id)
                    .ok_or_else(|| Error::UnknownPaymentIntent(payment_intent_id.clone()))?;
                let code = cut(&code, MAX_FAILURE_CODE);
                let message = cut(&message, MAX_FAILURE_MESSAGE);
                let failure = PaymentFailure { code, message };
                let redelivered =
                    t.status == TopUpStatus::Failed && t.last_failure.as_ref() == Some(&failure);
                if t.status == TopUpStatus::Credited || redelivered {
                    // Out of order after the success, or the same failure again.
                    return Ok(vec![]);
                }
                Ok(vec![E::TopUpFailed {
                    top_up_id: t.top_up_id,
                    payment_intent_id,
                    code: failure.code,
                    message: failure.message,
                    at,
                }])
            }
            C::Debit {
                debit_id,
                amount,
                reason,
                at,
            } => {
                if let Some(done) = s.debits.get(&debit_id) {
                    return if *done == amount {
                        Ok(vec![])
                    } else {
                        Err(Error::IdConflict {
                            id: debit_id.as_str().to_string(),
                        })
                    };
                }
                if amount.base_units() == 0 {
                    return Err(SpecError::new("amount", "must be more than zero").into());
                }
                check_reason(&reason)?;
                if s.balance < i128::from(amount.base_units()) {
                    return Err(Error::InsufficientBalance {
                        balance: s.balance,
                        needed: amount,
                    });
                }
                Ok(vec![E::WalletDebited {
                    debit_id,
                    amount,
                    reason,
                    at,
                }])
            }
            C::RecordRefund {
                charge_id,
                refund_id,
                amount_cents,
                at,
            } => Ok(
                match clawback(
                    s,
                    ClawbackKind::Refund,
                    &charge_id,
                    &refund_id,
                    amount_cents,
                )? {
                    None => vec![],
                    Some((top_up_id, tft_amount)) => vec![E::RefundRecorded {
                        refund_id,
                        charge_id,
                        top_up_id,
                        amount_cents,
                        tft_amount,
                        at,
                    }],
                },
            ),
            C::RecordDispute {
                charge_id,
                dispute_id,
                amount_cents,
                at,
            } => Ok(
                match clawback(
                    s,
                    ClawbackKind::Dispute,
                    &charge_id,
                    &dispute_id,
                    amount_cents,
                )? {
                    None => vec![],
                    Some((top_up_id, tft_amount)) => vec![E::DisputeRecorded {
                        dispute_id,
                        charge_id,
                        top_up_id,
                        amount_cents,
                        tft_amount,
                        at,
                    }],
                },
            ),
            C::ConfigureAutoTopUp { config, at } => {
                if s.auto_top_up.as_ref() == Some(&config) {
                    return Ok(vec![]);
                }
                Ok(vec![E::AutoTopUpConfigured { config, at }])
            }
            C::DisableAutoTopUp { at } => {
                if s.auto_top_up.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![E::AutoTopUpDisabled { at }])
            }
            C::AttachStripeCustomer { customer_id, at } => match &s.stripe_customer {
                Some(c) if *c == customer_id => Ok(vec![]),
                Some(c) => Err(Error::CustomerConflict(c.clone())),
                None => Ok(vec![E::StripeCustomerAttached { customer_id, at }]),
            },
            C::SavePaymentMethod { card, at } => {
                if s.cards.contains_key(&card.payment_method_id) {
                    // setup_intent.succeeded again: saved once.
                    return Ok(vec![]);
                }
                Ok(vec![E::PaymentMethodSaved { card, at }])
            }
            C::SetDefaultPaymentMethod {
                payment_method_id,
                at,
            } => {
                if !s.cards.contains_key(&payment_method_id) {
                    return Err(Error::UnknownPaymentMethod(payment_method_id));
                }
                if s.default_card.as_ref() == Some(&payment_method_id) {
                    return Ok(vec![]);
                }
                Ok(vec![E::DefaultPaymentMethodSet {
                    payment_method_id,
                    at,
                }])
            }
            C::RemovePaymentMethod {
                payment_method_id,
                at,
            } => {
                if !s.cards.contains_key(&payment_method_id) {
                    // Detached twice, or never saved here: nothing to do.
                    return Ok(vec![]);
                }
                let mut events = Vec::new();
                let rule_uses_it = s
                    .auto_top_up
                    .as_ref()
                    .is_some_and(|r| r.payment_method_id == payment_method_id);
                events.push(E::PaymentMethodRemoved {
                    payment_method_id,
                    at,
                });
                if rule_uses_it {
                    // A rule cannot charge a card that is gone.
                    events.push(E::AutoTopUpDisabled { at });
                }
                Ok(events)
            }
            C::ObserveRunway {
                runway_hours,
                thresholds_hours,
                at,
            } => {
                let thresholds: BTreeSet<u64> = thresholds_hours.into_iter().collect();
                let mut events = Vec::new();
                for &threshold_hours in &thresholds {
                    let below = runway_hours.is_some_and(|r| r < threshold_hours);
                    let alerted = s.runway_alerts.contains(&threshold_hours);
                    match (below, alerted, runway_hours) {
                        (true, false, Some(runway_hours)) => events.push(E::RunwayAlertRaised {
                            threshold_hours,
                            runway_hours,
                            at,
                        }),
                        (false, true, _) => events.push(E::RunwayAlertCleared {
                            threshold_hours,
                            at,
                        }),
                        _ => {}
                    }
                }
                // A threshold no longer configured stops being alerted.
                for &threshold_hours in s.runway_alerts.difference(&thresholds) {
                    events.push(E::RunwayAlertCleared {
                        threshold_hours,
                        at,
                    });
                }
                Ok(events)
            }
        }
    }

    /// Changes the state by one event. Never fails: events are facts.
    pub fn apply_event(&mut self, event: &WalletEvent) {
        use WalletEvent as E;
        if let E::WalletOpened { owner, at } = event {
            self.state = Some(WalletState {
                owner: owner.clone(),
                opened_at: *at,
                linked: None,
                challenges: Vec::new(),
                top_ups: BTreeMap::new(),
                debits: BTreeMap::new(),
                refunds: BTreeMap::new(),
                disputes: BTreeMap::new(),
                auto_top_up: None,
                stripe_customer: None,
                cards: BTreeMap::new(),
                default_card: None,
                runway_alerts: BTreeSet::new(),
                chain_account: None,
                chain_transfers: BTreeMap::new(),
                last_bill: None,
                sla_credits: BTreeSet::new(),
                subscriptions: BTreeMap::new(),
                ledger: Vec::new(),
                balance: 0,
            });
            return;
        }
        let Some(s) = &mut self.state else {
            return;
        };
        match event {
            E::WalletOpened { .. } => {}
            E::ChainTwinRecorded { .. }
            | E::ChainTransferStarted { .. }
            | E::ChainTransferCompleted { .. } => super::custody::apply(s, event),
            E::BillPaid { .. } => super::billing::apply(s, event),
            E::SlaCreditReceived { .. } => super::billing::apply_sla_credit(s, event),
            E::SubscriptionStarted { .. }
            | E::SubscriptionInvoicePaid { .. }
            | E::SubscriptionPaymentFailed { .. }
            | E::SubscriptionCancelScheduled { .. }
            | E::SubscriptionUpdated { .. }
            | E::SubscriptionEnded { .. } => super::subscriptions::apply(s, event),
            E::LinkChallengeIssued {
                challenge_id,
                nonce,
                account,
                key_type,
                expires_at,
                at,
            } => s.challenges.push(LinkChallenge {
                challenge_id: *challenge_id,
                nonce: nonce.clone(),
                account: account.clone(),
                key_type: *key_type,
                issued_at: *at,
                expires_at: *expires_at,
                status: ChallengeStatus::Open,
            }),
            E::AccountLinked {
                challenge_id,
                account,
                key_type,
                at,
            } => {
                set_challenge_status(s, *challenge_id, ChallengeStatus::Linked);
                s.linked = Some(LinkedAccount {
                    account: account.clone(),
                    key_type: *key_type,
                    challenge_id: *challenge_id,
                    linked_at: *at,
                });
            }
            E::LinkAttemptFailed { challenge_id, .. } => {
                set_challenge_status(s, *challenge_id, ChallengeStatus::Failed);
            }
            E::TopUpCreated {
                top_up_id,
                payment_intent_id,
                usd_cents,
                tft_amount,
                tft_price,
                quote_expires_at,
                origin,
                at,
            } => {
                s.top_ups.insert(
                    payment_intent_id.clone(),
                    TopUp {
                        top_up_id: *top_up_id,
                        payment_intent_id: payment_intent_id.clone(),
                        usd_cents: *usd_cents,
                        tft_price: *tft_price,
                        tft_amount: *tft_amount,
                        quote_expires_at: *quote_expires_at,
                        origin: *origin,
                        created_at: *at,
                        status: TopUpStatus::Pending,
                        last_failure: None,
                        charge_id: None,
                        receipt_url: None,
                        returned_cents: 0,
                        returned_tft: TftAmount::default(),
                    },
                );
            }
            E::TopUpCredited {
                payment_intent_id,
                charge_id,
                tft_amount,
                receipt_url,
                at,
                ..
            } => {
                if let Some(t) = s.top_ups.get_mut(payment_intent_id) {
                    t.status = TopUpStatus::Credited;
                    t.charge_id = Some(charge_id.clone());
                    t.receipt_url = receipt_url.clone();
                }
                s.post(
                    EntryKind::TopUp,
                    i128::from(tft_amount.base_units()),
                    payment_intent_id.as_str(),
                    *at,
                );
            }
            E::ReceiptRecorded {
                payment_intent_id,
                receipt_url,
                ..
            } => {
                if let Some(t) = s.top_ups.get_mut(payment_intent_id) {
                    t.receipt_url = Some(receipt_url.clone());
                }
            }
            E::TopUpFailed {
                payment_intent_id,
                code,
                message,
                ..
            } => {
                if let Some(t) = s.top_ups.get_mut(payment_intent_id) {
                    t.status = TopUpStatus::Failed;
                    t.last_failure = Some(PaymentFailure {
                        code: code.clone(),
                        message: message.clone(),
                    });
                }
            }
            E::WalletDebited {
                debit_id,
                amount,
                at,
                ..
            } => {
                s.debits.insert(debit_id.clone(), *amount);
                s.post(
                    EntryKind::Debit,
                    -i128::from(amount.base_units()),
                    debit_id.as_str(),
                    *at,
                );
            }
            E::RefundRecorded {
                refund_id,
                charge_id,
                top_up_id,
                amount_cents,
                tft_amount,
                at,
            } => {
                let c = returned(s, charge_id, *top_up_id, *amount_cents, *tft_amount);
                s.refunds.insert(refund_id.clone(), c);
                s.post(
                    EntryKind::Refund,
                    -i128::from(tft_amount.base_units()),
                    refund_id.as_str(),
                    *at,
                );
            }
            E::DisputeRecorded {
                dispute_id,
                charge_id,
                top_up_id,
                amount_cents,
                tft_amount,
                at,
            } => {
                let c = returned(s, charge_id, *top_up_id, *amount_cents, *tft_amount);
                s.disputes.insert(dispute_id.clone(), c);
                s.post(
                    EntryKind::Dispute,
                    -i128::from(tft_amount.base_units()),
                    dispute_id.as_str(),
                    *at,
                );
            }
            E::AutoTopUpConfigured { config, .. } => s.auto_top_up = Some(config.clone()),
            E::AutoTopUpDisabled { .. } => s.auto_top_up = None,
            E::StripeCustomerAttached { customer_id, .. } => {
                s.stripe_customer = Some(customer_id.clone())
            }
            E::PaymentMethodSaved { card, .. } => {
                if s.default_card.is_none() {
                    s.default_card = Some(card.payment_method_id.clone());
                }
                s.cards.insert(card.payment_method_id.clone(), card.clone());
            }
            E::DefaultPaymentMethodSet {
                payment_method_id, ..
            } => s.default_card = Some(payment_method_id.clone()),
            E::PaymentMethodRemoved {
                payment_method_id, ..
            } => {
                s.cards.remove(payment_method_id);
                if s.default_card.as_ref() == Some(payment_method_id) {
                    s.default_card = None;
                }
            }
            E::RunwayAlertRaised {
                threshold_hours, ..
            } => {
                s.runway_alerts.insert(*threshold_hours);
            }
            E::RunwayAlertCleared {
                threshold_hours, ..
            } => {
                s.runway_alerts.remove(threshold_hours);
            }
        }
    }
}

fn set_challenge_status(s: &mut WalletState, challenge_id: Uuid, status: ChallengeStatus) {
    if let Some(c) = s
        .challenges
        .iter_mut()
        .find(|c| c.challenge_id == challenge_id)
    {
        c.status = status;
    }
}

crate::event_sourced!(Wallet, "wallet", WalletCommand, WalletEvent, WalletError);
