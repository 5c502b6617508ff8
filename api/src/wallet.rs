//! Wallet endpoints: a cloud user's balance, ledger with receipts, linked
//! TFChain account, saved cards, card top-ups and auto top-up rule; and the
//! operators' debit command. The wallet's id is the user's subject, and it
//! is opened by the first command that needs it.
//!
//! Stripe is called before the command that records the outcome, with an
//! idempotency key derived from our id, so a retried request reuses the
//! same Stripe object instead of creating a second one.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use cqrs_es::{AggregateError, EventStore};
use marketplace_domain::pricing::{quote, DiscountLevel, PricingPolicy};
use marketplace_domain::wallet::{
    check_top_up_cents, tft_for_cents, AutoTopUpConfig, EntryKind, KeyType, LinkNonce, StripeId,
    TfchainAccount, TopUpOrigin, TopUpStatus, Wallet, WalletCommand, WalletError, WalletEvent,
};
use marketplace_domain::{Actor, TftAmount, TftPrice};
use marketplace_projections::wallets as views;
use marketplace_workers::stripe::{Payments, PaymentsError};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AsOperator, AsUser, AsUserOrOperator};
use crate::commands::{fingerprint, metadata, Store};
use crate::dto::CommandAccepted;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestContext};
use crate::idempotency::{self, Claim};
use crate::tfchain;
use crate::views_watch::read_visible;
use crate::AppState;

/// How long a link challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::minutes(10);
/// How long a top-up's quote holds.
pub const QUOTE_TTL: Duration = Duration::minutes(30);
/// Conflicting writers (a webhook and the user) are retried this often.
const CONFLICT_RETRIES: usize = 5;

/// The wallet routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_wallet))
        .routes(routes!(get_any_wallet))
        .routes(routes!(wallet_activity))
        .routes(routes!(issue_link_challenge))
        .routes(routes!(complete_link))
        .routes(routes!(create_setup_intent))
        .routes(routes!(list_payment_methods))
        .routes(routes!(set_default_payment_method))
        .routes(routes!(detach_payment_method))
        .routes(routes!(create_top_up))
        .routes(routes!(get_top_up))
        .routes(routes!(configure_auto_top_up, disable_auto_top_up))
        .routes(routes!(debit_wallet))
        .routes(routes!(crate::webhooks::list_troubled_events))
        .routes(routes!(crate::webhooks::retry_event))
}

// ---------------------------------------------------------------------------
// Running wallet commands (shared with the Stripe and auto top-up workers).

/// What a committed wallet command left.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The wallet's version after the command.
    pub version: u64,
    /// The events committed (none when the command was already done).
    pub events: Vec<WalletEvent>,
    /// The wallet after them.
    pub wallet: Wallet,
}

/// Loads the wallet, opens it first when `open_at` is given and it is not
/// open yet, decides `build`'s command and commits, retrying on a
/// concurrent writer. Opening and the command commit together.
pub async fn run_wallet_command(
    store: &Store<Wallet>,
    wallet_id: &str,
    meta: HashMap<String, String>,
    open_at: Option<DateTime<Utc>>,
    build: impl Fn(&Wallet) -> Result<WalletCommand, ApiError>,
) -> Result<Committed, ApiError> {
    run_wallet_command_at(store, wallet_id, meta, open_at, None, build).await
}

