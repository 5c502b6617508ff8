//! The pricing policy: the prices an operator sets, the staking discount
//! tiers a balance earns, and the limits a new policy must keep. The
//! PricingPolicy aggregate holds one of these; quotes are computed under it.

use serde::{Deserialize, Serialize};

use crate::deployment::SpecError;
use crate::money::{TftAmount, UsdAmount};

/// Operator-set prices, in USD chain units per hour unless said otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingPolicy {
    /// Price of one compute unit for an hour.
    pub cu_per_hour: UsdAmount,
    /// Price of one storage unit for an hour.
    pub su_per_hour: UsdAmount,
    /// Price of one GB of public traffic.
    pub nu_per_gb: UsdAmount,
    /// Price of one public IPv4 address for an hour.
    pub ipv4_per_hour: UsdAmount,
    /// Price of a gateway name for an hour.
    pub name_per_hour: UsdAmount,
    /// Price of a gateway domain for an hour.
    pub domain_per_hour: UsdAmount,
    /// Multiplier on CU and SU for certified nodes, in basis points (12,500 = x1.25).
    pub certified_multiplier_bps: u32,
    /// The marketplace's own markup on the whole price, in basis points (ours, not the grid's).
    pub markup_bps: u32,
    /// The staking discount tiers, lowest first. A policy stored before tiers
    /// existed loads with the grid's default table.
    #[serde(default = "default_discounts")]
    pub discounts: Vec<DiscountTier>,
}

/// One staking discount tier: a balance of at least `min_half_months`
/// half-months of a contract's monthly cost earns `percent` off.
///
/// Thresholds are counted in half-months so that the grid's "1.5 months" is
/// an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscountTier {
    /// The level this tier is reported as.
    pub level: DiscountLevel,
    /// The balance needed, in half-months of the monthly cost (3 = 1.5 months).
    pub min_half_months: u32,
    /// The discount in percent, 0 to 100.
    pub percent: u8,
}

/// The grid's staking discount table (DOMAIN.md).
pub fn default_discounts() -> Vec<DiscountTier> {
    let tier = |level, min_half_months, percent| DiscountTier {
        level,
        min_half_months,
        percent,
    };
    vec![
        tier(DiscountLevel::Default, 3, 20),
        tier(DiscountLevel::Bronze, 6, 30),
        tier(DiscountLevel::Silver, 12, 40),
        tier(DiscountLevel::Gold, 36, 60),
    ]
}

/// Most discount tiers a policy may have.
pub const MAX_DISCOUNT_TIERS: usize = 8;
/// Lowest certified-node multiplier, in basis points (x1).
pub const MIN_CERTIFIED_MULTIPLIER_BPS: u32 = 10_000;
/// Highest certified-node multiplier, in basis points (x5).
pub const MAX_CERTIFIED_MULTIPLIER_BPS: u32 = 50_000;
/// Highest markup, in basis points (100%).
pub const MAX_MARKUP_BPS: u32 = 10_000;

impl PricingPolicy {
    /// The discount level and percent a balance earns against a monthly
    /// cost under this policy's tiers: the highest tier whose threshold the
    /// balance reaches. Compared in integers (`balance * 2 >= half_months *
    /// monthly`); a free contract earns nothing.
    pub fn discount_for(&self, balance: TftAmount, monthly_cost: TftAmount) -> (DiscountLevel, u8) {
        let balance = balance.base_units() as u128 * 2;
        let month = monthly_cost.base_units() as u128;
        if month == 0 {
            return (DiscountLevel::None, 0);
        }
        self.discounts
            .iter()
            .filter(|t| balance >= t.min_half_months as u128 * month)
            .max_by_key(|t| t.min_half_months)
            .map_or((DiscountLevel::None, 0), |t| (t.level, t.percent))
    }

