//! What happened to a wallet. Event payloads are versioned by
//! [`EVENT_VERSION`]; an old payload is upcast on read, never rewritten.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::errors::WalletError;
use super::values::*;
use crate::chain::ContractBill;
use crate::money::{TftAmount, TftPrice};

/// The payload version every wallet event is written with today.
pub const EVENT_VERSION: &str = "1";

/// An event of the Wallet aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WalletEvent {
    /// A user's wallet was opened.
    WalletOpened {
        /// The user's subject.
        owner: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A challenge to link a TFChain account was issued.
    LinkChallengeIssued {
        /// Its id.
        challenge_id: Uuid,
        /// Its random part.
        nonce: LinkNonce,
        /// The account to link.
        account: TfchainAccount,
        /// The scheme of its key.
        key_type: KeyType,
        /// When it stops being usable.
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The account's signature verified: the wallet is linked to it,
    /// replacing any earlier link.
    AccountLinked {
        /// The challenge answered.
        challenge_id: Uuid,
        /// The account.
        account: TfchainAccount,
        /// The scheme of its key.
        key_type: KeyType,
        /// When.
        at: DateTime<Utc>,
    },
    /// A signature did not verify; the challenge is burned.
    LinkAttemptFailed {
        /// The challenge answered.
        challenge_id: Uuid,
        /// The account it was for.
        account: TfchainAccount,
        /// When.
        at: DateTime<Utc>,
    },
    /// A card top-up was quoted and its payment intent created.
    TopUpCreated {
        /// The marketplace's id.
        top_up_id: Uuid,
        /// Stripe's payment intent.
        payment_intent_id: StripeId,
        /// The price, in cents.
        usd_cents: u64,
        /// The TFT to credit once paid.
        tft_amount: TftAmount,
        /// The TFT price quoted.
        tft_price: TftPrice,
        /// Until when the quote holds.
        quote_expires_at: DateTime<Utc>,
        /// Manual or automatic.
        origin: TopUpOrigin,
        /// When.
        at: DateTime<Utc>,
    },
    /// A top-up was paid and its quoted TFT credited.
    TopUpCredited {
        /// The marketplace's id.
        top_up_id: Uuid,
        /// Stripe's payment intent.
        payment_intent_id: StripeId,
        /// The charge that paid it.
        charge_id: StripeId,
        /// TFT credited.
        tft_amount: TftAmount,
        /// The receipt, if any.
        receipt_url: Option<ReceiptUrl>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A credited top-up's receipt was recorded after its credit.
    ReceiptRecorded {
        /// The marketplace's id.
        top_up_id: Uuid,
        /// Stripe's payment intent.
        payment_intent_id: StripeId,
        /// The charge that paid it.
        charge_id: StripeId,
        /// The receipt.
        receipt_url: ReceiptUrl,
        /// When.
        at: DateTime<Utc>,
    },
    /// An attempt to pay a top-up failed.
    TopUpFailed {
        /// The marketplace's id.
        top_up_id: Uuid,
        /// Stripe's payment intent.
        payment_intent_id: StripeId,
        /// Stripe's code.
        code: String,
        /// Stripe's message.
        message: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The wallet was charged.
    WalletDebited {
        /// The debit's id.
        debit_id: DebitId,
        /// TFT taken.
        amount: TftAmount,
        /// What for.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A card refund took back the TFT it had bought.
    RefundRecorded {
        /// Stripe's refund.
        refund_id: StripeId,
        /// The refunded charge.
        charge_id: StripeId,
        /// The top-up the charge paid.
        top_up_id: Uuid,
        /// Cents refunded.
        amount_cents: u64,
        /// TFT taken back.
        tft_amount: TftAmount,
        /// When.
        at: DateTime<Utc>,
    },
    /// A card dispute took back the TFT it had bought.
    DisputeRecorded {
        /// Stripe's dispute.
        dispute_id: StripeId,
        /// The disputed charge.
        charge_id: StripeId,
        /// The top-up the charge paid.
        top_up_id: Uuid,
        /// Cents disputed.
        amount_cents: u64,
        /// TFT taken back.
        tft_amount: TftAmount,
        /// When.
        at: DateTime<Utc>,
    },
    /// Automatic top-ups were turned on or changed.
    AutoTopUpConfigured {
        /// The rule.
        config: AutoTopUpConfig,
        /// When.
        at: DateTime<Utc>,
    },
    /// Automatic top-ups were turned off.
    AutoTopUpDisabled {
        /// When.
        at: DateTime<Utc>,
    },
    /// The wallet's Stripe customer was created.
    StripeCustomerAttached {
        /// Stripe's customer id.
        customer_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A card was saved; the first one becomes the default.
    PaymentMethodSaved {
        /// The card.
        card: SavedCard,
        /// When.
        at: DateTime<Utc>,
    },
    /// The default card changed.
    DefaultPaymentMethodSet {
        /// The card.
        payment_method_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A card was removed; if it was the default, no card is default.
    PaymentMethodRemoved {
        /// The card.
        payment_method_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The runway fell below a threshold: the user is warned, once per crossing.
    RunwayAlertRaised {
        /// The threshold crossed, in hours.
        threshold_hours: u64,
        /// The runway measured, in hours.
        runway_hours: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The runway is back at or above a threshold: a later fall alerts again.
    RunwayAlertCleared {
        /// The threshold, in hours.
        threshold_hours: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The wallet's custodial chain account and twin exist.
    ChainTwinRecorded {
        /// The account.
        address: String,
        /// Its twin.
        twin_id: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The treasury began sending a credited top-up's TFT on chain.
    ChainTransferStarted {
        /// The top-up.
        top_up_id: Uuid,
        /// TFT sent.
        amount: TftAmount,
        /// The receiving account.
        to: String,
        /// The best block before submitting.
        from_block: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The chain billed a contract of the wallet's twin; the ledger debits
    /// what it took.
    BillPaid {
        /// The bill.
        bill: ContractBill,
        /// The deployment the contract belongs to, when known.
        deployment_id: Option<String>,
        /// When it was recorded.
        at: DateTime<Utc>,
    },
    /// An alliance credited the user for a node that missed its SLA; the
    /// TFT is in the wallet's chain account.
    SlaCreditReceived {
        /// `alliance:<id>:<period>`.
        credit_id: String,
        /// The credit.
        amount: TftAmount,
        /// The transfer's remark event on chain.
        transfer: ChainEventRef,
        /// When.
        at: DateTime<Utc>,
    },
    /// A monthly subscription was started on a saved card.
    SubscriptionStarted {
        /// Stripe's subscription.
        subscription_id: StripeId,
        /// The monthly Price it charges.
        price_id: StripeId,
        /// Cents a month.
        usd_cents: u64,
        /// The card charged.
        payment_method_id: StripeId,
        /// Stripe's status on creation.
        status: SubscriptionStatus,
        /// When its first period ends.
        current_period_end: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A subscription's invoice was paid and its cents credited as TFT at
    /// the price quoted then, recorded as a top-up of origin `subscription`
    /// keyed by the invoice.
    SubscriptionInvoicePaid {
        /// The subscription.
        subscription_id: StripeId,
        /// Stripe's invoice.
        invoice_id: StripeId,
        /// The top-up the credit is recorded as.
        top_up_id: Uuid,
        /// Cents paid.
        usd_cents: u64,
        /// The TFT price quoted.
        tft_price: TftPrice,
        /// TFT credited.
        tft_amount: TftAmount,
        /// The charge that paid it, when known.
        charge_id: Option<StripeId>,
        /// The end of the period it pays for.
        period_end: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An attempt to pay a subscription's invoice failed; nothing was
    /// credited. Notifications tell the user (`subscription_payment_failed`).
    SubscriptionPaymentFailed {
        /// The subscription.
        subscription_id: StripeId,
        /// Stripe's invoice.
        invoice_id: StripeId,
        /// Stripe's attempt number.
        attempt: u32,
        /// Stripe's code.
        code: String,
        /// Stripe's message.
        message: String,
        /// When Stripe tries again, if it will.
        next_attempt_at: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The subscription will end when its current period does.
    SubscriptionCancelScheduled {
        /// The subscription.
        subscription_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stripe reported a subscription's new status or period.
    SubscriptionUpdated {
        /// The subscription.
        subscription_id: StripeId,
        /// Its status.
        status: SubscriptionStatus,
        /// Whether it ends with its period.
        cancel_at_period_end: bool,
        /// When its current period ends.
        current_period_end: Option<DateTime<Utc>>,
        /// When Stripe reported it.
        observed_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The subscription is over: no more invoices.
    SubscriptionEnded {
        /// The subscription.
        subscription_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The treasury's transfer for a top-up is on chain.
    ChainTransferCompleted {
        /// The top-up.
        top_up_id: Uuid,
        /// Its tag event.
        event: ChainEventRef,
        /// When.
        at: DateTime<Utc>,
    },
}

impl WalletEvent {
    /// When the event happened, by the clock of whoever issued the command.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            WalletEvent::WalletOpened { at, .. }
            | WalletEvent::LinkChallengeIssued { at, .. }
            | WalletEvent::AccountLinked { at, .. }
            | WalletEvent::LinkAttemptFailed { at, .. }
            | WalletEvent::TopUpCreated { at, .. }
            | WalletEvent::TopUpCredited { at, .. }
            | WalletEvent::ReceiptRecorded { at, .. }
            | WalletEvent::ChainTwinRecorded { at, .. }
            | WalletEvent::ChainTransferStarted { at, .. }
            | WalletEvent::ChainTransferCompleted { at, .. }
            | WalletEvent::BillPaid { at, .. }
            | WalletEvent::SlaCreditReceived { at, .. }
            | WalletEvent::TopUpFailed { at, .. }
            | WalletEvent::WalletDebited { at, .. }
            | WalletEvent::RefundRecorded { at, .. }
            | WalletEvent::DisputeRecorded { at, .. }
            | WalletEvent::AutoTopUpConfigured { at, .. }
            | WalletEvent::AutoTopUpDisabled { at }
            | WalletEvent::StripeCustomerAttached { at, .. }
            | WalletEvent::PaymentMethodSaved { at, .. }
            | WalletEvent::DefaultPaymentMethodSet { at, .. }
            | WalletEvent::PaymentMethodRemoved { at, .. }
            | WalletEvent::RunwayAlertRaised { at, .. }
            | WalletEvent::RunwayAlertCleared { at, .. }
            | WalletEvent::SubscriptionStarted { at, .. }
            | WalletEvent::SubscriptionInvoicePaid { at, .. }
            | WalletEvent::SubscriptionPaymentFailed { at, .. }
            | WalletEvent::SubscriptionCancelScheduled { at, .. }
            | WalletEvent::SubscriptionUpdated { at, .. }
            | WalletEvent::SubscriptionEnded { at, .. } => *at,
        }
    }

    /// The refusal an event stands for, if it records a refused attempt.
    ///
    /// A failed link attempt must burn its challenge, so it is an event, not
    /// an error (cqrs-es drops the events of a command that errs). Once the
    /// event is committed, the caller answers with this error.
    pub fn refusal(&self) -> Option<WalletError> {
        match self {
            WalletEvent::LinkAttemptFailed { .. } => Some(WalletError::SignatureInvalid),
            _ => None,
        }
    }
}

impl DomainEvent for WalletEvent {
    fn event_type(&self) -> String {
        match self {
            WalletEvent::WalletOpened { .. } => "WalletOpened",
            WalletEvent::LinkChallengeIssued { .. } => "LinkChallengeIssued",
            WalletEvent::AccountLinked { .. } => "AccountLinked",
            WalletEvent::LinkAttemptFailed { .. } => "LinkAttemptFailed",
            WalletEvent::TopUpCreated { .. } => "TopUpCreated",
            WalletEvent::TopUpCredited { .. } => "TopUpCredited",
            WalletEvent::ReceiptRecorded { .. } => "ReceiptRecorded",
            WalletEvent::ChainTwinRecorded { .. } => "ChainTwinRecorded",
            WalletEvent::ChainTransferStarted { .. } => "ChainTransferStarted",
            WalletEvent::ChainTransferCompleted { .. } => "ChainTransferCompleted",
            WalletEvent::BillPaid { .. } => "BillPaid",
            WalletEvent::SlaCreditReceived { .. } => "SlaCreditReceived",
            WalletEvent::TopUpFailed { .. } => "TopUpFailed",
            WalletEvent::WalletDebited { .. } => "WalletDebited",
            WalletEvent::RefundRecorded { .. } => "RefundRecorded",
            WalletEvent::DisputeRecorded { .. } => "DisputeRecorded",
            WalletEvent::AutoTopUpConfigured { .. } => "AutoTopUpConfigured",
            WalletEvent::AutoTopUpDisabled { .. } => "AutoTopUpDisabled",
            WalletEvent::StripeCustomerAttached { .. } => "StripeCustomerAttached",
            WalletEvent::PaymentMethodSaved { .. } => "PaymentMethodSaved",
            WalletEvent::DefaultPaymentMethodSet { .. } => "DefaultPaymentMethodSet",
            WalletEvent::PaymentMethodRemoved { .. } => "PaymentMethodRemoved",
            WalletEvent::RunwayAlertRaised { .. } => "RunwayAlertRaised",
            WalletEvent::RunwayAlertCleared { .. } => "RunwayAlertCleared",
            WalletEvent::SubscriptionStarted { .. } => "SubscriptionStarted",
            WalletEvent::SubscriptionInvoicePaid { .. } => "SubscriptionInvoicePaid",
            WalletEvent::SubscriptionPaymentFailed { .. } => "SubscriptionPaymentFailed",
            WalletEvent::SubscriptionCancelScheduled { .. } => "SubscriptionCancelScheduled",
            WalletEvent::SubscriptionUpdated { .. } => "SubscriptionUpdated",
            WalletEvent::SubscriptionEnded { .. } => "SubscriptionEnded",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