/// [`run_wallet_command`], refused with 409 unless the wallet is at
/// `expected` (the caller's `If-Match`); then a concurrent writer is a
/// conflict, not retried.
pub async fn run_wallet_command_at(
    store: &Store<Wallet>,
    wallet_id: &str,
    meta: HashMap<String, String>,
    open_at: Option<DateTime<Utc>>,
    expected: Option<u64>,
    build: impl Fn(&Wallet) -> Result<WalletCommand, ApiError>,
) -> Result<Committed, ApiError> {
    let mut attempt = 0;
    loop {
        let ctx = store.load_aggregate(wallet_id).await?;
        if let Some(expected) = expected {
            if ctx.current_sequence as u64 != expected {
                return Err(ApiError::Conflict(format!(
                    "expected version {expected}, the wallet is at {}",
                    ctx.current_sequence
                )));
            }
        }
        let mut wallet = ctx.aggregate.clone();
        let mut events = Vec::new();
        if wallet.state().is_none() {
            if let Some(at) = open_at {
                let opened = wallet.decide(WalletCommand::Open {
                    owner: wallet_id.to_string(),
                    at,
                })?;
                for e in &opened {
                    wallet.apply_event(e);
                }
                events.extend(opened);
            }
        }
        let command = build(&wallet)?;
        let decided = wallet.decide(command)?;
        for e in &decided {
            wallet.apply_event(e);
        }
        events.extend(decided);
        let version = (ctx.current_sequence + events.len()) as u64;
        if events.is_empty() {
            return Ok(Committed {
                version,
                events,
                wallet,
            });
        }
        match store.commit(events.clone(), ctx, meta.clone()).await {
            Ok(_) => {
                return Ok(Committed {
                    version,
                    events,
                    wallet,
                })
            }
            Err(AggregateError::AggregateConflict)
                if expected.is_none() && attempt < CONFLICT_RETRIES =>
            {
                attempt += 1
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn user_command(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    build: impl Fn(&Wallet) -> Result<WalletCommand, ApiError>,
) -> Result<Committed, ApiError> {
    run_wallet_command_at(
        &state.stores.wallets,
        &actor.subject,
        metadata(ctx, actor),
        Some(Utc::now()),
        ctx.expected_version,
        build,
    )
    .await
}

fn accepted(wallet_id: &str, version: u64) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(CommandAccepted {
            id: wallet_id.to_string(),
            version,
        }),
    )
        .into_response()
}

fn payments(state: &AppState) -> Result<&Payments, ApiError> {
    state
        .settings
        .payments
        .as_ref()
        .ok_or(ApiError::NotConfigured(
            "payments are not configured: STRIPE_SECRET_KEY is unset",
        ))
}

impl From<PaymentsError> for ApiError {
    fn from(e: PaymentsError) -> Self {
        match e {
            PaymentsError::Refused { code, message, .. } => ApiError::Rule {
                slug: "payment-refused",
                detail: format!("Stripe: {code}: {message}"),
            },
            PaymentsError::Unavailable(why) => ApiError::Unavailable(format!("Stripe: {why}")),
        }
    }
}

fn stripe_id(field: &str, id: &str) -> Result<StripeId, ApiError> {
    StripeId::new(field, id).map_err(|e| ApiError::Invalid {
        detail: e.reason,
        field: Some(e.field),
    })
}

/// The wallet's Stripe customer, created (once: Stripe's idempotency key
/// is the wallet's) and recorded on first need.
pub async fn ensure_customer(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
) -> Result<String, ApiError> {
    let payments = payments(state)?;
    let current = state
        .stores
        .wallets
        .load_aggregate(&actor.subject)
        .await?
        .aggregate;
    if let Some(c) = current.state().and_then(|s| s.stripe_customer.clone()) {
        return Ok(c.as_str().to_string());
    }
    let created = payments.create_customer(&actor.subject).await?;
    let customer_id = stripe_id("customer_id", &created)?;
    // Not under the caller's If-Match: the customer is a side step of the
    // command the caller asked for.
    let done = run_wallet_command(
        &state.stores.wallets,
        &actor.subject,
        metadata(ctx, actor),
        Some(Utc::now()),
        |_| {
            Ok(WalletCommand::AttachStripeCustomer {
                customer_id: customer_id.clone(),
                at: Utc::now(),
            })
        },
    )
    .await?;
    let customer = done
        .wallet
        .state()
        .and_then(|s| s.stripe_customer.clone())
        .ok_or_else(|| ApiError::Internal("customer not recorded".into()))?;
    Ok(customer.as_str().to_string())
}

/// A random hex string of `bytes` bytes.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Namespace of ids derived from Idempotency-Keys.
const WALLET_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7761_6c6c_6574_2d69_6473_2d76_3100_0000);

/// A new id: derived from the Idempotency-Key when there is one, so a retry
/// targets the same challenge or top-up (and the same Stripe object).
fn new_id(kind: &str, actor: &Actor, ctx: &RequestContext) -> Uuid {
    match &ctx.idempotency_key {
        Some(key) => Uuid::new_v5(
            &WALLET_ID_NAMESPACE,
            format!("{kind}\n{}\n{key}", actor.subject).as_bytes(),
        ),
        None => Uuid::new_v4(),
    }
}

/// The Idempotency-Key protocol for the wallet's commands, whose answers
/// differ (a created top-up, a challenge, an accepted command): a retry
/// with the same key and request replays the first answer, whatever it
/// was; the same key with another request is refused.
struct Idempotent {
    pool: PgPool,
    key: Option<String>,
    subject: String,
    wallet_id: String,
    fingerprint: Vec<u8>,
}

impl Idempotent {
    fn new(
        state: &AppState,
        ctx: &RequestContext,
        actor: &Actor,
        wallet_id: String,
        fingerprint: Vec<u8>,
    ) -> Self {
        Self {
            pool: state.pool.clone(),
            key: ctx.idempotency_key.clone(),
            subject: actor.subject.clone(),
            wallet_id,
            fingerprint,
        }
    }

    async fn run(
        self,
        command: impl std::future::Future<Output = Result<Response, ApiError>>,
    ) -> Response {
        let Some(key) = self.key.as_deref() else {
            return command.await.unwrap_or_else(IntoResponse::into_response);
        };
        let claim = idempotency::claim(
            &self.pool,
            &self.subject,
            key,
            &self.fingerprint,
            "wallet",
            &self.wallet_id,
        )
        .await;
        match claim {
            Err(e) => ApiError::from(e).into_response(),
            Ok(Claim::Mismatch) => ApiError::IdempotencyKeyReused.into_response(),
            Ok(Claim::InProgress) => ApiError::IdempotencyInProgress.into_response(),
            Ok(Claim::Replay { status, body }) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                if status.is_success() {
                    (status, Json(body)).into_response()
                } else {
                    match serde_json::from_value::<Problem>(body) {
                        Ok(problem) => crate::error::problem_response(status, &problem),
                        Err(e) => ApiError::Internal(format!("stored answer unreadable: {e}"))
                            .into_response(),
                    }
                }
            }
            Ok(Claim::Fresh) => {
                let (response, keep) = match command.await {
                    Ok(r) => (r, true),
                    Err(e) => {
                        let keep = !e.is_transient();
                        (e.into_response(), keep)
                    }
                };
                if !keep {
                    if let Err(e) = idempotency::abandon(&self.pool, &self.subject, key).await {
                        tracing::warn!(error = %e, "could not release the idempotency key");
                    }
                    return response;
                }
                let (parts, body) = response.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let stored: serde_json::Value =
                    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                if let Err(e) = idempotency::finish(
                    &self.pool,
                    &self.subject,
                    key,
                    parts.status.as_u16(),
                    &stored,
                )
                .await
                {
                    // The command's outcome stands; a retry settles the record from the store.
                    tracing::warn!(error = %e, "could not record the idempotency answer");
                }
                Response::from_parts(parts, axum::body::Body::from(bytes))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Runway and discount.

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
}

/// Prices the owner's active deployments (provisioning or running) under
/// the policy at the balance: the hourly burn after each contract's staking
/// discount, the runway, and the level the balance earns against their
/// whole monthly cost. Certification is not known per deployment yet, so
/// deployments are priced as on non-certified nodes.
pub async fn runway(
    pool: &PgPool,
    policy: &PricingPolicy,
    tft_price: TftPrice,
    owner: &str,
    balance: i128,
) -> Result<RunwayBody, ApiError> {
    let specs: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT spec FROM deployment_views
         WHERE owner = $1 AND status IN ('provisioning', 'running')",
    )
    .bind(owner)
    .fetch_all(pool)
    .await?;
    let spendable = TftAmount::from_base_units(u64::try_from(balance.max(0)).unwrap_or(u64::MAX));
    let mut burn: u64 = 0;
    let mut monthly: u64 = 0;
    for spec in specs {
        let spec: marketplace_domain::deployment::WorkloadSpec = serde_json::from_value(spec)
            .map_err(|e| ApiError::Internal(format!("stored spec unreadable: {e}")))?;
        let q = quote(&spec.machines(), false, policy, tft_price, Some(spendable));
        burn = burn.saturating_add(q.discounted_hourly_tft.base_units());
        monthly = monthly.saturating_add(q.monthly_tft.base_units());
    }
    let (level, percent) = policy.discount_for(spendable, TftAmount::from_base_units(monthly));
    Ok(RunwayBody {
        hourly_burn_tft_units: burn,
        runway_hours: (burn > 0).then(|| spendable.base_units() / burn),
        discount_level: level,
        discount_percent: u64::from(percent),
    })
}

// ---------------------------------------------------------------------------
// Reads.

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
    /// `manual` or `auto`.
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
    /// `top_up`, `debit`, `refund` or `dispute`.
    pub kind: String,
    /// TFT base units, positive for credits.
    pub amount_tft_units: i64,
    /// The payment intent, debit, refund or dispute id.
    pub reference: String,
    /// Stripe's receipt, for top-ups.
    pub receipt_url: Option<String>,
    /// When.
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
}

fn top_up_body(t: &marketplace_domain::wallet::TopUp) -> TopUpBody {
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

async fn wallet_body(
    state: &AppState,
    wallet_id: &str,
    row: Option<views::WalletRow>,
) -> Result<WalletBody, ApiError> {
    let (version, wallet) = row.map_or((0, Wallet::default()), |r| (r.version, r.wallet));
    let balance = wallet.balance();
    let policy = crate::pricing::load_current(state).await?;
    let runway = runway(
        &state.pool,
        policy.policy(),
        state.settings.tft_price,
        wallet_id,
        balance,
    )
    .await?;
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
            kind: match e.kind {
                EntryKind::TopUp => "top_up",
                EntryKind::Debit => "debit",
                EntryKind::Refund => "refund",
                EntryKind::Dispute => "dispute",
            }
            .to_string(),
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
            at: e.at,
        })
        .collect();
    body.runway_alerts = s.runway_alerts.iter().copied().collect();
    Ok(body)
}

