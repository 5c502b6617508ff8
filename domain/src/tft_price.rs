//! The TFT price feed: the average price TFChain stores
//! (`tftPriceModule.AveragePriceStored`, in mUSD), observed by the chain
//! follower. Quotes and top-ups convert at the newest observation; before
//! the first, at the price configured. One aggregate, id [`AGGREGATE_ID`].
//! Observations arrive in chain order: one not newer than the last was
//! seen.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::chain::{is_new, ChainEventRef};
use crate::money::TftPrice;

/// The feed's only aggregate id.
pub const AGGREGATE_ID: &str = "tfchain";

/// Event payload version.
pub const EVENT_VERSION: &str = "1";

/// USD chain units (10^-7 USD) in one mUSD.
pub const USD_UNITS_PER_MUSD: u64 = 10_000;

/// A command to the feed.
#[derive(Debug, Clone, PartialEq)]
pub enum TftPriceCommand {
    /// The chain stored a new average price.
    Observe {
        /// The price, mUSD per TFT (more than zero).
        price_musd: u32,
        /// The chain event.
        event: ChainEventRef,
        /// The block's timestamp.
        stored_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TftPriceEvent {
    /// The chain's average price, observed.
    AveragePriceObserved {
        /// mUSD per TFT.
        price_musd: u32,
        /// The chain event.
        event: ChainEventRef,
        /// The block's timestamp.
        stored_at: DateTime<Utc>,
        /// When it was recorded.
        at: DateTime<Utc>,
    },
}

impl TftPriceEvent {
    /// When the event was recorded.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            TftPriceEvent::AveragePriceObserved { at, .. } => *at,
        }
    }
}

impl DomainEvent for TftPriceEvent {
    fn event_type(&self) -> String {
        match self {
            TftPriceEvent::AveragePriceObserved { .. } => "AveragePriceObserved".to_string(),
        }
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

/// Why an observation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TftPriceError {
    /// A price of zero cannot convert anything.
    #[error("a TFT price of 0 mUSD")]
    ZeroPrice,
}

/// The newest observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// mUSD per TFT.
    pub price_musd: u32,
    /// The chain event.
    pub event: ChainEventRef,
    /// The block's timestamp.
    pub stored_at: DateTime<Utc>,
}

impl Observation {
    /// The price quotes convert at.
    pub fn price(&self) -> TftPrice {
        musd_price(self.price_musd).unwrap_or_else(|| {
            unreachable!("observations are never zero: the command refuses them")
        })
    }
}

/// A price of `musd` mUSD per TFT, `None` for zero.
pub fn musd_price(musd: u32) -> Option<TftPrice> {
    TftPrice::from_usd_units(u64::from(musd) * USD_UNITS_PER_MUSD).ok()
}

/// The feed: its newest observation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TftPriceFeed {
    latest: Option<Observation>,
}

impl TftPriceFeed {
    /// The newest observation, if any.
    pub fn latest(&self) -> Option<Observation> {
        self.latest
    }

    /// Decides a command: the events (none for one already seen), or why not.
    pub fn decide(&self, command: TftPriceCommand) -> Result<Vec<TftPriceEvent>, TftPriceError> {
        let TftPriceCommand::Observe {
            price_musd,
            event,
            stored_at,
            at,
        } = command;
        if price_musd == 0 {
            return Err(TftPriceError::ZeroPrice);
        }
        if !is_new(self.latest.map(|l| l.event), event) {
            return Ok(vec![]);
        }
        Ok(vec![TftPriceEvent::AveragePriceObserved {
            price_musd,
            event,
            stored_at,
            at,
        }])
    }

    /// Applies an event.
    pub fn apply_event(&mut self, event: &TftPriceEvent) {
        let TftPriceEvent::AveragePriceObserved {
            price_musd,
            event,
            stored_at,
            ..
        } = event;
        self.latest = Some(Observation {
            price_musd: *price_musd,
            event: *event,
            stored_at: *stored_at,
        });
    }
}

crate::event_sourced!(
    TftPriceFeed,
    "tft_price",
    TftPriceCommand,
    TftPriceEvent,
    TftPriceError
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Scenario;

    impl Scenario for TftPriceFeed {}

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn observe(price_musd: u32, block: u32) -> TftPriceCommand {
        TftPriceCommand::Observe {
            price_musd,
            event: ChainEventRef {
                block_number: block,
                event_index: 1,
            },
            stored_at: at(),
            at: at(),
        }
    }

    fn observed(price_musd: u32, block: u32) -> TftPriceEvent {
        TftPriceEvent::AveragePriceObserved {
            price_musd,
            event: ChainEventRef {
                block_number: block,
                event_index: 1,
            },
            stored_at: at(),
            at: at(),
        }
    }

    #[test]
    fn a_new_average_is_observed() {
        TftPriceFeed::given(vec![observed(10, 1)])
            .when(observe(12, 5))
            .then_expect_events(vec![observed(12, 5)]);
    }

    #[test]
    fn the_same_chain_event_again_or_an_older_one_records_nothing() {
        TftPriceFeed::given(vec![observed(12, 5)])
            .when(observe(12, 5))
            .then_expect_events(vec![]);
        TftPriceFeed::given(vec![observed(12, 5)])
            .when(observe(9, 4))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_zero_price_is_refused() {
        TftPriceFeed::given(vec![])
            .when(observe(0, 1))
            .then_expect_error(TftPriceError::ZeroPrice);
    }

    #[test]
    fn a_price_in_musd_converts_to_usd_units() {
        let mut feed = TftPriceFeed::default();
        feed.apply_event(&observed(25, 3));
        assert_eq!(feed.latest().map(|o| o.price().usd_units()), Some(250_000));
        assert_eq!(musd_price(0), None);
    }
}
