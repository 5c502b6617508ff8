//! The provisioning process manager: it takes a requested deployment to a
//! running one without an operator, and a cancelled one off the chain.
//!
//! Its intake ([`intake::ProvisioningIntake`]) turns every deployment event,
//! in commit order and checkpointed, into a due job; its executors
//! ([`crate::jobs::work`]) lease jobs and run [`Provisioner::handle`]:
//! place (capacity reserved until the node's report catches up), create
//! the user's twin on first need, the node contract (and a rent contract
//! for a dedicated node) from that twin, send the deployment to the node,
//! wait for every workload to be `ok`, and mark it running with what the
//! node reports. A workload error, a stall (4 minutes on the chain's
//! clock) or a refused contract cancels what the attempt holds and places
//! again elsewhere, up to [`ProvisioningOptions::max_nodes`] nodes; then
//! the deployment fails with the reason. A resize updates the contract and
//! the node's deployment; a cancel cancels the contracts and, once the
//! chain reads them deleted, deletes the deployment.
//!
//! It reaches the chain and the nodes only through the ports
//! ([`marketplace_app::tfchain::Chain`], [`marketplace_app::zos::Nodes`]).

mod build;
pub mod intake;
mod manager;
pub mod treasury;

use marketplace_projections::tail::{self, TailOptions};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use manager::{Provisioner, ProvisioningOptions, StepError, WORKER};
pub use treasury::{remark_hash, Treasury};

use crate::jobs::{self, Queue, WorkOptions};
use crate::runtime::{self, Round, Schedule};

/// Runs the provisioning manager (intake and executors) until cancelled.
pub fn spawn(
    pool: PgPool,
    provisioner: Provisioner,
    work: WorkOptions,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let intake = tokio::spawn(tail::run(
        pool.clone(),
        intake::ProvisioningIntake,
        TailOptions::default(),
        cancel.clone(),
    ));
    let executor = tokio::spawn(jobs::work(
        pool.clone(),
        Queue::PROVISIONING,
        work,
        cancel.clone(),
        move |job| {
            let provisioner = provisioner.clone();
            async move { provisioner.handle(job).await }
        },
    ));
    // Reservations whose node has reported since they ran no longer count;
    // delete them now and then so the table stays small.
    let prune = tokio::spawn(async move {
        let schedule = Schedule::every("reservation-prune", PRUNE_EVERY);
        runtime::run(&pool.clone(), schedule, cancel, || {
            let pool = pool.clone();
            async move {
                marketplace_app::placement::prune(&pool).await?;
                Ok::<_, sqlx::Error>(Round::Idle)
            }
        })
        .await;
    });
    vec![intake, executor, prune]
}

/// How often reservations that no longer count are deleted.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs the treasury's transfers (intake and executors) until cancelled.
pub fn spawn_treasury(
    pool: PgPool,
    treasury: Treasury,
    work: WorkOptions,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let intake = tokio::spawn(tail::run(
        pool.clone(),
        intake::TreasuryIntake,
        TailOptions::default(),
        cancel.clone(),
    ));
    let executor = tokio::spawn(jobs::work(
        pool,
        Queue::CHAIN_TRANSFERS,
        work,
        cancel,
        move |job| {
            let treasury = treasury.clone();
            async move { treasury.handle(job).await }
        },
    ));
    vec![intake, executor]
}
