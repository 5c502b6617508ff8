//! Wiring: pools, migrations, the API server, projection runners, the grid
//! sync worker and grid proxy simulator, dev mode.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_api::dev_keys::{self, SigningKey};
use marketplace_api::views_watch::ViewWatcher;
use marketplace_api::{ApiSettings, AppState};
use marketplace_domain::TftPrice;
use marketplace_projections::deployments::{self, DeploymentProjection};
use marketplace_projections::nodes::{self, NodeProjection};
use marketplace_projections::pricing::{self, PricingPolicyProjection};
use marketplace_projections::providers::{self, ProviderRequestProjection};
use marketplace_projections::tail::{self, TailOptions};
use marketplace_projections::wallets::{self, WalletProjection};
use marketplace_projections::Projection;
use marketplace_workers::grid::{sim, GridClient, Seed};
use marketplace_workers::kafka::consumer::{self, WorkerOptions};
use marketplace_workers::kafka::relay::{self, RelayOptions};
use marketplace_workers::kafka::KafkaConfig;
use marketplace_workers::stripe::{Payments, StripeSettings};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::{
    Cli, Command, DeadLettersCommand, DevArgs, GridSimArgs, HttpArgs, LogFormat, PaymentsArgs,
    ProjectArgs, RelayArgs, ServeArgs, Source, SyncArgs, TokenArgs,
};
use crate::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use crate::grid_sync::{GridSync, GridSyncOptions, SystemClock};

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

/// Runs a subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Project(args) => project(args).await,
        Command::Relay(args) => relay(args).await,
        Command::DeadLetters(command) => dead_letters(command).await,
        Command::Replay(args) => {
            if !PROJECTIONS.contains(&args.projection.as_str()) {
                bail!(
                    "unknown projection {:?}; known: {}",
                    args.projection,
                    PROJECTIONS.join(", ")
                );
            }
            let pool = connect(&args.db.database_url, 4).await?;
            let n = rebuild_named(&pool, &args.projection, args.batch_size).await?;
            info!(events = n, "rebuilt and swapped in");
            Ok(())
        }
        Command::Migrate(db) => {
            let pool = connect(&db.database_url, 2).await?;
            migrate(&pool).await
        }
        Command::Token(args) => token(args),
        Command::Sync(args) => sync(args).await,
        Command::GridSim(args) => grid_sim(args).await,
        Command::Payments(args) => payment_workers(args).await,
    }
}

/// Connects a pool, naming the setting when the URL is wrong.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
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

fn settings(
    http: &HttpArgs,
    payments: Option<Payments>,
    dev_jwks: Option<jsonwebtoken::jwk::JwkSet>,
) -> anyhow::Result<ApiSettings> {
    Ok(ApiSettings {
        body_limit: usize::try_from(http.body_limit).context("MARKETPLACE_BODY_LIMIT")?,
        read_wait: Duration::from_millis(http.read_wait_ms),
        tft_price: TftPrice::from_usd_units(http.tft_price_usd)
            .context("MARKETPLACE_TFT_PRICE_USD")?,
        stripe_webhook_secret: http.stripe_webhook_secret.clone().filter(|s| !s.is_empty()),
        payments,
        dev_jwks,
    })
}

/// The state handlers share.
pub fn app_state(
    pool: PgPool,
    auth: Authenticator,
    settings: ApiSettings,
    cancel: &CancellationToken,
) -> AppState {
    AppState {
        stores: Arc::new(marketplace_api::commands::Stores::new(&pool)),
        views: ViewWatcher::spawn(pool.clone(), cancel.clone()),
        pool,
        auth: Arc::new(auth),
        settings: Arc::new(settings),
    }
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
        axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await
            .context("HTTP server failed")
    })
}

/// Every projection's name, as `replay` takes it.
pub const PROJECTIONS: [&str; 5] = marketplace_projections::NAMES;

