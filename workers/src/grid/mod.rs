//! The grid sync worker ([`sync`]): keeps the Node aggregates in step with
//! the grid proxy's catalog, read through the port in
//! `marketplace_app::grid`.

pub mod sync;

pub use sync::{Clock, GridSync, GridSyncOptions, ManualClock, SyncStats, SystemClock};
