//! Runway: what a wallet's balance lasts at its owner's burn, and the
//! staking discount level. Read by the wallet endpoints and the runway
//! alert worker alike.
//!
//! Once the chain has billed the owner's contracts, the numbers are the
//! chain's: the burn is each contract's latest bill scaled to an hour, and
//! the level is the one it applied on the newest bill. Before any bill, both
//! are estimated from the active deployments' quotes under the policy.

use chrono::{DateTime, Utc};
use marketplace_domain::pricing::{quote, DiscountLevel, PricingPolicy};
use marketplace_domain::wallet::LastBill;
use marketplace_domain::{TftAmount, TftPrice};
use marketplace_projections::deployments;
use sqlx::PgPool;

/// Where the burn comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurnSource {
    /// The chain's bills in the hour up to its newest one.
    Bills,
    /// Quotes of the active deployments (nothing billed yet).
    Estimate,
}

impl BurnSource {
    /// `bills` or `estimate`.
    pub fn as_str(self) -> &'static str {
        match self {
            BurnSource::Bills => "bills",
            BurnSource::Estimate => "estimate",
        }
    }
}

/// What the owner's contracts burn, and what the balance earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runway {
    /// TFT base units per hour.
    pub hourly_burn_tft_units: u64,
    /// Whole hours the balance lasts at that burn; `None` when nothing burns.
    pub runway_hours: Option<u64>,
    /// The staking discount level: the chain's on its last bill, or the one
    /// the balance earns against the active deployments' monthly cost.
    pub discount_level: DiscountLevel,
    /// That level's discount in percent.
    pub discount_percent: u64,
    /// Where the burn comes from.
    pub source: BurnSource,
    /// When the chain last billed, if it has.
    pub last_billed_at: Option<DateTime<Utc>>,
}

/// What the chain bills `owner` an hour, by its last bills: each contract
/// billed in the hour up to the newest bill counts with its latest bill
/// scaled to an hour by the time since the bill before it (a first bill,
/// whose span is not known, counts as it is); and when the newest bill was.
/// `None` before any bill.
pub async fn last_hour_billed(
    pool: &PgPool,
    owner: &str,
) -> Result<Option<(u64, DateTime<Utc>)>, sqlx::Error> {
    let row: Option<(Option<i64>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "WITH ranked AS (
            SELECT amount, billed_at,
                   lag(billed_at) OVER (PARTITION BY contract_id
                                        ORDER BY billed_at, block_number, event_index) AS prev_at,
                   row_number() OVER (PARTITION BY contract_id
                                      ORDER BY billed_at DESC, block_number DESC, event_index DESC) AS rn
              FROM wallet_bills WHERE wallet_id = $1),
          newest AS (SELECT max(billed_at) AS at FROM wallet_bills WHERE wallet_id = $1)
         SELECT sum(CASE WHEN r.prev_at IS NOT NULL AND r.billed_at > r.prev_at
                         THEN r.amount::numeric * 3600 / EXTRACT(EPOCH FROM r.billed_at - r.prev_at)
                         ELSE r.amount END)::bigint,
                max(n.at)
           FROM ranked r, newest n
          WHERE r.rn = 1 AND n.at IS NOT NULL AND r.billed_at > n.at - interval '1 hour'",
    )
    .bind(owner)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some((Some(sum), Some(at))) => Some((u64::try_from(sum).unwrap_or(0), at)),
        _ => None,
    })
}

/// The owner's runway at `balance`: from the chain's bills when there are
/// any (with the discount of `last_bill`), else estimated from the active
/// deployments (provisioning or running) priced under `policy`.
/// Certification is not known per deployment, so estimates price them as
/// on non-certified nodes.
pub async fn runway(
    pool: &PgPool,
    policy: &PricingPolicy,
    tft_price: TftPrice,
    owner: &str,
    balance: i128,
    last_bill: Option<LastBill>,
) -> Result<Runway, sqlx::Error> {
    let spendable = TftAmount::from_base_units(u64::try_from(balance.max(0)).unwrap_or(u64::MAX));
    if let (Some((burn, at)), Some(last)) = (last_hour_billed(pool, owner).await?, last_bill) {
        return Ok(Runway {
            hourly_burn_tft_units: burn,
            runway_hours: (burn > 0).then(|| spendable.base_units() / burn),
            discount_level: last.discount_level,
            discount_percent: last.discount_level.percent(),
            source: BurnSource::Bills,
            last_billed_at: Some(at),
        });
    }
    let specs = deployments::active_specs(pool, owner).await?;
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
        source: BurnSource::Estimate,
        last_billed_at: None,
    })
}
