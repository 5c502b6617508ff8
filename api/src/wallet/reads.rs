//! Reading wallets: balance, ledger with receipts, cards, top-ups, the auto
//! top-up rule, runway and discount level, and the activity feed. Reads
//! come from the wallet view and can wait for the caller's own write
//! (`min_version`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_app::runway::{runway, Runway};
use marketplace_domain::pricing::DiscountLevel;
use marketplace_domain::wallet::{EntryKind, StripeId, TopUpOrigin, TopUpStatus, Wallet};
use marketplace_domain::TftAmount;
use marketplace_projections::wallets as views;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{AsUser, AsUserOrOperator};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::views_watch::read_visible;
use crate::AppState;

/// What the user's active deployments burn, and what the balance earns.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunwayBody {
    /// TFT base units per hour, after the staking discount, of the user's
    /// provisioning and running deployments.
    pub hourly_burn_tft_units: u64,
    /// Whole hours the balance lasts at that burn; absent when nothing burns.
    pub runway_hours: Option<u64>,
    /// The staking discount level the balance earns against the monthly
    /// cost of those deployments (DOMAIN.md table): `none`, `default`,
    /// `bronze`, `silver` or `gold`.
    #[schema(value_type = String, example = "none")]
    pub discount_level: DiscountLevel,
    /// That level's discount in percent.
    pub discount_percent: u64,
    /// `bills`: the burn is each of the user's contracts' latest bill
    /// scaled to an hour (by the time since the bill before it) and the
    /// level the one the chain applied on the newest bill; `estimate`:
    /// nothing was billed yet, both come from the active deployments' quotes.
    #[schema(example = "bills")]
    pub source: &'static str,
    /// When the chain last billed the user's contracts.
    pub last_billed_at: Option<DateTime<Utc>>,
}

impl From<Runway> for RunwayBody {
    fn from(r: Runway) -> Self {
        Self {
            hourly_burn_tft_units: r.hourly_burn_tft_units,
            runway_hours: r.runway_hours,
            discount_level: r.discount_level,
            discount_percent: r.discount_percent,
            source: r.source.as_str(),
            last_billed_at: r.last_billed_at,
        }
    }
}

/// A linked TFChain account.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedAccountBody {
    /// SS58 address.
    pub account: String,
    /// `sr25519` or `ed25519`.
    pub key_type: String,
    /// When it was proved.
    pub linked_at: DateTime<Utc>,
}

/// A saved card.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardBody {
    /// Stripe's payment method id.
    pub payment_method_id: String,
    /// Brand.
    pub brand: String,
    /// Last four digits.
    pub last4: String,
    /// Expiry month.
    pub exp_month: u32,
    /// Expiry year.
    pub exp_year: u32,
    /// Whether it is the default (and auto top-up) card.
    pub default: bool,
}

/// The auto top-up rule.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoTopUpBody {
    /// Top up when the balance falls below this many TFT base units.
    pub threshold_tft_units: u64,
    /// Cents charged each time.
    pub amount_cents: u64,
    /// Most cents charged per calendar month (UTC).
    pub monthly_cap_cents: u64,
    /// The card charged; the default card when omitted.
    #[schema(pattern = "^[A-Za-z0-9]+_[A-Za-z0-9_]+$", max_length = 255)]
    pub payment_method_id: Option<String>,
}

