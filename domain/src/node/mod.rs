//! The Node aggregate: a grid node as the grid proxy reports it, with the
//! status the marketplace derives from its reports, and the maintenance
//! windows its provider schedules.
//!
//! The aggregate id is the grid node id. A sync worker feeds snapshots in;
//! only changes become events, so an idle node costs nothing in the store.

mod aggregate;
mod commands;
mod events;
mod values;

#[cfg(test)]
mod tests;

pub use aggregate::{Node, NodeError, NodeState};
pub use commands::NodeCommand;
pub use events::{NodeEvent, EVENT_VERSION};
pub use values::*;
