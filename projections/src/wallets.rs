//! The wallet views: the wallet as its owner reads it (balance, ledger with
//! receipts, cards, auto top-up rule, alerts), its activity feed, and the
//! map from Stripe ids to wallets the Stripe worker routes events by.
//!
//! The view row keeps the aggregate itself, folded from events by the
//! domain's own `apply_event`, so the view cannot disagree with the rules
//! (balance == sum of ledger holds here too).

use chrono::{DateTime, Utc};
use marketplace_domain::wallet::{Wallet, WalletEvent, EVENT_VERSION};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::{ApplyError, Projection, StoredEvent};

/// Builds `wallet_views`, `wallet_activity` and `wallet_stripe_refs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalletProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "wallets";

/// Reads a stored wallet event, upcasting older payload versions.
pub fn upcast(event: &StoredEvent) -> Result<WalletEvent, ApplyError> {
    crate::decode_event(event, EVENT_VERSION)
}

fn poison(what: &str) -> impl Fn(serde_json::Error) -> ApplyError + '_ {
    move |e| ApplyError::Poison(format!("{what}: {e}"))
}

/// The Stripe ids an event ties to its wallet.
fn stripe_refs(event: &WalletEvent) -> Vec<String> {
    use WalletEvent as E;
    match event {
        E::TopUpCreated {
            payment_intent_id, ..
        } => vec![payment_intent_id.as_str().to_string()],
        E::TopUpCredited { charge_id, .. } => vec![charge_id.as_str().to_string()],
        E::StripeCustomerAttached { customer_id, .. } => vec![customer_id.as_str().to_string()],
        E::PaymentMethodSaved { card, .. } => vec![card.payment_method_id.as_str().to_string()],
        E::SubscriptionStarted {
            subscription_id, ..
        } => vec![subscription_id.as_str().to_string()],
        E::SubscriptionInvoicePaid {
            invoice_id,
            charge_id,
            ..
        } => std::iter::once(invoice_id)
            .chain(charge_id)
            .map(|id| id.as_str().to_string())
            .collect(),
        _ => vec![],
    }
}

