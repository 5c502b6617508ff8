//! What the marketplace takes from TFChain as facts: where a chain event
//! is, and a contract's bill (`smartContractModule.ContractBilled`). The
//! chain decides these; aggregates record them, deduplicated on the event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::money::TftAmount;
use crate::pricing::DiscountLevel;

/// Where a chain event is: (block number, event index). Chain order is
/// this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChainEventRef {
    /// The block.
    pub block_number: u32,
    /// The event's index in it.
    pub event_index: u32,
}

impl std::fmt::Display for ChainEventRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.block_number, self.event_index)
    }
}

/// One `ContractBilled`: what the chain took from the contract's twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractBill {
    /// The chain event.
    pub event: ChainEventRef,
    /// The billed contract.
    pub contract_id: u64,
    /// TFT taken, in base units (more than zero).
    pub amount: TftAmount,
    /// The staking discount the chain applied.
    pub discount_level: DiscountLevel,
    /// The block's timestamp.
    pub billed_at: DateTime<Utc>,
}

/// Whether an event at `event` is new after the last one recorded: chain
/// facts arrive in chain order, so one that is not newer was seen.
pub fn is_new(last: Option<ChainEventRef>, event: ChainEventRef) -> bool {
    last.is_none_or(|last| event > last)
}
