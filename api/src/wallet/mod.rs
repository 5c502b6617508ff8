//! Wallet endpoints: a cloud user's balance, ledger with receipts, linked
//! TFChain account, saved cards, card top-ups and auto top-up rule; and the
//! operators' debit command. The wallet's id is the user's subject, and it
//! is opened by the first command that needs it.
//!
//! Stripe is called before the command that records the outcome, with an
//! idempotency key derived from our id, so a retried request reuses the
//! same Stripe object instead of creating a second one.
//!
//! - [`reads`]: the wallet, its activity, cards and top-ups as the user sees them.
//! - [`link`]: proving control of a TFChain account.
//! - [`cards`]: the Stripe customer and saved cards.
//! - [`top_ups`]: card top-ups, the auto top-up rule, operators' debits.
//! - [`statements`]: monthly statements, JSON or PDF ([`statement_pdf`]).
//! - [`subscriptions`]: recurring monthly top-ups by Stripe subscription.

pub mod cards;
pub mod link;
pub mod reads;
pub mod statement_pdf;
pub mod statements;
pub mod subscriptions;
pub mod top_ups;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use marketplace_app::idempotency::Recovery;
use marketplace_app::stripe::Gateway;
use marketplace_app::{CommandError, Exec};
use marketplace_domain::wallet::{StripeId, Wallet, WalletCommand};
use marketplace_domain::Actor;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::command::{exec, keyed};
use crate::dto::CommandAccepted;
use crate::error::ApiError;
use crate::extract::RequestContext;
use crate::AppState;

pub use reads::own_balance;

/// The wallet routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reads::get_wallet))
        .routes(routes!(reads::get_any_wallet))
        .routes(routes!(reads::wallet_activity))
        .routes(routes!(statements::get_statement))
        .routes(routes!(statements::get_any_statement))
        .routes(routes!(link::issue_link_challenge))
        .routes(routes!(link::complete_link))
        .routes(routes!(cards::create_setup_intent))
        .routes(routes!(reads::list_payment_methods))
        .routes(routes!(cards::set_default_payment_method))
        .routes(routes!(cards::detach_payment_method))
        .routes(routes!(top_ups::create_top_up))
        .routes(routes!(reads::get_top_up))
        .routes(routes!(
            top_ups::configure_auto_top_up,
            top_ups::disable_auto_top_up
        ))
        .routes(routes!(subscriptions::create_subscription))
        .routes(routes!(
            subscriptions::get_subscription,
            subscriptions::delete_subscription
        ))
        .routes(routes!(subscriptions::cancel_subscription))
        .routes(routes!(top_ups::debit_wallet))
        .routes(routes!(crate::webhooks::list_troubled_events))
        .routes(routes!(crate::webhooks::retry_event))
}

/// A command on the caller's own wallet, under their `If-Match`, opening
/// the wallet first if this is its first command.
fn own_wallet<'a>(state: &'a AppState, ctx: &RequestContext, actor: &Actor) -> Exec<'a, Wallet> {
    let owner = actor.subject.clone();
    exec(&state.stores.wallets, actor.subject.clone(), ctx, actor).opening(move || {
        WalletCommand::Open {
            owner: owner.clone(),
            at: Utc::now(),
        }
    })
}

/// A command on the caller's own wallet that answers 202 with its
/// version, under the Idempotency-Key protocol (settled from the store when
/// the request that claimed the key crashed).
async fn own_wallet_command(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    fingerprint: Vec<u8>,
    build: impl Fn(&Wallet) -> Result<WalletCommand, CommandError>,
) -> Response {
    let run = async {
        let done = own_wallet(state, ctx, actor).run(build).await?;
        Ok::<_, ApiError>(accepted(&actor.subject, done.version))
    };
    let recovery = accepted_on_wallet(&actor.subject);
    keyed(
        state,
        ctx,
        actor,
        &actor.subject,
        fingerprint,
        recovery,
        run,
    )
    .await
}

/// How a retry settles a keyed wallet command that answers 202, when the
/// request that claimed the key crashed: from the store.
fn accepted_on_wallet(wallet_id: &str) -> Recovery {
    Recovery::Accepted {
        aggregate_type: <Wallet as cqrs_es::Aggregate>::TYPE,
        location: format!("/v1/wallets/{wallet_id}"),
    }
}

/// 202 with the wallet's id and version.
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

/// The Stripe client, or 503 naming the setting that is missing.
fn payments(state: &AppState) -> Result<&Gateway, ApiError> {
    state
        .settings
        .payments
        .as_ref()
        .ok_or(ApiError::NotConfigured(
            "payments are not configured: STRIPE_SECRET_KEY is unset",
        ))
}

/// A Stripe id the caller sent, checked.
fn stripe_id(field: &str, id: &str) -> Result<StripeId, CommandError> {
    StripeId::new(field, id).map_err(|e| CommandError::Invalid {
        detail: e.reason,
        field: Some(e.field),
    })
}

/// A command that charges a card, from a wallet with none saved: the
/// wallet's state refuses it (422 `/problems/no-saved-card`).
fn no_saved_card() -> CommandError {
    CommandError::Rule {
        slug: "no-saved-card",
        detail: "save a card first (payment_method_id)".into(),
    }
}

/// A well-formed card id that is not one of this wallet's saved cards
/// (422 `/problems/unknown-card`).
fn unknown_card() -> CommandError {
    CommandError::Rule {
        slug: "unknown-card",
        detail: "payment_method_id is not a saved card of this wallet".into(),
    }
}