#[async_trait::async_trait]
impl Projection for WalletProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["wallet"]
    }

    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let event = upcast(stored)?;
        let id = stored.aggregate_id.as_str();
        let seq = stored.sequence;
        let current: Option<(i64, Value)> = sqlx::query_as(
            "SELECT version, state FROM wallet_views WHERE wallet_id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let mut wallet = match (&current, &event) {
            (None, WalletEvent::WalletOpened { .. }) if seq == 1 => Wallet::default(),
            (Some((version, state)), _) if *version == seq - 1 => {
                serde_json::from_value::<Wallet>(state.clone()).map_err(poison("stored wallet"))?
            }
            _ => return crate::unchanged(current.map(|(v, _)| v), stored, "wallet"),
        };
        wallet.apply_event(&event);
        let state = serde_json::to_value(&wallet).map_err(poison("wallet"))?;
        let balance = i64::try_from(wallet.balance())
            .map_err(|_| ApplyError::Poison("balance out of range".into()))?;
        let auto_threshold = wallet
            .state()
            .and_then(|s| s.auto_top_up.as_ref())
            .map(|r| i64::try_from(r.threshold.base_units()).unwrap_or(i64::MAX));
        let opened_at = wallet.state().map_or(event.at(), |s| s.opened_at);
        let twin_id = wallet
            .state()
            .and_then(|s| s.chain_account.as_ref())
            .map(|a| i64::from(a.twin_id));
        sqlx::query(
            "INSERT INTO wallet_views
                (wallet_id, version, balance, auto_threshold, state, opened_at, updated_at, twin_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (wallet_id) DO UPDATE SET version = $2, balance = $3,
                auto_threshold = $4, state = $5, updated_at = $7, twin_id = $8",
        )
        .bind(id)
        .bind(seq)
        .bind(balance)
        .bind(auto_threshold)
        .bind(&state)
        .bind(opened_at)
        .bind(event.at())
        .bind(twin_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO wallet_activity (wallet_id, sequence, event_type, payload, at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(seq)
        .bind(&stored.event_type)
        .bind(&stored.payload)
        .bind(event.at())
        .execute(&mut *conn)
        .await?;
        if let WalletEvent::BillPaid {
            bill,
            deployment_id,
            ..
        } = &event
        {
            sqlx::query(
                "INSERT INTO wallet_bills (wallet_id, block_number, event_index, contract_id,
                    deployment_id, amount, discount_level, billed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(i64::from(bill.event.block_number))
            .bind(i64::from(bill.event.event_index))
            .bind(
                i64::try_from(bill.contract_id)
                    .map_err(|_| ApplyError::Poison("contract id out of range".into()))?,
            )
            .bind(deployment_id)
            .bind(
                i64::try_from(bill.amount.base_units())
                    .map_err(|_| ApplyError::Poison("bill out of range".into()))?,
            )
            .bind(bill.discount_level.as_str())
            .bind(bill.billed_at)
            .execute(&mut *conn)
            .await?;
        }
        for stripe_id in stripe_refs(&event) {
            sqlx::query(
                "INSERT INTO wallet_stripe_refs (stripe_id, wallet_id) VALUES ($1, $2)
                 ON CONFLICT (stripe_id) DO NOTHING",
            )
            .bind(stripe_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "wallet_views",
            "wallet_activity",
            "wallet_stripe_refs",
            "wallet_bills",
        ]
    }
}

/// A wallet as the view has it.
#[derive(Debug, Clone)]
pub struct WalletRow {
    /// The owner's subject.
    pub wallet_id: String,
    /// Last aggregate sequence applied.
    pub version: i64,
    /// The aggregate at that version.
    pub wallet: Wallet,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Reads a wallet's view row.
pub async fn find(pool: &PgPool, wallet_id: &str) -> Result<Option<WalletRow>, sqlx::Error> {
    let row: Option<(i64, Value, DateTime<Utc>)> =
        sqlx::query_as("SELECT version, state, updated_at FROM wallet_views WHERE wallet_id = $1")
            .bind(wallet_id)
            .fetch_optional(pool)
            .await?;
    row.map(|(version, state, updated_at)| {
        let wallet = serde_json::from_value(state).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(WalletRow {
            wallet_id: wallet_id.to_string(),
            version,
            wallet,
            updated_at,
        })
    })
    .transpose()
}

/// One entry of a wallet's activity feed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    /// The event's sequence.
    pub sequence: i64,
    /// The event's type.
    pub event_type: String,
    /// The event as stored.
    pub payload: Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// A wallet's activity, newest first, `limit` entries before `before` (a sequence).
pub async fn activity(
    pool: &PgPool,
    wallet_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ActivityRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, event_type, payload, at FROM wallet_activity
         WHERE wallet_id = $1 AND sequence < $2 ORDER BY sequence DESC LIMIT $3",
    )
    .bind(wallet_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The wallet a Stripe object belongs to, if the view knows it.
pub async fn wallet_of(pool: &PgPool, stripe_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT wallet_id FROM wallet_stripe_refs WHERE stripe_id = $1")
        .bind(stripe_id)
        .fetch_optional(pool)
        .await
}

/// Every wallet's id and balance, by id (for measuring runways).
pub async fn balances(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT wallet_id, balance FROM wallet_views ORDER BY wallet_id")
        .fetch_all(pool)
        .await
}

/// The wallets whose balance is below their auto top-up threshold.
pub async fn below_auto_top_up_threshold(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT wallet_id FROM wallet_views
          WHERE auto_threshold IS NOT NULL AND balance < auto_threshold",
    )
    .fetch_all(pool)
    .await
}

/// Every wallet with a custodial chain account: (wallet, its account's
/// address), for reconciling ledgers with the chain.
pub async fn custodial(pool: &PgPool) -> Result<Vec<(String, Wallet)>, sqlx::Error> {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT wallet_id, state FROM wallet_views WHERE twin_id IS NOT NULL ORDER BY wallet_id",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(id, state)| {
            serde_json::from_value::<Wallet>(state)
                .map(|w| (id, w))
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .collect()
}
