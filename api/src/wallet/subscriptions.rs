//! Recurring top-ups: "add $N every month" on a saved card, as a Stripe
//! subscription to a monthly Price of that amount. Each paid invoice is
//! credited by the Stripe inbox worker (`invoice.paid`) at the TFT price
//! quoted then; a failed one is recorded (`SubscriptionPaymentFailed`) and
//! credits nothing.
//!
//! Everything that can refuse the request (the amount, the card, a running
//! subscription, a stale `If-Match`) is checked before Stripe is called, and
//! Stripe's subscription is created under an idempotency key derived from
//! the caller's `Idempotency-Key`, so a refused request leaves nothing at
//! Stripe and a retried one subscribes once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_app::bus::load;
use marketplace_app::idempotency::Recovery;
use marketplace_app::stripe::SubscriptionInfo;
use marketplace_app::{ids, CommandError, Exec};
use marketplace_domain::wallet::{
    check_subscription_cents, tft_for_cents, Subscription, SubscriptionStatus, WalletCommand,
    WalletError,
};
use marketplace_domain::Actor;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::reads::{read_wallet_row, ReadParams};
use super::{accepted, accepted_on_wallet, payments, stripe_id};
use super::{no_saved_card, unknown_card};
use crate::auth::AsUser;
use crate::command::{fingerprint, keyed, metadata};
use crate::dto::CommandAccepted;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestContext};
use crate::AppState;

/// Subscribe to a monthly top-up.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// Cents charged every month, 500 to 200,000 ($5 to $2,000).
    #[schema(minimum = 500, maximum = 200_000)]
    pub usd_cents: u64,
    /// The saved card charged; the default card when omitted.
    #[schema(pattern = "^[A-Za-z0-9]+_[A-Za-z0-9_]+$", max_length = 255)]
    pub payment_method_id: Option<String>,
}

/// How to cancel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSubscriptionRequest {
    /// `true`: end when the current (paid) period ends; `false`: end now.
    pub at_period_end: bool,
}

/// The newest invoice of a subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionInvoiceBody {
    /// Stripe's invoice.
    pub invoice_id: String,
    /// `paid` (and credited) or `failed`.
    pub status: String,
    /// Cents paid, when paid.
    pub usd_cents: u64,
    /// Stripe's code for the failure (`card_declined`).
    pub failure_code: Option<String>,
    /// Stripe's message for it.
    pub failure_message: Option<String>,
    /// When Stripe tries a failed invoice again, if it will.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A monthly top-up subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionBody {
    /// Stripe's subscription.
    pub subscription_id: String,
    /// Stripe's status: `active`, `past_due` (a renewal failed and is
    /// retried), `unpaid`, `canceled`, ...
    pub status: String,
    /// Cents charged every month.
    pub usd_cents: u64,
    /// The monthly Price charged.
    pub price_id: String,
    /// The card charged.
    pub payment_method_id: String,
    /// Whether it ends when the current period does.
    pub cancel_at_period_end: bool,
    /// When the current period ends.
    pub current_period_end: Option<DateTime<Utc>>,
    /// The next renewal: the period's end, unless it is canceled.
    pub next_renewal_at: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Invoices paid and credited.
    pub invoices_paid: u32,
    /// The newest invoice paid or failed.
    pub last_invoice: Option<SubscriptionInvoiceBody>,
}

/// A created subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSubscription {
    /// The subscription.
    #[serde(flatten)]
    pub subscription: SubscriptionBody,
    /// The wallet's version.
    pub version: u64,
}

