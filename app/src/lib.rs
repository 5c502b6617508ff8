//! The write side's IO, shared by the HTTP API and every worker.
//!
//! - [`bus`]: the one command path: load an aggregate, decide, commit with
//!   optimistic concurrency (`If-Match`), retry a lost race when the caller
//!   did not pin a version, open an aggregate on first use.
//! - [`metadata`]: what every event records about its cause.
//! - [`ids`]: ids derived from Idempotency-Keys and workers' causes.
//! - [`idempotency`]: the Idempotency-Key protocol, which replays the first
//!   answer (status, headers and body) of any keyed command.
//! - [`error`]: [`CommandError`], the typed refusal every caller maps once
//!   (the API to problem documents, workers to retry or set aside).
//! - [`runway`]: what a wallet's balance lasts at its deployments' burn.
//! - [`placement`]: choosing a deployment's node and reserving its capacity
//!   there (`capacity_reservations`) until the node's reports count it.
//! - Ports to outside systems: [`stripe`] (card payments), [`tfchain`]
//!   (account signatures, custodial accounts, the chain's calls and
//!   events), [`zos`] (the nodes' RMB commands), [`grid`] (the proxy) and
//!   [`mail`] (email over SMTP).
//!
//! This crate does no HTTP serving and runs no loops: it is called.

pub mod alliance;
pub mod audit;
pub mod bus;
pub mod error;
pub mod grid;
mod http_client;
pub mod idempotency;
pub mod ids;
pub mod mail;
pub mod metadata;
pub mod placement;
pub mod runway;
pub mod stripe;
pub mod tfchain;
pub mod tft_price;
pub mod zos;

pub use bus::{store, Committed, Exec, Store, Stores};
pub use error::CommandError;
pub use metadata::EventMetadata;
