//! `marketplace dev`: everything in one process on a private PostgreSQL
//! (or `DATABASE_URL`): the API with dev mode's own tokens and JWKS, the
//! projections tailing the store, the payment workers, the provisioning
//! manager and the treasury's transfers, and the grid sync
//! worker reading the grid SIMULATOR (or `GRID_PROXY_URL`), which also
//! simulates TFChain and the ZOS nodes on the same URL.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_api::console::{ConsoleAuth, ConsoleConfig};
use marketplace_app::grid::GridClient;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::keys::{self, SigningKey};
use marketplace_dev::mode;
use marketplace_workers::grid::{GridSync, GridSyncOptions, SystemClock};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::DevArgs;
use crate::wiring::{
    app_state, bind, chain_ports, connect, join_all, mailer, migrate, payments_client, settings,
    shutdown_signal, spawn_api, spawn_auditor, spawn_chain_follower, spawn_notifications,
    spawn_payment_workers, spawn_projections, spawn_provisioning,
};

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create MARKETPLACE_DATA_DIR {}",
            args.data_dir.display()
        )
    })?;
    let data_dir = args.data_dir.canonicalize()?;
    let listener = bind(args.http.listen).await?;
    let local = listener.local_addr()?;

    let (embedded, url) = match &args.database_url {
        Some(url) => (None, url.clone()),
        None => {
            let pg = EmbeddedPostgres::start(EmbeddedOptions {
                data_dir: data_dir.join("pgdata"),
                port: 0,
                durable: true,
                max_connections: 100,
            })
            .await
            .context(
                "cannot start the private PostgreSQL (install PostgreSQL or set DATABASE_URL)",
            )?;
            pg.ensure_database("marketplace").await?;
            let url = pg.url("marketplace");
            // Other processes (a relay, Kafka workers, psql) can join it;
            // it has no password (trust auth on loopback).
            info!(database_url = %url, "dev database (trust auth on loopback)");
            (Some(pg), SecretString::from(url))
        }
    };
    let pool = connect(&url, 32).await?;
    migrate(&pool).await?;

    let key = SigningKey::load_or_create(&data_dir.join("dev-signing-key.pem"))?;
    let jwks = key.jwks();
    let auth = Authenticator::new(AuthConfig {
        jwks_url: format!("http://{local}/dev/jwks.json"),
        issuer: keys::DEV_ISSUER.to_string(),
        audience: keys::DEV_AUDIENCE.to_string(),
        roles_claim: keys::DEV_ROLES_CLAIM.to_string(),
        leeway_secs: 30,
    });
    auth.preload(&jwks).await;
    let payments = payments_client(&args.payments)?;
    let settings = settings(&args.http, payments.clone(), Some(jwks))?;

    let cancel = CancellationToken::new();
    let payment_workers = spawn_payment_workers(
        &pool,
        payments,
        &args.payments,
        settings.tft_price,
        settings.stripe_webhook_secret.is_some(),
        &cancel,
    );
    let stripe_js = crate::wiring::stripe_js(&args.payments, true);
    let mut state = app_state(pool.clone(), auth, settings, &cancel)
        .with_console(ConsoleConfig {
            auth: ConsoleAuth::Dev,
            stripe: stripe_js,
        })
        .with_dev_tokens(Arc::new(key))
        .with_loopback_webhooks()
        .with_verification_ttl(Duration::from_secs(args.mail.contact_code_ttl_minutes * 60));
    // Dev mode sends real mail only when told where; otherwise every
    // message (contact-email codes, notifications) lands in the log.
    let outgoing: Arc<dyn marketplace_app::mail::Mailer> =
        match mailer(&args.mail, Some(DEV_MAIL_FROM))? {
            Some(m) => m,
            None => {
                info!("SMTP_URL is unset: mail is written to this log instead of sent");
                Arc::new(marketplace_dev::mail::LogMailer)
            }
        };
    state = state.with_mailer(outgoing.clone());
    let runner = spawn_projections(pool.clone(), 500, cancel.clone());
    let notifications = spawn_notifications(
        &pool,
        args.notify.options(),
        Some(outgoing.clone()),
        &cancel,
    );
    let auditor = spawn_auditor(&pool, &args.auditor, &cancel);
    let (grid_url, simulated) = match &args.grid_url {
        Some(url) => (url.clone(), false),
        None => (mode::spawn_grid_sim(&cancel).await?, true),
    };
    let p = &args.provisioning;
    let chain_url = p.chain_url.clone().or(simulated.then(|| grid_url.clone()));
    let provisioning = match chain_url {
        Some(chain_url) => {
            let seed = match &p.chain_seed {
                Some(seed) => seed.clone(),
                None => mode::chain_seed(&data_dir.join("dev-chain-seed"))?,
            };
            let ports = chain_ports(&chain_url, p.rmb_url.as_deref(), &seed)?;
            if simulated {
                mode::fund_treasury(&grid_url, ports.custody.treasury().address()).await;
            }
            info!(%chain_url, treasury = %ports.custody.treasury().address(), "provisioning deployments on the chain at {chain_url}");
            state = state.with_nodes(ports.nodes.clone());
            let indexer = args
                .follower
                .indexer_url
                .clone()
                .or(simulated.then(|| format!("{}/graphql", grid_url.trim_end_matches('/'))));
            let mut tasks = spawn_chain_follower(
                &pool,
                ports.chain.clone(),
                indexer.as_deref(),
                args.follower.options(),
                Duration::from_secs(args.follower.reconcile_secs),
                &cancel,
            )?;
            tasks.extend(spawn_provisioning(&pool, p, ports, &cancel));
            tasks
        }
        None => {
            tracing::warn!(
                "GRID_PROXY_URL is set but TFCHAIN_URL is not: deployments are not provisioned"
            );
            Vec::new()
        }
    };
    let client = GridClient::new(&grid_url).context("GRID_PROXY_URL")?;
    let worker = GridSync::new(
        client,
        pool.clone(),
        Arc::new(SystemClock),
        GridSyncOptions {
            interval: Duration::from_secs(args.grid_sync_interval_secs),
            ..GridSyncOptions::default()
        },
    );
    let grid_sync = tokio::spawn(worker.run(cancel.clone()));
    let api = spawn_api(listener, state, cancel.clone());
    info!(
        "dev mode ready: the console on http://{local}/ — or get a token with: marketplace token --role cloud-user --sub alice"
    );
    shutdown_signal().await;
    cancel.cancel();
    let served = api.await.context("API task")?;
    let _ = runner.await;
    join_all(notifications).await;
    let _ = grid_sync.await;
    join_all(payment_workers).await;
    join_all(auditor).await;
    join_all(provisioning).await;
    pool.close().await;
    if let Some(pg) = embedded {
        pg.stop().await?;
    }
    served
}

/// Who dev mode's mail is from when MAIL_FROM is unset.
const DEV_MAIL_FROM: &str = "Marketplace (dev) <noreply@marketplace.dev.local>";
