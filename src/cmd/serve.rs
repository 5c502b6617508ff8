//! `marketplace serve`: production mode: the API and the payment workers,
//! tokens checked against the configured JWKS.

use anyhow::{bail, Context};
use marketplace_api::auth::{AuthConfig, Authenticator};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::wiring::{
    app_state, bind, connect, join_all, payments_client, settings, shutdown_signal, spawn_api,
    spawn_payment_workers,
};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Production knows one thing of dev mode: never to trust its tokens.
    if args.jwt.jwt_issuer == marketplace_api::auth::DEV_ISSUER {
        bail!("JWT_ISSUER is the dev issuer; production mode never accepts dev tokens");
    }
    let payments = payments_client(&args.payments)?;
    let settings = settings(&args.http, payments.clone(), None)?;
    let listener = bind(args.http.listen).await?;
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let auth = Authenticator::new(AuthConfig {
        jwks_url: args.jwt.jwks_url,
        issuer: args.jwt.jwt_issuer,
        audience: args.jwt.jwt_audience,
        roles_claim: args.jwt.jwt_roles_claim,
        leeway_secs: args.jwt.jwt_leeway_secs,
    });
    let cancel = CancellationToken::new();
    let workers = spawn_payment_workers(
        &pool,
        payments,
        &args.payments,
        settings.tft_price,
        settings.stripe_webhook_secret.is_some(),
        &cancel,
    );
    let state = app_state(pool, auth, settings, &cancel);
    let api = spawn_api(listener, state, cancel.clone());
    shutdown_signal().await;
    cancel.cancel();
    join_all(workers).await;
    api.await.context("API task")?
}
