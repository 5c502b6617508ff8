//! Money as integers. TFT and on-chain USD both use 7 decimals
//! (1 TFT = 10,000,000 base units; 1 USD = 10,000,000 units); card payments
//! are USD cents. No floating point ever touches an amount.

use serde::{Deserialize, Serialize};

/// Base units per whole token or dollar (7 decimals, as on TFChain).
pub const UNITS_PER_WHOLE: u64 = 10_000_000;

/// An amount of USD in chain units (1 USD = 10,000,000).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UsdAmount(u64);

impl UsdAmount {
    /// An amount from chain units.
    pub const fn from_units(units: u64) -> Self {
        Self(units)
    }
    /// The amount in chain units.
    pub const fn units(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for UsdAmount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_decimal(f, self.0)
    }
}

/// An amount of TFT in base units (1 TFT = 10,000,000).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TftAmount(u64);

impl TftAmount {
    /// An amount from base units.
    pub const fn from_base_units(units: u64) -> Self {
        Self(units)
    }
    /// The amount in base units.
    pub const fn base_units(self) -> u64 {
        self.0
    }
    /// The sum, at most `u64::MAX` base units (1.8 trillion TFT).
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl std::fmt::Display for TftAmount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_decimal(f, self.0)
    }
}

/// The price of one TFT in USD chain units; never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TftPrice(u64);

/// A TFT price of zero would make every conversion divide by zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the TFT price must be a positive number of USD units")]
pub struct ZeroPrice;

impl TftPrice {
    /// A price from USD units per TFT.
    pub fn from_usd_units(units: u64) -> Result<Self, ZeroPrice> {
        if units == 0 {
            Err(ZeroPrice)
        } else {
            Ok(Self(units))
        }
    }
    /// USD units per TFT.
    pub const fn usd_units(self) -> u64 {
        self.0
    }
}

/// Parses a non-negative decimal with at most 7 fraction digits ("0.0125")
/// into 7-decimal units, exactly.
pub fn parse_decimal_units(text: &str) -> Option<u64> {
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if frac.len() > 7
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut frac_units: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..7 {
        frac_units *= 10;
    }
    whole.checked_mul(UNITS_PER_WHOLE)?.checked_add(frac_units)
}

fn write_decimal(f: &mut std::fmt::Formatter<'_>, units: u64) -> std::fmt::Result {
    let whole = units / UNITS_PER_WHOLE;
    let frac = units % UNITS_PER_WHOLE;
    if frac == 0 {
        write!(f, "{whole}")
    } else {
        let digits = format!("{frac:07}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal_units("0.01"), Some(100_000));
        assert_eq!(parse_decimal_units("1"), Some(10_000_000));
        assert_eq!(parse_decimal_units("0.0000001"), Some(1));
        assert_eq!(parse_decimal_units(".5"), Some(5_000_000));
        assert_eq!(
            parse_decimal_units("0.00000001"),
            None,
            "8 decimals is below a base unit"
        );
        assert_eq!(parse_decimal_units("-1"), None);
        assert_eq!(parse_decimal_units("1e3"), None);
        assert_eq!(parse_decimal_units(""), None);
    }

    #[test]
    fn amounts_display_as_decimals() {
        assert_eq!(UsdAmount::from_units(100_000).to_string(), "0.01");
        assert_eq!(TftAmount::from_base_units(25_000_000).to_string(), "2.5");
        assert_eq!(TftAmount::from_base_units(30_000_000).to_string(), "3");
    }

    #[test]
    fn a_zero_price_is_refused() {
        assert_eq!(TftPrice::from_usd_units(0), Err(ZeroPrice));
    }
}
