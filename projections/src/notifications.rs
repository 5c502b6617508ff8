//! Users' notifications, one per cause: the aggregate event that caused it
//! (`<aggregate type>:<id>:<sequence>` is its id, so it exists once however
//! often the event is delivered). Kinds:
//! - `balance_low`: the wallet's runway fell below a threshold
//!   (`RunwayAlertRaised`);
//! - `grace_period_started`: a deployment's contract went into grace, with
//!   the date its data is deleted unless the balance is topped up;
//! - `grace_period_ended`: it was paid and resumes;
//! - `deleted_out_of_funds`: the grace period elapsed and the deployment is
//!   gone.
//!
//! Delivery channels (email, webhooks) are a later step; the feed and the
//! live stream read this table.

use chrono::{DateTime, Duration, Utc};
use marketplace_domain::deployment::{DeletionCause, DeploymentEvent};
use marketplace_domain::wallet::WalletEvent;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{ApplyError, Projection, StoredEvent};

/// Builds `notifications` (and `notification_owners`, whose deployment is
/// whose).
#[derive(Debug, Clone, Copy, Default)]
pub struct NotificationProjection;

/// The projection's name.
pub const NAME: &str = "notifications";

/// How long the chain keeps a contract in grace before deleting it.
pub fn grace_period() -> Duration {
    Duration::days(14)
}

#[async_trait::async_trait]
impl Projection for NotificationProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["deployment", "wallet"]
    }

    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let id = format!(
            "{}:{}:{}",
            stored.aggregate_type, stored.aggregate_id, stored.sequence
        );
        let (owner, kind, deployment, payload, at) = match stored.aggregate_type.as_str() {
            "wallet" => match crate::wallets::upcast(stored)? {
                WalletEvent::RunwayAlertRaised {
                    threshold_hours,
                    runway_hours,
                    at,
                } => (
                    stored.aggregate_id.clone(),
                    "balance_low",
                    None,
                    json!({ "threshold_hours": threshold_hours, "runway_hours": runway_hours }),
                    at,
                ),
                _ => return Ok(()),
            },
            "deployment" => {
                let deployment = Uuid::parse_str(&stored.aggregate_id)
                    .map_err(|e| ApplyError::Poison(format!("aggregate id is not a uuid: {e}")))?;
                let event = crate::deployments::upcast(stored)?;
                let (kind, payload, at) = match &event {
                    DeploymentEvent::DeploymentRequested { owner, .. } => {
                        sqlx::query(
                            "INSERT INTO notification_owners (deployment_id, owner) VALUES ($1, $2)
                             ON CONFLICT (deployment_id) DO NOTHING",
                        )
                        .bind(deployment)
                        .bind(owner)
                        .execute(&mut *conn)
                        .await?;
                        return Ok(());
                    }
                    DeploymentEvent::GracePeriodStarted { at, contract_id } => (
                        "grace_period_started",
                        json!({
                            "contract_id": contract_id,
                            "deletion_at": *at + grace_period(),
                        }),
                        *at,
                    ),
                    DeploymentEvent::GracePeriodEnded { at, contract_id } => (
                        "grace_period_ended",
                        json!({ "contract_id": contract_id }),
                        *at,
                    ),
                    DeploymentEvent::DeploymentDeleted {
                        cause: DeletionCause::OutOfFunds,
                        at,
                    } => ("deleted_out_of_funds", json!({}), *at),
                    _ => return Ok(()),
                };
                let owner: Option<String> = sqlx::query_scalar(
                    "SELECT owner FROM notification_owners WHERE deployment_id = $1",
                )
                .bind(deployment)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(owner) = owner else {
                    return Err(ApplyError::Poison(format!(
                        "{} for deployment {deployment}, which was never requested",
                        stored.event_type
                    )));
                };
                (owner, kind, Some(deployment), payload, at)
            }
            _ => return Ok(()),
        };
        sqlx::query(
            "INSERT INTO notifications (id, owner, kind, deployment_id, payload, at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(&owner)
        .bind(kind)
        .bind(deployment)
        .bind(&payload)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Runs of deployment requests record their owners in one insert;
    /// every other event is applied on its own, in order.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), ApplyError> {
        let mut owners: Vec<(Uuid, String)> = Vec::new();
        for stored in events {
            if stored.aggregate_type == "deployment" && stored.event_type == "DeploymentRequested" {
                let deployment = Uuid::parse_str(&stored.aggregate_id)
                    .map_err(|e| ApplyError::Poison(format!("aggregate id is not a uuid: {e}")))?;
                if let DeploymentEvent::DeploymentRequested { owner, .. } =
                    crate::deployments::upcast(stored)?
                {
                    owners.push((deployment, owner));
                }
                continue;
            }
            record_owners(conn, &mut owners).await?;
            self.apply(conn, stored).await?;
        }
        record_owners(conn, &mut owners).await
    }

    fn tables(&self) -> &'static [&'static str] {
        &["notifications", "notification_owners"]
    }
}

/// Records a run of deployments' owners in one insert, leaving the run
/// empty; an owner already recorded (a redelivery) stays as it was.
async fn record_owners(
    conn: &mut PgConnection,
    owners: &mut Vec<(Uuid, String)>,
) -> Result<(), ApplyError> {
    if owners.is_empty() {
        return Ok(());
    }
    let (ids, names): (Vec<Uuid>, Vec<String>) = std::mem::take(owners).into_iter().unzip();
    sqlx::query(
        "INSERT INTO notification_owners (deployment_id, owner)
         SELECT * FROM UNNEST($1::uuid[], $2::text[])
         ON CONFLICT (deployment_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&names)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One notification.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Notification {
    /// Its id: the cause.
    pub id: String,
    /// Its place in the feed, increasing.
    pub position: i64,
    /// What it is about.
    pub kind: String,
    /// The deployment it is about, if any.
    pub deployment_id: Option<Uuid>,
    /// The details.
    pub payload: Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Up to `limit` of `owner`'s notifications after `after` (a position),
/// oldest first.
pub async fn list(
    pool: &PgPool,
    owner: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, position, kind, deployment_id, payload, at FROM notifications
          WHERE owner = $1 AND position > $2 ORDER BY position LIMIT $3",
    )
    .bind(owner)
    .bind(after.unwrap_or(0))
    .bind(limit)
    .fetch_all(pool)
    .await
}
