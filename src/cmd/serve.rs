//! `marketplace serve`: production mode: the API, the payment workers and
//! (when a chain is configured) the provisioning manager,
//! tokens checked against the configured JWKS.

use std::time::Duration;

use anyhow::{bail, Context};
use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_api::console::{ConsoleAuth, ConsoleConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::wiring::{
    app_state, bind, chain_ports, connect, join_all, mailer, payments_client, settings,
    shutdown_signal, spawn_api, spawn_auditor, spawn_chain_follower, spawn_metrics,
    spawn_notifications, spawn_payment_workers, spawn_provisioning,
};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Production knows one thing of dev mode: never to trust its tokens.
    if args.jwt.jwt_issuer == marketplace_api::auth::DEV_ISSUER {
        bail!("JWT_ISSUER is the dev issuer; production mode never accepts dev tokens");
    }
    let payments = payments_client(&args.payments)?;
    let mut settings = settings(&args.http, payments.clone(), None)?;
    settings.metrics = marketplace_api::metrics::MetricsAccess {
        on_main_listener: args.metrics.metrics_addr.is_none()
            && args.metrics.metrics_token.is_some(),
        token: args.metrics.metrics_token.clone(),
    };
    if args.metrics.metrics_addr.is_none() && args.metrics.metrics_token.is_none() {
        tracing::warn!("neither METRICS_ADDR nor METRICS_TOKEN is set: /metrics is not served");
    }
    let listener = bind(args.http.listen).await?;
    let metrics_listener = match args.metrics.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (METRICS_ADDR)"))?,
        ),
        None => None,
    };
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let auth = Authenticator::new(AuthConfig {
        jwks_url: args.jwt.jwks_url,
        issuer: args.jwt.jwt_issuer.clone(),
        audience: args.jwt.jwt_audience.clone(),
        roles_claim: args.jwt.jwt_roles_claim.clone(),
        leeway_secs: args.jwt.jwt_leeway_secs,
    });
    let cancel = CancellationToken::new();
    let mut workers = spawn_payment_workers(
        &pool,
        payments,
        &args.payments,
        settings.tft_price,
        settings.stripe_webhook_secret.is_some(),
        &cancel,
    );
    workers.extend(spawn_auditor(&pool, &args.auditor, &cancel));
    let outgoing = mailer(&args.mail, None)?;
    if outgoing.is_none() {
        tracing::warn!(
            "SMTP_URL is unset: no mail is sent (contact-email codes answer 503, notifications go to the feed and webhooks only)"
        );
    }
    workers.extend(spawn_notifications(
        &pool,
        args.notify.options(),
        outgoing.clone(),
        &cancel,
    ));
    let console = ConsoleConfig {
        auth: match &args.jwt.oidc_client_id {
            Some(client_id) => ConsoleAuth::Oidc {
                issuer: args.jwt.jwt_issuer.clone(),
                client_id: client_id.clone(),
                audience: args.jwt.jwt_audience.clone(),
                roles_claim: args.jwt.jwt_roles_claim.clone(),
            },
            None => ConsoleAuth::Unconfigured,
        },
        stripe: crate::wiring::stripe_js(&args.payments, false),
    };
    let mut state = app_state(pool.clone(), auth, settings, &cancel)
        .with_console(console)
        .with_verification_ttl(Duration::from_secs(args.mail.contact_code_ttl_minutes * 60));
    if let Some(m) = outgoing {
        state = state.with_mailer(m);
    }
    let p = &args.provisioning;
    match (&p.chain_url, &p.chain_seed) {
        (Some(url), Some(seed)) => {
            let ports = chain_ports(url, p.rmb_url.as_deref(), seed)?;
            state = state.with_nodes(ports.nodes.clone());
            workers.extend(spawn_chain_follower(
                &pool,
                ports.chain.clone(),
                args.follower.indexer_url.as_deref(),
                args.follower.options(),
                Duration::from_secs(args.follower.reconcile_secs),
                &cancel,
            )?);
            workers.extend(spawn_provisioning(&pool, p, ports, &cancel));
        }
        (None, None) => tracing::warn!(
            "TFCHAIN_URL and MARKETPLACE_CHAIN_SEED are unset: no provisioning here \
             (run `marketplace provision` elsewhere, or deployments wait in `requested`)"
        ),
        _ => bail!("provisioning needs both TFCHAIN_URL and MARKETPLACE_CHAIN_SEED"),
    }
    let metrics = metrics_listener.map(|l| spawn_metrics(l, state.clone(), cancel.clone()));
    let api = spawn_api(listener, state, cancel.clone());
    shutdown_signal().await;
    cancel.cancel();
    join_all(workers).await;
    if let Some(metrics) = metrics {
        metrics.await.context("metrics task")??;
    }
    api.await.context("API task")?
}
