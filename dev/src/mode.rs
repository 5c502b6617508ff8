//! Dev mode's own pieces for `marketplace dev`: its chain master secret
//! kept in the data directory, the simulated treasury's funding, and the
//! grid SIMULATOR on a loopback port with its clock moving at the grid's
//! report cadence.

use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::grid_sim::{self as sim, Seed, SimOptions};

/// Dev mode's chain master secret: `MARKETPLACE_CHAIN_SEED`, or one made
/// on first start and kept (owner-only) in the data directory, so the dev
/// users' custodial accounts survive restarts. Dev only: production takes
/// the secret from configuration and never writes it.
pub fn chain_seed(path: &std::path::Path) -> anyhow::Result<SecretString> {
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
pub async fn fund_treasury(sim: &str, treasury: &str) {
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
pub const DEV_REPORT_EVERY: Duration = Duration::from_secs(40 * 60);

/// Dev mode's grid: the grid SIMULATOR on a free loopback port with the
/// small dev catalog ([`Seed::dev`]): the grid proxy, and on the same URL a
/// simulated TFChain (`/chain/...`) and simulated ZOS nodes (`/rmb`), whose
/// workloads turn `ok` after 1.5 s. Its clock starts at the wall clock but
/// only moves when told to; so that the catalog does not read `down` after
/// 80 minutes of dev mode, its clock is advanced by 40 minutes every 40
/// minutes (the grid's report cadence), as if every node reported.
/// Returns the simulator's URL.
pub async fn spawn_grid_sim(cancel: &CancellationToken) -> anyhow::Result<String> {
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