/// Read parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// Wait (bounded) until the view has reached this version, as returned by a command.
    pub min_version: Option<i64>,
}

async fn read_wallet_row(
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
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
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

// ---------------------------------------------------------------------------
// Linking a TFChain account.

/// Start linking an account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkChallengeRequest {
    /// The SS58 address.
    pub account: String,
    /// `sr25519` (Substrate's default) or `ed25519`.
    pub key_type: String,
}

/// A challenge to sign.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkChallengeBody {
    /// Answer at `/v1/wallet/link-challenges/{challenge_id}/signature`.
    pub challenge_id: Uuid,
    /// The exact text to sign with the account's key (raw or wrapped in `<Bytes>…</Bytes>`).
    pub message: String,
    /// After this it cannot be answered.
    pub expires_at: DateTime<Utc>,
    /// The wallet's version.
    pub version: u64,
}

fn key_type(text: &str) -> Result<KeyType, ApiError> {
    match text {
        "sr25519" => Ok(KeyType::Sr25519),
        "ed25519" => Ok(KeyType::Ed25519),
        _ => Err(ApiError::Invalid {
            detail: "key_type is sr25519 or ed25519".into(),
            field: Some("key_type".into()),
        }),
    }
}

/// Issue a one-time challenge to prove control of a TFChain account.
#[utoipa::path(
    post, path = "/v1/wallet/link-challenges", tag = "wallet",
    request_body = LinkChallengeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key targets the same challenge")),
    responses(
        (status = 201, body = LinkChallengeBody),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn issue_link_challenge(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiJson(body): ApiJson<LinkChallengeRequest>,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        actor.subject.clone(),
        fingerprint(("POST /v1/wallet/link-challenges", &body)),
    );
    idem.run(issue_link_challenge_inner(state, ctx, actor, body))
        .await
}