/// A subscription as the API shows it.
pub fn subscription_body(s: &Subscription) -> SubscriptionBody {
    let ends = s.cancel_at_period_end || s.status.is_ended();
    SubscriptionBody {
        subscription_id: s.subscription_id.as_str().to_string(),
        status: s.status.as_str().to_string(),
        usd_cents: s.usd_cents,
        price_id: s.price_id.as_str().to_string(),
        payment_method_id: s.payment_method_id.as_str().to_string(),
        cancel_at_period_end: s.cancel_at_period_end,
        current_period_end: s.current_period_end,
        next_renewal_at: if ends { None } else { s.current_period_end },
        started_at: s.started_at,
        ended_at: s.ended_at,
        invoices_paid: s.invoices_paid,
        last_invoice: s.last_invoice.as_ref().map(|i| SubscriptionInvoiceBody {
            invoice_id: i.invoice_id.as_str().to_string(),
            status: if i.paid { "paid" } else { "failed" }.to_string(),
            usd_cents: i.usd_cents,
            failure_code: i.failure.as_ref().map(|f| f.code.clone()),
            failure_message: i.failure.as_ref().map(|f| f.message.clone()),
            next_attempt_at: i.next_attempt_at,
            at: i.at,
        }),
    }
}

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        detail: detail.into(),
        field: Some(field.to_string()),
    }
}

fn stripe_time(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
}

fn stripe_status(sub: &SubscriptionInfo) -> Result<SubscriptionStatus, ApiError> {
    SubscriptionStatus::parse(&sub.status).ok_or_else(|| {
        ApiError::Internal(format!(
            "Stripe answered subscription status {}",
            sub.status
        ))
    })
}

/// The caller's `If-Match`, checked before Stripe is called: a stale one
/// must not leave a subscription at Stripe that the wallet refuses.
fn check_if_match(ctx: &RequestContext, version: u64) -> Result<(), ApiError> {
    match ctx.expected_version {
        Some(expected) if expected != version => Err(ApiError::Conflict(format!(
            "the wallet is at version {version}, not {expected}"
        ))),
        _ => Ok(()),
    }
}

/// A command on the caller's wallet after Stripe acted: not under the
/// caller's `If-Match` (checked before Stripe was called), so what Stripe
/// did is always recorded.
fn record<'a>(
    state: &'a AppState,
    ctx: &RequestContext,
    actor: &Actor,
) -> Exec<'a, marketplace_domain::wallet::Wallet> {
    Exec::new(
        &state.stores.wallets,
        actor.subject.clone(),
        metadata(ctx, actor),
    )
}