/// Starts one tail runner per projection (deployments, the node catalog,
/// provider requests, the pricing policy); the handle ends when they all
/// have (after `cancel`).
pub fn spawn_projections(
    pool: PgPool,
    batch_size: i64,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let options = TailOptions {
        batch_size,
        ..TailOptions::default()
    };
    let runners = spawn_projection_runners(&pool, &options, &cancel);
    tokio::spawn(async move {
        for runner in runners {
            let _ = runner.await;
        }
    })
}

/// One tail runner per projection, each its own task.
pub fn spawn_projection_runners(
    pool: &PgPool,
    options: &TailOptions,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    fn runner<P: Projection>(
        pool: &PgPool,
        projection: P,
        options: &TailOptions,
        cancel: &CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(tail::run(
            pool.clone(),
            projection,
            options.clone(),
            cancel.clone(),
        ))
    }
    vec![
        runner(pool, DeploymentProjection, options, cancel),
        runner(pool, NodeProjection, options, cancel),
        runner(pool, ProviderRequestProjection, options, cancel),
        runner(pool, PricingPolicyProjection, options, cancel),
        runner(pool, WalletProjection, options, cancel),
    ]
}

/// Rebuilds the projection called `name` (one of [`PROJECTIONS`]) aside
/// and swaps it in; returns the events read.
async fn rebuild_named(pool: &PgPool, name: &str, batch_size: i64) -> anyhow::Result<usize> {
    let n = match name {
        deployments::NAME => tail::rebuild(pool, &DeploymentProjection, batch_size).await?,
        nodes::NAME => tail::rebuild(pool, &NodeProjection, batch_size).await?,
        providers::NAME => tail::rebuild(pool, &ProviderRequestProjection, batch_size).await?,
        pricing::NAME => tail::rebuild(pool, &PricingPolicyProjection, batch_size).await?,
        wallets::NAME => tail::rebuild(pool, &WalletProjection, batch_size).await?,
        other => bail!("unknown projection {other:?}"),
    };
    Ok(n)
}

/// Catches every projection up with the store once; returns the events read.
async fn catch_up_all(pool: &PgPool, batch_size: i64) -> anyhow::Result<usize> {
    Ok(
        tail::catch_up(pool, &DeploymentProjection, batch_size).await?
            + tail::catch_up(pool, &NodeProjection, batch_size).await?
            + tail::catch_up(pool, &ProviderRequestProjection, batch_size).await?
            + tail::catch_up(pool, &PricingPolicyProjection, batch_size).await?
            + tail::catch_up(pool, &WalletProjection, batch_size).await?,
    )
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

async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (MARKETPLACE_LISTEN)"))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.jwt.jwt_issuer == dev_keys::DEV_ISSUER {
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
    for w in workers {
        let _ = w.await;
    }
    api.await.context("API task")?
}

/// `marketplace payments`: the payment workers without the API.
async fn payment_workers(args: crate::cli::PaymentsWorkerArgs) -> anyhow::Result<()> {
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let payments = payments_client(&args.payments)?;
    let tft_price =
        TftPrice::from_usd_units(args.tft_price_usd).context("MARKETPLACE_TFT_PRICE_USD")?;
    let cancel = CancellationToken::new();
    let workers = spawn_payment_workers(&pool, payments, &args.payments, tft_price, true, &cancel);
    info!("payment workers running");
    shutdown_signal().await;
    cancel.cancel();
    for w in workers {
        let _ = w.await;
    }
    pool.close().await;
    Ok(())
}

/// The Stripe client, when `STRIPE_SECRET_KEY` is set.
pub fn payments_client(args: &PaymentsArgs) -> anyhow::Result<Option<Payments>> {
    let Some(key) = args.stripe_secret_key.clone().filter(|k| !k.is_empty()) else {
        info!("payments are not configured (STRIPE_SECRET_KEY unset): top-ups answer 503");
        return Ok(None);
    };
    let settings = StripeSettings {
        secret_key: key,
        api_base: args.stripe_api_base.clone().filter(|b| !b.is_empty()),
    };
    info!(api_base = ?settings.api_base, "payments configured");
    Ok(Some(
        Payments::new(&settings)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("STRIPE_API_BASE")?,
    ))
}

