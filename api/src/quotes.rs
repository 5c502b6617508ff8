//! Quotes: what a spec would cost under the current pricing policy.

use axum::extract::State;
use axum::Json;
use marketplace_domain::pricing::quote;
use marketplace_domain::{Role, TftAmount};

use crate::auth::AuthUser;
use crate::dto::{QuoteBody, QuoteRequestBody};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::AppState;

/// Prices a spec: hourly and 30-day monthly, in USD and TFT, with the
/// staking discount a balance would earn: the one given, or else, for a
/// cloud user, their wallet's balance.
#[utoipa::path(
    post, path = "/v1/quotes", tag = "quotes",
    request_body = QuoteRequestBody,
    responses(
        (status = 200, body = QuoteBody),
        (status = 401, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn create_quote(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiJson(body): ApiJson<QuoteRequestBody>,
) -> Result<Json<QuoteBody>, ApiError> {
    let spec = body.spec.into_domain().map_err(|e| ApiError::Invalid {
        detail: e.reason,
        field: Some(e.field),
    })?;
    let policy = crate::policy::in_force(&state).await?.policy;
    let balance = match body.balance_tft_units {
        Some(units) => Some(TftAmount::from_base_units(units)),
        None if principal.roles.contains(&Role::CloudUser) => {
            crate::wallet::own_balance(&state.pool, &principal.subject).await?
        }
        None => None,
    };
    let q = quote(
        &spec.machines(),
        body.certified,
        &policy,
        crate::tft_price::in_force(&state).await?,
        balance,
    );
    Ok(Json(q.into()))
}
