//! Background workers: each reacts to events or external feeds and acts
//! through the command bus in `marketplace_app`, on the one loop in
//! [`runtime`] (cancellation, wake on LISTEN or interval, backoff).
//!
//! - [`kafka`]: the scale-out path: the relay that publishes the event
//!   store to Kafka in commit order, and projection workers consuming it as
//!   consumer groups (the projections live in `marketplace-projections`).
//! - [`chain`]: the chain-event follower (bills, grace periods, uptime,
//!   the TFT price) and the ledger-to-chain reconciliation.
//! - [`grid`]: the grid sync worker.
//! - [`stripe`]: the Stripe inbox, auto top-up and runway workers.
//! - [`notify`]: the notification process manager and its delivery
//!   workers (feed, email, outgoing webhooks).
//! - [`provisioning`]: the provisioning process manager and the treasury's
//!   transfers to custodial accounts, on the leased job queues of [`jobs`].

pub mod alliance;
pub mod audit;
pub mod chain;
pub mod grid;
pub mod jobs;
pub mod kafka;
pub mod notify;
pub mod provisioning;
pub mod runtime;
pub mod stripe;
