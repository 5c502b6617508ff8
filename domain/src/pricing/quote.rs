//! Quotes: what a workload costs per hour and per 30-day month, in USD and
//! TFT, under a pricing policy, following TFChain's resource-unit formulas.
//!
//! Every figure is computed as one exact rational and rounded once, half up,
//! to a base unit, so an hourly and a monthly figure never drift apart by
//! accumulated rounding.

use serde::{Deserialize, Serialize};

use crate::deployment::SpecError;
use crate::money::{TftAmount, TftPrice, UsdAmount, UNITS_PER_WHOLE};

/// Hours in the 30-day month that billing and discounts are reckoned on.
pub const HOURS_PER_MONTH: u64 = 24 * 30;

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
                    return Err(SpecError::new(
                        &field("level"),
                        "levels must be in order: default, bronze, silver, gold",
                    ));
                }
                if tier.min_half_months <= p.min_half_months {
                    return Err(SpecError::new(
                        &field("min_half_months"),
                        "must be greater than the previous tier's",
                    ));
                }
                if tier.percent <= p.percent {
                    return Err(SpecError::new(
                        &field("percent"),
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

/// The resources one machine (a VM, or one node of a cluster) reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineUsage {
    /// Virtual CPUs.
    pub cru: u64,
    /// Memory in MiB.
    pub mru_mib: u64,
    /// SSD storage in GB.
    pub sru_gb: u64,
    /// HDD storage in GB.
    pub hru_gb: u64,
    /// Public IPv4 addresses.
    pub ipv4: u64,
}

/// Memory is priced per GB while we hold it in MiB; CU is therefore computed
/// scaled by this factor so every term of the formula is an integer.
const CU_SCALE: u128 = 8192;
/// SU = hru/1200 + sru/200, scaled by 1200.
const SU_SCALE: u128 = 1200;

impl MachineUsage {
    /// Compute units times [`CU_SCALE`]:
    /// `CU = min(max(mru/4, cru/2), max(mru/8, cru), max(mru/2, cru/4))`, mru in GB.
    fn cu_scaled(&self) -> u128 {
        let mib = self.mru_mib as u128; // mru_gb * 8192 = mib * 8
        let cru = self.cru as u128;
        let a = (2 * mib).max(4096 * cru);
        let b = mib.max(8192 * cru);
        let c = (4 * mib).max(2048 * cru);
        a.min(b).min(c)
    }

    /// Storage units times [`SU_SCALE`].
    fn su_scaled(&self) -> u128 {
        self.hru_gb as u128 + 6 * self.sru_gb as u128
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

/// What a spec costs, before and after the staking discount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// Compute units reserved, in thousandths (rounded half up).
    pub cu_milli: u64,
    /// Storage units reserved, in thousandths (rounded half up).
    pub su_milli: u64,
    /// Public IPv4 addresses reserved.
    pub ipv4: u64,
    /// The TFT price the TFT figures were converted at.
    pub tft_price: TftPrice,
    /// Cost for an hour without discount.
    pub hourly_usd: UsdAmount,
    /// Cost for a 30-day month without discount.
    pub monthly_usd: UsdAmount,
    /// Hourly cost in TFT without discount.
    pub hourly_tft: TftAmount,
    /// Monthly cost in TFT without discount.
    pub monthly_tft: TftAmount,
    /// The discount level the given balance earns (none without a balance).
    pub discount: DiscountLevel,
    /// The discount in percent, as the policy's tier for that level sets it.
    pub discount_percent: u64,
    /// Hourly cost in USD after the discount.
    pub discounted_hourly_usd: UsdAmount,
    /// Monthly cost in USD after the discount.
    pub discounted_monthly_usd: UsdAmount,
    /// Hourly cost in TFT after the discount.
    pub discounted_hourly_tft: TftAmount,
    /// Monthly cost in TFT after the discount.
    pub discounted_monthly_tft: TftAmount,
}

/// An exact non-negative rational, rounded only when a figure is read out.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    num: u128,
    den: u128,
}

impl Ratio {
    fn scale(self, mul: u128, div: u128) -> Self {
        Self {
            num: self.num * mul,
            den: self.den * div,
        }
    }
    /// Half-up rounding; saturates at u64::MAX, far beyond any real price.
    fn round(self) -> u64 {
        let q = (self.num + self.den / 2) / self.den;
        u64::try_from(q).unwrap_or(u64::MAX)
    }
}

/// Prices the given machines under a policy.
///
/// `certified` applies the certified-node multiplier to CU and SU (IPv4 is
/// not multiplied); the markup applies to the whole price; `balance`, when
/// known, sets the staking discount, measured against the undiscounted
/// monthly TFT cost as the chain does.
pub fn quote(
    machines: &[MachineUsage],
    certified: bool,
    policy: &PricingPolicy,
    tft_price: TftPrice,
    balance: Option<TftAmount>,
) -> Quote {
    let cert_bps: u128 = if certified {
        policy.certified_multiplier_bps as u128
    } else {
        10_000
    };
    let cu_price = policy.cu_per_hour.units() as u128;
    let su_price = policy.su_per_hour.units() as u128;
    let ip_price = policy.ipv4_per_hour.units() as u128;

    let cu: u128 = machines.iter().map(MachineUsage::cu_scaled).sum();
    let su: u128 = machines.iter().map(MachineUsage::su_scaled).sum();
    let ipv4: u64 = machines.iter().map(|m| m.ipv4).sum();

    // hourly USD units = (cu/CU_SCALE*cu_price + su/SU_SCALE*su_price) * cert + ipv4*ip_price
    let den = CU_SCALE * SU_SCALE * 10_000;
    let resources = (cu * SU_SCALE * cu_price + su * CU_SCALE * su_price) * cert_bps;
    let ips = ipv4 as u128 * ip_price * den;
    let hourly = Ratio {
        num: resources + ips,
        den,
    }
    .scale(10_000 + policy.markup_bps as u128, 10_000);

    let monthly = hourly.scale(HOURS_PER_MONTH as u128, 1);
    let to_tft = |r: Ratio| r.scale(UNITS_PER_WHOLE as u128, tft_price.usd_units() as u128);

    let monthly_tft = TftAmount::from_base_units(to_tft(monthly).round());
    let (discount, percent) = balance
        .map(|b| policy.discount_for(b, monthly_tft))
        .unwrap_or((DiscountLevel::None, 0));
    let keep = 100 - u128::from(percent.min(100));
    let off = |r: Ratio| r.scale(keep, 100);

    Quote {
        cu_milli: Ratio {
            num: cu * 1000,
            den: CU_SCALE,
        }
        .round(),
        su_milli: Ratio {
            num: su * 1000,
            den: SU_SCALE,
        }
        .round(),
        ipv4,
        tft_price,
        hourly_usd: UsdAmount::from_units(hourly.round()),
        monthly_usd: UsdAmount::from_units(monthly.round()),
        hourly_tft: TftAmount::from_base_units(to_tft(hourly).round()),
        monthly_tft,
        discount,
        discount_percent: percent.into(),
        discounted_hourly_usd: UsdAmount::from_units(off(hourly).round()),
        discounted_monthly_usd: UsdAmount::from_units(off(monthly).round()),
        discounted_hourly_tft: TftAmount::from_base_units(to_tft(off(hourly)).round()),
        discounted_monthly_tft: TftAmount::from_base_units(to_tft(off(monthly)).round()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(usd_units: u64) -> TftPrice {
        TftPrice::from_usd_units(usd_units).expect("non-zero")
    }

    fn vm(cru: u64, mru_gb: u64, sru_gb: u64, ipv4: u64) -> MachineUsage {
        MachineUsage {
            cru,
            mru_mib: mru_gb * 1024,
            sru_gb,
            hru_gb: 0,
            ipv4,
        }
    }

    #[test]
    fn cu_follows_the_grid_formula() {
        // 2 vCPU, 4 GB: min(max(1,1), max(0.5,2), max(2,0.5)) = 1 CU
        let q = quote(
            &[vm(2, 4, 0, 0)],
            false,
            &PricingPolicy::default(),
            price(100_000),
            None,
        );
        assert_eq!(q.cu_milli, 1000);
        // 1 vCPU, 1 GB: min(max(.25,.5), max(.125,1), max(.5,.25)) = 0.5 CU
        let q = quote(
            &[vm(1, 1, 0, 0)],
            false,
            &PricingPolicy::default(),
            price(100_000),
            None,
        );
        assert_eq!(q.cu_milli, 500);
        // 4 vCPU, 32 GB: min(max(8,2), max(4,4), max(16,1)) = 4 CU
        let q = quote(
            &[vm(4, 32, 0, 0)],
            false,
            &PricingPolicy::default(),
            price(100_000),
            None,
        );
        assert_eq!(q.cu_milli, 4000);
    }

    #[test]
    fn su_counts_ssd_per_200_gb_and_hdd_per_1200_gb() {
        let m = MachineUsage {
            sru_gb: 100,
            hru_gb: 600,
            ..Default::default()
        };
        let q = quote(&[m], false, &PricingPolicy::default(), price(100_000), None);
        assert_eq!(q.su_milli, 1000); // 0.5 + 0.5
    }

    #[test]
    fn a_small_vm_costs_what_the_default_policy_says() {
        // 1 CU * 0.01 + 0.5 SU (100 GB SSD) * 0.005 + 1 IPv4 * 0.004 = 0.0165 USD/h
        let q = quote(
            &[vm(2, 4, 100, 1)],
            false,
            &PricingPolicy::default(),
            price(100_000),
            None,
        );
        assert_eq!(q.hourly_usd, UsdAmount::from_units(165_000));
        assert_eq!(q.monthly_usd, UsdAmount::from_units(165_000 * 720));
        // at 0.01 USD per TFT: 1.65 TFT an hour
        assert_eq!(q.hourly_tft, TftAmount::from_base_units(16_500_000));
        assert_eq!(q.monthly_tft, TftAmount::from_base_units(16_500_000 * 720));
        assert_eq!(q.discount, DiscountLevel::None);
        assert_eq!(q.discounted_hourly_usd, q.hourly_usd);
    }

    #[test]
    fn certified_nodes_multiply_cu_and_su_but_not_ipv4() {
        let q = quote(
            &[vm(2, 4, 100, 1)],
            true,
            &PricingPolicy::default(),
            price(100_000),
            None,
        );
        // (0.01 + 0.0025) * 1.25 + 0.004 = 0.019625
        assert_eq!(q.hourly_usd, UsdAmount::from_units(196_250));
    }

    #[test]
    fn markup_applies_to_the_whole_price() {
        let policy = PricingPolicy {
            markup_bps: 1_000,
            ..Default::default()
        };
        let q = quote(&[vm(2, 4, 100, 1)], false, &policy, price(100_000), None);
        assert_eq!(q.hourly_usd, UsdAmount::from_units(181_500));
    }

    #[test]
    fn monthly_is_rounded_once_not_hourly_times_720() {
        // 1 vCPU, 256 MiB: CU = min(max(1/16, 1/2), max(1/32, 1), max(1/8, 1/4)) = 0.25 -> 0.0025/h;
        // 1 GB SSD: 1/200 SU * 0.005 = 0.000025/h
        let m = MachineUsage {
            cru: 1,
            mru_mib: 256,
            sru_gb: 1,
            hru_gb: 0,
            ipv4: 0,
        };
        let q = quote(&[m], false, &PricingPolicy::default(), price(25_250), None);
        assert_eq!(q.cu_milli, 250);
        assert_eq!(q.hourly_usd, UsdAmount::from_units(25_250));
        assert_eq!(q.hourly_tft, TftAmount::from_base_units(10_000_000));
        // a price that does not divide: 1/3 TFT per hour, exactly 240 TFT a month
        let q = quote(&[m], false, &PricingPolicy::default(), price(75_750), None);
        assert_eq!(q.hourly_tft, TftAmount::from_base_units(3_333_333));
        assert_eq!(q.monthly_tft, TftAmount::from_base_units(2_400_000_000));
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
    fn a_balance_discounts_the_quote() {
        let policy = PricingPolicy::default();
        let base = quote(&[vm(2, 4, 100, 1)], false, &policy, price(100_000), None);
        let rich = TftAmount::from_base_units(base.monthly_tft.base_units() * 18);
        let q = quote(
            &[vm(2, 4, 100, 1)],
            false,
            &policy,
            price(100_000),
            Some(rich),
        );
        assert_eq!(q.discount, DiscountLevel::Gold);
        assert_eq!(q.discount_percent, 60);
        assert_eq!(q.discounted_hourly_usd, UsdAmount::from_units(66_000)); // 40% of 0.0165
        assert_eq!(
            q.hourly_usd, base.hourly_usd,
            "the undiscounted price is unchanged"
        );
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
    fn a_policy_with_its_own_tiers_discounts_by_them() {
        let policy = PricingPolicy {
            discounts: vec![
                DiscountTier {
                    level: DiscountLevel::Default,
                    min_half_months: 2,
                    percent: 10,
                },
                DiscountTier {
                    level: DiscountLevel::Gold,
                    min_half_months: 4,
                    percent: 50,
                },
            ],
            ..Default::default()
        };
        let month = TftAmount::from_base_units(1_000);
        let at = |b: u64| policy.discount_for(TftAmount::from_base_units(b), month);
        assert_eq!(at(999), (DiscountLevel::None, 0));
        assert_eq!(at(1_000), (DiscountLevel::Default, 10));
        assert_eq!(at(2_000), (DiscountLevel::Gold, 50));

        let base = quote(&[vm(2, 4, 100, 1)], false, &policy, price(100_000), None);
        let balance = TftAmount::from_base_units(base.monthly_tft.base_units() * 2);
        let q = quote(
            &[vm(2, 4, 100, 1)],
            false,
            &policy,
            price(100_000),
            Some(balance),
        );
        assert_eq!(q.discount, DiscountLevel::Gold);
        assert_eq!(q.discount_percent, 50);
        assert_eq!(q.discounted_hourly_usd, UsdAmount::from_units(82_500));
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