/// A card top-up.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopUpBody {
    /// Our id.
    pub top_up_id: Uuid,
    /// Stripe's payment intent.
    pub payment_intent_id: String,
    /// Price in cents.
    pub usd_cents: u64,
    /// TFT base units credited once paid.
    pub tft_units: u64,
    /// The TFT price quoted, USD units (10^-7 USD) per TFT.
    pub tft_price_usd_units: u64,
    /// Until when the quote holds.
    pub quote_expires_at: DateTime<Utc>,
    /// `manual`, `auto` or `subscription` (a paid invoice of the monthly
    /// subscription; `payment_intent_id` is then the invoice's id).
    pub origin: String,
    /// `pending`, `failed` or `credited`.
    pub status: String,
    /// Stripe's code for the last failure (`card_declined`, `authentication_required`).
    pub failure_code: Option<String>,
    /// Stripe's message for it.
    pub failure_message: Option<String>,
    /// The charge that paid it.
    pub charge_id: Option<String>,
    /// Stripe's receipt.
    pub receipt_url: Option<String>,
    /// Cents refunded or disputed.
    pub returned_cents: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A ledger line.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryBody {
    /// `top_up`, `debit`, `refund`, `dispute` or `bill`.
    pub kind: String,
    /// TFT base units, positive for credits.
    pub amount_tft_units: i64,
    /// The payment intent, debit, refund or dispute id; for a bill, the
    /// deployment (or `contract-<id>`).
    pub reference: String,
    /// Stripe's receipt, for top-ups.
    pub receipt_url: Option<String>,
    /// For a bill: the chain contract. A bill line sums that contract's
    /// bills of one UTC day.
    pub contract_id: Option<u64>,
    /// For a bill: how many of the chain's bills the line sums.
    pub bills: Option<u32>,
    /// When (for a bill line, its first bill).
    pub at: DateTime<Utc>,
}

/// A wallet as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletBody {
    /// The wallet's id (the owner's subject).
    pub wallet_id: String,
    /// The view's version (0: not opened yet).
    pub version: i64,
    /// TFT base units (1 TFT = 10^7): the sum of the ledger.
    pub balance_tft_units: i64,
    /// The linked TFChain account.
    pub linked_account: Option<LinkedAccountBody>,
    /// Saved cards.
    pub payment_methods: Vec<CardBody>,
    /// The auto top-up rule, when on.
    pub auto_top_up: Option<AutoTopUpBody>,
    /// Card top-ups, newest first.
    pub top_ups: Vec<TopUpBody>,
    /// Every credit and debit, newest first.
    pub ledger: Vec<LedgerEntryBody>,
    /// Burn, runway and staking discount.
    pub runway: RunwayBody,
    /// Runway thresholds (hours) currently crossed.
    pub runway_alerts: Vec<u64>,
    /// Whether card payments are configured on this marketplace.
    pub payments_configured: bool,
    /// The monthly top-up subscription: the running one, else the one
    /// that ended last; absent when there was never one.
    pub subscription: Option<super::subscriptions::SubscriptionBody>,
}

pub(super) fn top_up_body(t: &marketplace_domain::wallet::TopUp) -> TopUpBody {
    TopUpBody {
        top_up_id: t.top_up_id,
        payment_intent_id: t.payment_intent_id.as_str().to_string(),
        usd_cents: t.usd_cents,
        tft_units: t.tft_amount.base_units(),
        tft_price_usd_units: t.tft_price.usd_units(),
        quote_expires_at: t.quote_expires_at,
        origin: match t.origin {
            TopUpOrigin::Manual => "manual",
            TopUpOrigin::Auto => "auto",
            TopUpOrigin::Subscription => "subscription",
        }
        .to_string(),
        status: match t.status {
            TopUpStatus::Pending => "pending",
            TopUpStatus::Failed => "failed",
            TopUpStatus::Credited => "credited",
        }
        .to_string(),
        failure_code: t.last_failure.as_ref().map(|f| f.code.clone()),
        failure_message: t.last_failure.as_ref().map(|f| f.message.clone()),
        charge_id: t.charge_id.as_ref().map(|c| c.as_str().to_string()),
        receipt_url: t.receipt_url.as_ref().map(|r| r.as_str().to_string()),
        returned_cents: t.returned_cents,
        created_at: t.created_at,
    }
}