async fn issue_link_challenge_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
    body: LinkChallengeRequest,
) -> Result<Response, ApiError> {
    let key_type = key_type(&body.key_type)?;
    tfchain::ss58_public_key(&body.account).map_err(|e| ApiError::Invalid {
        detail: format!("account: {e}"),
        field: Some("account".into()),
    })?;
    let account = TfchainAccount::new(&body.account).map_err(|e| ApiError::Invalid {
        detail: e.reason,
        field: Some(e.field),
    })?;
    let challenge_id = new_id("link", &actor, &ctx);
    let now = Utc::now();
    let nonce = LinkNonce::new(&random_hex(16))
        .map_err(|e| ApiError::Internal(format!("nonce: {}", e.reason)))?;
    let done = user_command(&state, &ctx, &actor, |w| {
        if w.state().and_then(|s| s.challenge(challenge_id)).is_some() {
            // A retry with the same Idempotency-Key: the challenge stands.
            return Err(ApiError::Conflict(
                "this Idempotency-Key already issued a challenge".into(),
            ));
        }
        Ok(WalletCommand::IssueLinkChallenge {
            challenge_id,
            nonce: nonce.clone(),
            account: account.clone(),
            key_type,
            expires_at: now + CHALLENGE_TTL,
            at: now,
        })
    })
    .await;
    let done = match done {
        Err(ApiError::Conflict(_)) if ctx.idempotency_key.is_some() => {
            // Replay the challenge the key issued.
            let ctx_aggregate = state.stores.wallets.load_aggregate(&actor.subject).await?;
            let w = ctx_aggregate.aggregate;
            let c = w
                .state()
                .and_then(|s| s.challenge(challenge_id))
                .ok_or(ApiError::NotFound)?;
            return Ok((
                StatusCode::CREATED,
                Json(LinkChallengeBody {
                    challenge_id,
                    message: c.message(&actor.subject),
                    expires_at: c.expires_at,
                    version: ctx_aggregate.current_sequence as u64,
                }),
            )
                .into_response());
        }
        other => other?,
    };
    let c = done
        .wallet
        .state()
        .and_then(|s| s.challenge(challenge_id))
        .ok_or_else(|| ApiError::Internal("challenge not recorded".into()))?;
    Ok((
        StatusCode::CREATED,
        Json(LinkChallengeBody {
            challenge_id,
            message: c.message(&actor.subject),
            expires_at: c.expires_at,
            version: done.version,
        }),
    )
        .into_response())
}

