//! The chain-event follower: follows TFChain's events from a durable cursor
//! (block number, event index) and turns the ones about the marketplace's
//! contracts, nodes and price into commands (`apply.rs`):
//!
//! - `smartContractModule.ContractCreated` → the follower's own record of
//!   the contract (`chain_contracts`: twin, node, and the deployment its
//!   `deployment_data` names), so that a bill finds its wallet and
//!   deployment without waiting for any view;
//! - `ContractBilled` → `RecordBill` on the contract's twin's wallet (a
//!   debit of exactly `amount_billed`) and on its deployment (billed to
//!   date), both once per chain event;
//! - `ContractGracePeriodStarted` / `Ended` → the deployment's grace period
//!   for that contract; `ContractGracePeriodElapsed` → `Deleted(OutOfFunds)`;
//! - `tfgridModule.NodeUptimeReported` → the node's uptime history
//!   (`node_uptime_reports`, a copy of chain facts);
//! - `tftPriceModule.AveragePriceStored` → the TFT price feed;
//! - every `ContractBilled`, `RewardDistributed` and `tfgridModule.NodeUpdated`
//!   → `chain_bills`, `chain_rewards`, `chain_node_farms` (`facts.rs`): what
//!   an alliance's settlement reads (income by node, bills by user, farm moves).
//!
//! Events about other twins' contracts are skipped. Delivery is at least
//! once: a batch is applied, then the cursor moves past it; a crash between
//! the two applies the batch again, and every command above is a no-op for
//! a chain event its aggregate already recorded (chain order is kept per
//! aggregate: a wallet's events are applied in order, one wallet at a time).
//! A refusal by the domain (a grace period on a deployment still being
//! provisioned) is logged and counted, never retried; a failure to reach
//! the database or the chain retries the batch after a backoff without
//! moving the cursor.
//!
//! When the follower was away longer than the chain keeps events (the
//! chain answers [`ChainError::Pruned`](marketplace_app::tfchain::ChainError)),
//! `backfill.rs` reads what it missed from the chain's indexer: the bills of
//! the marketplace's twins' contracts, the nodes' uptime, the prices; and
//! sets each contract's grace state from the chain's storage (the indexer
//! does not carry grace-period events). Then it follows live again from the
//! oldest block the chain kept.
//!
//! `reconcile.rs` compares each custodial wallet's ledger with its chain
//! account (ledger balance − credits not yet delivered = free balance); a
//! mismatch is a metric and a log line, never corrected silently.

mod apply;
mod backfill;
mod facts;
mod follower;
mod reconcile;

pub use follower::{
    cursor, save_reconciliation, ChainFollower, FollowerOptions, FollowerStats, CURSOR,
};
pub use reconcile::{reconcile_bills, reconcile_once, spawn_reconciler, BillMismatch, Mismatch};
