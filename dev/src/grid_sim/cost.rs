//! What a contract costs, by `pallet-smart-contract`'s `cost.rs` rules: the
//! genesis pricing policy, cloud units from used resources, the rent
//! discount, the dedicated node's extra fee, NU, the conversion to TFT at
//! the clamped average price, and the staking discount. Pure arithmetic;
//! no chain state.
//!
//! The chain computes in `U64F64` fixed point (64 fractional bits). Where
//! its truncation can change the integer it ends with (the TFT conversion
//! and the discount multipliers), this module reproduces the fixed-point
//! steps on the raw bits; elsewhere it computes the exact fraction and
//! rounds it the way the chain rounds its result (the two differ by less
//! than 2^-50 before that rounding).

use serde::{Deserialize, Serialize};

/// Resources a node contract uses, as the node reports them
/// (`UpdatedUsedResources`): bytes and cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Resources {
    pub(super) hru: u64,
    pub(super) sru: u64,
    pub(super) cru: u64,
    pub(super) mru: u64,
}

/// The genesis pricing policy (policy 1), units of 10^-7 USD per hour (NU:
/// per GB).
pub(super) mod policy {
    /// One CU for an hour.
    pub(in super::super) const CU: u64 = 100_000;
    /// One SU for an hour.
    pub(in super::super) const SU: u64 = 50_000;
    /// One public IPv4 for an hour.
    pub(in super::super) const IPU: u64 = 40_000;
    /// One GB of public traffic.
    pub(in super::super) const NU: u64 = 15_000;
    /// A unique name for an hour.
    pub(in super::super) const UNIQUE_NAME: u64 = 2_500;
    /// What a rent contract pays of the node's CU and SU, percent
    /// (`discount_for_dedication_nodes`).
    pub(in super::super) const DEDICATION_PAYS_PERCENT: u64 = 50;
}

/// `SECS_PER_HOUR`.
const SECS_PER_HOUR: u128 = 3_600;

/// `SECS_PER_MONTH`: a 30-day month, over which an extra fee is pro-rated.
const SECS_PER_MONTH: u128 = 30 * 24 * 3_600;

/// The policy's `Gigabytes` unit for CU and SU (`factor_base_1024`).
const GIB: u128 = 1 << 30;

/// The policy's `Gigabytes` unit for NU (`factor_base_1000`).
const GB: u128 = 1_000_000_000;

/// One in `U64F64`.
const ONE: u128 = 1 << 64;

fn ceil_div(numerator: u128, denominator: u128) -> u128 {
    numerator.div_ceil(denominator)
}

fn to_u64(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// `calculate_resources_cost`: CU and SU of `used` (when `bill_resources`)
/// and `ips` public IPv4s, for `secs` seconds; units USD, rounded up.
///
/// `SU = hru/1200 + sru/200` and
/// `CU = min(max(mru/4, cru/2), max(mru/8, cru), max(mru/2, cru/4))`, with
/// hru, sru and mru in GiB; everything is summed over the common
/// denominator `3600 × 1200 GiB` before the one rounding.
pub(super) fn resources_cost(used: Resources, ips: u32, secs: u64, bill_resources: bool) -> u64 {
    let denominator = SECS_PER_HOUR * 1_200 * GIB;
    let mut per_hour: u128 = 0;
    if bill_resources {
        let (hru, sru, cru, mru) = (
            u128::from(used.hru),
            u128::from(used.sru),
            u128::from(used.cru),
            u128::from(used.mru),
        );
        // SU × 1200 GiB.
        let su = hru + 6 * sru;
        // CU × 8 GiB.
        let cu = (2 * mru)
            .max(4 * GIB * cru)
            .min(mru.max(8 * GIB * cru))
            .min((4 * mru).max(2 * GIB * cru));
        per_hour += u128::from(policy::SU) * su + u128::from(policy::CU) * cu * 150;
    }
    per_hour += u128::from(ips) * u128::from(policy::IPU) * 1_200 * GIB;
    to_u64(ceil_div(
        per_hour.saturating_mul(u128::from(secs)),
        denominator,
    ))
}

/// A rent contract: the node's whole CU and SU at the dedication discount
/// (`Percent × cost`, which rounds to the nearest, halves down).
pub(super) fn rent_cost(node: Resources, secs: u64) -> u64 {
    let full = u128::from(resources_cost(node, 0, secs, true));
    to_u64(percent_of(
        full,
        u128::from(policy::DEDICATION_PAYS_PERCENT),
    ))
}

/// `Percent::from_percent(percent) × value` (and `Perbill`'s): to the
/// nearest, halves down.
pub(super) fn percent_of(value: u128, percent: u128) -> u128 {
    let scaled = value.saturating_mul(percent);
    let (quotient, remainder) = (scaled / 100, scaled % 100);
    quotient + u128::from(remainder > 50)
}

/// `calculate_extra_fee_cost`: a dedicated node's extra fee (mUSD a month)
/// for `secs` seconds; units USD, rounded down.
pub(super) fn extra_fee_cost(fee_musd_per_month: u64, secs: u64) -> u64 {
    let units_per_month = u128::from(fee_musd_per_month) * 10_000;
    to_u64(units_per_month.saturating_mul(u128::from(secs)) / SECS_PER_MONTH)
}

/// A name contract for `secs` seconds; units USD, rounded down.
pub(super) fn name_cost(secs: u64) -> u64 {
    to_u64(u128::from(policy::UNIQUE_NAME) * u128::from(secs) / SECS_PER_HOUR)
}

/// An NRU report: `nru` bytes of public traffic at the NU price (GB of
/// 10^9 bytes); units USD, rounded down.
pub(super) fn nu_cost(nru_bytes: u64) -> u64 {
    to_u64(u128::from(nru_bytes) * u128::from(policy::NU) / GB)
}

/// `calculate_cost_in_tft_from_musd`: units USD to TFT base units at
/// `price_musd` (already clamped), in the chain's order: `U64F64` division
/// by the price in units USD (truncated to 64 fractional bits), times
/// 10^7, truncated. When the quotient is not a binary fraction this is one
/// unit below the exact `usd × 1000 / price`.
pub(super) fn usd_to_tft(units_usd: u64, price_musd: u32) -> u128 {
    let price_units = u128::from(price_musd.max(1)) * 10_000;
    let quotient_bits = (u128::from(units_usd) << 64) / price_units;
    quotient_bits.saturating_mul(10_000_000) >> 64
}

/// `DiscountLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum DiscountLevel {
    None,
    Default,
    Bronze,
    Silver,
    Gold,
}

