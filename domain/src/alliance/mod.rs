//! The Alliance aggregate: providers who pool nodes and share what they
//! earn. One aggregate per alliance (type `alliance`, the id is the app's).
//!
//! An alliance is a farm on TFChain whose twin and account the marketplace
//! holds. Members contribute nodes by moving them into that farm; the chain
//! pays the farm's share of every bill on them to the alliance's account;
//! the aggregate records who contributed which node and, each month,
//! settles the income among members by the alliance's rule, minus SLA
//! credits ([`settle`]), then records each payout sent on chain.
//!
//! The rules, and the choices behind them:
//!
//! - **Periods** are UTC calendar months ([`Period`]). Changes to the rule
//!   and the SLA, withdrawals, leaving and dissolving all take effect at the
//!   *next* period; joining and contributing count from the current one.
//! - **Founding** needs a `cloud-provider` whose provider request the app
//!   found approved (the command says so). The chain farm, twin and account
//!   are recorded later (`AssignFarm`, idempotent), as creating them is an
//!   external call; nodes can be contributed only once they exist.
//! - **Governance**: only the founder invites and dissolves. The rule and
//!   the SLA are changed by the founder, or, under
//!   [`Governance::CapacityMajority`], by a member's proposal that members
//!   holding most of the contributed capacity approve (`governance.rs`). The founder cannot leave (dissolving
//!   is how a founder goes); other members leave at the end of the period,
//!   their nodes withdrawn with them. A member may be invited again.
//! - **Nodes**: a member contributes a node of its own farm (the app
//!   checked ownership) with its capacity in whole CU and SU. A node is in
//!   the alliance once: another contribution is refused while it counts,
//!   even in the period its withdrawal takes effect after. That a node is
//!   in no *other* alliance is the app's check (its farm is the alliance's).
//! - **Settlement** (`Settle`): periods in order from the founding one,
//!   each once, only after it ended, with figures for exactly the nodes
//!   counted in it; the remainder carried from one settlement goes into the
//!   next. The app measures each node's uptime with
//!   [`measure_uptime_bps`]. The sharing and SLA arithmetic is the pure
//!   [`settle`] (see `settlement.rs`): credits to users are paid off the
//!   top, so every member bears them by the rule's weights; credits to
//!   members are the breaching member's penalty, given to the others.
//!   Settled amounts must fit in `u64` base units (the event store's JSON).
//! - **Dissolution** takes effect at the end of the period. After it every
//!   command is refused but `Settle` (for the periods the alliance still
//!   counted in), `RecordPayout` and `LinkPayoutAccount`: the money of those
//!   periods is already in the alliance's account and is still owed.
//! - **Payouts** (`RecordPayout`): one per member and settled period, of
//!   exactly the member's share; the same record again is a no-op, a
//!   different one is refused, so a crash-safe worker records each chain
//!   transfer once.
//! - **Payout accounts**: a member (present or past) links the SS58
//!   address its payouts go to; the signed challenge is checked in the app.

mod aggregate;
mod commands;
mod errors;
mod events;
mod governance;
mod periods;
mod settlement;
mod state;
mod uptime;
mod values;

#[cfg(test)]
mod settlement_tests;
#[cfg(test)]
mod tests;

pub use aggregate::Alliance;
pub use commands::{AllianceCommand, NodeIncome};
pub use errors::AllianceError;
pub use events::{AllianceEvent, EVENT_VERSION};
pub use settlement::{
    largest_remainder, settle, NodeCredit, NodeFigures, Settlement, SettlementError,
};
pub use state::{AllianceState, Contribution, Member, Payout, Proposal, Stint};
pub use uptime::{measure_uptime_bps, MAX_REPORT_GAP, MIN_NOTICE};
pub use values::*;
