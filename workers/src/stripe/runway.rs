//! The runway worker: measures each wallet's runway (its balance at its
//! deployments' burn) and records threshold crossings, an alert once per
//! crossing.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use marketplace_app::runway::runway;
use marketplace_app::{store, CommandError, EventMetadata, Exec, Store};
use marketplace_domain::wallet::{Wallet, WalletCommand};
use marketplace_domain::TftPrice;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::runtime::{self, Round, Schedule};

/// The subject the runway worker's events are recorded under.
pub const WORKER: &str = "runway";

/// Records runway threshold crossings for every wallet.
#[derive(Clone)]
pub struct RunwayWorker {
    pool: PgPool,
    wallets: Arc<Store<Wallet>>,
    tft_price: TftPrice,
    thresholds_hours: Vec<u64>,
    interval: Duration,
}

impl RunwayWorker {
    /// A worker alerting below these runways (hours).
    pub fn new(
        pool: PgPool,
        tft_price: TftPrice,
        thresholds_hours: Vec<u64>,
        interval: Duration,
    ) -> Self {
        Self {
            wallets: Arc::new(store(pool.clone())),
            pool,
            tft_price,
            thresholds_hours,
            interval,
        }
    }

    /// Measures every interval until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let schedule = Schedule::every(WORKER, self.interval);
        runtime::run(&self.pool, schedule, cancel, || async {
            self.measure_once().await.map(|_| Round::Idle)
        })
        .await;
    }

    /// Measures each wallet once; answers the number of events recorded.
    pub async fn measure_once(&self) -> Result<usize, CommandError> {
        let (_, policy) = marketplace_projections::pricing::current_policy(&self.pool).await?;
        let wallets = marketplace_projections::wallets::balances(&self.pool).await?;
        let mut recorded = 0;
        for (wallet_id, balance) in wallets {
            // One wallet failing does not stop the others.
            let measured = async {
                let last_bill = marketplace_projections::wallets::find(&self.pool, &wallet_id)
                    .await?
                    .and_then(|row| row.wallet.state().and_then(|s| s.last_bill));
                let (tft_price, _) =
                    marketplace_app::tft_price::current(&self.pool, self.tft_price).await?;
                let r = runway(
                    &self.pool,
                    &policy,
                    tft_price,
                    &wallet_id,
                    i128::from(balance),
                    last_bill,
                )
                .await?;
                let thresholds = self.thresholds_hours.clone();
                let cause = format!("runway-{}", Utc::now().timestamp());
                let done = Exec::new(
                    &*self.wallets,
                    wallet_id.as_str(),
                    EventMetadata::for_worker(WORKER, &cause),
                )
                .run(|_| {
                    Ok(WalletCommand::ObserveRunway {
                        runway_hours: r.runway_hours,
                        thresholds_hours: thresholds.clone(),
                        at: Utc::now(),
                    })
                })
                .await?;
                Ok::<usize, CommandError>(done.events.len())
            }
            .await;
            match measured {
                Ok(n) => recorded += n,
                Err(e) => warn!(%wallet_id, error = %e, "runway measurement failed"),
            }
        }
        Ok(recorded)
    }
}