    /// Checks that the policy is one an operator may set: every price
    /// positive, the certified multiplier between x1 and x5, the markup at
    /// most 100%, and at most [`MAX_DISCOUNT_TIERS`] discount tiers whose
    /// levels, thresholds and percents all strictly increase (percent at
    /// most 100, thresholds at least one half-month).
    pub fn validate(&self) -> Result<(), SpecError> {
        let prices = [
            ("cu_per_hour", self.cu_per_hour),
            ("su_per_hour", self.su_per_hour),
            ("nu_per_gb", self.nu_per_gb),
            ("ipv4_per_hour", self.ipv4_per_hour),
            ("name_per_hour", self.name_per_hour),
            ("domain_per_hour", self.domain_per_hour),
        ];
        for (field, price) in prices {
            if price.units() == 0 {
                return Err(SpecError::new(field, "must be greater than zero"));
            }
        }
        if !(MIN_CERTIFIED_MULTIPLIER_BPS..=MAX_CERTIFIED_MULTIPLIER_BPS)
            .contains(&self.certified_multiplier_bps)
        {
            return Err(SpecError::new(
                "certified_multiplier_bps",
                format!(
                    "must be between {MIN_CERTIFIED_MULTIPLIER_BPS} and \
                     {MAX_CERTIFIED_MULTIPLIER_BPS} basis points"
                ),
            ));
        }
        if self.markup_bps > MAX_MARKUP_BPS {
            return Err(SpecError::new(
                "markup_bps",
                format!("must be at most {MAX_MARKUP_BPS} basis points"),
            ));
        }
        if self.discounts.len() > MAX_DISCOUNT_TIERS {
            return Err(SpecError::new(
                "discounts",
                format!("at most {MAX_DISCOUNT_TIERS} tiers"),
            ));
        }
        let mut previous: Option<&DiscountTier> = None;
        for (i, tier) in self.discounts.iter().enumerate() {
            let field = |name: &str| format!("discounts[{i}].{name}");
            if tier.level == DiscountLevel::None {
                return Err(SpecError::new(&field("level"), "a tier cannot be `none`"));
            }
            if tier.min_half_months == 0 {
                return Err(SpecError::new(
                    &field("min_half_months"),
                    "must be at least one half-month",
                ));
            }
            if tier.percent > 100 {
                return Err(SpecError::new(&field("percent"), "must be at most 100"));
            }
            if let Some(p) = previous {
                if tier.level <= p.level {
                    return Err(SpecError::across(
                        &field("level"),
                        "discount-tiers-out-of-order",
                        "levels must be in order: default, bronze, silver, gold",
                    ));
                }
                if tier.min_half_months <= p.min_half_months {
                    return Err(SpecError::across(
                        &field("min_half_months"),
                        "discount-tiers-out-of-order",
                        "must be greater than the previous tier's",
                    ));
                }
                if tier.percent <= p.percent {
                    return Err(SpecError::across(
                        &field("percent"),
                        "discount-tiers-out-of-order",
                        "must be greater than the previous tier's",
                    ));
                }
            }
            previous = Some(tier);
        }
        Ok(())
    }
}

impl Default for PricingPolicy {
    /// The grid's default policy (DOMAIN.md) and no markup.
    fn default() -> Self {
        Self {
            cu_per_hour: UsdAmount::from_units(100_000),   // 0.01 USD
            su_per_hour: UsdAmount::from_units(50_000),    // 0.005 USD
            nu_per_gb: UsdAmount::from_units(15_000),      // 0.0015 USD
            ipv4_per_hour: UsdAmount::from_units(40_000),  // 0.004 USD
            name_per_hour: UsdAmount::from_units(2_500),   // 0.00025 USD
            domain_per_hour: UsdAmount::from_units(5_000), // 0.0005 USD
            certified_multiplier_bps: 12_500,
            markup_bps: 0,
            discounts: default_discounts(),
        }
    }
}

/// The staking discount a balance earns against a monthly cost (DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscountLevel {
    /// Less than 1.5 months of balance.
    None,
    /// At least 1.5 months: 20%.
    Default,
    /// At least 3 months: 30%.
    Bronze,
    /// At least 6 months: 40%.
    Silver,
    /// At least 18 months: 60%.
    Gold,
}

