//! Buying TFT: card top-ups (a quote held for 30 minutes and a Stripe
//! PaymentIntent; the TFT is credited when Stripe reports the payment), the
//! automatic top-up rule, and operators' debits.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use marketplace_app::idempotency::Recovery;
use marketplace_app::{ids, CommandError};
use marketplace_domain::wallet::{
    check_top_up_cents, tft_for_cents, AutoTopUpConfig, DebitId, WalletCommand, QUOTE_TTL,
};
use marketplace_domain::TftAmount;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::reads::{top_up_body, AutoTopUpBody, TopUpBody};
use super::{accepted, accepted_on_wallet, own_wallet, own_wallet_command, payments, stripe_id};
use super::{no_saved_card, unknown_card};
use crate::auth::{AsOperator, AsUser};
use crate::command::{exec, fingerprint, keyed};
use crate::dto::CommandAccepted;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, RequestContext};
use crate::AppState;

/// Buy TFT by card.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// The price in USD cents, 500 to 1,000,000.
    #[schema(minimum = 500, maximum = 1_000_000)]
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
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the same top-up and payment intent"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 201, body = CreatedTopUp),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
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
    let fingerprint = fingerprint(("POST /v1/wallet/top-ups", &body));
    // The top-up's id derives from the key, and Stripe's idempotency key
    // from the top-up's: running a retry again finds the same intent and
    // the top-up already recorded, and answers it again.
    let create = async {
        let payments = payments(&state)?.clone();
        check_top_up_cents("usd_cents", body.usd_cents).map_err(|e| ApiError::Invalid {
            detail: e.reason,
            field: Some(e.field),
        })?;
        let tft_price = crate::tft_price::in_force(&state).await?;
        if tft_for_cents(body.usd_cents, tft_price).is_none_or(|t| t.base_units() == 0) {
            return Err(ApiError::Invalid {
                detail: "the amount buys no TFT at the current price".into(),
                field: Some("usd_cents".into()),
            });
        }
        let top_up_id =
            ids::wallet_entity("top-up", &actor.subject, ctx.idempotency_key.as_deref());
        let customer_id = super::cards::ensure_customer(&state, &ctx, &actor).await?;
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
        let done = own_wallet(&state, &ctx, &actor)
            .run_unless_done(|w| {
                if let Some(existing) = w.state().and_then(|s| s.top_up(&pi)) {
                    if existing.top_up_id == top_up_id {
                        // A retry: Stripe returned the same intent for the same key.
                        return Ok(None);
                    }
                }
                Ok(Some(WalletCommand::CreateTopUp {
                    top_up_id,
                    payment_intent_id: pi.clone(),
                    usd_cents: body.usd_cents,
                    tft_price,
                    quote_expires_at: now + QUOTE_TTL,
                    at: now,
                }))
            })
            .await?;
        let t = done
            .aggregate
            .state()
            .and_then(|s| s.top_up(&pi))
            .ok_or_else(|| ApiError::Internal("top-up not recorded".into()))?;
        Ok((
            StatusCode::CREATED,
            Json(CreatedTopUp {
                top_up: top_up_body(t),
                client_secret: intent.client_secret,
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
    let fingerprint = fingerprint(("PUT /v1/wallet/auto-top-up", &body));
    own_wallet_command(&state, &ctx, &actor, fingerprint, |w| {
        let s = w.state().ok_or(CommandError::NotFound)?;
        let pm = match &body.payment_method_id {
            Some(id) => stripe_id("payment_method_id", id)?,
            None => s.default_card.clone().ok_or_else(|| no_saved_card())?,
        };
        if !s.cards.contains_key(&pm) {
            return Err(unknown_card());
        }
        let config = AutoTopUpConfig::new(
            TftAmount::from_base_units(body.threshold_tft_units),
            body.amount_cents,
            body.monthly_cap_cents,
            pm,
        )
        .map_err(|e| CommandError::Invalid {
            detail: e.reason,
            field: Some(e.field),
        })?;
        Ok(WalletCommand::ConfigureAutoTopUp {
            config,
            at: Utc::now(),
        })
    })
    .await
}

/// Turn automatic top-ups off.
#[utoipa::path(
    delete, path = "/v1/wallet/auto-top-up", tag = "wallet",
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses((status = 202, body = CommandAccepted), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
pub async fn disable_auto_top_up(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
) -> Response {
    let fingerprint = fingerprint("DELETE /v1/wallet/auto-top-up");
    own_wallet_command(&state, &ctx, &actor, fingerprint, |_| {
        Ok(WalletCommand::DisableAutoTopUp { at: Utc::now() })
    })
    .await
}

/// Charge a wallet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebitRequest {
    /// The same id twice debits once: 1 to 128 ASCII letters, digits,
    /// `-`, `_`, `.` or `:`.
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,128}$")]
    pub debit_id: String,
    /// TFT base units, more than zero.
    #[schema(minimum = 1)]
    pub amount_tft_units: u64,
    /// What for: not blank, at most 500 characters.
    #[schema(schema_with = debit_reason_schema)]
    pub reason: String,
}

fn debit_reason_schema() -> utoipa::openapi::schema::Object {
    crate::contract::not_blank(marketplace_domain::wallet::MAX_REASON)
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
    let fingerprint = fingerprint(("POST /v1/wallets/debits", &wallet_id, &body));
    let debit = async {
        let debit_id = DebitId::new(&body.debit_id).map_err(|e| ApiError::Invalid {
            detail: e.reason,
            field: Some(e.field),
        })?;
        let done = exec(&state.stores.wallets, wallet_id.clone(), &ctx, &actor)
            .run(|_| {
                Ok(WalletCommand::Debit {
                    debit_id: debit_id.clone(),
                    amount: TftAmount::from_base_units(body.amount_tft_units),
                    reason: body.reason.clone(),
                    at: Utc::now(),
                })
            })
            .await?;
        Ok::<_, ApiError>(accepted(&wallet_id, done.version))
    };
    let recovery = accepted_on_wallet(&wallet_id);
    keyed(
        &state,
        &ctx,
        &actor,
        &wallet_id,
        fingerprint,
        recovery,
        debit,
    )
    .await
}
