//! One module per subcommand; [`run`] dispatches to them.

mod audit;
mod dead_letters;
mod dev;
mod follow_chain;
mod grid_sim;
mod openapi;
mod payments;
mod project;
mod provision;
mod relay;
mod replay;
mod serve;
mod sync;
mod token;

use crate::cli::{Cli, Command};
use crate::wiring::{connect, migrate};

/// Runs a subcommand to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Project(args) => project::run(args).await,
        Command::Relay(args) => relay::run(args).await,
        Command::DeadLetters(command) => dead_letters::run(command).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Migrate(db) => migrate(&connect(&db.database_url, 2).await?).await,
        Command::Token(args) => token::run(args),
        Command::Sync(args) => sync::run(args).await,
        Command::GridSim(args) => grid_sim::run(args).await,
        Command::Payments(args) => payments::run(args).await,
        Command::Provision(args) => provision::run(args).await,
        Command::FollowChain(args) => follow_chain::run(args).await,
        Command::Openapi => openapi::run(),
    }
}