impl DiscountLevel {
    /// The name the event carries.
    pub(super) fn name(self) -> &'static str {
        match self {
            DiscountLevel::None => "None",
            DiscountLevel::Default => "Default",
            DiscountLevel::Bronze => "Bronze",
            DiscountLevel::Silver => "Silver",
            DiscountLevel::Gold => "Gold",
        }
    }

    /// `price_multiplier` as the chain holds it: `U64F64::from_num` of the
    /// `f64` 1, 0.8, 0.7, 0.6 and 0.4, whose binary values are exactly these
    /// bits (0.8 and 0.4 a hair above, 0.7 and 0.6 a hair below).
    fn multiplier_bits(self) -> u128 {
        match self {
            DiscountLevel::None => ONE,
            DiscountLevel::Default => 14_757_395_258_967_642_112,
            DiscountLevel::Bronze => 12_912_720_851_596_685_312,
            DiscountLevel::Silver => 11_068_046_444_225_730_560,
            DiscountLevel::Gold => 7_378_697_629_483_821_056,
        }
    }

    /// The level a balance of `months` (as `balance / monthly`) earns:
    /// 1.5, 3, 6 and 18 months.
    fn for_balance(balance: u128, monthly: u128) -> DiscountLevel {
        if monthly == 0 {
            return DiscountLevel::Gold;
        }
        // balance / monthly >= n / d  ⇔  balance × d >= monthly × n
        let at_least = |n: u128, d: u128| balance.saturating_mul(d) >= monthly.saturating_mul(n);
        if at_least(18, 1) {
            DiscountLevel::Gold
        } else if at_least(6, 1) {
            DiscountLevel::Silver
        } else if at_least(3, 1) {
            DiscountLevel::Bronze
        } else if at_least(3, 2) {
            DiscountLevel::Default
        } else {
            DiscountLevel::None
        }
    }
}

