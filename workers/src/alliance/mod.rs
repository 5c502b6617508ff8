//! The alliance process managers: the farm worker gives each founded
//! alliance its chain twin and farm (`farms.rs`), and the settlement worker
//! settles each month and pays members and credited users (`settlement.rs`).
//! Both act through the command bus, and every chain call they make is
//! looked up before it is repeated.

mod farms;
mod settlement;

use std::sync::Arc;
use std::time::Duration;

use marketplace_app::tfchain::{Chain, ChainError, Custody};
use marketplace_app::{CommandError, Stores};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use farms::{assign_farms_once, farm_name};
pub use settlement::{remark, RoundReport, SettlementOptions, SettlementWorker};

use crate::runtime::{self, Round, Schedule};

/// Why an alliance worker's round failed (it is retried after a backoff).
#[derive(Debug, thiserror::Error)]
pub enum AllianceWorkError {
    /// The database.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The chain.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// A command was refused or could not commit.
    #[error("command: {0}")]
    Command(#[from] CommandError),
}

/// Starts the farm worker and the settlement worker, each every `every`.
pub fn spawn(
    pool: &PgPool,
    chain: Arc<dyn Chain>,
    custody: Arc<Custody>,
    options: SettlementOptions,
    every: Duration,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let farms = {
        let (pool, chain, custody, cancel) =
            (pool.clone(), chain.clone(), custody.clone(), cancel.clone());
        tokio::spawn(async move {
            let stores = Arc::new(Stores::new(&pool));
            runtime::run(
                &pool.clone(),
                Schedule::every("alliance-farms", every),
                cancel,
                || {
                    let (pool, stores, chain, custody) =
                        (pool.clone(), stores.clone(), chain.clone(), custody.clone());
                    async move {
                        let n = assign_farms_once(&pool, &stores, &*chain, &custody).await?;
                        Ok::<_, AllianceWorkError>(if n > 0 { Round::More } else { Round::Idle })
                    }
                },
            )
            .await;
        })
    };
    let settlement = {
        let worker = SettlementWorker::new(pool.clone(), chain, custody, options);
        let (pool, cancel) = (pool.clone(), cancel.clone());
        tokio::spawn(async move {
            runtime::run(
                &pool,
                Schedule::every("alliance-settlement", every),
                cancel,
                || {
                    let worker = worker.clone();
                    async move {
                        worker.round().await?;
                        Ok::<_, AllianceWorkError>(Round::Idle)
                    }
                },
            )
            .await;
        })
    };
    vec![farms, settlement]
}
