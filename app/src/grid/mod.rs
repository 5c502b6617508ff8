//! The grid proxy port: the ThreeFold Grid's node and farm catalog as the
//! grid proxy serves it, with its wire types ([`types`]) and the client that
//! reads every page ([`client`]). The grid proxy simulator that speaks the
//! same shapes lives in the dev crate.

pub mod client;
pub mod types;

pub use client::{GridClient, GridError};
pub use types::{GridFarm, GridNode};