/// Subscribe to "add $N every month" on a saved card: a Stripe
/// subscription to the monthly Price of that amount (created once per
/// distinct amount), whose first invoice is paid now, off-session. The TFT
/// is credited when Stripe reports each paid invoice (`invoice.paid`), at
/// the TFT price quoted then.
#[utoipa::path(
    post, path = "/v1/wallet/subscriptions", tag = "wallet",
    request_body = SubscriptionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the same subscription"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 201, body = CreatedSubscription),
        (status = 400, body = Problem, description = "Malformed body"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "`/problems/already-subscribed`: a subscription is running; or a stale If-Match"),
        (status = 422, body = Problem, description = "`/problems/invalid-command`: amount out of range; `/problems/no-saved-card`; `/problems/unknown-card`: not a saved card of this wallet; `/problems/payment-refused`: Stripe refused the card (`card_declined`)"),
        (status = 503, body = Problem, description = "Payments not configured, or Stripe unavailable")
    ),
    security(("bearer" = []))
)]
pub async fn create_subscription(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiJson(body): ApiJson<SubscriptionRequest>,
) -> Response {
    let fingerprint = fingerprint(("POST /v1/wallet/subscriptions", &body));
    let create = async {
        let payments = payments(&state)?.clone();
        check_subscription_cents("usd_cents", body.usd_cents)
            .map_err(|e| invalid(&e.field, e.reason))?;
        let tft_price = crate::tft_price::in_force(&state).await?;
        if tft_for_cents(body.usd_cents, tft_price).is_none_or(|t| t.base_units() == 0) {
            return Err(invalid(
                "usd_cents",
                "the amount buys no TFT at the current price",
            ));
        }
        let key = ids::wallet_entity(
            "subscription",
            &actor.subject,
            ctx.idempotency_key.as_deref(),
        );
        let (current, version) = load(&state.stores.wallets, &actor.subject).await?;
        let s = current.state().ok_or_else(|| no_saved_card())?;
        let pm = match &body.payment_method_id {
            Some(id) => stripe_id("payment_method_id", id)?,
            None => s.default_card.clone().ok_or_else(|| no_saved_card())?,
        };
        if !s.cards.contains_key(&pm) {
            return Err(unknown_card().into());
        }
        let customer = s.stripe_customer.clone().ok_or_else(|| no_saved_card())?;
        if let Some(running) = s.current_subscription() {
            return Err(CommandError::from(WalletError::AlreadySubscribed(
                running.subscription_id.clone(),
            ))
            .into());
        }
        check_if_match(&ctx, version)?;
        let price = payments.monthly_price(body.usd_cents).await?;
        let created = payments
            .create_subscription(
                customer.as_str(),
                pm.as_str(),
                &price,
                &actor.subject,
                &key.to_string(),
            )
            .await?;
        let subscription_id = stripe_id("subscription_id", &created.id)?;
        let price_id = stripe_id("price_id", &price)?;
        let status = stripe_status(&created)?;
        let now = Utc::now();
        let done = record(&state, &ctx, &actor)
            .run(|_| {
                Ok(WalletCommand::StartSubscription {
                    subscription_id: subscription_id.clone(),
                    price_id: price_id.clone(),
                    usd_cents: body.usd_cents,
                    payment_method_id: pm.clone(),
                    status,
                    current_period_end: stripe_time(created.current_period_end),
                    at: now,
                })
            })
            .await?;
        let sub = done
            .aggregate
            .state()
            .and_then(|s| s.subscriptions.get(&subscription_id))
            .ok_or_else(|| ApiError::Internal("subscription not recorded".into()))?;
        tracing::info!(wallet = %actor.subject, subscription = %subscription_id, usd_cents = body.usd_cents, "subscription started");
        Ok((
            StatusCode::CREATED,
            Json(CreatedSubscription {
                subscription: subscription_body(sub),
                version: done.version,
            }),
        )
            .into_response())
    };
    keyed(
        &state,
        &ctx,
        &actor,
        &actor.subject,
        fingerprint,
        Recovery::Rerun,
        create,
    )
    .await
}

