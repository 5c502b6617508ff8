//! `marketplace serve`: production mode: the API, the payment workers and
//! (when a chain is configured) the provisioning manager,
//! tokens checked against the configured JWKS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_api::console::{ConsoleAuth, ConsoleConfig};
use tokio_util::sync::CancellationToken;

use marketplace_dev::keys::{self, SigningKey};

use crate::cli::{JwtArgs, ServeArgs};
use crate::wiring::{
    app_state, bind, chain_ports, connect, join_all, mailer, payments_client, settings,
    shutdown_signal, spawn_api, spawn_auditor, spawn_chain_follower, spawn_metrics,
    spawn_notifications, spawn_payment_workers, spawn_provisioning,
};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let issuer = Issuer::from_args(&args.jwt)?;
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
    let auth = issuer
        .authenticator(&args.jwt, listener.local_addr()?)
        .await;
    if let Issuer::Dev(key) = &issuer {
        settings.dev_jwks = Some(key.jwks());
    }
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
        auth: issuer.console(&args.jwt),
        stripe: crate::wiring::stripe_js(&args.payments, false),
    };
    let mut state = app_state(pool.clone(), auth, settings, &cancel).with_console(console);
    if let Issuer::Dev(key) = issuer {
        state = state.with_dev_tokens(key);
    }
    let mut state =
        state.with_verification_ttl(Duration::from_secs(args.mail.contact_code_ttl_minutes * 60));
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

/// Who issues the tokens `serve` trusts.
enum Issuer {
    /// The configured (Auth0-compatible) issuer.
    Oidc {
        jwks_url: String,
        issuer: String,
        audience: String,
    },
    /// A development issuer: anyone may mint a token for anyone.
    Dev(Arc<SigningKey>),
}

impl Issuer {
    fn from_args(jwt: &JwtArgs) -> anyhow::Result<Issuer> {
        let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let (jwks_url, issuer, audience) = (
            set(&jwt.jwks_url),
            set(&jwt.jwt_issuer),
            set(&jwt.jwt_audience),
        );
        let dev_key = jwt
            .dev_issuer_key
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        match (jwks_url, issuer, audience, dev_key) {
            (Some(jwks_url), Some(issuer), Some(audience), _) => {
                // Production knows one thing of dev mode: never to trust its tokens.
                if issuer == marketplace_api::auth::DEV_ISSUER {
                    bail!("JWT_ISSUER is the dev issuer; production mode never accepts dev tokens");
                }
                Ok(Issuer::Oidc {
                    jwks_url,
                    issuer,
                    audience,
                })
            }
            (None, None, None, Some(path)) => {
                let key = SigningKey::load_or_create(&path).with_context(|| {
                    format!(
                        "cannot read or create the development issuer's key at {} (MARKETPLACE_DEV_ISSUER_KEY)",
                        path.display()
                    )
                })?;
                tracing::warn!(
                    key = %path.display(),
                    "JWT_JWKS_URL, JWT_ISSUER and JWT_AUDIENCE are unset: running a DEVELOPMENT issuer \
                     (anyone can sign in as anyone at POST /dev/token); set them to your Auth0 tenant for real use"
                );
                Ok(Issuer::Dev(Arc::new(key)))
            }
            (jwks_url, issuer, audience, _) => {
                let missing: Vec<&str> = [
                    ("JWT_JWKS_URL", jwks_url.is_none()),
                    ("JWT_ISSUER", issuer.is_none()),
                    ("JWT_AUDIENCE", audience.is_none()),
                ]
                .into_iter()
                .filter_map(|(name, missing)| missing.then_some(name))
                .collect();
                bail!(
                    "{} must be set (or all three unset with MARKETPLACE_DEV_ISSUER_KEY, for a development issuer)",
                    missing.join(", ")
                )
            }
        }
    }

    async fn authenticator(&self, jwt: &JwtArgs, local: SocketAddr) -> Authenticator {
        match self {
            Issuer::Oidc {
                jwks_url,
                issuer,
                audience,
            } => Authenticator::new(AuthConfig {
                jwks_url: jwks_url.clone(),
                issuer: issuer.clone(),
                audience: audience.clone(),
                roles_claim: jwt.jwt_roles_claim.clone(),
                leeway_secs: jwt.jwt_leeway_secs,
            }),
            Issuer::Dev(key) => {
                let auth = Authenticator::new(AuthConfig {
                    jwks_url: format!("http://{local}/dev/jwks.json"),
                    issuer: keys::DEV_ISSUER.to_string(),
                    audience: keys::DEV_AUDIENCE.to_string(),
                    roles_claim: keys::DEV_ROLES_CLAIM.to_string(),
                    leeway_secs: jwt.jwt_leeway_secs,
                });
                auth.preload(&key.jwks()).await;
                auth
            }
        }
    }

    fn console(&self, jwt: &JwtArgs) -> ConsoleAuth {
        match (
            self,
            jwt.oidc_client_id.as_deref().filter(|c| !c.is_empty()),
        ) {
            (Issuer::Dev(_), _) => ConsoleAuth::Dev,
            (
                Issuer::Oidc {
                    issuer, audience, ..
                },
                Some(client_id),
            ) => ConsoleAuth::Oidc {
                issuer: issuer.clone(),
                client_id: client_id.to_string(),
                audience: audience.clone(),
                roles_claim: jwt.jwt_roles_claim.clone(),
            },
            (Issuer::Oidc { .. }, None) => ConsoleAuth::Unconfigured,
        }
    }
}
