//! Card payments' workers: the Stripe inbox, which applies Stripe's webhook
//! events to wallets ([`inbox`]); automatic top-ups ([`auto_top_up`]); and
//! runway alerts ([`runway`]). The Stripe client they call is the port in
//! `marketplace_app::stripe`.

pub mod auto_top_up;
mod events;
pub mod inbox;
pub mod runway;

pub use auto_top_up::{AutoTopUpOptions, AutoTopUpResult, AutoTopUpWorker};
pub use events::Outcome;
pub use inbox::{InboxOptions, StripeInboxWorker};
pub use runway::RunwayWorker;
