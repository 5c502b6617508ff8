//! The marketplace's business rules, pure and synchronous.
//!
//! Every aggregate decides from its current state and a command, and answers
//! either the events that happened or a typed error. Nothing in this crate
//! performs IO, reads a clock or draws randomness: whatever a decision needs
//! from outside (the time, a price, a node) is put into the command first.

pub mod actor;
pub mod alliance;
pub mod chain;
pub mod deployment;
pub mod kernel;
pub mod money;
pub mod node;
pub mod placement;
pub mod pricing;
pub mod provider;
pub mod tft_price;
pub mod upcast;
pub mod user;
pub mod wallet;

#[cfg(test)]
mod testing;

pub use actor::{Actor, Role};
pub use kernel::EventSourced;
pub use money::{TftAmount, TftPrice, UsdAmount};
