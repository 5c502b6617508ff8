//! Why a wallet command is refused.
//!
//! Apart from the aggregate so that an event can name the refusal it stands
//! for ([`WalletEvent::refusal`](super::WalletEvent::refusal)) without the
//! events importing the aggregate that imports them.

use chrono::{DateTime, Utc};

use uuid::Uuid;

use super::values::{SpecError, StripeId};
use crate::money::TftAmount;

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WalletError {
    /// A command other than opening for a wallet never opened.
    #[error("no such wallet")]
    NotOpened,
    /// The wallet is already open.
    #[error("the wallet is already open")]
    AlreadyOpened,
    /// A field is out of range or malformed.
    #[error("invalid wallet command: {0}")]
    Invalid(#[from] SpecError),
    /// A challenge with this id was already issued.
    #[error("a link challenge with this id already exists")]
    DuplicateChallenge,
    /// No challenge with this id.
    #[error("no such link challenge")]
    ChallengeNotFound,
    /// The challenge ran out before it was answered.
    #[error("the link challenge expired at {expires_at}")]
    ChallengeExpired {
        /// When it expired.
        expires_at: DateTime<Utc>,
    },
    /// The challenge was already answered, rightly or wrongly.
    #[error("the link challenge was already used")]
    ChallengeUsed,
    /// The signature did not verify (see [`WalletEvent::refusal`](super::WalletEvent::refusal)).
    #[error("the signature does not verify for the challenge's account")]
    SignatureInvalid,
    /// A top-up with this id or payment intent already exists.
    #[error("a top-up with this id or payment intent already exists")]
    DuplicateTopUp,
    /// No top-up was created for this payment intent.
    #[error("no top-up for payment intent {0}")]
    UnknownPaymentIntent(StripeId),
    /// Stripe received another amount than the top-up's price.
    #[error("payment of {received_cents} cents for a top-up of {expected_cents} cents")]
    AmountMismatch {
        /// The top-up's price.
        expected_cents: u64,
        /// What Stripe received.
        received_cents: u64,
    },
    /// No credited top-up was paid by this charge.
    #[error("no credited top-up for charge {0}")]
    UnknownCharge(StripeId),
    /// Refunds and disputes of a charge would return more than it paid.
    #[error(
        "charge paid {paid_cents} cents, {returned_cents} already returned, \
         cannot return {asked_cents} more"
    )]
    RefundExceedsPayment {
        /// What the charge paid.
        paid_cents: u64,
        /// Refunded or disputed so far.
        returned_cents: u64,
        /// Asked now.
        asked_cents: u64,
    },
    /// A debit would take the balance below zero.
    #[error("balance of {balance} base units cannot pay {needed}")]
    InsufficientBalance {
        /// The balance, in TFT base units.
        balance: i128,
        /// The debit.
        needed: TftAmount,
    },
    /// A debit, refund or dispute id was already recorded with other figures.
    #[error("{id} was already recorded with different figures")]
    IdConflict {
        /// The id.
        id: String,
    },
    /// An automatic top-up without a rule.
    #[error("automatic top-ups are not configured")]
    AutoTopUpNotConfigured,
    /// An automatic top-up while the balance is at or above the threshold.
    #[error("balance of {balance} base units is not below the threshold {threshold}")]
    AutoTopUpNotNeeded {
        /// The balance, in TFT base units.
        balance: i128,
        /// The rule's threshold.
        threshold: TftAmount,
    },
    /// Another automatic top-up is still waiting for Stripe.
    #[error("an automatic top-up is already pending")]
    AutoTopUpPending,
    /// The wallet already has another Stripe customer.
    #[error("the wallet already has Stripe customer {0}")]
    CustomerConflict(StripeId),
    /// No saved card with this id.
    #[error("no saved card {0}")]
    UnknownPaymentMethod(StripeId),
    /// The automatic top-up would pass the monthly cap.
    #[error("monthly cap of {cap_cents} cents: {used_cents} used, {asked_cents} more asked")]
    MonthlyCapReached {
        /// The rule's cap.
        cap_cents: u64,
        /// Used this month.
        used_cents: u64,
        /// Asked now.
        asked_cents: u64,
    },
    /// The wallet already has a different chain account.
    #[error("the wallet's chain account is already {recorded}")]
    ChainAccountConflict {
        /// The one recorded.
        recorded: String,
    },
    /// No top-up has this id.
    #[error("no top-up {0}")]
    UnknownTopUp(Uuid),
    /// Only a credited top-up's TFT is sent on chain.
    #[error("top-up {0} is not credited")]
    TopUpNotCredited(Uuid),
    /// The transfer was never started.
    #[error("no chain transfer was started for top-up {0}")]
    ChainTransferNotStarted(Uuid),
    /// No subscription of this wallet has this id (yet).
    #[error("no subscription {0}")]
    UnknownSubscription(StripeId),
    /// The wallet already has a subscription that has not ended.
    #[error("the wallet is already subscribed ({0})")]
    AlreadySubscribed(StripeId),
    /// The subscription has ended.
    #[error("subscription {0} has ended")]
    SubscriptionEnded(StripeId),
}
