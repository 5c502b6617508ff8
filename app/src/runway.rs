//! Runway: what a wallet's balance lasts at the burn of its owner's active
//! deployments, and the staking discount level the balance earns. Read by
//! the wallet endpoints and the runway alert worker alike.

use marketplace_domain::pricing::{quote, DiscountLevel, PricingPolicy};
use marketplace_domain::{TftAmount, TftPrice};
use marketplace_projections::deployments;
use sqlx::PgPool;

/// What the owner's active deployments burn, and what the balance earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runway {
    /// TFT base units per hour, after the staking discount, of the owner's
    /// provisioning and running deployments.
    pub hourly_burn_tft_units: u64,
    /// Whole hours the balance lasts at that burn; `None` when nothing burns.
    pub runway_hours: Option<u64>,
    /// The staking discount level the balance earns against the monthly
    /// cost of those deployments.
    pub discount_level: DiscountLevel,
    /// That level's discount in percent.
    pub discount_percent: u64,
}

/// Prices the owner's active deployments (provisioning or running) under
/// `policy` at the balance: the hourly burn after each contract's staking
/// discount, the runway, and the level the balance earns against their
/// whole monthly cost. Certification is not known per deployment yet, so
/// deployments are priced as on non-certified nodes.
pub async fn runway(
    pool: &PgPool,
    policy: &PricingPolicy,
    tft_price: TftPrice,
    owner: &str,
    balance: i128,
) -> Result<Runway, sqlx::Error> {
    let specs = deployments::active_specs(pool, owner).await?;
    let spendable = TftAmount::from_base_units(u64::try_from(balance.max(0)).unwrap_or(u64::MAX));
    let mut burn: u64 = 0;
    let mut monthly: u64 = 0;
    for spec in specs {
        let q = quote(&spec.machines(), false, policy, tft_price, Some(spendable));
        burn = burn.saturating_add(q.discounted_hourly_tft.base_units());
        monthly = monthly.saturating_add(q.monthly_tft.base_units());
    }
    let (level, percent) = policy.discount_for(spendable, TftAmount::from_base_units(monthly));
    Ok(Runway {
        hourly_burn_tft_units: burn,
        runway_hours: (burn > 0).then(|| spendable.base_units() / burn),
        discount_level: level,
        discount_percent: u64::from(percent),
    })
}
