//! Saved cards: the wallet's Stripe customer (created once, on first need),
//! SetupIntents for Stripe Elements, the default card, detaching a card.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use marketplace_app::bus::load;
use marketplace_app::idempotency::Recovery;
use marketplace_app::stripe::PaymentsError;
use marketplace_app::Exec;
use marketplace_domain::wallet::WalletCommand;
use marketplace_domain::Actor;
use serde::Serialize;
use utoipa::ToSchema;

use super::{accepted, accepted_on_wallet, own_wallet, own_wallet_command, payments, stripe_id};
use crate::auth::AsUser;
use crate::command::{fingerprint, keyed, metadata};
use crate::dto::CommandAccepted;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, RequestContext};
use crate::AppState;

/// The wallet's Stripe customer, created (once: Stripe's idempotency key
/// is the wallet's) and recorded on first need.
pub async fn ensure_customer(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
) -> Result<String, ApiError> {
    let payments = payments(state)?;
    let (current, _) = load(&state.stores.wallets, &actor.subject).await?;
    if let Some(c) = current.state().and_then(|s| s.stripe_customer.clone()) {
        return Ok(c.as_str().to_string());
    }
    let created = payments.create_customer(&actor.subject).await?;
    let customer_id = stripe_id("customer_id", &created)?;
    // Not under the caller's If-Match: the customer is a side step of the
    // command the caller asked for.
    let owner = actor.subject.clone();
    let done = Exec::new(
        &state.stores.wallets,
        actor.subject.clone(),
        metadata(ctx, actor),
    )
    .opening(move || WalletCommand::Open {
        owner: owner.clone(),
        at: Utc::now(),
    })
    .run(|_| {
        Ok(WalletCommand::AttachStripeCustomer {
            customer_id: customer_id.clone(),
            at: Utc::now(),
        })
    })
    .await?;
    let customer = done
        .aggregate
        .state()
        .and_then(|s| s.stripe_customer.clone())
        .ok_or_else(|| ApiError::Internal("customer not recorded".into()))?;
    Ok(customer.as_str().to_string())
}

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
    let fingerprint = fingerprint("POST /v1/wallet/setup-intents");
    let create = async {
        let payments = payments(&state)?.clone();
        let customer_id = ensure_customer(&state, &ctx, &actor).await?;
        let (setup_intent_id, client_secret) = payments
            .create_setup_intent(&customer_id, &actor.subject)
            .await?;
        Ok::<_, ApiError>(
            (
                StatusCode::CREATED,
                Json(SetupIntentBody {
                    setup_intent_id,
                    client_secret,
                    customer_id,
                }),
            )
                .into_response(),
        )
    };
    // Running it again reuses the customer; an unused SetupIntent expires.
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

/// Make a saved card the default (the one auto top-up charges when its
/// rule names none).
#[utoipa::path(
    post, path = "/v1/wallet/payment-methods/{payment_method_id}/default", tag = "wallet",
    params(("payment_method_id" = String, Path, description = "A saved card", pattern = "^[A-Za-z0-9]+_[A-Za-z0-9_]+$", max_length = 255), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn set_default_payment_method(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiPath(payment_method_id): ApiPath<String>,
) -> Response {
    let fingerprint = fingerprint((
        "POST /v1/wallet/payment-methods/default",
        &payment_method_id,
    ));
    own_wallet_command(&state, &ctx, &actor, fingerprint, |_| {
        Ok(WalletCommand::SetDefaultPaymentMethod {
            payment_method_id: stripe_id("payment_method_id", &payment_method_id)?,
            at: Utc::now(),
        })
    })
    .await
}

/// Detach a saved card at Stripe and forget it (an auto top-up rule on it
/// is turned off).
#[utoipa::path(
    delete, path = "/v1/wallet/payment-methods/{payment_method_id}", tag = "wallet",
    params(("payment_method_id" = String, Path, description = "A saved card", pattern = "^[A-Za-z0-9]+_[A-Za-z0-9_]+$", max_length = 255), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 503, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn detach_payment_method(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiPath(payment_method_id): ApiPath<String>,
) -> Response {
    let fingerprint = fingerprint(("DELETE /v1/wallet/payment-methods", &payment_method_id));
    let detach = async {
        let payments = payments(&state)?.clone();
        let pm = stripe_id("payment_method_id", &payment_method_id)?;
        let (current, _) = load(&state.stores.wallets, &actor.subject).await?;
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
        let done = own_wallet(&state, &ctx, &actor)
            .run(|_| {
                Ok(WalletCommand::RemovePaymentMethod {
                    payment_method_id: pm.clone(),
                    at: Utc::now(),
                })
            })
            .await?;
        Ok(accepted(&actor.subject, done.version))
    };
    let recovery = accepted_on_wallet(&actor.subject);
    keyed(
        &state,
        &ctx,
        &actor,
        &actor.subject,
        fingerprint,
        recovery,
        detach,
    )
    .await
}
