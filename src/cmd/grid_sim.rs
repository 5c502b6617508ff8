//! `marketplace grid-sim`: the grid proxy SIMULATOR until SIGINT/SIGTERM.

use anyhow::Context;
use marketplace_dev::grid_sim::{self as sim, Seed};
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