/// A signature of a challenge's message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureRequest {
    /// 64 bytes, hex (with or without `0x`).
    pub signature: String,
}

/// Answer a challenge: the signature is verified against the challenge's
/// account (sr25519 under Substrate's `substrate` context, or ed25519);
/// a wrong signature burns the challenge (422 `signature-invalid`), and a
/// used challenge cannot be answered again (422 `challenge-used`).
#[utoipa::path(
    post, path = "/v1/wallet/link-challenges/{challenge_id}/signature", tag = "wallet",
    request_body = SignatureRequest,
    params(("challenge_id" = Uuid, Path, description = "The challenge"), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted, description = "Linked"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn complete_link(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiPath(challenge_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SignatureRequest>,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        actor.subject.clone(),
        fingerprint((
            "POST /v1/wallet/link-challenges/signature",
            challenge_id,
            &body,
        )),
    );
    idem.run(complete_link_inner(state, ctx, actor, challenge_id, body))
        .await
}

async fn complete_link_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
    challenge_id: Uuid,
    body: SignatureRequest,
) -> Result<Response, ApiError> {
    let signature = tfchain::parse_signature(&body.signature);
    let owner = actor.subject.clone();
    let done = user_command(&state, &ctx, &actor, |w| {
        let c = w
            .state()
            .and_then(|s| s.challenge(challenge_id))
            .ok_or(ApiError::NotFound)?;
        let verified = match (signature, tfchain::ss58_public_key(c.account.as_str())) {
            (Some(sig), Ok(key)) => tfchain::verify(c.key_type, &key, &c.message(&owner), &sig),
            _ => false,
        };
        Ok(WalletCommand::CompleteLink {
            challenge_id,
            signature_verified: verified,
            at: Utc::now(),
        })
    })
    .await?;
    if let Some(refusal) = done.events.iter().find_map(WalletEvent::refusal) {
        return Err(refusal.into());
    }
    Ok(accepted(&actor.subject, done.version))
}

// ---------------------------------------------------------------------------
// Cards.

/// A SetupIntent for Stripe Elements to save a card.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupIntentBody {
    /// Stripe's setup intent.
    pub setup_intent_id: String,
    /// For Stripe Elements.
    pub client_secret: Option<String>,
    /// The wallet's Stripe customer.
    pub customer_id: String,
}

/// Start saving a card: creates the wallet's Stripe customer on first need
/// and a SetupIntent for off-session use. The card appears once Stripe
/// reports `setup_intent.succeeded`.
#[utoipa::path(
    post, path = "/v1/wallet/setup-intents", tag = "wallet",
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 201, body = SetupIntentBody),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem, description = "Payments not configured, or Stripe unavailable")
    ),
    security(("bearer" = []))
)]
pub async fn create_setup_intent(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        actor.subject.clone(),
        fingerprint("POST /v1/wallet/setup-intents"),
    );
    idem.run(create_setup_intent_inner(state, ctx, actor)).await
}

async fn create_setup_intent_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
) -> Result<Response, ApiError> {
    let payments = payments(&state)?.clone();
    let customer_id = ensure_customer(&state, &ctx, &actor).await?;
    let (setup_intent_id, client_secret) = payments
        .create_setup_intent(&customer_id, &actor.subject)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SetupIntentBody {
            setup_intent_id,
            client_secret,
            customer_id,
        }),
    )
        .into_response())
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

