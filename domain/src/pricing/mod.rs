//! Pricing under one roof: the pricing policy operators set, the quotes
//! computed under it, and the PricingPolicy aggregate that holds it.
//!
//! - `policy.rs`: [`PricingPolicy`], its prices and staking discount tiers
//!   ([`DiscountTier`], [`DiscountLevel`]) and the limits it must keep.
//! - `quote.rs`: [`quote`], what machines cost under a policy ([`Quote`]).
//! - `aggregate.rs`, `commands.rs`, `events.rs`: the PricingPolicy
//!   aggregate, the one policy the marketplace quotes and bills by, changed
//!   only by operators. There is a single instance, [`AGGREGATE_ID`]. Before
//!   any change it holds the grid's default policy, so quotes work on a
//!   fresh store.
//!
//! Imports go one way: `policy` <- `quote`, and `policy` <- `commands`,
//! `events` <- `aggregate`.

mod aggregate;
mod commands;
mod events;
mod policy;
mod quote;

#[cfg(test)]
mod tests;

pub use aggregate::{PricingPolicyAggregate, PricingPolicyError};
pub use commands::PricingPolicyCommand;
pub use events::{PricingPolicyEvent, EVENT_VERSION};
pub use policy::{
    default_discounts, DiscountLevel, DiscountTier, PricingPolicy, MAX_CERTIFIED_MULTIPLIER_BPS,
    MAX_DISCOUNT_TIERS, MAX_MARKUP_BPS, MIN_CERTIFIED_MULTIPLIER_BPS,
};
pub use quote::{quote, MachineUsage, Quote, HOURS_PER_MONTH};

/// The id of the one PricingPolicy aggregate.
pub const AGGREGATE_ID: &str = "current";
