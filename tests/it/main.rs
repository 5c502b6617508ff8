//! Every end-to-end test, in one test binary (zero-to-production's
//! `tests/api/` layout): one link instead of one per file, one private
//! PostgreSQL and one Kafka broker for the whole run instead of one per
//! file. Each former `tests/<name>.rs` is a module here.
//!
//! Run one module with `cargo test --test it <module>::`, e.g.
//! `cargo test --test it wallet::`.
//!
//! In one process the tests share what each file used to have for itself:
//! the PostgreSQL server (whose snapshot xmin is cluster-wide), the broker
//! and every static in [`common`]. A test that stops or restarts a server
//! starts its own; the store-level suites, which hold transactions open and
//! apply big batches, run one at a time on a server of their own
//! ([`common::serial`]).

mod common;

mod alliances;
mod audit;
mod audit_cli;
mod audit_search;
mod auth;
mod billing;
mod bus;
mod chain_sim;
mod cli;
mod commands;
mod console;
mod contract;
mod deployments_api;
mod grid_sync;
mod group_commit;
mod harness;
mod kafka;
mod kafka_postgres_restart;
mod lifecycle;
mod nodes_api;
mod notifications;
mod openapi;
mod placement;
mod projection;
mod projection_fold;
mod providers_api;
mod provisioning;
mod rate_limit;
mod rebuild;
mod stripe_webhooks;
mod subscriptions;
mod supply_projections;
mod users;
mod wallet;