/// Make a saved card the default (the one auto top-up charges when its
/// rule names none).
#[utoipa::path(
    post, path = "/v1/wallet/payment-methods/{payment_method_id}/default", tag = "wallet",
    params(("payment_method_id" = String, Path, description = "A saved card"), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn set_default_payment_method(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiPath(payment_method_id): ApiPath<String>,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        actor.subject.clone(),
        fingerprint((
            "POST /v1/wallet/payment-methods/default",
            &payment_method_id,
        )),
    );
    idem.run(set_default_payment_method_inner(
        state,
        ctx,
        actor,
        payment_method_id,
    ))
    .await
}

async fn set_default_payment_method_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
    payment_method_id: String,
) -> Result<Response, ApiError> {
    let pm = stripe_id("payment_method_id", &payment_method_id)?;
    let done = user_command(&state, &ctx, &actor, |_| {
        Ok(WalletCommand::SetDefaultPaymentMethod {
            payment_method_id: pm.clone(),
            at: Utc::now(),
        })
    })
    .await?;
    Ok(accepted(&actor.subject, done.version))
}

/// Detach a saved card at Stripe and forget it (an auto top-up rule on it
/// is turned off).
#[utoipa::path(
    delete, path = "/v1/wallet/payment-methods/{payment_method_id}", tag = "wallet",
    params(("payment_method_id" = String, Path, description = "A saved card"), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn detach_payment_method(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiPath(payment_method_id): ApiPath<String>,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        actor.subject.clone(),
        fingerprint(("DELETE /v1/wallet/payment-methods", &payment_method_id)),
    );
    idem.run(detach_payment_method_inner(
        state,
        ctx,
        actor,
        payment_method_id,
    ))
    .await
}

async fn detach_payment_method_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
    payment_method_id: String,
) -> Result<Response, ApiError> {
    let payments = payments(&state)?.clone();
    let pm = stripe_id("payment_method_id", &payment_method_id)?;
    let current = state
        .stores
        .wallets
        .load_aggregate(&actor.subject)
        .await?
        .aggregate;
    if !current.state().is_some_and(|s| s.cards.contains_key(&pm)) {
        return Err(ApiError::NotFound);
    }
    match payments.detach(pm.as_str()).await {
        Ok(()) => {}
        // Already detached at Stripe (say, from the dashboard): forget it here too.
        Err(PaymentsError::Refused {
            status: 400 | 404, ..
        }) => {}
        Err(e) => return Err(e.into()),
    }
    let done = user_command(&state, &ctx, &actor, |_| {
        Ok(WalletCommand::RemovePaymentMethod {
            payment_method_id: pm.clone(),
            at: Utc::now(),
        })
    })
    .await?;
    Ok(accepted(&actor.subject, done.version))
}

// ---------------------------------------------------------------------------
// Top-ups.

/// Buy TFT by card.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// The price in USD cents, 500 to 1,000,000.
    pub usd_cents: u64,
}

/// A created top-up: confirm its payment intent with Stripe Elements.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTopUp {
    /// The top-up.
    #[serde(flatten)]
    pub top_up: TopUpBody,
    /// The payment intent's client secret, for Stripe Elements.
    pub client_secret: Option<String>,
    /// The wallet's version.
    pub version: u64,
}

/// Create a card top-up: quotes the TFT the cents buy at the current price
/// (held for 30 minutes), creates a Stripe PaymentIntent (the wallet and
/// top-up ids in its metadata) and returns its client secret. The TFT is
/// credited when Stripe reports the payment.
#[utoipa::path(
    post, path = "/v1/wallet/top-ups", tag = "wallet",
    request_body = TopUpRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the same top-up and payment intent")),
    responses(
        (status = 201, body = CreatedTopUp),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem),
        (status = 503, body = Problem, description = "Payments not configured, or Stripe unavailable")
    ),
    security(("bearer" = []))
)]
pub async fn create_top_up(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiJson(body): ApiJson<TopUpRequest>,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        actor.subject.clone(),
        fingerprint(("POST /v1/wallet/top-ups", &body)),
    );
    idem.run(create_top_up_inner(state, ctx, actor, body)).await
}