/// Spawns the payment workers: the Stripe inbox worker (when webhooks are
/// configured), the auto top-up worker (when Stripe is), and the runway
/// alerts.
pub fn spawn_payment_workers(
    pool: &PgPool,
    payments: Option<Payments>,
    args: &PaymentsArgs,
    tft_price: TftPrice,
    webhooks: bool,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    use crate::payments::*;
    let mut tasks = Vec::new();
    if webhooks {
        let inbox = StripeInboxWorker::new(pool.clone(), payments.clone(), InboxOptions::default());
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

async fn project(args: ProjectArgs) -> anyhow::Result<()> {
    for name in &args.only {
        if !PROJECTIONS.contains(&name.as_str()) {
            bail!(
                "PROJECTIONS names an unknown projection {name:?}; known: {}",
                PROJECTIONS.join(", ")
            );
        }
    }
    let kafka = match args.source {
        Source::Store => None,
        Source::Kafka => {
            if args.once {
                bail!("--once tails the store; it does not apply with PROJECTION_SOURCE=kafka");
            }
            Some(args.kafka.config().map_err(anyhow::Error::msg)?)
        }
    };
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let selected: Vec<&str> = PROJECTIONS
        .into_iter()
        .filter(|n| args.only.is_empty() || args.only.iter().any(|o| o == n))
        .collect();
    if args.rebuild {
        for name in &selected {
            let n = rebuild_named(&pool, name, args.batch_size).await?;
            info!(projection = name, events = n, "views rebuilt");
        }
    }
    if args.once {
        let n = catch_up_all(&pool, args.batch_size).await?;
        info!(events = n, "caught up");
        return Ok(());
    }
    let cancel = CancellationToken::new();
    let runners = match kafka {
        None => spawn_projection_runners(
            &pool,
            &TailOptions {
                batch_size: args.batch_size,
                ..TailOptions::default()
            },
            &cancel,
        )
        .into_iter()
        .zip(PROJECTIONS)
        .filter(|(_, name)| selected.contains(name))
        .map(|(runner, _)| runner)
        .collect::<Vec<_>>(),
        Some(config) => {
            let options = WorkerOptions {
                batch_size: usize::try_from(args.batch_size)?,
                ..WorkerOptions::default()
            };
            spawn_kafka_workers(&pool, &config, &options, &selected, &cancel)
        }
    };
    shutdown_signal().await;
    cancel.cancel();
    for runner in runners {
        runner.await.context("projection task")?;
    }
    Ok(())
}

/// One Kafka projection worker per selected projection, each its own task.
pub fn spawn_kafka_workers(
    pool: &PgPool,
    config: &KafkaConfig,
    options: &WorkerOptions,
    selected: &[&str],
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    fn worker<P: Projection>(
        pool: &PgPool,
        config: &KafkaConfig,
        projection: P,
        options: &WorkerOptions,
        cancel: &CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(consumer::run(
            pool.clone(),
            config.clone(),
            projection,
            options.clone(),
            cancel.clone(),
        ))
    }
    selected
        .iter()
        .filter_map(|name| {
            Some(match *name {
                deployments::NAME => worker(pool, config, DeploymentProjection, options, cancel),
                nodes::NAME => worker(pool, config, NodeProjection, options, cancel),
                providers::NAME => worker(pool, config, ProviderRequestProjection, options, cancel),
                pricing::NAME => worker(pool, config, PricingPolicyProjection, options, cancel),
                wallets::NAME => worker(pool, config, WalletProjection, options, cancel),
                _ => return None,
            })
        })
        .collect()
}

async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    let config = args.kafka.config().map_err(anyhow::Error::msg)?;
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let mut options = RelayOptions::new(args.relay_name);
    options.batch_size = args.batch_size;
    options.aggregate_types = marketplace_projections::aggregate_types()
        .into_iter()
        .map(String::from)
        .collect();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(relay::run(pool, config, options, cancel.clone()));
    shutdown_signal().await;
    cancel.cancel();
    task.await.context("relay task")?;
    Ok(())
}

async fn dead_letters(command: DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List { db, projection } => {
            let pool = connect(&db.database_url, 2).await?;
            let rows: Vec<marketplace_api::dead_letters::DeadLetter> = sqlx::query_as(
                "SELECT id, projection, event_position, aggregate_type, aggregate_id, sequence,
                        event_type, error, failed_at, resolved_at
                   FROM projection_dead_letters
                  WHERE resolved_at IS NULL AND ($1::text IS NULL OR projection = $1)
                  ORDER BY id",
            )
            .bind(projection.as_deref())
            .fetch_all(&pool)
            .await?;
            for row in rows {
                println!("{}", serde_json::to_string(&row)?);
            }
            Ok(())
        }
        DeadLettersCommand::Retry { projection, db } => {
            if !PROJECTIONS.contains(&projection.as_str()) {
                bail!(
                    "unknown projection {projection:?}; known: {}",
                    PROJECTIONS.join(", ")
                );
            }
            let pool = connect(&db.database_url, 2).await?;
            match marketplace_projections::retry_dead_letters_named(&pool, &projection).await? {
                Some((resolved, failing)) => {
                    println!("{resolved} resolved, {failing} still failing");
                    if failing > 0 {
                        bail!("{failing} dead letters of {projection} still fail; see `dead-letters list`");
                    }
                    Ok(())
                }
                None => bail!(
                    "unknown projection {projection:?}; known: {}",
                    PROJECTIONS.join(", ")
                ),
            }
        }
    }
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let key = SigningKey::load_or_create(&args.data_dir.join("dev-signing-key.pem"))
        .context("cannot read or create the dev signing key under MARKETPLACE_DATA_DIR")?;
    let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    println!("{}", key.mint_dev_token(&args.sub, &roles, args.ttl_secs)?);
    Ok(())
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
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
            // Other processes (a relay, Kafka workers, psql) can join it.
            info!(database_url = %url, "dev database (trust auth on loopback)");
            (Some(pg), url)
        }
    };
    let pool = connect(&url, 32).await?;
    migrate(&pool).await?;

    let key = SigningKey::load_or_create(&data_dir.join("dev-signing-key.pem"))?;
    let jwks = key.jwks();
    let auth = Authenticator::new(AuthConfig {
        jwks_url: format!("http://{local}/dev/jwks.json"),
        issuer: dev_keys::DEV_ISSUER.to_string(),
        audience: dev_keys::DEV_AUDIENCE.to_string(),
        roles_claim: dev_keys::DEV_ROLES_CLAIM.to_string(),
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
    let state = app_state(pool.clone(), auth, settings, &cancel);
    let runner = spawn_projections(pool.clone(), 500, cancel.clone());
    let grid_url = match &args.grid_url {
        Some(url) => url.clone(),
        None => spawn_dev_grid_sim(&cancel).await?,
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
        "dev mode ready on http://{local} — get a token with: marketplace token --role cloud-user --sub alice"
    );
    shutdown_signal().await;
    cancel.cancel();
    let served = api.await.context("API task")?;
    let _ = runner.await;
    let _ = grid_sync.await;
    for w in payment_workers {
        let _ = w.await;
    }
    pool.close().await;
    if let Some(pg) = embedded {
        pg.stop().await?;
    }
    served
}

/// How often a grid node reports, and so how far dev mode moves the
/// simulator's clock each time.
const DEV_REPORT_EVERY: Duration = Duration::from_secs(40 * 60);

/// Dev mode's grid: the grid proxy SIMULATOR on a free loopback port with
/// the small dev catalog ([`Seed::dev`]). Its clock starts at the wall
/// clock but only moves when told to; so that the catalog does not read
/// `down` after 80 minutes of dev mode, its clock is advanced by 40 minutes
/// every 40 minutes (the grid's report cadence), as if every node reported.
/// Returns the simulator's URL.
async fn spawn_dev_grid_sim(cancel: &CancellationToken) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the dev grid proxy simulator")?;
    let url = format!("http://{}", listener.local_addr()?);
    let seed = Seed::dev();
    let (farms, nodes) = (seed.farms.len(), seed.nodes.len());
    let served = cancel.clone();
    tokio::spawn(async move {
        if let Err(e) = sim::serve(listener, seed, served).await {
            tracing::error!(error = %e, "dev grid proxy SIMULATOR failed");
        }
    });
    info!(
        %url, farms, nodes,
        "dev mode syncs from a grid proxy SIMULATOR (made-up catalog; set GRID_PROXY_URL for a real grid proxy). \
         Try POST {url}/sim/nodes/3/fill, /sim/nodes/1/down, /sim/clock/advance?minutes=81"
    );
    let cancel = cancel.clone();
    let advance = format!(
        "{url}/sim/clock/advance?minutes={}",
        DEV_REPORT_EVERY.as_secs() / 60
    );
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut every = tokio::time::interval(DEV_REPORT_EVERY);
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = cancel.cancelled() => return,
            }
            if let Err(e) = http.post(&advance).send().await {
                tracing::warn!(error = %e, "could not advance the dev grid simulator's clock");
            }
        }
    });
    Ok(url)
}