/// One of the caller's subscriptions (running or ended); another user's
/// answers 404.
#[utoipa::path(
    get, path = "/v1/wallet/subscriptions/{subscription_id}", tag = "wallet",
    params(("subscription_id" = String, Path, description = "Stripe's subscription id", pattern = "^[A-Za-z0-9]+_[A-Za-z0-9_]+$", max_length = 255), ReadParams),
    responses(
        (status = 200, body = SubscriptionBody),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, body = Problem, description = "The view did not reach min_version in time")
    ),
    security(("bearer" = []))
)]
pub async fn get_subscription(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ApiPath(subscription_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Json<SubscriptionBody>, ApiError> {
    let id = stripe_id("subscription_id", &subscription_id).map_err(|_| ApiError::NotFound)?;
    let row = read_wallet_row(&state, &actor.subject, params.min_version.unwrap_or(0)).await?;
    let sub = row
        .as_ref()
        .and_then(|r| r.wallet.state())
        .and_then(|s| s.subscriptions.get(&id))
        .ok_or(ApiError::NotFound)?;
    Ok(Json(subscription_body(sub)))
}

/// Cancels at Stripe, then records it: at the period's end
/// (`cancel_at_period_end`), or now (the subscription is deleted at Stripe
/// and ends here at once).
async fn cancel(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    subscription_id: &str,
    at_period_end: bool,
) -> Result<Response, ApiError> {
    let payments = payments(state)?.clone();
    let id = stripe_id("subscription_id", subscription_id).map_err(|_| ApiError::NotFound)?;
    let (current, version) = load(&state.stores.wallets, &actor.subject).await?;
    let sub = current
        .state()
        .and_then(|s| s.subscriptions.get(&id))
        .ok_or(ApiError::NotFound)?;
    if sub.status.is_ended() {
        return Err(CommandError::from(WalletError::SubscriptionEnded(id)).into());
    }
    check_if_match(ctx, version)?;
    let now = Utc::now();
    let done = if at_period_end {
        if !sub.cancel_at_period_end {
            payments
                .cancel_subscription_at_period_end(id.as_str())
                .await?;
        }
        record(state, ctx, actor)
            .run(|_| {
                Ok(WalletCommand::ScheduleSubscriptionCancel {
                    subscription_id: id.clone(),
                    at: now,
                })
            })
            .await?
    } else {
        payments.cancel_subscription_now(id.as_str()).await?;
        record(state, ctx, actor)
            .run(|_| {
                Ok(WalletCommand::EndSubscription {
                    subscription_id: id.clone(),
                    at: now,
                })
            })
            .await?
    };
    tracing::info!(wallet = %actor.subject, subscription = %id, at_period_end, "subscription canceled");
    Ok(accepted(&actor.subject, done.version))
}

/// Cancel a subscription: `at_period_end` ends it when the paid period
/// does (no further invoice), otherwise it ends now. Nothing already paid
/// is taken back.
#[utoipa::path(
    post, path = "/v1/wallet/subscriptions/{subscription_id}/cancel", tag = "wallet",
    request_body = CancelSubscriptionRequest,
    params(("subscription_id" = String, Path, description = "Stripe's subscription id", pattern = "^[A-Za-z0-9]+_[A-Za-z0-9_]+$", max_length = 255), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 400, body = Problem, description = "Malformed body"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "No such subscription of the caller's"),
        (status = 409, body = Problem, description = "A stale If-Match"),
        (status = 422, body = Problem, description = "`/problems/subscription-ended`: it has already ended"),
        (status = 503, body = Problem, description = "Payments not configured, or Stripe unavailable")
    ),
    security(("bearer" = []))
)]
pub async fn cancel_subscription(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiPath(subscription_id): ApiPath<String>,
    ApiJson(body): ApiJson<CancelSubscriptionRequest>,
) -> Response {
    let fingerprint = fingerprint((
        "POST /v1/wallet/subscriptions/cancel",
        &subscription_id,
        &body,
    ));
    let run = cancel(&state, &ctx, &actor, &subscription_id, body.at_period_end);
    keyed(
        &state,
        &ctx,
        &actor,
        &actor.subject,
        fingerprint,
        accepted_on_wallet(&actor.subject),
        run,
    )
    .await
}

/// Cancel a subscription now (the same as `POST .../cancel` with
/// `at_period_end: false`).
#[utoipa::path(
    delete, path = "/v1/wallet/subscriptions/{subscription_id}", tag = "wallet",
    params(("subscription_id" = String, Path, description = "Stripe's subscription id", pattern = "^[A-Za-z0-9]+_[A-Za-z0-9_]+$", max_length = 255), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "No such subscription of the caller's"),
        (status = 409, body = Problem, description = "A stale If-Match"),
        (status = 422, body = Problem, description = "`/problems/subscription-ended`: it has already ended"),
        (status = 503, body = Problem, description = "Payments not configured, or Stripe unavailable")
    ),
    security(("bearer" = []))
)]
pub async fn delete_subscription(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiPath(subscription_id): ApiPath<String>,
) -> Response {
    let fingerprint = fingerprint(("DELETE /v1/wallet/subscriptions", &subscription_id));
    let run = cancel(&state, &ctx, &actor, &subscription_id, false);
    keyed(
        &state,
        &ctx,
        &actor,
        &actor.subject,
        fingerprint,
        accepted_on_wallet(&actor.subject),
        run,
    )
    .await
}
