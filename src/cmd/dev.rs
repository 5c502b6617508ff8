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
use marketplace_app::grid::GridClient;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::grid_sim::{self as sim, Seed, SimOptions};
use marketplace_dev::keys::{self, SigningKey};
use marketplace_workers::grid::{GridSync, GridSyncOptions, SystemClock};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::DevArgs;
use crate::wiring::{
    app_state, bind, chain_ports, connect, join_all, mailer, migrate, payments_client, settings,
    shutdown_signal, spawn_api, spawn_auditor, spawn_chain_follower, spawn_payment_workers,
    spawn_projections, spawn_provisioning,
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
    let mut state = app_state(pool.clone(), auth, settings, &cancel)
        .with_verification_ttl(Duration::from_secs(args.mail.contact_code_ttl_minutes * 60));
    // Dev mode sends real mail only when told where; otherwise every
    // message lands in the log, where the code can be read.
    state = match mailer(&args.mail, Some(DEV_MAIL_FROM))? {
        Some(m) => state.with_mailer(m),
        None => {
            info!("SMTP_URL is unset: mail is written to this log instead of sent");
            state.with_mailer(Arc::new(marketplace_dev::mail::LogMailer))
        }
    };
    let runner = spawn_projections(pool.clone(), 500, cancel.clone());
    let auditor = spawn_auditor(&pool, &args.auditor, &cancel);
    let (grid_url, simulated) = match &args.grid_url {
        Some(url) => (url.clone(), false),
        None => (spawn_dev_grid_sim(&cancel).await?, true),
    };
    let p = &args.provisioning;
    let chain_url = p.chain_url.clone().or(simulated.then(|| grid_url.clone()));
    let provisioning = match chain_url {
        Some(chain_url) => {
            let seed = match &p.chain_seed {
                Some(seed) => seed.clone(),
                None => dev_chain_seed(&data_dir.join("dev-chain-seed"))?,
            };
            let ports = chain_ports(&chain_url, p.rmb_url.as_deref(), &seed)?;
            if simulated {
                fund_treasury(&grid_url, ports.custody.treasury().address()).await;
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
        "dev mode ready on http://{local} — get a token with: marketplace token --role cloud-user --sub alice"
    );
    shutdown_signal().await;
    cancel.cancel();
    let served = api.await.context("API task")?;
    let _ = runner.await;
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

/// Dev mode's chain master secret: `MARKETPLACE_CHAIN_SEED`, or one made
/// on first start and kept (owner-only) in the data directory, so the dev
/// users' custodial accounts survive restarts. Dev only: production takes
/// the secret from configuration and never writes it.
fn dev_chain_seed(path: &std::path::Path) -> anyhow::Result<SecretString> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(SecretString::from(text.trim().to_string()));
    }
    let bytes: [u8; 32] = rand::random();
    let seed = format!("0x{}", hex::encode(bytes));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(seed.as_bytes())?;
    }
    Ok(SecretString::from(seed))
}

/// Mints TFT to the treasury on the simulated chain, so card top-ups can
/// be paid out in dev mode (the simulator's sudo; a real treasury is
/// funded by buying TFT).
async fn fund_treasury(sim: &str, treasury: &str) {
    let body = serde_json::json!({ "account": treasury, "amount": 10_000_000u64 * 10_000_000 });
    let funded = reqwest::Client::new()
        .post(format!("{sim}/sim/chain/fund"))
        .json(&body)
        .send()
        .await;
    if let Err(e) = funded.and_then(|r| r.error_for_status()) {
        tracing::warn!(error = %e, "could not fund the dev treasury on the simulated chain");
    }
}

/// How often a grid node reports, and so how far dev mode moves the
/// simulator's clock each time.
const DEV_REPORT_EVERY: Duration = Duration::from_secs(40 * 60);

/// Dev mode's grid: the grid SIMULATOR on a free loopback port with the
/// small dev catalog ([`Seed::dev`]): the grid proxy, and on the same URL a
/// simulated TFChain (`/chain/...`) and simulated ZOS nodes (`/rmb`), whose
/// workloads turn `ok` after 1.5 s. Its clock starts at the wall clock but
/// only moves when told to; so that the catalog does not read `down` after
/// 80 minutes of dev mode, its clock is advanced by 40 minutes every 40
/// minutes (the grid's report cadence), as if every node reported.
/// Returns the simulator's URL.
async fn spawn_dev_grid_sim(cancel: &CancellationToken) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the dev grid simulator")?;
    let url = format!("http://{}", listener.local_addr()?);
    let seed = Seed::dev();
    let (farms, nodes) = (seed.farms.len(), seed.nodes.len());
    let served = cancel.clone();
    tokio::spawn(async move {
        if let Err(e) = sim::serve(listener, seed, SimOptions::default(), served).await {
            tracing::error!(error = %e, "dev grid SIMULATOR failed");
        }
    });
    info!(
        %url, farms, nodes,
        "dev mode syncs from a grid SIMULATOR (made-up catalog; set GRID_PROXY_URL for a real grid proxy); \
         a simulated TFChain answers on {url}/chain and simulated ZOS nodes on {url}/rmb (docs/simulator.md). \
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
