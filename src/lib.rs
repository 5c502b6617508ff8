//! The `marketplace` binary's library: command-line configuration
//! ([`cli`]), one module per subcommand ([`cmd`]), and the wiring they share
//! ([`wiring`]). `main.rs` only parses arguments and calls in here.

pub mod cli;
pub mod cmd;
pub mod wiring;

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
