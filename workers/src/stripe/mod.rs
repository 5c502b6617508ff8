//! Card payments: the Stripe client, the inbox worker that applies Stripe's
//! webhook events to wallets, and the auto top-up worker.

pub mod client;

pub use client::{Card, Intent, Payments, PaymentsError, StripeSettings};