/// `calculate_discount`: the TFT `amount_due` for `secs` seconds after the
/// staking discount that `balance` earns, and after the certified-node
/// premium (×1.25); rounded up.
///
/// The monthly cost the balance is compared with is the amount normalised
/// to an hour and multiplied by 24 × 30 (`amount × 3600 / secs × 720`,
/// rounded half up).
pub(super) fn discount(
    amount_due: u128,
    secs: u64,
    balance: u128,
    certified: bool,
) -> (u128, DiscountLevel) {
    if amount_due == 0 {
        return (0, DiscountLevel::None);
    }
    let secs = u128::from(secs.max(1));
    let monthly_twice = amount_due.saturating_mul(SECS_PER_HOUR * 24 * 30 * 2) / secs;
    let monthly = monthly_twice.div_ceil(2);
    let level = DiscountLevel::for_balance(balance, monthly);
    let mut bits = amount_due.saturating_mul(level.multiplier_bits());
    if certified {
        // × U64F64(1.25), truncated.
        bits = bits.saturating_add(bits / 4);
    }
    (bits.div_ceil(ONE), level)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB64: u64 = 1 << 30;

    #[test]
    fn a_2_vcpu_4_gib_50_gib_vm_is_one_cu_and_a_quarter_su() {
        let vm = Resources {
            cru: 2,
            mru: 4 * GIB64,
            sru: 50 * GIB64,
            hru: 0,
        };
        // 1 CU × 100,000 + 0.25 SU × 50,000 = 112,500 units an hour.
        assert_eq!(resources_cost(vm, 0, 3_600, true), 112_500);
        // 31.25 a second: a minute is 1,875, a second rounds up to 32.
        assert_eq!(resources_cost(vm, 0, 60, true), 1_875);
        assert_eq!(resources_cost(vm, 0, 1, true), 32);
        // One IPv4 adds 40,000 an hour; on a rented node only it is billed.
        assert_eq!(resources_cost(vm, 1, 3_600, true), 152_500);
        assert_eq!(resources_cost(vm, 1, 3_600, false), 40_000);
    }

    #[test]
    fn cu_is_the_least_of_the_three_mixes() {
        // Memory-heavy: 1 core, 32 GiB → min(max(8, .5), max(4, 1), max(16, .25)) = 4.
        let memory = Resources {
            cru: 1,
            mru: 32 * GIB64,
            ..Resources::default()
        };
        assert_eq!(resources_cost(memory, 0, 3_600, true), 400_000);
        // CPU-heavy: 16 cores, 1 GiB → min(8, 16, 4) = 4.
        let cpu = Resources {
            cru: 16,
            mru: GIB64,
            ..Resources::default()
        };
        assert_eq!(resources_cost(cpu, 0, 3_600, true), 400_000);
        // HDD: 1,200 GiB is one SU.
        let hdd = Resources {
            hru: 1_200 * GIB64,
            ..Resources::default()
        };
        assert_eq!(resources_cost(hdd, 0, 3_600, true), 50_000);
    }

    #[test]
    fn rent_pays_half_rounded_to_nearest_halves_down() {
        let node = Resources {
            cru: 2,
            mru: 4 * GIB64,
            sru: 50 * GIB64,
            hru: 0,
        };
        assert_eq!(rent_cost(node, 3_600), 56_250);
        // 32 for a second: 16.
        assert_eq!(rent_cost(node, 1), 16);
    }

    #[test]
    fn the_extra_fee_is_pro_rated_over_a_30_day_month() {
        // $10 a month (10,000 mUSD) for an hour: 10^8 × 3600 / 2,592,000.
        assert_eq!(extra_fee_cost(10_000, 3_600), 138_888);
        assert_eq!(extra_fee_cost(10_000, 30 * 24 * 3_600), 100_000_000);
    }

    #[test]
    fn nu_is_per_gb_of_10_9_bytes() {
        assert_eq!(nu_cost(2_000_000_000), 30_000);
        assert_eq!(nu_cost(1_500_000), 22);
    }

    #[test]
    fn tft_conversion_truncates_the_fixed_point_quotient() {
        // $0.01 a TFT: one USD unit is exactly 100 TFT units in decimal,
        // but 1/100,000 is not a binary fraction, so the chain gets 99.
        assert_eq!(usd_to_tft(1, 10), 99);
        // 10^5 units ($0.01) is exactly 1 TFT.
        assert_eq!(usd_to_tft(100_000, 10), 10_000_000);
        // At 25 mUSD 2 × 10^5 units is 0.8 TFT, truncated below.
        assert_eq!(usd_to_tft(200_000, 25), 7_999_999);
    }

    #[test]
    fn discount_levels_at_1_5_3_6_and_18_months() {
        // An hour's bill of 1,000 units: a month is 720,000.
        let month = 720_000;
        let level = |balance| discount(1_000, 3_600, balance, false).1;
        assert_eq!(level(month * 3 / 2 - 1), DiscountLevel::None);
        assert_eq!(level(month * 3 / 2), DiscountLevel::Default);
        assert_eq!(level(month * 3), DiscountLevel::Bronze);
        assert_eq!(level(month * 6), DiscountLevel::Silver);
        assert_eq!(level(month * 18), DiscountLevel::Gold);
        // The same for a minute's bill (normalised to the hour).
        assert_eq!(
            discount(1_000, 60, 60 * 720_000 * 3, false).1,
            DiscountLevel::Bronze
        );
    }

    #[test]
    fn discount_multipliers_round_up_from_the_float_bits() {
        // 0.8 is a hair above in binary: 1,000 × 0.8 rounds up to 801.
        assert_eq!(discount(1_000, 3_600, 720_000 * 2, false).0, 801);
        // 0.7 a hair below: exactly 700.
        assert_eq!(discount(1_000, 3_600, 720_000 * 4, false).0, 700);
        assert_eq!(discount(1_000, 3_600, 720_000 * 7, false).0, 600);
        assert_eq!(discount(1_000, 3_600, 720_000 * 20, false).0, 401);
        // No discount, certified: × 1.25.
        assert_eq!(discount(1_000, 3_600, 0, true).0, 1_250);
        assert_eq!(discount(0, 3_600, 0, true), (0, DiscountLevel::None));
    }
}
