//! The process managers' intakes: projections of events into their job
//! queues. Each runs as a projection runner (its own checkpoint, committed
//! with the job row), so every event wakes its job once, in commit order,
//! across crashes.

use marketplace_domain::wallet::WalletEvent;
use marketplace_projections::{ApplyError, Projection, StoredEvent};
use sqlx::PgConnection;

use crate::jobs::Queue;

/// Wakes a deployment's provisioning job on each of its events, but its
/// bills: the chain's hourly `DeploymentBilled` asks nothing of the manager.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProvisioningIntake;

#[async_trait::async_trait]
impl Projection for ProvisioningIntake {
    fn name(&self) -> &'static str {
        "provisioning-intake"
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["deployment"]
    }

    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        if stored.event_type == "DeploymentBilled" {
            return Ok(());
        }
        Queue::PROVISIONING
            .wake(
                conn,
                &stored.aggregate_id,
                stored.sequence,
                stored.recorded_at,
            )
            .await?;
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &["provisioning_jobs"]
    }
}

/// Opens a chain transfer job for each credited top-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreasuryIntake;

/// The transfer job of a wallet's top-up.
pub fn transfer_job_id(wallet_id: &str, top_up_id: uuid::Uuid) -> String {
    format!("{wallet_id}/{top_up_id}")
}

#[async_trait::async_trait]
impl Projection for TreasuryIntake {
    fn name(&self) -> &'static str {
        "treasury-intake"
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["wallet"]
    }

    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        // A paid subscription invoice is a credited top-up too.
        if stored.event_type != "TopUpCredited" && stored.event_type != "SubscriptionInvoicePaid" {
            return Ok(());
        }
        let (WalletEvent::TopUpCredited { top_up_id, .. }
        | WalletEvent::SubscriptionInvoicePaid { top_up_id, .. }) =
            marketplace_projections::wallets::upcast(stored)?
        else {
            return Ok(());
        };
        let job = transfer_job_id(&stored.aggregate_id, top_up_id);
        Queue::CHAIN_TRANSFERS
            .wake(conn, &job, stored.sequence, stored.recorded_at)
            .await?;
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &["chain_transfer_jobs"]
    }
}