pub(super) async fn wallet_body(
    state: &AppState,
    wallet_id: &str,
    row: Option<views::WalletRow>,
) -> Result<WalletBody, ApiError> {
    let (version, wallet) = row.map_or((0, Wallet::default()), |r| (r.version, r.wallet));
    let balance = wallet.balance();
    let policy = crate::policy::in_force(state).await?.policy;
    let runway = runway(
        &state.pool,
        &policy,
        crate::tft_price::in_force(state).await?,
        wallet_id,
        balance,
        wallet.state().and_then(|s| s.last_bill),
    )
    .await?
    .into();
    let mut body = WalletBody {
        wallet_id: wallet_id.to_string(),
        version,
        balance_tft_units: i64::try_from(balance).unwrap_or(i64::MAX),
        linked_account: None,
        payment_methods: Vec::new(),
        auto_top_up: None,
        top_ups: Vec::new(),
        ledger: Vec::new(),
        runway,
        runway_alerts: Vec::new(),
        payments_configured: state.settings.payments.is_some(),
        subscription: None,
    };
    let Some(s) = wallet.state() else {
        return Ok(body);
    };
    body.linked_account = s.linked.as_ref().map(|l| LinkedAccountBody {
        account: l.account.as_str().to_string(),
        key_type: l.key_type.as_str().to_string(),
        linked_at: l.linked_at,
    });
    body.payment_methods = s
        .cards
        .values()
        .map(|c| CardBody {
            payment_method_id: c.payment_method_id.as_str().to_string(),
            brand: c.brand.clone(),
            last4: c.last4.clone(),
            exp_month: c.exp_month,
            exp_year: c.exp_year,
            default: s.default_card.as_ref() == Some(&c.payment_method_id),
        })
        .collect();
    body.auto_top_up = s.auto_top_up.as_ref().map(|r| AutoTopUpBody {
        threshold_tft_units: r.threshold.base_units(),
        amount_cents: r.amount_cents,
        monthly_cap_cents: r.monthly_cap_cents,
        payment_method_id: Some(r.payment_method_id.as_str().to_string()),
    });
    let mut top_ups: Vec<_> = s.top_ups.values().collect();
    top_ups.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    body.top_ups = top_ups.into_iter().map(top_up_body).collect();
    body.ledger = s
        .ledger()
        .iter()
        .rev()
        .map(|e| LedgerEntryBody {
            kind: entry_kind(e.kind).to_string(),
            amount_tft_units: i64::try_from(e.amount).unwrap_or(i64::MAX),
            receipt_url: match e.kind {
                EntryKind::TopUp => StripeId::new("reference", &e.reference)
                    .ok()
                    .and_then(|pi| s.top_up(&pi))
                    .and_then(|t| t.receipt_url.as_ref())
                    .map(|r| r.as_str().to_string()),
                _ => None,
            },
            reference: e.reference.clone(),
            contract_id: e.contract_id,
            bills: (e.kind == EntryKind::Bill).then_some(e.bills),
            at: e.at,
        })
        .collect();
    body.runway_alerts = s.runway_alerts.iter().copied().collect();
    body.subscription = s
        .current_subscription()
        .or_else(|| s.subscriptions.values().max_by_key(|s| s.started_at))
        .map(super::subscriptions::subscription_body);
    Ok(body)
}

/// A ledger entry's kind as the API spells it.
pub(super) fn entry_kind(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::TopUp => "top_up",
        EntryKind::Debit => "debit",
        EntryKind::Refund => "refund",
        EntryKind::Dispute => "dispute",
        EntryKind::Bill => "bill",
        EntryKind::SlaCredit => "sla_credit",
    }
}

/// Read parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// Wait (bounded) until the view has reached this version, as returned by a command.
    pub min_version: Option<i64>,
}

pub(super) async fn read_wallet_row(
    state: &AppState,
    wallet_id: &str,
    min_version: i64,
) -> Result<Option<views::WalletRow>, ApiError> {
    if min_version <= 0 {
        return Ok(views::find(&state.pool, wallet_id).await?);
    }
    let pool = &state.pool;
    let row = read_visible(
        &state.views,
        state.settings.read_wait,
        min_version,
        || views::find(pool, wallet_id),
        |_| true,
        |row: &views::WalletRow| row.version,
    )
    .await?;
    Ok(Some(row))
}

