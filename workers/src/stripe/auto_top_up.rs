//! The auto top-up worker: charges the saved card off-session when a
//! wallet's balance is below its rule's threshold: one intent at a time per
//! wallet (a PostgreSQL advisory lock around "decide, create the intent,
//! record it"), within the monthly cap, failures recorded for the user to
//! see.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use marketplace_app::stripe::{Gateway, PaymentsError};
use marketplace_app::{ids, store, CommandError, EventMetadata, Exec, Store};
use marketplace_domain::wallet::{
    StripeId, TopUpOrigin, TopUpStatus, Wallet, WalletCommand, QUOTE_TTL,
};
use marketplace_domain::TftPrice;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::runtime::{self, Round, Schedule};

/// The subject the auto top-up worker's events are recorded under.
pub const WORKER: &str = "auto-top-up";

/// Settings of the auto top-up worker.
#[derive(Debug, Clone)]
pub struct AutoTopUpOptions {
    /// How often wallets are scanned.
    pub interval: Duration,
    /// After a failed automatic top-up, wait this long before charging again.
    pub retry_after: chrono::Duration,
    /// The TFT price quotes convert at.
    pub tft_price: TftPrice,
}

/// Charges saved cards of wallets below their threshold.
#[derive(Clone)]
pub struct AutoTopUpWorker {
    pool: PgPool,
    wallets: Arc<Store<Wallet>>,
    payments: Gateway,
    options: AutoTopUpOptions,
}

/// What one wallet's check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoTopUpResult {
    /// Another worker holds the wallet.
    Busy,
    /// Nothing to do (above threshold, pending, cooling down, capped, no card).
    Skipped(&'static str),
    /// An intent was created and confirmed; the webhook will credit it.
    Charged(String),
    /// The card was charged off-session and refused.
    Failed(String),
}

impl AutoTopUpWorker {
    /// A worker.
    pub fn new(pool: PgPool, payments: Gateway, options: AutoTopUpOptions) -> Self {
        Self {
            wallets: Arc::new(store(pool.clone())),
            pool,
            payments,
            options,
        }
    }

    /// Scans every interval until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let schedule = Schedule::every(WORKER, self.options.interval);
        runtime::run(&self.pool, schedule, cancel, || async {
            self.scan_once().await.map(|_| Round::Idle)
        })
        .await;
    }

    /// Checks every wallet the view shows below its threshold.
    pub async fn scan_once(&self) -> Result<Vec<(String, AutoTopUpResult)>, CommandError> {
        let due = marketplace_projections::wallets::below_auto_top_up_threshold(&self.pool).await?;
        let mut results = Vec::new();
        for wallet_id in due {
            // One wallet failing (Stripe down, a refusal) does not stop the others.
            match self.check(&wallet_id).await {
                Ok(r) => {
                    if !matches!(r, AutoTopUpResult::Skipped(_) | AutoTopUpResult::Busy) {
                        info!(%wallet_id, result = ?r, "auto top-up");
                    }
                    results.push((wallet_id, r));
                }
                Err(e) => warn!(%wallet_id, error = %e, "auto top-up failed; next scan retries"),
            }
        }
        Ok(results)
    }

    /// Decides, charges and records one wallet's automatic top-up under a
    /// per-wallet advisory lock, reading the wallet from the store (not the
    /// view), so concurrent checks create at most one intent.
    pub async fn check(&self, wallet_id: &str) -> Result<AutoTopUpResult, CommandError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtext('auto-top-up'), hashtext($1))",
        )
        .bind(wallet_id)
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Ok(AutoTopUpResult::Busy);
        }
        let result = self.check_locked(wallet_id).await;
        tx.commit().await?;
        result
    }

    async fn check_locked(&self, wallet_id: &str) -> Result<AutoTopUpResult, CommandError> {
        let (wallet, version) = marketplace_app::bus::load(&self.wallets, wallet_id).await?;
        let Some(s) = wallet.state() else {
            return Ok(AutoTopUpResult::Skipped("no wallet"));
        };
        let Some(rule) = s.auto_top_up.clone() else {
            return Ok(AutoTopUpResult::Skipped("no rule"));
        };
        let now = Utc::now();
        if s.balance() >= i128::from(rule.threshold.base_units()) {
            return Ok(AutoTopUpResult::Skipped("above threshold"));
        }
        if s.pending_auto_top_up().is_some() {
            return Ok(AutoTopUpResult::Skipped("one pending"));
        }
        let failed_lately = s.top_ups.values().any(|t| {
            t.origin == TopUpOrigin::Auto
                && t.status == TopUpStatus::Failed
                && now - t.created_at < self.options.retry_after
        });
        if failed_lately {
            return Ok(AutoTopUpResult::Skipped("cooling down after a failure"));
        }
        if s.auto_top_up_cents_in_month(now)
            .saturating_add(rule.amount_cents)
            > rule.monthly_cap_cents
        {
            return Ok(AutoTopUpResult::Skipped("monthly cap reached"));
        }
        let Some(customer) = s.stripe_customer.clone() else {
            return Ok(AutoTopUpResult::Skipped("no Stripe customer"));
        };
        // Derived from the wallet's version: a retry after a crash between
        // creating the intent and recording it reuses the same Stripe
        // idempotency key, so it finds the same (unconfirmed) intent.
        let top_up_id = ids::auto_top_up(wallet_id, version as usize);
        let cause = format!("auto-top-up-{top_up_id}");
        let intent = self
            .payments
            .create_auto_top_up_intent(
                customer.as_str(),
                rule.payment_method_id.as_str(),
                rule.amount_cents,
                wallet_id,
                &top_up_id.to_string(),
            )
            .await?;
        let pi = StripeId::new("payment_intent_id", &intent.id)
            .map_err(|e| CommandError::Internal(e.reason))?;
        let (tft_price, _) =
            marketplace_app::tft_price::current(&self.pool, self.options.tft_price).await?;
        Exec::new(
            &*self.wallets,
            wallet_id,
            EventMetadata::for_worker(WORKER, &cause),
        )
        .run(|_| {
            Ok(WalletCommand::CreateAutoTopUp {
                top_up_id,
                payment_intent_id: pi.clone(),
                tft_price,
                quote_expires_at: now + QUOTE_TTL,
                at: now,
            })
        })
        .await?;
        let failure = match self.payments.confirm_off_session(&intent.id).await {
            Ok(confirmed) if confirmed.status == "requires_action" => Some((
                "authentication_required".to_string(),
                "The card needs the cardholder to authenticate; pay by hand to top up.".to_string(),
            )),
            Ok(confirmed) => confirmed
                .last_error
                .filter(|_| confirmed.status == "requires_payment_method"),
            Err(PaymentsError::Refused { code, message, .. }) => Some((code, message)),
            Err(e @ PaymentsError::Unavailable(_)) => {
                // The intent may or may not be confirmed: Stripe's webhook settles it.
                warn!(%wallet_id, error = %e, "auto top-up: confirmation unanswered");
                None
            }
        };
        match failure {
            None => Ok(AutoTopUpResult::Charged(intent.id)),
            Some((code, message)) => {
                Exec::new(
                    &*self.wallets,
                    wallet_id,
                    EventMetadata::for_worker(WORKER, &cause),
                )
                .run(|_| {
                    Ok(WalletCommand::RecordPaymentFailed {
                        payment_intent_id: pi.clone(),
                        code: code.clone(),
                        message: message.clone(),
                        at: Utc::now(),
                    })
                })
                .await?;
                Ok(AutoTopUpResult::Failed(code))
            }
        }
    }
}
