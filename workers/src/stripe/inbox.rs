//! The Stripe inbox worker: drains `stripe_inbox` oldest first (`FOR
//! UPDATE SKIP LOCKED` under a short lease, so several workers share it) and
//! turns each event into a wallet command. Wallet commands are idempotent on
//! Stripe's ids (the same payment credits once, the same refund counts
//! once), so the row is marked processed after the command commits: a crash
//! in between re-applies a no-op. An event that cannot apply yet (a refund
//! before the payment it refunds, a payment before its top-up committed) is
//! retried with backoff; one that never can is set aside with its error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use marketplace_app::stripe::{Gateway, PaymentsError};
use marketplace_app::{ids, store, CommandError, Committed, EventMetadata, Exec, Store};
use marketplace_domain::wallet::{
    ReceiptUrl, SavedCard, StripeId, SubscriptionStatus, Wallet, WalletCommand,
};
use marketplace_domain::TftPrice;
use marketplace_projections::wallets as views;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::events::*;
use crate::runtime::{self, Round, Schedule};

/// The subject the inbox worker's events are recorded under.
pub const ACTOR_SUBJECT: &str = "stripe-worker";

/// How a wallet command's refusal bears on the event: a missing wallet or
/// top-up may appear later (retry); a rule broken by the event's figures
/// will not change (poison); the database failing is retried.
fn command_outcome(result: Result<Committed<Wallet>, CommandError>, what: &str) -> Outcome {
    match result {
        Ok(done) if done.events.is_empty() => Outcome::Done(format!("{what}: already applied")),
        Ok(done) => Outcome::Done(format!("{what}: {} event(s)", done.events.len())),
        Err(CommandError::NotFound) => Outcome::Retry(format!("{what}: wallet not found yet")),
        Err(CommandError::Rule {
            slug: "unknown-payment" | "unknown-subscription",
            detail,
        }) => Outcome::Retry(format!("{what}: {detail}")),
        Err(CommandError::Unavailable(e))
        | Err(CommandError::Internal(e))
        | Err(CommandError::VersionConflict(e)) => Outcome::Retry(format!("{what}: {e}")),
        Err(
            e @ (CommandError::Forbidden
            | CommandError::Invalid { .. }
            | CommandError::Rule { .. }
            | CommandError::Exists { .. }
            | CommandError::IdempotencyKeyReused
            | CommandError::IdempotencyInProgress
            | CommandError::IdempotencyKeyTaken
            | CommandError::NotConfigured(_)),
        ) => Outcome::Poison(format!("{what}: {e}")),
    }
}

/// How long a worker holds an inbox event it is applying.
pub const LEASE: Duration = Duration::from_secs(60);

/// Settings of the Stripe inbox worker.
#[derive(Debug, Clone)]
pub struct InboxOptions {
    /// How often to look when no notification comes.
    pub poll: Duration,
    /// First retry delay; doubled each attempt.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// After this many attempts an event is set aside.
    pub max_attempts: i32,
}

impl Default for InboxOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(300),
            max_attempts: 30,
        }
    }
}

/// Applies Stripe inbox events to wallets.
#[derive(Clone)]
pub struct StripeInboxWorker {
    pool: PgPool,
    wallets: Arc<Store<Wallet>>,
    payments: Option<Gateway>,
    options: InboxOptions,
    tft_price: TftPrice,
}

/// The TFT price subscription invoices convert at before the chain has
/// reported one ($0.01, the default of `MARKETPLACE_TFT_PRICE_USD`).
fn default_tft_price() -> TftPrice {
    TftPrice::from_usd_units(100_000).expect("a positive price")
}

fn timestamp(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
}

impl StripeInboxWorker {
    /// A worker on this database; `payments` fetches receipts and card
    /// details (without it, receipts are left out and cards cannot be saved).
    pub fn new(pool: PgPool, payments: Option<Gateway>, options: InboxOptions) -> Self {
        Self {
            wallets: Arc::new(store(pool.clone())),
            pool,
            payments,
            options,
            tft_price: default_tft_price(),
        }
    }

