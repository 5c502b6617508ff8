//! `marketplace grid-sim`: the grid SIMULATOR (grid proxy, TFChain and ZOS
//! nodes, all simulated) until SIGINT/SIGTERM.

use anyhow::Context;
use std::time::Duration;

use marketplace_dev::grid_sim::{self as sim, Seed, SimOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::GridSimArgs;
use crate::wiring::shutdown_signal;

pub async fn run(args: GridSimArgs) -> anyhow::Result<()> {
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
        "starting a grid SIMULATOR: a made-up catalog, a simulated TFChain and simulated ZOS nodes, not the ThreeFold Grid"
    );
    let options = SimOptions {
        workload_delay: Duration::from_millis(args.workload_delay_ms),
        ..SimOptions::default()
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (GRID_SIM_LISTEN)", args.listen))?;
    let cancel = CancellationToken::new();
    let mut server = tokio::spawn(sim::serve(listener, seed, options, cancel.clone()));
    tokio::select! {
        served = &mut server => return served.context("simulator task")?.context("grid simulator failed"),
        _ = shutdown_signal() => {}
    }
    cancel.cancel();
    server
        .await
        .context("simulator task")?
        .context("grid simulator failed")
}
