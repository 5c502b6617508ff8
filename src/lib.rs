//! The `marketplace` binary's library: command-line configuration, wiring
//! of the API and the projection runners, and the private PostgreSQL of
//! `marketplace dev`. `main.rs` only parses arguments and calls in here.

pub mod cli;
pub mod embedded_pg;
pub mod grid_sync;
pub mod payments;
pub mod server;

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
