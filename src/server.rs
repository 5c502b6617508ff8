//! Wiring: pools, migrations, the API server, projection runners, dev mode.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_api::dev_keys::{self, SigningKey};
use marketplace_api::views_watch::ViewWatcher;
use marketplace_api::{ApiSettings, AppState};
use marketplace_domain::pricing::PricingPolicy;
use marketplace_domain::TftPrice;
use marketplace_projections::deployments::DeploymentProjection;
use marketplace_projections::tail::{self, TailOptions};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::{Cli, Command, DevArgs, HttpArgs, LogFormat, ProjectArgs, ServeArgs, TokenArgs};
use crate::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};

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
        Command::Replay(args) => {
            if args.projection != marketplace_projections::deployments::NAME {
                bail!(
                    "unknown projection {:?}; known: {}",
                    args.projection,
                    marketplace_projections::deployments::NAME
                );
            }
            let pool = connect(&args.db.database_url, 4).await?;
            let n = tail::rebuild(&pool, &DeploymentProjection, args.batch_size).await?;
            info!(events = n, "rebuilt and swapped in");
            Ok(())
        }
        Command::Migrate(db) => {
            let pool = connect(&db.database_url, 2).await?;
            migrate(&pool).await
        }
        Command::Token(args) => token(args),
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
    dev_jwks: Option<jsonwebtoken::jwk::JwkSet>,
) -> anyhow::Result<ApiSettings> {
    Ok(ApiSettings {
        body_limit: usize::try_from(http.body_limit).context("MARKETPLACE_BODY_LIMIT")?,
        read_wait: Duration::from_millis(http.read_wait_ms),
        tft_price: TftPrice::from_usd_units(http.tft_price_usd)
            .context("MARKETPLACE_TFT_PRICE_USD")?,
        pricing: PricingPolicy::default(),
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

/// Starts every projection runner, tailing the store.
pub fn spawn_projections(
    pool: PgPool,
    batch_size: i64,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let options = TailOptions {
        batch_size,
        ..TailOptions::default()
    };
    tokio::spawn(tail::run(pool, DeploymentProjection, options, cancel))
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
    let settings = settings(&args.http, None)?;
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
    let state = app_state(pool, auth, settings, &cancel);
    let api = spawn_api(listener, state, cancel.clone());
    shutdown_signal().await;
    cancel.cancel();
    api.await.context("API task")?
}

async fn project(args: ProjectArgs) -> anyhow::Result<()> {
    let pool = connect(&args.db.database_url, args.db.database_max_connections).await?;
    if args.rebuild {
        let n = tail::rebuild(&pool, &DeploymentProjection, args.batch_size).await?;
        info!(events = n, "deployment views rebuilt");
    }
    if args.once {
        let n = tail::catch_up(&pool, &DeploymentProjection, args.batch_size).await?;
        info!(events = n, "caught up");
        return Ok(());
    }
    let cancel = CancellationToken::new();
    let runner = spawn_projections(pool, args.batch_size, cancel.clone());
    shutdown_signal().await;
    cancel.cancel();
    runner.await.context("projection task")?;
    Ok(())
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
    let settings = settings(&args.http, Some(jwks))?;

    let cancel = CancellationToken::new();
    let state = app_state(pool.clone(), auth, settings, &cancel);
    let runner = spawn_projections(pool.clone(), 500, cancel.clone());
    let api = spawn_api(listener, state, cancel.clone());
    info!(
        "dev mode ready on http://{local} — get a token with: marketplace token --role cloud-user --sub alice"
    );
    shutdown_signal().await;
    cancel.cancel();
    let served = api.await.context("API task")?;
    let _ = runner.await;
    pool.close().await;
    if let Some(pg) = embedded {
        pg.stop().await?;
    }
    served
}