    /// The configured TFT price paid subscription invoices convert at until
    /// the chain has reported one (`MARKETPLACE_TFT_PRICE_USD`).
    pub fn with_tft_price(mut self, tft_price: TftPrice) -> Self {
        self.tft_price = tft_price;
        self
    }

    /// Drains the inbox until `cancel`, woken by new events.
    pub async fn run(self, cancel: CancellationToken) {
        let schedule = Schedule::on_notify("stripe-inbox", "stripe_inbox", self.options.poll)
            .backing_off_to(Duration::from_secs(30));
        runtime::run(&self.pool, schedule, cancel, || async {
            Ok::<_, sqlx::Error>(match self.process_one().await? {
                Some(_) => Round::More,
                None => Round::Idle,
            })
        })
        .await;
    }

    /// Claims the oldest due event, applies it and records the outcome.
    /// `None` when nothing is due.
    ///
    /// The claim is a lease, not a long transaction: a short statement
    /// (`FOR UPDATE SKIP LOCKED`, so workers never take the same event)
    /// pushes the event's `next_attempt_at` past [`LEASE`] and commits. An
    /// open transaction would hold back the snapshot horizon the projection
    /// runners read below, delaying every view while Stripe is called. A
    /// worker that dies mid-event loses its lease and the event is applied
    /// again, which the idempotent wallet commands make a no-op.
    pub async fn process_one(&self) -> Result<Option<(String, Outcome)>, sqlx::Error> {
        let row: Option<(String, String, serde_json::Value, i32)> = sqlx::query_as(
            "UPDATE stripe_inbox SET next_attempt_at = now() + make_interval(secs => $1)
             WHERE event_id = (
                SELECT event_id FROM stripe_inbox
                WHERE processed_at IS NULL AND next_attempt_at <= now()
                ORDER BY created, event_id
                LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING event_id, event_type, payload, attempts",
        )
        .bind(LEASE.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        let Some((event_id, event_type, payload, attempts)) = row else {
            return Ok(None);
        };
        let outcome = match self.apply(&payload).await {
            Ok(outcome) | Err(outcome) => outcome,
        };
        let attempts = attempts + 1;
        match &outcome {
            Outcome::Done(note) => {
                debug!(%event_id, %event_type, %note, "Stripe event applied");
                sqlx::query(
                    "UPDATE stripe_inbox SET processed_at = now(), attempts = $2, last_error = NULL
                     WHERE event_id = $1",
                )
                .bind(&event_id)
                .bind(attempts)
                .execute(&self.pool)
                .await?;
            }
            Outcome::Retry(why) if attempts < self.options.max_attempts => {
                let delay = self
                    .options
                    .retry_base
                    .saturating_mul(1u32 << attempts.clamp(0, 16) as u32)
                    .min(self.options.retry_max);
                debug!(%event_id, %event_type, %why, ?delay, "Stripe event retried later");
                sqlx::query(
                    "UPDATE stripe_inbox SET attempts = $2, last_error = $3,
                        next_attempt_at = now() + make_interval(secs => $4)
                     WHERE event_id = $1",
                )
                .bind(&event_id)
                .bind(attempts)
                .bind(why)
                .bind(delay.as_secs_f64())
                .execute(&self.pool)
                .await?;
            }
            Outcome::Retry(why) | Outcome::Poison(why) => {
                warn!(%event_id, %event_type, error = %why, "Stripe event set aside");
                // Processed with an error: out of the queue, kept for an operator.
                sqlx::query(
                    "UPDATE stripe_inbox SET processed_at = now(), attempts = $2, last_error = $3
                     WHERE event_id = $1",
                )
                .bind(&event_id)
                .bind(attempts)
                .bind(why)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(Some((event_id, outcome)))
    }

    async fn wallet_for(
        &self,
        ids: &[&str],
        metadata: Option<&HashMap<String, String>>,
    ) -> Result<Option<String>, Outcome> {
        if let Some(w) = metadata.and_then(|m| m.get("wallet_id")) {
            return Ok(Some(w.clone()));
        }
        for id in ids {
            if let Some(w) = views::wallet_of(&self.pool, id)
                .await
                .map_err(|e| Outcome::Retry(e.to_string()))?
            {
                return Ok(Some(w));
            }
        }
        Ok(None)
    }

    /// The wallet whose Stripe customer `customer` is, from the customer's
    /// own metadata at Stripe; `None` when it is not the marketplace's.
    async fn customer_owner(&self, customer: &str) -> Result<Option<String>, Outcome> {
        let payments = self.payments.as_ref().ok_or_else(|| {
            Outcome::Retry(format!(
                "payments not configured: cannot tell whose customer {customer} is"
            ))
        })?;
        match payments.customer_metadata(customer).await {
            Ok(metadata) => Ok(metadata.get("wallet_id").cloned()),
            Err(PaymentsError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(Outcome::Retry(format!("customer {customer}: {e}"))),
        }
    }

    /// The wallet a refunded or disputed charge belongs to; `None` when it
    /// is not the marketplace's (a Stripe account shared with other
    /// products). Decided from what Stripe says about the charge: the
    /// object's own metadata, else its payment intent's (a top-up's names
    /// the wallet), never from whether the wallet views know it yet, so a
    /// refund of ours that arrives before its payment's credit still waits
    /// for it rather than being skipped. The views are asked first only to
    /// spare a call to Stripe.
    async fn charge_owner(
        &self,
        ids: &[&str],
        metadata: &HashMap<String, String>,
        payment_intent: Option<&str>,
    ) -> Result<Option<String>, Outcome> {
        if let Some(wallet) = self.wallet_for(ids, Some(metadata)).await? {
            return Ok(Some(wallet));
        }
        // Every charge of ours comes from a top-up's payment intent.
        let Some(pi) = payment_intent else {
            return Ok(None);
        };
        let payments = self.payments.as_ref().ok_or_else(|| {
            Outcome::Retry(format!(
                "payments not configured: cannot tell whose payment intent {pi} is"
            ))
        })?;
        match payments.payment_intent_metadata(pi).await {
            Ok(metadata) => Ok(metadata.get("wallet_id").cloned()),
            // Not on this account (a connected account's, say): not ours.
            Err(PaymentsError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(Outcome::Retry(format!("payment intent {pi}: {e}"))),
        }
    }

    /// The wallet a subscription (or its invoice) belongs to; `None` when
    /// it is not the marketplace's. The views know the subscriptions they
    /// recorded; the metadata the marketplace sets on each subscription
    /// names the wallet; else the customer says (a wallet's customer carries
    /// its wallet id), from Stripe, so an invoice that arrives before its
    /// subscription was recorded still waits for it rather than being skipped.
    async fn subscription_owner(
        &self,
        subscription_id: &str,
        metadata: Option<&HashMap<String, String>>,
        customer: Option<&str>,
    ) -> Result<Option<String>, Outcome> {
        let mut ids = vec![subscription_id];
        ids.extend(customer);
        if let Some(wallet) = self.wallet_for(&ids, metadata).await? {
            return Ok(Some(wallet));
        }
        match customer {
            Some(customer) => self.customer_owner(customer).await,
            None => Ok(None),
        }
    }

    /// The step after a credit: fetch the charge's receipt and record it.
    /// While Stripe cannot serve it the event is retried for the receipt
    /// alone: the credit, already committed, is a no-op on every retry.
    async fn record_receipt(
        &self,
        payments: &Gateway,
        wallet_id: &str,
        cause: &str,
        charge_id: &StripeId,
        credited: String,
    ) -> Outcome {
        let fetched = match payments.receipt_url(charge_id.as_str()).await {
            Ok(fetched) => fetched,
            Err(e @ PaymentsError::Refused { status, .. }) if status < 500 && status != 429 => {
                return Outcome::Poison(format!("payment credited; receipt refused: {e}"));
            }
            Err(e) => {
                return Outcome::Retry(format!("payment credited; receipt not fetched yet: {e}"))
            }
        };
        let Some(receipt_url) = fetched.and_then(|r| ReceiptUrl::new(&r).ok()) else {
            return Outcome::Done(format!("{credited}; no receipt"));
        };
        let at = Utc::now();
        match self
            .command(wallet_id, cause, "receipt", |_| {
                Ok(Some(WalletCommand::RecordReceipt {
                    charge_id: charge_id.clone(),
                    receipt_url: receipt_url.clone(),
                    at,
                }))
            })
            .await
        {
            Outcome::Done(note) => Outcome::Done(format!("{credited}; {note}")),
            Outcome::Retry(why) => Outcome::Retry(format!("payment credited; {why}")),
            Outcome::Poison(why) => Outcome::Poison(format!("payment credited; {why}")),
        }
    }

    async fn command(
        &self,
        wallet_id: &str,
        cause: &str,
        what: &str,
        build: impl Fn(&Wallet) -> Result<Option<WalletCommand>, CommandError>,
    ) -> Outcome {
        let result = Exec::new(
            &*self.wallets,
            wallet_id,
            EventMetadata::for_worker(ACTOR_SUBJECT, cause),
        )
        .run_unless_done(build)
        .await;
        command_outcome(result, what)
    }

    async fn apply(&self, payload: &serde_json::Value) -> Result<Outcome, Outcome> {
        let event: Event = parse(payload, "event")?;
        expect_object(&event.object, "event")?;
        let _ = (event.livemode, event.pending_webhooks);
        let at = DateTime::<Utc>::from_timestamp(event.created, 0)
            .ok_or_else(|| Outcome::Poison("bad created".into()))?;
        let object = &event.data.object;
        let cause = event.id.as_str();
        match event.kind.as_str() {
            "payment_intent.succeeded" => {
                let pi: PaymentIntentObject = parse(object, "payment intent")?;
                expect_object(&pi.object, "payment_intent")?;
                let _ = (
                    pi.amount,
                    pi.amount_capturable,
                    &pi.confirmation_method,
                    &pi.payment_method_types,
                    &pi.status,
                );
                if pi.currency != "usd" {
                    return Err(Outcome::Poison(format!("currency {}", pi.currency)));
                }
                let Some(wallet) = self.wallet_for(&[&pi.id], Some(&pi.metadata)).await? else {
                    return Ok(Outcome::Done("not a marketplace payment".into()));
                };
                let (charge_id, receipt) = paying_charge(&pi)?;
                let pi_id = sid("payment_intent_id", &pi.id)?;
                let charge_id = sid("charge_id", &charge_id)?;
                let amount = cents(pi.amount_received, "amount_received")?;
                // Credit first, with the receipt only when the event carries
                // it: fetching it is a step of its own, after the credit, so
                // Stripe failing to serve a receipt never holds back the TFT.
                let credited = Exec::new(
                    &*self.wallets,
                    wallet.as_str(),
                    EventMetadata::for_worker(ACTOR_SUBJECT, cause),
                )
                .run(|_| {
                    Ok(WalletCommand::RecordPaymentSucceeded {
                        payment_intent_id: pi_id.clone(),
                        amount_received_cents: amount,
                        charge_id: charge_id.clone(),
                        receipt_url: receipt.as_deref().and_then(|r| ReceiptUrl::new(r).ok()),
                        at,
                    })
                })
                .await;
                let has_receipt = credited
                    .as_ref()
                    .ok()
                    .and_then(|done| done.aggregate.state())
                    .and_then(|s| s.top_up(&pi_id))
                    .is_some_and(|t| t.receipt_url.is_some());
                let outcome = command_outcome(credited, "payment succeeded");
                match (outcome, &self.payments) {
                    (Outcome::Done(note), Some(payments)) if receipt.is_none() && !has_receipt => {
                        Ok(self
                            .record_receipt(payments, &wallet, cause, &charge_id, note)
                            .await)
                    }
                    (outcome, _) => Ok(outcome),
                }
            }
            "payment_intent.payment_failed" => {
                let pi: PaymentIntentObject = parse(object, "payment intent")?;
                expect_object(&pi.object, "payment_intent")?;
                let Some(wallet) = self.wallet_for(&[&pi.id], Some(&pi.metadata)).await? else {
                    return Ok(Outcome::Done("not a marketplace payment".into()));
                };
                let (code, message) = pi
                    .last_payment_error
                    .map(|e| {
                        (
                            e.code
                                .or(e.decline_code)
                                .unwrap_or_else(|| "payment_failed".into()),
                            e.message.unwrap_or_default(),
                        )
                    })
                    .unwrap_or_else(|| ("payment_failed".into(), String::new()));
                let pi_id = sid("payment_intent_id", &pi.id)?;
                Ok(self
                    .command(&wallet, cause, "payment failed", |_| {
                        Ok(Some(WalletCommand::RecordPaymentFailed {
                            payment_intent_id: pi_id.clone(),
                            code: code.clone(),
                            message: message.clone(),
                            at,
                        }))
                    })
                    .await)
            }
            "charge.refunded" => {
                let charge: ChargeObject = parse(object, "charge")?;
                expect_object(&charge.object, "charge")?;
                let _ = (charge.amount, charge.refunded, &charge.currency);
                let pi = charge.payment_intent.as_ref().map(|p| p.id().to_string());
                let mut ids = vec![charge.id.as_str()];
                if let Some(pi) = &pi {
                    ids.push(pi);
                }
                let Some(wallet) = self
                    .charge_owner(&ids, &charge.metadata, pi.as_deref())
                    .await?
                else {
                    info!(charge = %charge.id, "Stripe worker: refund of a charge that is not ours; skipped");
                    return Ok(Outcome::Done(format!(
                        "refund of {}: not ours (no wallet in its or its payment intent's metadata)",
                        charge.id
                    )));
                };
                let charge_id = sid("charge_id", &charge.id)?;
                let total = cents(charge.amount_refunded, "amount_refunded")?;
                // The event carries the charge's refunded total (its refunds
                // list is not included by default): record what this total
                // adds to the refunds already recorded. Events arriving out
                // of order then add nothing, and the total is reached once.
                let refund_id = sid("refund_id", &format!("{}_refunded_{total}", charge.id))?;
                Ok(self
                    .command(&wallet, cause, "refund", |w| {
                        let done: u64 = w
                            .state()
                            .map(|s| {
                                s.refunds
                                    .values()
                                    .filter(|c| c.charge_id == charge_id)
                                    .map(|c| c.amount_cents)
                                    .sum()
                            })
                            .unwrap_or(0);
                        if total <= done {
                            // Nothing new: "already applied".
                            return Ok(None);
                        }
                        Ok(Some(WalletCommand::RecordRefund {
                            charge_id: charge_id.clone(),
                            refund_id: refund_id.clone(),
                            amount_cents: total - done,
                            at,
                        }))
                    })
                    .await)
            }
            "charge.dispute.created" => {
                let d: DisputeObject = parse(object, "dispute")?;
                expect_object(&d.object, "dispute")?;
                let _ = (&d.currency, &d.status);
                let mut ids = vec![d.charge.id()];
                if let Some(pi) = &d.payment_intent {
                    ids.push(pi.id());
                }
                let pi = d.payment_intent.as_ref().map(Expandable::id);
                let Some(wallet) = self.charge_owner(&ids, &d.metadata, pi).await? else {
                    info!(charge = %d.charge.id(), dispute = %d.id, "Stripe worker: dispute of a charge that is not ours; skipped");
                    return Ok(Outcome::Done(format!(
                        "dispute of {}: not ours (no wallet in its payment intent's metadata)",
                        d.charge.id()
                    )));
                };
                let charge_id = sid("charge_id", d.charge.id())?;
                let dispute_id = sid("dispute_id", &d.id)?;
                let amount = cents(d.amount, "amount")?;
                Ok(self
                    .command(&wallet, cause, "dispute", |_| {
                        Ok(Some(WalletCommand::RecordDispute {
                            charge_id: charge_id.clone(),
                            dispute_id: dispute_id.clone(),
                            amount_cents: amount,
                            at,
                        }))
                    })
                    .await)
            }
            "setup_intent.succeeded" => {
                let si: SetupIntentObject = parse(object, "setup intent")?;
                expect_object(&si.object, "setup_intent")?;
                let _ = (&si.status, &si.usage);
                let customer = si.customer.as_ref().map(|c| c.id().to_string());
                let ids: Vec<&str> = customer.iter().map(String::as_str).collect();
                // Without our metadata, the customer tells whose card it is:
                // the views may know it, else Stripe does (a wallet's
                // customer carries its wallet id), so a view that has not
                // caught up yet never loses the card.
                let wallet = match self.wallet_for(&ids, si.metadata.as_ref()).await? {
                    Some(wallet) => Some(wallet),
                    None => match &customer {
                        Some(customer) => self.customer_owner(customer).await?,
                        None => None,
                    },
                };
                let Some(wallet) = wallet else {
                    return Ok(Outcome::Done("not a marketplace setup intent".into()));
                };
                let pm = si.payment_method.as_ref().ok_or_else(|| {
                    Outcome::Poison(format!("{} succeeded without a card", si.id))
                })?;
                let payments = self
                    .payments
                    .as_ref()
                    .ok_or_else(|| Outcome::Retry("payments not configured".into()))?;
                let card = payments
                    .card(pm.id())
                    .await
                    .map_err(|e| match e {
                        PaymentsError::Refused { .. } => Outcome::Poison(e.to_string()),
                        PaymentsError::Unavailable(_) => Outcome::Retry(e.to_string()),
                    })?
                    .ok_or_else(|| Outcome::Done("not a card".into()))?;
                let saved = SavedCard {
                    payment_method_id: sid("payment_method_id", &card.id)?,
                    brand: card.brand,
                    last4: card.last4,
                    exp_month: card.exp_month,
                    exp_year: card.exp_year,
                };
                Ok(self
                    .command(&wallet, cause, "card saved", |_| {
                        Ok(Some(WalletCommand::SavePaymentMethod {
                            card: saved.clone(),
                            at,
                        }))
                    })
                    .await)
            }
            "payment_method.detached" => {
                let pm: PaymentMethodObject = parse(object, "payment method")?;
                expect_object(&pm.object, "payment_method")?;
                let _ = &pm.kind;
                let Some(wallet) = self.wallet_for(&[&pm.id], None).await? else {
                    return Ok(Outcome::Done("not a saved card".into()));
                };
                let pm_id = sid("payment_method_id", &pm.id)?;
                Ok(self
                    .command(&wallet, cause, "card detached", |_| {
                        Ok(Some(WalletCommand::RemovePaymentMethod {
                            payment_method_id: pm_id.clone(),
                            at,
                        }))
                    })
                    .await)
            }
            "invoice.paid" | "invoice.payment_failed" => {
                let invoice: InvoiceObject = parse(object, "invoice")?;
                expect_object(&invoice.object, "invoice")?;
                let _ = (invoice.amount_due, &invoice.status);
                let Some(subscription_id) = invoice.subscription_id().map(str::to_string) else {
                    return Ok(Outcome::Done(format!(
                        "invoice {}: not a subscription's; skipped",
                        invoice.id
                    )));
                };
                let customer = invoice.customer.as_ref().map(Expandable::id);
                let Some(wallet) = self
                    .subscription_owner(&subscription_id, invoice.subscription_metadata(), customer)
                    .await?
                else {
                    info!(invoice = %invoice.id, subscription = %subscription_id, "Stripe worker: invoice of a subscription that is not ours; skipped");
                    return Ok(Outcome::Done(format!(
                        "invoice {}: not ours (no wallet for its subscription or customer)",
                        invoice.id
                    )));
                };
                if invoice.currency != "usd" {
                    return Err(Outcome::Poison(format!("currency {}", invoice.currency)));
                }
                let sub_id = sid("subscription_id", &subscription_id)?;
                let invoice_id = sid("invoice_id", &invoice.id)?;
                let charge = invoice.charge()?;
                let period_end = timestamp(invoice.period_end());
                if event.kind == "invoice.paid" {
                    let amount = cents(invoice.amount_paid, "amount_paid")?;
                    let charge_id = match &charge {
                        Some((id, _)) => Some(sid("charge_id", id)?),
                        None => None,
                    };
                    // The price in force now: what the paid cents buy is
                    // fixed when the payment is recorded, once.
                    let (tft_price, _) =
                        marketplace_app::tft_price::current(&self.pool, self.tft_price)
                            .await
                            .map_err(|e| Outcome::Retry(format!("TFT price: {e}")))?;
                    let top_up_id = ids::subscription_invoice(&wallet, &invoice.id);
                    Ok(self
                        .command(&wallet, cause, "subscription invoice paid", |_| {
                            Ok(Some(WalletCommand::RecordSubscriptionInvoicePaid {
                                subscription_id: sub_id.clone(),
                                invoice_id: invoice_id.clone(),
                                top_up_id,
                                amount_paid_cents: amount,
                                charge_id: charge_id.clone(),
                                tft_price,
                                period_end,
                                at,
                            }))
                        })
                        .await)
                } else {
                    let (code, message) =
                        charge.and_then(|(_, failure)| failure).unwrap_or_else(|| {
                            (
                                "payment_failed".into(),
                                "the invoice's payment failed".into(),
                            )
                        });
                    let attempt = u32::try_from(invoice.attempt_count.max(1)).unwrap_or(u32::MAX);
                    let next_attempt_at = timestamp(invoice.next_payment_attempt);
                    Ok(self
                        .command(&wallet, cause, "subscription payment failed", |_| {
                            Ok(Some(WalletCommand::RecordSubscriptionPaymentFailed {
                                subscription_id: sub_id.clone(),
                                invoice_id: invoice_id.clone(),
                                attempt,
                                code: code.clone(),
                                message: message.clone(),
                                next_attempt_at,
                                at,
                            }))
                        })
                        .await)
                }
            }
            "customer.subscription.updated" | "customer.subscription.deleted" => {
                let sub: SubscriptionObject = parse(object, "subscription")?;
                expect_object(&sub.object, "subscription")?;
                let status = SubscriptionStatus::parse(&sub.status).ok_or_else(|| {
                    Outcome::Poison(format!("unknown subscription status {}", sub.status))
                })?;
                let Some(wallet) = self
                    .subscription_owner(&sub.id, Some(&sub.metadata), Some(sub.customer.id()))
                    .await?
                else {
                    info!(subscription = %sub.id, "Stripe worker: subscription that is not ours; skipped");
                    return Ok(Outcome::Done(format!("subscription {}: not ours", sub.id)));
                };
                let sub_id = sid("subscription_id", &sub.id)?;
                let period_end = timestamp(sub.period_end());
                let now = Utc::now();
                if event.kind == "customer.subscription.deleted" {
                    return Ok(self
                        .command(&wallet, cause, "subscription ended", |_| {
                            Ok(Some(WalletCommand::EndSubscription {
                                subscription_id: sub_id.clone(),
                                at,
                            }))
                        })
                        .await);
                }
                Ok(self
                    .command(&wallet, cause, "subscription updated", |_| {
                        Ok(Some(WalletCommand::RecordSubscriptionState {
                            subscription_id: sub_id.clone(),
                            status,
                            cancel_at_period_end: sub.cancel_at_period_end,
                            current_period_end: period_end,
                            observed_at: at,
                            at: now,
                        }))
                    })
                    .await)
            }
            other => Ok(Outcome::Done(format!("{other}: not handled"))),
        }
    }
}
