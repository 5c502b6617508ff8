//! `pallet-tft-price` in the TFChain SIMULATOR: a ring buffer of the last
//! 1,440 TFT price observations (mUSD), their rounded average, and the
//! on-chain min and max the billing clamps it to. Observations come from
//! the seed's options at genesis and the `/sim/chain/price` control (the
//! real pallet's offchain worker reads Stellar's USDC/TFT path every ten
//! blocks).

use std::collections::VecDeque;

use serde_json::json;

use super::chain::{event, Pending};

/// `BufferRange`'s capacity: observations the average is taken over.
pub(super) const PRICE_HISTORY: usize = 1_440;

/// The TFT price as the chain holds it.
#[derive(Debug, Clone)]
pub(super) struct PriceOracle {
    history: VecDeque<u32>,
    average: u32,
    min: u32,
    max: u32,
}

impl PriceOracle {
    /// A buffer holding one observation, `initial`.
    pub(super) fn new(initial: u32, min: u32, max: u32) -> PriceOracle {
        let mut oracle = PriceOracle {
            history: VecDeque::with_capacity(PRICE_HISTORY),
            average: initial,
            min,
            max: max.max(min),
        };
        oracle.observe(initial);
        oracle
    }

    /// Pushes an observation (dropping the oldest past 1,440) and answers
    /// the new average: `calc_avg`, the `u32` sum (saturating) over the
    /// count, rounded half up.
    pub(super) fn observe(&mut self, price_musd: u32) -> u32 {
        if self.history.len() == PRICE_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(price_musd);
        let sum = self
            .history
            .iter()
            .fold(0u32, |sum, p| sum.saturating_add(*p));
        let count = self.history.len() as u64;
        self.average =
            u32::try_from((2 * u64::from(sum) + count) / (2 * count)).unwrap_or(u32::MAX);
        self.average
    }

    /// `AverageTftPrice`.
    pub(super) fn average(&self) -> u32 {
        self.average
    }

    /// What billing converts at: the average within `[min, max]`.
    pub(super) fn billing_price(&self) -> u32 {
        self.average.clamp(self.min, self.max)
    }
}

/// `PriceStored(price)` then `AveragePriceStored(average)`: tuple events,
/// their data one-element JSON arrays.
pub(super) fn events(price_musd: u32, average_musd: u32) -> Vec<Pending> {
    vec![
        event("tftPriceModule", "PriceStored", json!([price_musd])),
        event(
            "tftPriceModule",
            "AveragePriceStored",
            json!([average_musd]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_rounds_half_up_and_forgets_after_1440() {
        let mut oracle = PriceOracle::new(10, 10, 1_000);
        assert_eq!(oracle.average(), 10);
        assert_eq!(oracle.observe(15), 13); // 12.5 rounds up
        assert_eq!(oracle.observe(11), 12);
        for _ in 0..PRICE_HISTORY {
            oracle.observe(40);
        }
        assert_eq!(oracle.average(), 40);
    }

    #[test]
    fn billing_clamps_to_min_and_max() {
        let mut oracle = PriceOracle::new(10, 10, 1_000);
        oracle.observe(2);
        assert_eq!(oracle.average(), 6);
        assert_eq!(oracle.billing_price(), 10);
        let high = PriceOracle::new(5_000, 10, 1_000);
        assert_eq!(high.billing_price(), 1_000);
    }
}
