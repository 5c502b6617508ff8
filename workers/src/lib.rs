//! Background workers: process managers that react to events and external
//! feeds (provisioning, Stripe, the chain). None run yet; the projection
//! runners live in `marketplace-projections`.
//!
//! [`grid`] reads the grid proxy's node and farm catalog, and simulates the
//! proxy for development and tests. [`stripe`] is the Stripe client the API
//! and the payment workers (in the `marketplace` binary) call.

pub mod grid;
pub mod stripe;
