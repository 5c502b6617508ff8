//! The wiring, in one place: logging, the database pool and schema, the
//! API's state and server, the projection runners (store-tailing or Kafka),
//! the payment workers, the provisioning manager, and shutdown. Each subcommand in [`crate::cmd`]
//! assembles what it runs from these.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marketplace_api::auth::Authenticator;
use marketplace_api::views_watch::ViewWatcher;
use marketplace_api::{ApiSettings, AppState};
use marketplace_app::stripe::{Gateway, Payments, StripeSettings};
use marketplace_app::tfchain::http::HttpChain;
use marketplace_app::tfchain::{Chain, Custody};
use marketplace_app::zos::rmb::HttpRmb;
use marketplace_app::zos::Nodes;
use marketplace_app::Stores;
use marketplace_domain::TftPrice;
use marketplace_projections::tail::{self, TailOptions};
use marketplace_projections::Projection;
use marketplace_workers::jobs::WorkOptions;
use marketplace_workers::kafka::consumer::{self, WorkerOptions};
use marketplace_workers::kafka::KafkaConfig;
use marketplace_workers::provisioning::{self, Provisioner, ProvisioningOptions, Treasury};
use marketplace_workers::stripe::{
    AutoTopUpOptions, AutoTopUpWorker, InboxOptions, RunwayWorker, StripeInboxWorker,
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::{HttpArgs, LogFormat, MailArgs, PaymentsArgs, ProvisioningArgs};

/// Sets up logging: `RUST_LOG` filters (default `info`), text or JSON lines.
pub fn init_tracing(format: &LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Connects a pool, naming the setting when the URL is wrong (never
/// printing the URL, which may hold a password).
pub async fn connect(url: &SecretString, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url.expose_secret())
        .await
        .context("cannot connect to the database named by DATABASE_URL")
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    crate::MIGRATOR
        .run(pool)
        .await
        .context("migrations failed")?;
    info!("database schema is up to date");
    Ok(())
}

/// The API's settings from the command line.
pub fn settings(
    http: &HttpArgs,
    payments: Option<Gateway>,
    dev_jwks: Option<jsonwebtoken::jwk::JwkSet>,
) -> anyhow::Result<ApiSettings> {
    Ok(ApiSettings {
        body_limit: usize::try_from(http.body_limit).context("MARKETPLACE_BODY_LIMIT")?,
        read_wait: Duration::from_millis(http.read_wait_ms),
        tft_price: TftPrice::from_usd_units(http.tft_price_usd)
            .context("MARKETPLACE_TFT_PRICE_USD")?,
        stripe_webhook_secret: http
            .stripe_webhook_secret
            .clone()
            .filter(|s| !s.expose_secret().is_empty()),
        payments,
        dev_jwks,
        rate_limit: http.rate_limit.config(),
        metrics: marketplace_api::metrics::MetricsAccess::open(),
    })
}

/// Where the console loads Stripe.js from, when payments are configured:
/// the publishable key, or in dev mode against a test server
/// (`STRIPE_API_BASE`) a test key, which that server's Stripe.js accepts.
pub fn stripe_js(payments: &PaymentsArgs, dev: bool) -> Option<marketplace_api::console::StripeJs> {
    payments.stripe_secret_key.as_ref()?;
    let base = payments.stripe_api_base.as_deref();
    let key = match (&payments.stripe_publishable_key, base) {
        (Some(key), _) => key.clone(),
        (None, Some(_)) if dev => "pk_test_localstripe".to_string(),
        (None, _) => return None,
    };
    Some(marketplace_api::console::StripeJs::new(key, base))
}

/// The state handlers share. No node port yet: once the ZOS adapter is
/// wired, pass it with [`AppState::with_nodes`]; until then deployment reads
/// show the node catalog's figures.
pub fn app_state(
    pool: PgPool,
    auth: Authenticator,
    settings: ApiSettings,
    cancel: &CancellationToken,
) -> AppState {
    AppState::new(
        pool.clone(),
        Arc::new(Stores::new(&pool)),
        Arc::new(auth),
        Arc::new(settings),
        ViewWatcher::spawn(pool, cancel.clone()),
    )
}

/// The mailer `SMTP_URL` and `MAIL_FROM` configure, if any; `MAIL_FROM` is
/// required with `SMTP_URL` unless `default_from` stands in (dev mode).
pub fn mailer(
    args: &MailArgs,
    default_from: Option<&str>,
) -> anyhow::Result<Option<Arc<dyn marketplace_app::mail::Mailer>>> {
    let Some(url) = args
        .smtp_url
        .as_ref()
        .filter(|u| !u.expose_secret().is_empty())
    else {
        return Ok(None);
    };
    let from = args
        .mail_from
        .as_deref()
        .or(default_from)
        .context("MAIL_FROM is required with SMTP_URL")?;
    let settings = marketplace_app::mail::SmtpSettings::parse(url).context("SMTP_URL")?;
    info!(host = %settings.host, port = settings.port, security = ?settings.security, "mail goes out by SMTP");
    let mailer = marketplace_app::mail::SmtpMailer::new(&settings, from).context("MAIL_FROM")?;
    Ok(Some(Arc::new(mailer)))
}

/// Listens on `addr`, naming the setting when it cannot.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (MARKETPLACE_LISTEN)"))
}

/// Serves the API on `listener` until `cancel`, then drains in-flight requests.
pub fn spawn_api(
    listener: TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    let app = marketplace_api::app(state);
    tokio::spawn(async move {
        let addr = listener.local_addr()?;
        info!(%addr, "API listening");
        // With the peer's address, which the rate limiter keys anonymous
        // requests by.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
        .context("HTTP server failed")
    })
}

/// Serves `/metrics` alone on `listener` (`METRICS_ADDR`) until `cancel`.
pub fn spawn_metrics(
    listener: TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    let app = marketplace_api::metrics_app(state);
    tokio::spawn(async move {
        let addr = listener.local_addr()?;
        info!(%addr, "metrics listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await
            .context("metrics server failed")
    })
}

/// The registered projections called `names`, every one when `names` is
/// empty; an unknown name is an error listing the known ones.
pub fn select_projections(names: &[String]) -> anyhow::Result<Vec<Arc<dyn Projection>>> {
    if names.is_empty() {
        return Ok(marketplace_projections::registry());
    }
    names
        .iter()
        .map(|n| marketplace_projections::known(n).map_err(anyhow::Error::msg))
        .collect()
}

/// Starts a store-tailing runner for every registered projection; the
/// handle ends when they all have (after `cancel`).
pub fn spawn_projections(
    pool: PgPool,
    batch_size: i64,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let options = TailOptions {
        batch_size,
        ..TailOptions::default()
    };
    let runners = spawn_projection_runners(
        &pool,
        marketplace_projections::registry(),
        &options,
        &cancel,
    );
    tokio::spawn(async move {
        for runner in runners {
            let _ = runner.await;
        }
    })
}

/// One store-tailing runner per projection given, each its own task.
pub fn spawn_projection_runners(
    pool: &PgPool,
    projections: Vec<Arc<dyn Projection>>,
    options: &TailOptions,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    projections
        .into_iter()
        .map(|p| tokio::spawn(tail::run(pool.clone(), p, options.clone(), cancel.clone())))
        .collect()
}

/// One Kafka projection worker per projection given, each its own task.
pub fn spawn_kafka_workers(
    pool: &PgPool,
    config: &KafkaConfig,
    options: &WorkerOptions,
    projections: Vec<Arc<dyn Projection>>,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    projections
        .into_iter()
        .map(|p| {
            tokio::spawn(consumer::run(
                pool.clone(),
                config.clone(),
                p,
                options.clone(),
                cancel.clone(),
            ))
        })
        .collect()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    info!("shutting down");
}

/// The Stripe client, when `STRIPE_SECRET_KEY` is set.
pub fn payments_client(args: &PaymentsArgs) -> anyhow::Result<Option<Gateway>> {
    let Some(key) = args
        .stripe_secret_key
        .clone()
        .filter(|k| !k.expose_secret().is_empty())
    else {
        info!("payments are not configured (STRIPE_SECRET_KEY unset): top-ups answer 503");
        return Ok(None);
    };
    let settings = StripeSettings {
        secret_key: key,
        api_base: args.stripe_api_base.clone().filter(|b| !b.is_empty()),
    };
    info!(api_base = ?settings.api_base, "payments configured");
    let payments = Payments::new(&settings)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("STRIPE_API_BASE")?;
    Ok(Some(Arc::new(payments)))
}

/// Spawns the payment workers: the Stripe inbox worker (when webhooks are
/// configured), the auto top-up worker (when Stripe is), and the runway
/// alerts.
pub fn spawn_payment_workers(
    pool: &PgPool,
    payments: Option<Gateway>,
    args: &PaymentsArgs,
    tft_price: TftPrice,
    webhooks: bool,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if webhooks {
        let inbox = StripeInboxWorker::new(pool.clone(), payments.clone(), InboxOptions::default())
            .with_tft_price(tft_price);
        tasks.push(tokio::spawn(inbox.run(cancel.clone())));
    }
    if let Some(payments) = payments {
        let auto = AutoTopUpWorker::new(
            pool.clone(),
            payments,
            AutoTopUpOptions {
                interval: Duration::from_secs(args.auto_top_up_interval_secs),
                retry_after: chrono::Duration::hours(args.auto_top_up_retry_hours as i64),
                tft_price,
            },
        );
        tasks.push(tokio::spawn(auto.run(cancel.clone())));
    }
    let runway = RunwayWorker::new(
        pool.clone(),
        tft_price,
        args.runway_alert_hours.clone(),
        Duration::from_secs(args.runway_interval_secs),
    );
    tasks.push(tokio::spawn(runway.run(cancel.clone())));
    tasks
}

/// Waits for every task to end.
pub async fn join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// The chain and node ports at their endpoints, and the custodial keys.
pub struct ChainPorts {
    /// TFChain.
    pub chain: Arc<dyn Chain>,
    /// The nodes' RMB.
    pub nodes: Arc<dyn Nodes>,
    /// The custodial keys.
    pub custody: Arc<Custody>,
}

/// The ports at these endpoints, the keys from this master secret.
pub fn chain_ports(
    chain_url: &str,
    rmb_url: Option<&str>,
    seed: &SecretString,
) -> anyhow::Result<ChainPorts> {
    let chain = HttpChain::new(chain_url).context("TFCHAIN_URL")?;
    let nodes = HttpRmb::new(rmb_url.unwrap_or(chain_url)).context("RMB_URL")?;
    let custody = Custody::from_seed(seed).context("MARKETPLACE_CHAIN_SEED")?;
    Ok(ChainPorts {
        chain: Arc::new(chain),
        nodes: Arc::new(nodes),
        custody: Arc::new(custody),
    })
}

/// The provisioning manager, the treasury worker and the alliance workers.
pub fn spawn_provisioning(
    pool: &PgPool,
    args: &ProvisioningArgs,
    ChainPorts {
        chain,
        nodes,
        custody,
    }: ChainPorts,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let alliances = marketplace_workers::alliance::spawn(
        pool,
        chain.clone(),
        custody.clone(),
        marketplace_workers::alliance::SettlementOptions {
            settle_after: args.alliance_settle_after_secs as i64,
        },
        Duration::from_secs(args.alliance_interval_secs),
        cancel,
    );
    let options = ProvisioningOptions {
        max_nodes: args.max_nodes as usize,
        stall_timeout: Duration::from_secs(args.stall_secs),
        ..ProvisioningOptions::default()
    };
    let mut work = WorkOptions::new(provisioning::WORKER);
    work.concurrency = args.concurrency as usize;
    work.lease = Duration::from_secs(args.lease_secs);
    let treasury = Treasury::new(pool, chain.clone(), custody.clone());
    let provisioner = Provisioner::new(pool.clone(), chain, nodes, custody, options);
    let mut tasks = provisioning::spawn(pool.clone(), provisioner, work.clone(), cancel.clone());
    let mut treasury_work = WorkOptions::new("treasury");
    treasury_work.concurrency = 4;
    treasury_work.lease = work.lease;
    tasks.extend(provisioning::spawn_treasury(
        pool.clone(),
        treasury,
        treasury_work,
        cancel.clone(),
    ));
    tasks.extend(alliances);
    tasks
}

/// The auditor: global checkpoints and periodic verification of the store.
pub fn spawn_auditor(
    pool: &PgPool,
    args: &crate::cli::AuditorArgs,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    marketplace_workers::audit::spawn(
        pool,
        Duration::from_secs(args.audit_checkpoint_secs),
        Duration::from_secs(args.audit_verify_secs),
        cancel,
    )
}

/// The chain-event follower, and the reconciliation of custodial ledgers
/// with their chain accounts every `reconcile_every`.
pub fn spawn_chain_follower(
    pool: &PgPool,
    chain: Arc<dyn marketplace_app::tfchain::Chain>,
    indexer_url: Option<&str>,
    options: marketplace_workers::chain::FollowerOptions,
    reconcile_every: Duration,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut follower =
        marketplace_workers::chain::ChainFollower::new(pool.clone(), chain.clone(), options);
    let indexer: Option<Arc<dyn marketplace_app::tfchain::Indexer>> = match indexer_url {
        Some(url) => Some(Arc::new(
            marketplace_app::tfchain::GraphqlIndexer::new(url).context("TFCHAIN_INDEXER_URL")?,
        )),
        None => {
            tracing::warn!(
                "TFCHAIN_INDEXER_URL is unset: after downtime longer than the chain keeps events, \
                 the chain follower stops and says so instead of backfilling"
            );
            None
        }
    };
    if let Some(indexer) = &indexer {
        follower = follower.with_indexer(indexer.clone());
    }
    Ok(vec![
        tokio::spawn(follower.run(cancel.clone())),
        marketplace_workers::chain::spawn_reconciler(pool, chain, indexer, reconcile_every, cancel),
    ])
}

/// The notification process manager (intake and maintenance timers) and
/// its delivery workers.
pub fn spawn_notifications(
    pool: &PgPool,
    options: marketplace_workers::notify::DeliveryOptions,
    mailer: Option<Arc<dyn marketplace_app::mail::Mailer>>,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    marketplace_workers::notify::spawn(pool.clone(), options, mailer, cancel.clone())
}
