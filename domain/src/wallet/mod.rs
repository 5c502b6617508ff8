//! The Wallet aggregate: one per cloud user (the aggregate id is the user's
//! subject). It links the user's TFChain account, sells TFT by card (Stripe)
//! at a quoted price, takes debits, and gives back what refunds and disputes
//! take, keeping a ledger whose sum is the balance.
//!
//! The rules, and the choices behind them:
//!
//! - **Units.** The ledger is in TFT base units (1 TFT = 10^7), signed
//!   (`i128`): credits positive, debits negative. Card amounts are USD cents.
//!   `balance == sum(ledger)` always: both change in one place.
//! - **Quotes.** A top-up buys `usd_cents * 100,000 * 10^7 / price` TFT base
//!   units, rounded *down* ([`tft_for_cents`]), fixed when the top-up is
//!   created. $5 to $10,000 a top-up; a quote holds at most 30 minutes.
//! - **Exactly once.** A payment success credits the quoted TFT once: the same
//!   webhook again is a no-op (no events). A failure after the success is out
//!   of order and ignored. A failure before it does not end the top-up: Stripe
//!   lets a failed intent be paid by a later attempt, which is then credited.
//!   A success is credited at the quote even after the quote expired: the
//!   amount was fixed with the intent, and Stripe may report a payment the
//!   user confirmed in time long after; refusing to confirm a stale quote is
//!   the payment page's job ([`TopUp::quote_valid_at`]).
//! - **Debits** are idempotent on their id and never take the balance below
//!   zero ([`WalletError::InsufficientBalance`]).
//! - **Refunds and disputes** are idempotent on Stripe's id and take back the
//!   TFT the returned cents bought, in proportion, rounded *up*, reckoned on
//!   the running total per charge ([`tft_to_return`]) so that returning every
//!   cent takes back exactly what was credited. They may take the balance
//!   below zero when the TFT was already spent: the debt is recorded, not
//!   refused. A charge never returns more cents than it paid. A won dispute
//!   (funds reinstated) is not modelled yet.
//! - **Linking.** A challenge names the account and key type; the user signs
//!   [`LinkChallenge::message`], the signature is checked outside, and the
//!   result comes in with `CompleteLink`. Each challenge is good for one
//!   attempt before it expires: a failed signature burns it
//!   (`LinkAttemptFailed`, answered as [`WalletError::SignatureInvalid`] via
//!   [`WalletEvent::refusal`]), and any later use is `ChallengeUsed`. A new
//!   link replaces the old one.
//! - **Auto top-up** (ours): `CreateAutoTopUp` charges the rule's amount only
//!   while the balance is below the threshold, one pending at a time, and
//!   within the monthly cap, counting pending and credited automatic top-ups
//!   created in the same calendar month (UTC).
//! - **Stripe customer and cards.** The wallet's Stripe customer is recorded
//!   once and never replaced. A saved card is recorded once (the first is the
//!   default); only a saved card can be the default; removing the card an
//!   auto top-up rule charges turns the rule off.
//! - **Runway alerts.** `ObserveRunway` raises an alert for each configured
//!   threshold the runway has fallen below and that is not alerted yet, and
//!   clears one the runway is back at or above (or that is no longer
//!   configured): each crossing alerts once.
//! - **Custody** (ours): the wallet records the TFChain account and twin
//!   the marketplace holds for it, and the treasury's transfer of each
//!   credited top-up's TFT to that account, started before it is submitted
//!   and completed once seen on chain (see `custody.rs`).
//! - **Bills** (`billing.rs`): the chain bills the wallet's twin's contracts
//!   and the ledger mirrors what it took (`BillPaid`), once per chain event
//!   (chain order, so an event not newer than the last bill recorded was
//!   seen), whatever the balance: the TFT already left the chain account.
//! - **Statements** (`statement.rs`): a UTC calendar month of the ledger,
//!   computed on read: opening balance, credits, bills per deployment and
//!   contract, other debits, closing balance, to the base unit.
//! - **Subscriptions** (`subscriptions.rs`): "add $N every month" on a
//!   saved card through a Stripe subscription, one at a time; each paid
//!   invoice is credited once as a top-up at the price quoted then, a failed
//!   one credits nothing and is recorded once (`SubscriptionPaymentFailed`).

// Files import one way, values <- errors <- events <- aggregate (commands
// from values only), so none needs a file that needs it.
mod aggregate;
mod billing;
mod commands;
mod custody;
mod errors;
mod events;
mod state;
mod statement;
mod subscriptions;
mod top_ups;
mod values;

#[cfg(test)]
mod tests;

pub use aggregate::{Wallet, WalletState};
pub use commands::WalletCommand;
pub use errors::WalletError;
pub use events::{WalletEvent, EVENT_VERSION};
pub use statement::{
    tft_with_seven_decimals, ContractBills, DeploymentBills, Statement, StatementLine,
    StatementMonth,
};
pub use values::*;