async fn create_top_up_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
    body: TopUpRequest,
) -> Result<Response, ApiError> {
    let payments = payments(&state)?.clone();
    check_top_up_cents("usd_cents", body.usd_cents).map_err(|e| ApiError::Invalid {
        detail: e.reason,
        field: Some(e.field),
    })?;
    let tft_price = state.settings.tft_price;
    if tft_for_cents(body.usd_cents, tft_price).is_none_or(|t| t.base_units() == 0) {
        return Err(ApiError::Invalid {
            detail: "the amount buys no TFT at the current price".into(),
            field: Some("usd_cents".into()),
        });
    }
    let top_up_id = new_id("top-up", &actor, &ctx);
    let customer_id = ensure_customer(&state, &ctx, &actor).await?;
    let intent = payments
        .create_top_up_intent(
            &customer_id,
            body.usd_cents,
            &actor.subject,
            &top_up_id.to_string(),
        )
        .await?;
    let pi = stripe_id("payment_intent_id", &intent.id)?;
    let now = Utc::now();
    let done = user_command(&state, &ctx, &actor, |w| {
        if let Some(existing) = w.state().and_then(|s| s.top_up(&pi)) {
            if existing.top_up_id == top_up_id {
                // A retry: Stripe returned the same intent for the same key.
                return Err(ApiError::Conflict("replay".into()));
            }
        }
        Ok(WalletCommand::CreateTopUp {
            top_up_id,
            payment_intent_id: pi.clone(),
            usd_cents: body.usd_cents,
            tft_price,
            quote_expires_at: now + QUOTE_TTL,
            at: now,
        })
    })
    .await;
    let (wallet, version) = match done {
        Ok(done) => (done.wallet, done.version),
        Err(ApiError::Conflict(why)) if why == "replay" => {
            let ctx_aggregate = state.stores.wallets.load_aggregate(&actor.subject).await?;
            (
                ctx_aggregate.aggregate,
                ctx_aggregate.current_sequence as u64,
            )
        }
        Err(e) => return Err(e),
    };
    let t = wallet
        .state()
        .and_then(|s| s.top_up(&pi))
        .ok_or_else(|| ApiError::Internal("top-up not recorded".into()))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTopUp {
            top_up: top_up_body(t),
            client_secret: intent.client_secret,
            version,
        }),
    )
        .into_response())
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

/// Turn automatic top-ups on, or change the rule. The card must be saved.
#[utoipa::path(
    put, path = "/v1/wallet/auto-top-up", tag = "wallet",
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    request_body = AutoTopUpBody,
    responses(
        (status = 202, body = CommandAccepted),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn configure_auto_top_up(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiJson(body): ApiJson<AutoTopUpBody>,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        actor.subject.clone(),
        fingerprint(("PUT /v1/wallet/auto-top-up", &body)),
    );
    idem.run(configure_auto_top_up_inner(state, ctx, actor, body))
        .await
}

async fn configure_auto_top_up_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
    body: AutoTopUpBody,
) -> Result<Response, ApiError> {
    let done = user_command(&state, &ctx, &actor, |w| {
        let s = w.state().ok_or(ApiError::NotFound)?;
        let pm = match &body.payment_method_id {
            Some(id) => stripe_id("payment_method_id", id)?,
            None => s.default_card.clone().ok_or_else(|| ApiError::Invalid {
                detail: "save a card first".into(),
                field: Some("payment_method_id".into()),
            })?,
        };
        if !s.cards.contains_key(&pm) {
            return Err(ApiError::Invalid {
                detail: "not a saved card of this wallet".into(),
                field: Some("payment_method_id".into()),
            });
        }
        let config = AutoTopUpConfig::new(
            TftAmount::from_base_units(body.threshold_tft_units),
            body.amount_cents,
            body.monthly_cap_cents,
            pm,
        )
        .map_err(|e| ApiError::Invalid {
            detail: e.reason,
            field: Some(e.field),
        })?;
        Ok(WalletCommand::ConfigureAutoTopUp {
            config,
            at: Utc::now(),
        })
    })
    .await?;
    Ok(accepted(&actor.subject, done.version))
}

/// Turn automatic top-ups off.
#[utoipa::path(
    delete, path = "/v1/wallet/auto-top-up", tag = "wallet",
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses((status = 202, body = CommandAccepted), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn disable_auto_top_up(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        actor.subject.clone(),
        fingerprint("DELETE /v1/wallet/auto-top-up"),
    );
    idem.run(disable_auto_top_up_inner(state, ctx, actor)).await
}

async fn disable_auto_top_up_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
) -> Result<Response, ApiError> {
    let done = user_command(&state, &ctx, &actor, |_| {
        Ok(WalletCommand::DisableAutoTopUp { at: Utc::now() })
    })
    .await?;
    Ok(accepted(&actor.subject, done.version))
}

