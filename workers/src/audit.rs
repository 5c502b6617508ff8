//! The auditor: records the global checkpoints over commit order as events
//! commit, and verifies the whole store periodically, recording each
//! finding for the metric and the operators' page. Two schedules on the
//! workers' runtime (failures back off and are logged).

use std::time::Duration;

use marketplace_app::audit::integrity;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runtime::{self, Round, Schedule};

/// Records a checkpoint every `checkpoint_every` (more at once while a
/// backlog lasts) and verifies the store every `verify_every`.
pub fn spawn(
    pool: &PgPool,
    checkpoint_every: Duration,
    verify_every: Duration,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let checkpoints = {
        let (pool, cancel) = (pool.clone(), cancel.clone());
        tokio::spawn(async move {
            let schedule = Schedule::every("audit-checkpoint", checkpoint_every);
            runtime::run(&pool.clone(), schedule, cancel, || {
                let pool = pool.clone();
                async move {
                    Ok::<_, sqlx::Error>(match integrity::checkpoint(&pool).await? {
                        Some(c) if c.events == integrity::CHECKPOINT_EVENTS => Round::More,
                        _ => Round::Idle,
                    })
                }
            })
            .await;
        })
    };
    let verifications = {
        let (pool, cancel) = (pool.clone(), cancel.clone());
        tokio::spawn(async move {
            let schedule = Schedule::every("audit-verify", verify_every);
            runtime::run(&pool.clone(), schedule, cancel, || {
                let pool = pool.clone();
                async move {
                    integrity::verify_and_record(&pool).await?;
                    Ok::<_, sqlx::Error>(Round::Idle)
                }
            })
            .await;
        })
    };
    vec![checkpoints, verifications]
}
