//! The pricing policy in force, as every read that prices sees it (quotes,
//! the node catalog, wallets' runway, `GET /v1/pricing`): from its view, as
//! fresh as the newest committed change.

use chrono::{DateTime, Utc};
use marketplace_app::bus::load;
use marketplace_domain::pricing::{PricingPolicy, PricingPolicyAggregate, AGGREGATE_ID};
use marketplace_projections::pricing as views;

use crate::error::ApiError;
use crate::views_watch::read_visible;
use crate::AppState;

/// The policy in force, as its view has it.
#[derive(Debug, Clone)]
pub struct PolicyInForce {
    /// How many times the policy changed (0: the grid default).
    pub version: i64,
    /// When it last changed.
    pub changed_at: Option<DateTime<Utc>>,
    /// The policy.
    pub policy: PricingPolicy,
}

/// The policy in force, read from its view, as fresh as the newest
/// committed change: the read waits (bounded) until the view has reached
/// the policy's head version in the store (one primary-key lookup), so a
/// quote right after a change uses the new prices. A view that has not
/// caught up by then (its runner down, a rebuild under way) does not take
/// prices down: the policy is folded from the store instead.
pub async fn in_force(state: &AppState) -> Result<PolicyInForce, ApiError> {
    let head: i64 = sqlx::query_scalar(
        "SELECT COALESCE(max(sequence), 0) FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(<PricingPolicyAggregate as cqrs_es::Aggregate>::TYPE)
    .bind(AGGREGATE_ID)
    .fetch_one(&state.pool)
    .await?;
    if head == 0 {
        return Ok(PolicyInForce {
            version: 0,
            changed_at: None,
            policy: PricingPolicy::default(),
        });
    }
    let pool = &state.pool;
    let seen = read_visible(
        &state.views,
        state.settings.read_wait,
        head,
        || views::current(pool),
        |_| true,
        |row| row.0,
    )
    .await;
    match seen {
        Ok((version, policy, _, changed_at)) => Ok(PolicyInForce {
            version,
            changed_at: Some(changed_at),
            policy,
        }),
        Err(ApiError::ViewLagging | ApiError::NotFound) => {
            tracing::warn!(
                head,
                "pricing view behind the store; folding the policy from the store"
            );
            let (aggregate, _) = load(&state.stores.pricing, AGGREGATE_ID).await?;
            Ok(PolicyInForce {
                version: aggregate.version() as i64,
                changed_at: aggregate.changed_at(),
                policy: aggregate.policy().clone(),
            })
        }
        Err(e) => Err(e),
    }
}
