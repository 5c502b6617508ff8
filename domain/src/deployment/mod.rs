//! The Deployment aggregate: a VM or a Kubernetes cluster a cloud user asks
//! for, from request through placement, contract, running, resizes and grace
//! periods, to cancellation and deletion, with what the chain billed it
//! (`billing.rs`).

mod aggregate;
mod billing;
mod commands;
mod events;
pub mod qsfs;
pub mod spread;
pub mod standby;
mod values;

#[cfg(test)]
mod tests;

pub use aggregate::{Deployment, DeploymentError, DeploymentState, Status};
pub use commands::DeploymentCommand;
pub use events::{DeploymentEvent, EVENT_VERSION};
pub use values::*;
