//! Quotes: what a workload costs per hour and per 30-day month, in USD and
//! TFT, under a pricing policy, following TFChain's resource-unit formulas.
//!
//! Every figure is computed as one exact rational and rounded once, half up,
//! to a base unit, so an hourly and a monthly figure never drift apart by
//! accumulated rounding.

use serde::{Deserialize, Serialize};

use super::policy::{DiscountLevel, PricingPolicy};
use crate::money::{TftAmount, TftPrice, UsdAmount, UNITS_PER_WHOLE};

/// Hours in the 30-day month that billing and discounts are reckoned on.
pub const HOURS_PER_MONTH: u64 = 24 * 30;

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
    use crate::pricing::DiscountTier;

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
}
