//! Background workers that react to events and external feeds.
//!
//! [`kafka`] is the scale-out path: the relay that publishes the event store
//! to Kafka in commit order, and projection workers that consume it as
//! consumer groups (the projections themselves live in
//! `marketplace-projections`). [`grid`] reads the grid proxy's node and farm
//! catalog, and simulates the proxy for development and tests. [`stripe`] is
//! the Stripe client the API and the payment workers (in the `marketplace`
//! binary) call.

pub mod grid;
pub mod kafka;
pub mod stripe;