/// `marketplace sync`: the grid sync worker, or one run with `--once`.
async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    let client = GridClient::new(&args.grid_url)
        .context("GRID_PROXY_URL")?
        .with_page_size(args.page_size);
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    let options = GridSyncOptions {
        interval: Duration::from_secs(args.interval_secs),
        concurrency: args.concurrency as usize,
        ..GridSyncOptions::default()
    };
    let worker = GridSync::new(client, pool.clone(), Arc::new(SystemClock), options);
    if args.once {
        let stats = worker.sync_once().await.context("grid sync failed")?;
        pool.close().await;
        if stats.failed > 0 {
            bail!("{} of {} nodes failed to sync", stats.failed, stats.fetched);
        }
        return Ok(());
    }
    let cancel = CancellationToken::new();
    let task = tokio::spawn(worker.run(cancel.clone()));
    shutdown_signal().await;
    cancel.cancel();
    task.await.context("grid sync task")?;
    pool.close().await;
    Ok(())
}

/// `marketplace grid-sim`: the grid proxy SIMULATOR until SIGINT/SIGTERM.
async fn grid_sim(args: GridSimArgs) -> anyhow::Result<()> {
    let seed = match (&args.seed, args.generate_nodes) {
        (Some(path), _) => Seed::from_file(path).context("GRID_SIM_SEED")?,
        (None, Some(nodes)) => {
            let farms = args
                .generate_farms
                .unwrap_or(nodes.div_ceil(20))
                .clamp(1, 512);
            Seed::generate(farms, nodes, 1)
        }
        (None, None) => Seed::dev(),
    };
    tracing::warn!(
        "starting a grid proxy SIMULATOR: it serves a made-up catalog, not the ThreeFold Grid"
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (GRID_SIM_LISTEN)", args.listen))?;
    let cancel = CancellationToken::new();
    let mut server = tokio::spawn(sim::serve(listener, seed, cancel.clone()));
    tokio::select! {
        served = &mut server => return served.context("simulator task")?.context("grid proxy simulator failed"),
        _ = shutdown_signal() => {}
    }
    cancel.cancel();
    server
        .await
        .context("simulator task")?
        .context("grid proxy simulator failed")
}
