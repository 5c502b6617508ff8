//! The ThreeFold Grid's node and farm catalog as the grid proxy serves it:
//! the wire types ([`types`]), a client that reads every page
//! ([`client`]), and a grid proxy simulator for development and tests
//! ([`sim`]).

pub mod client;
pub mod sim;
pub mod types;

pub use client::{GridClient, GridError};
pub use sim::{Seed, SeedError};
pub use types::{GridFarm, GridNode};