/// The caller's wallet: balance, ledger with receipts, cards, top-ups,
/// auto top-up rule, runway and discount level. A wallet not opened yet
/// reads as empty (version 0).
#[utoipa::path(
    get, path = "/v1/wallet", tag = "wallet",
    params(ReadParams),
    responses(
        (status = 200, body = WalletBody),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem, description = "The view did not reach min_version in time")
    ),
    security(("bearer" = []))
)]
pub async fn get_wallet(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Json<WalletBody>, ApiError> {
    let row = read_wallet_row(&state, &actor.subject, params.min_version.unwrap_or(0)).await?;
    wallet_body(&state, &actor.subject, row).await.map(Json)
}

/// Any wallet by id: an operator reads every wallet, a user only their own
/// (another user's wallet answers 404).
#[utoipa::path(
    get, path = "/v1/wallets/{wallet_id}", tag = "wallet",
    params(("wallet_id" = String, Path, description = "The owner's subject"), ReadParams),
    responses(
        (status = 200, body = WalletBody),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn get_any_wallet(
    State(state): State<AppState>,
    AsUserOrOperator(actor): AsUserOrOperator,
    ApiPath(wallet_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Json<WalletBody>, ApiError> {
    if !actor.is_operator() && actor.subject != wallet_id {
        return Err(ApiError::NotFound);
    }
    let row = read_wallet_row(&state, &wallet_id, params.min_version.unwrap_or(0)).await?;
    if row.is_none() {
        return Err(ApiError::NotFound);
    }
    wallet_body(&state, &wallet_id, row).await.map(Json)
}

/// Activity page parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityParams {
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^-?[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// One wallet event, as the user's notifications show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityBody {
    /// The event's sequence.
    pub sequence: i64,
    /// `TopUpCredited`, `TopUpFailed`, `RunwayAlertRaised`, ...
    pub event_type: String,
    /// The event.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// A page of activity.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    /// Newest first.
    pub items: Vec<ActivityBody>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// The caller's wallet activity, newest first: payments, failed charges
/// (`card_declined`, `authentication_required`), runway alerts, debits.
#[utoipa::path(
    get, path = "/v1/wallet/activity", tag = "wallet",
    params(ActivityParams),
    responses((status = 200, body = ActivityPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn wallet_activity(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ApiQuery(params): ApiQuery<ActivityParams>,
) -> Result<Json<ActivityPage>, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 100".into()));
    }
    let before = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::BadRequest("bad cursor".into()))
        })
        .transpose()?;
    let rows = views::activity(&state.pool, &actor.subject, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<ActivityBody> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| ActivityBody {
            sequence: r.sequence,
            event_type: r.event_type,
            event: r.payload,
            at: r.at,
        })
        .collect();
    let next_cursor = more
        .then(|| items.last().map(|i| i.sequence.to_string()))
        .flatten();
    Ok(Json(ActivityPage { items, next_cursor }))
}

/// Saved cards.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardList {
    /// The cards.
    pub items: Vec<CardBody>,
}

/// The caller's saved cards.
#[utoipa::path(
    get, path = "/v1/wallet/payment-methods", tag = "wallet",
    params(ReadParams),
    responses((status = 200, body = CardList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_payment_methods(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Json<CardList>, ApiError> {
    let row = read_wallet_row(&state, &actor.subject, params.min_version.unwrap_or(0)).await?;
    let body = wallet_body(&state, &actor.subject, row).await?;
    Ok(Json(CardList {
        items: body.payment_methods,
    }))
}

/// One of the caller's top-ups; another user's answers 404.
#[utoipa::path(
    get, path = "/v1/wallet/top-ups/{top_up_id}", tag = "wallet",
    params(("top_up_id" = Uuid, Path, description = "The top-up"), ReadParams),
    responses(
        (status = 200, body = TopUpBody),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn get_top_up(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ApiPath(top_up_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Json<TopUpBody>, ApiError> {
    let row = read_wallet_row(&state, &actor.subject, params.min_version.unwrap_or(0))
        .await?
        .ok_or(ApiError::NotFound)?;
    let s = row.wallet.state().ok_or(ApiError::NotFound)?;
    let t = s
        .top_ups
        .values()
        .find(|t| t.top_up_id == top_up_id)
        .ok_or(ApiError::NotFound)?;
    Ok(Json(top_up_body(t)))
}

/// The balance the quote endpoint discounts with when the caller is a
/// cloud user who gave none: their wallet's.
pub async fn own_balance(pool: &PgPool, subject: &str) -> Result<Option<TftAmount>, ApiError> {
    Ok(views::find(pool, subject).await?.map(|r| {
        TftAmount::from_base_units(u64::try_from(r.wallet.balance().max(0)).unwrap_or(u64::MAX))
    }))
}
