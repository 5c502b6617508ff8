//! The User aggregate: one per token subject (the aggregate id is the
//! `sub`), opened from the token's claims on the user's first
//! authenticated request. It keeps the profile (display name, company,
//! country, a contact email proved by a one-time code sent there) and the
//! settings (notification preferences per kind and channel, the time zone
//! dates in messages are written in, the placement a new deployment gets
//! when its request names none).
//!
//! The one-time code never enters an event: the event keeps a salt, the
//! salted hash and an expiry; attempts are counted by events too, so a
//! guess costs an attempt even across a crash.

mod aggregate;
mod commands;
mod events;
mod values;

#[cfg(test)]
mod tests;

pub use aggregate::{
    PendingVerification, User, UserError, UserState, CODES_PER_HOUR, CODE_ATTEMPTS,
};
pub use commands::{UserCommand, UserPatch};
pub use events::{UserEvent, EVENT_VERSION};
pub use values::*;
