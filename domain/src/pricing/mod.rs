//! Pricing under one roof: the quotes (`quote.rs`: the pricing policy value
//! and what a workload costs under it) and the PricingPolicy aggregate, the
//! one pricing policy the marketplace quotes and bills by, changed only by
//! operators.
//!
//! There is a single instance, [`AGGREGATE_ID`]. Before any change it holds
//! the grid's default policy, so quotes work on a fresh store.

mod aggregate;
mod commands;
mod events;
mod quote;

#[cfg(test)]
mod tests;

pub use aggregate::{PricingPolicyAggregate, PricingPolicyError};
pub use commands::PricingPolicyCommand;
pub use events::{PricingPolicyEvent, EVENT_VERSION};
pub use quote::*;

/// The id of the one PricingPolicy aggregate.
pub const AGGREGATE_ID: &str = "current";