/// Charge a wallet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebitRequest {
    /// The same id twice debits once.
    pub debit_id: String,
    /// TFT base units, more than zero.
    pub amount_tft_units: u64,
    /// What for.
    pub reason: String,
}

/// Debit a wallet (billing; operators and workers). Never below zero.
#[utoipa::path(
    post, path = "/v1/wallets/{wallet_id}/debits", tag = "wallet",
    request_body = DebitRequest,
    params(("wallet_id" = String, Path, description = "The owner's subject"), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn debit_wallet(
    State(state): State<AppState>,
    AsOperator(actor): AsOperator,
    ctx: RequestContext,
    ApiPath(wallet_id): ApiPath<String>,
    ApiJson(body): ApiJson<DebitRequest>,
) -> Response {
    let idem = Idempotent::new(
        &state,
        &ctx,
        &actor,
        wallet_id.clone(),
        fingerprint(("POST /v1/wallets/debits", &wallet_id, &body)),
    );
    idem.run(debit_wallet_inner(state, ctx, actor, wallet_id, body))
        .await
}

async fn debit_wallet_inner(
    state: AppState,
    ctx: RequestContext,
    actor: Actor,
    wallet_id: String,
    body: DebitRequest,
) -> Result<Response, ApiError> {
    let debit_id = marketplace_domain::wallet::DebitId::new(&body.debit_id).map_err(|e| {
        ApiError::Invalid {
            detail: e.reason,
            field: Some(e.field),
        }
    })?;
    let done = run_wallet_command_at(
        &state.stores.wallets,
        &wallet_id,
        metadata(&ctx, &actor),
        None,
        ctx.expected_version,
        |_| {
            Ok(WalletCommand::Debit {
                debit_id: debit_id.clone(),
                amount: TftAmount::from_base_units(body.amount_tft_units),
                reason: body.reason.clone(),
                at: Utc::now(),
            })
        },
    )
    .await?;
    Ok(accepted(&wallet_id, done.version))
}

impl From<WalletError> for ApiError {
    fn from(e: WalletError) -> Self {
        let rule = |slug: &'static str, e: &WalletError| ApiError::Rule {
            slug,
            detail: e.to_string(),
        };
        match &e {
            WalletError::NotOpened => ApiError::NotFound,
            WalletError::AlreadyOpened => ApiError::Conflict(e.to_string()),
            WalletError::Invalid(spec) => ApiError::Invalid {
                detail: spec.reason.clone(),
                field: Some(spec.field.clone()),
            },
            WalletError::DuplicateChallenge | WalletError::DuplicateTopUp => {
                ApiError::Conflict(e.to_string())
            }
            WalletError::ChallengeNotFound => ApiError::NotFound,
            WalletError::ChallengeExpired { .. } => rule("challenge-expired", &e),
            WalletError::ChallengeUsed => rule("challenge-used", &e),
            WalletError::SignatureInvalid => rule("signature-invalid", &e),
            WalletError::UnknownPaymentIntent(_) | WalletError::UnknownCharge(_) => {
                rule("unknown-payment", &e)
            }
            WalletError::UnknownPaymentMethod(_) => ApiError::NotFound,
            WalletError::AmountMismatch { .. } => rule("amount-mismatch", &e),
            WalletError::RefundExceedsPayment { .. } => rule("refund-exceeds-payment", &e),
            WalletError::InsufficientBalance { .. } => rule("insufficient-balance", &e),
            WalletError::IdConflict { .. } | WalletError::CustomerConflict(_) => {
                rule("id-conflict", &e)
            }
            WalletError::AutoTopUpNotConfigured => rule("auto-top-up-not-configured", &e),
            WalletError::AutoTopUpNotNeeded { .. } => rule("auto-top-up-not-needed", &e),
            WalletError::AutoTopUpPending => rule("auto-top-up-pending", &e),
            WalletError::MonthlyCapReached { .. } => rule("monthly-cap-reached", &e),
        }
    }
}

/// The balance the quote endpoint discounts with when the caller is a
/// cloud user who gave none: their wallet's.
pub async fn own_balance(pool: &PgPool, subject: &str) -> Result<Option<TftAmount>, ApiError> {
    Ok(views::find(pool, subject).await?.map(|r| {
        TftAmount::from_base_units(u64::try_from(r.wallet.balance().max(0)).unwrap_or(u64::MAX))
    }))
}
