//! The ProviderRequest aggregate: a farmer's application to sell a farm's
//! nodes through the marketplace, reviewed by an operator who approves,
//! rejects or asks for more information.
//!
//! One aggregate per farm (the aggregate id is the farm id), which is how
//! "one open request per farm" holds without a uniqueness check elsewhere:
//! a rejected or withdrawn request may be submitted again as a new round.

mod aggregate;
mod commands;
mod events;
mod values;

#[cfg(test)]
mod tests;

pub use aggregate::{ProviderRequest, ProviderRequestError, ProviderRequestState, Status};
pub use commands::ProviderRequestCommand;
pub use events::{ProviderRequestEvent, EVENT_VERSION};
pub use values::*;