impl DiscountLevel {
    /// Its name as stored and answered: `none`, `default`, `bronze`,
    /// `silver`, `gold`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscountLevel::None => "none",
            DiscountLevel::Default => "default",
            DiscountLevel::Bronze => "bronze",
            DiscountLevel::Silver => "silver",
            DiscountLevel::Gold => "gold",
        }
    }

    /// The discount in percent under the grid's default table; a quote
    /// carries the percent its policy actually gave.
    pub fn percent(self) -> u64 {
        match self {
            DiscountLevel::None => 0,
            DiscountLevel::Default => 20,
            DiscountLevel::Bronze => 30,
            DiscountLevel::Silver => 40,
            DiscountLevel::Gold => 60,
        }
    }

    /// The level a balance reaches against a monthly cost under the grid's
    /// default table (see [`PricingPolicy::discount_for`] for a policy's own).
    pub fn for_balance(balance: TftAmount, monthly_cost: TftAmount) -> Self {
        PricingPolicy::default()
            .discount_for(balance, monthly_cost)
            .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_levels_name_is_its_serialised_name() {
        for level in [
            DiscountLevel::None,
            DiscountLevel::Default,
            DiscountLevel::Bronze,
            DiscountLevel::Silver,
            DiscountLevel::Gold,
        ] {
            assert_eq!(
                serde_json::to_value(level).ok(),
                Some(level.as_str().into())
            );
        }
    }

    #[test]
    fn discount_levels_follow_months_of_balance() {
        let month = TftAmount::from_base_units(1_000);
        let at = |b: u64| DiscountLevel::for_balance(TftAmount::from_base_units(b), month);
        assert_eq!(at(1_499), DiscountLevel::None);
        assert_eq!(at(1_500), DiscountLevel::Default);
        assert_eq!(at(2_999), DiscountLevel::Default);
        assert_eq!(at(3_000), DiscountLevel::Bronze);
        assert_eq!(at(6_000), DiscountLevel::Silver);
        assert_eq!(at(17_999), DiscountLevel::Silver);
        assert_eq!(at(18_000), DiscountLevel::Gold);
    }

    #[test]
    fn a_free_spec_earns_no_discount() {
        assert_eq!(
            DiscountLevel::for_balance(TftAmount::from_base_units(5), TftAmount::default()),
            DiscountLevel::None
        );
    }

    #[test]
    fn the_default_policy_is_valid_and_has_the_grid_table() {
        let policy = PricingPolicy::default();
        assert_eq!(policy.validate(), Ok(()));
        let halves: Vec<u32> = policy.discounts.iter().map(|t| t.min_half_months).collect();
        let percents: Vec<u8> = policy.discounts.iter().map(|t| t.percent).collect();
        assert_eq!(halves, vec![3, 6, 12, 36]);
        assert_eq!(percents, vec![20, 30, 40, 60]);
        for tier in &policy.discounts {
            assert_eq!(u64::from(tier.percent), tier.level.percent());
        }
    }

    #[test]
    fn a_policy_without_tiers_never_discounts() {
        let policy = PricingPolicy {
            discounts: vec![],
            ..Default::default()
        };
        assert_eq!(policy.validate(), Ok(()));
        assert_eq!(
            policy.discount_for(
                TftAmount::from_base_units(u64::MAX),
                TftAmount::from_base_units(1)
            ),
            (DiscountLevel::None, 0)
        );
    }

    #[test]
    fn a_policy_stored_without_tiers_loads_with_the_default_table() {
        let mut json = serde_json::to_value(PricingPolicy::default()).expect("serialises");
        json.as_object_mut().expect("an object").remove("discounts");
        let policy: PricingPolicy = serde_json::from_value(json).expect("loads");
        assert_eq!(policy, PricingPolicy::default());
    }

    #[track_caller]
    fn refused_on(policy: PricingPolicy, field: &str) {
        let err = policy.validate().expect_err("invalid policy");
        assert_eq!(err.field, field);
    }

    fn tier(level: DiscountLevel, min_half_months: u32, percent: u8) -> DiscountTier {
        DiscountTier {
            level,
            min_half_months,
            percent,
        }
    }

    #[test]
    fn validation_refuses_zero_prices() {
        let d = PricingPolicy::default;
        let zero = UsdAmount::from_units(0);
        refused_on(
            PricingPolicy {
                cu_per_hour: zero,
                ..d()
            },
            "cu_per_hour",
        );
        refused_on(
            PricingPolicy {
                su_per_hour: zero,
                ..d()
            },
            "su_per_hour",
        );
        refused_on(
            PricingPolicy {
                nu_per_gb: zero,
                ..d()
            },
            "nu_per_gb",
        );
        refused_on(
            PricingPolicy {
                ipv4_per_hour: zero,
                ..d()
            },
            "ipv4_per_hour",
        );
        refused_on(
            PricingPolicy {
                name_per_hour: zero,
                ..d()
            },
            "name_per_hour",
        );
        refused_on(
            PricingPolicy {
                domain_per_hour: zero,
                ..d()
            },
            "domain_per_hour",
        );
    }

    #[test]
    fn validation_bounds_the_multiplier_and_the_markup() {
        let d = PricingPolicy::default;
        for bps in [9_999, 50_001] {
            let p = PricingPolicy {
                certified_multiplier_bps: bps,
                ..d()
            };
            refused_on(p, "certified_multiplier_bps");
        }
        for bps in [10_000, 50_000] {
            let p = PricingPolicy {
                certified_multiplier_bps: bps,
                ..d()
            };
            assert_eq!(p.validate(), Ok(()));
        }
        refused_on(
            PricingPolicy {
                markup_bps: 10_001,
                ..d()
            },
            "markup_bps",
        );
        assert_eq!(
            PricingPolicy {
                markup_bps: 10_000,
                ..d()
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn validation_wants_tiers_strictly_increasing() {
        use DiscountLevel as L;
        let with = |discounts| PricingPolicy {
            discounts,
            ..Default::default()
        };
        refused_on(
            with(vec![tier(L::Default, 3, 20), tier(L::Bronze, 3, 30)]),
            "discounts[1].min_half_months",
        );
        refused_on(
            with(vec![tier(L::Default, 3, 20), tier(L::Bronze, 6, 20)]),
            "discounts[1].percent",
        );
        refused_on(
            with(vec![tier(L::Silver, 3, 20), tier(L::Bronze, 6, 30)]),
            "discounts[1].level",
        );
        refused_on(with(vec![tier(L::None, 3, 20)]), "discounts[0].level");
        refused_on(with(vec![tier(L::Gold, 3, 101)]), "discounts[0].percent");
        refused_on(
            with(vec![tier(L::Gold, 0, 10)]),
            "discounts[0].min_half_months",
        );
        assert_eq!(with(vec![tier(L::Gold, 1, 100)]).validate(), Ok(()));
        let nine = (1..=9).map(|i| tier(L::Gold, i, i as u8)).collect();
        refused_on(with(nine), "discounts");
    }
}
