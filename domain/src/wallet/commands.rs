//! What may be asked of a wallet. Each command carries everything its
//! decision needs, "now", random nonces, prices and the result of a
//! signature check included.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::values::*;
use crate::chain::ContractBill;
use crate::money::{TftAmount, TftPrice};

/// A command to the Wallet aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum WalletCommand {
    /// Open the wallet of a cloud user.
    Open {
        /// The user's subject (also the aggregate id).
        owner: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Start linking a TFChain account: the user will sign the challenge's message.
    IssueLinkChallenge {
        /// The new challenge's id.
        challenge_id: Uuid,
        /// Random, drawn outside.
        nonce: LinkNonce,
        /// The account to link.
        account: TfchainAccount,
        /// The scheme of its key.
        key_type: KeyType,
        /// When it stops being usable; after `at`, at most [`MAX_CHALLENGE_TTL`] later.
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user sent a signature of the challenge's message; it was checked outside.
    CompleteLink {
        /// The challenge answered.
        challenge_id: Uuid,
        /// Whether the signature verified against the challenge's account and key type.
        signature_verified: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A user's card top-up: a Stripe payment intent was created for a quote.
    CreateTopUp {
        /// The marketplace's id.
        top_up_id: Uuid,
        /// Stripe's payment intent.
        payment_intent_id: StripeId,
        /// The price, [`MIN_TOP_UP_CENTS`] to [`MAX_TOP_UP_CENTS`].
        usd_cents: u64,
        /// The TFT price quoted.
        tft_price: TftPrice,
        /// Until when the user may confirm; after `at`, at most [`MAX_QUOTE_TTL`] later.
        quote_expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The auto top-up rule charges the card on file: the amount is the
    /// rule's, and the balance must be below its threshold, within its cap.
    CreateAutoTopUp {
        /// The marketplace's id.
        top_up_id: Uuid,
        /// Stripe's payment intent, created off-session.
        payment_intent_id: StripeId,
        /// The TFT price quoted.
        tft_price: TftPrice,
        /// Until when the quote holds.
        quote_expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stripe says a payment intent succeeded (`payment_intent.succeeded`).
    RecordPaymentSucceeded {
        /// The payment intent.
        payment_intent_id: StripeId,
        /// What Stripe received, in cents.
        amount_received_cents: u64,
        /// The charge that paid it.
        charge_id: StripeId,
        /// The receipt, if Stripe gave a well-formed one.
        receipt_url: Option<ReceiptUrl>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A credited top-up's receipt, fetched after the credit: the credit
    /// never waits for it, and a top-up keeps the first one recorded.
    RecordReceipt {
        /// The charge that paid the top-up.
        charge_id: StripeId,
        /// Stripe's receipt.
        receipt_url: ReceiptUrl,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stripe says an attempt to pay failed (`payment_intent.payment_failed`
    /// or `.canceled`).
    RecordPaymentFailed {
        /// The payment intent.
        payment_intent_id: StripeId,
        /// Stripe's code; cut to [`MAX_FAILURE_CODE`] characters.
        code: String,
        /// Stripe's message; cut to [`MAX_FAILURE_MESSAGE`] characters.
        message: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Charge the wallet (a bill, a fee).
    Debit {
        /// The same id twice debits once.
        debit_id: DebitId,
        /// How much, more than zero.
        amount: TftAmount,
        /// What for, 1 to [`MAX_REASON`] characters.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stripe refunded (part of) a charge: the TFT it bought goes back.
    RecordRefund {
        /// The refunded charge.
        charge_id: StripeId,
        /// Stripe's refund; the same id twice counts once.
        refund_id: StripeId,
        /// Cents refunded, more than zero.
        amount_cents: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A cardholder disputed (part of) a charge: the TFT it bought goes back.
    RecordDispute {
        /// The disputed charge.
        charge_id: StripeId,
        /// Stripe's dispute; the same id twice counts once.
        dispute_id: StripeId,
        /// Cents disputed, more than zero.
        amount_cents: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// Turn on, or change, automatic top-ups.
    ConfigureAutoTopUp {
        /// The rule.
        config: AutoTopUpConfig,
        /// When.
        at: DateTime<Utc>,
    },
    /// Turn automatic top-ups off.
    DisableAutoTopUp {
        /// When.
        at: DateTime<Utc>,
    },
    /// The wallet's Stripe customer was created (once, on first need).
    AttachStripeCustomer {
        /// Stripe's customer id.
        customer_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A card was saved (`setup_intent.succeeded`).
    SavePaymentMethod {
        /// The card.
        card: SavedCard,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user chose the card charged by default (and by auto top-up).
    SetDefaultPaymentMethod {
        /// A saved card.
        payment_method_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A card was detached (by the user, or `payment_method.detached`).
    RemovePaymentMethod {
        /// The card.
        payment_method_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The runway was measured; thresholds newly crossed raise an alert,
    /// thresholds recovered clear theirs (so each crossing alerts once).
    ObserveRunway {
        /// Hours the balance lasts at the current burn; `None` when nothing burns.
        runway_hours: Option<u64>,
        /// The configured thresholds, in hours.
        thresholds_hours: Vec<u64>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record the wallet's custodial chain account and its twin.
    RecordChainTwin {
        /// The account's SS58 address.
        address: String,
        /// Its twin.
        twin_id: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The treasury is about to send a credited top-up's TFT on chain.
    StartChainTransfer {
        /// The credited top-up.
        top_up_id: Uuid,
        /// The wallet's chain account.
        to: String,
        /// The chain's best block now.
        from_block: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The chain billed one of the wallet's twin's contracts
    /// (`ContractBilled`): the TFT already left the chain account, so the
    /// ledger follows whatever the balance; the same chain event twice
    /// records once.
    RecordBill {
        /// The bill.
        bill: ContractBill,
        /// The deployment the contract belongs to, when known.
        deployment_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An alliance's settlement credited the user for a node that missed
    /// its SLA, and the transfer to the wallet's chain account is on chain.
    /// The same credit id twice records once.
    RecordSlaCredit {
        /// `alliance:<id>:<period>`: one credit per alliance and period.
        credit_id: String,
        /// The credit.
        amount: TftAmount,
        /// The transfer's remark event on chain.
        transfer: ChainEventRef,
        /// When.
        at: DateTime<Utc>,
    },
    /// A monthly subscription was created at Stripe on a saved card.
    StartSubscription {
        /// Stripe's subscription.
        subscription_id: StripeId,
        /// The monthly Price it charges.
        price_id: StripeId,
        /// Cents a month, [`MIN_SUBSCRIPTION_CENTS`] to [`MAX_SUBSCRIPTION_CENTS`].
        usd_cents: u64,
        /// A saved card of this wallet.
        payment_method_id: StripeId,
        /// Stripe's status on creation.
        status: SubscriptionStatus,
        /// When its first period ends.
        current_period_end: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stripe says a subscription's invoice was paid (`invoice.paid`): the
    /// cents buy TFT at the price quoted now, credited once per invoice.
    RecordSubscriptionInvoicePaid {
        /// The subscription.
        subscription_id: StripeId,
        /// Stripe's invoice; the same invoice twice credits once.
        invoice_id: StripeId,
        /// The top-up the credit is recorded as (derived from the invoice).
        top_up_id: Uuid,
        /// What the invoice took, in cents.
        amount_paid_cents: u64,
        /// The charge that paid it, when the event names it.
        charge_id: Option<StripeId>,
        /// The TFT price in force now.
        tft_price: TftPrice,
        /// The end of the period the invoice pays for.
        period_end: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stripe says an attempt to pay a subscription's invoice failed
    /// (`invoice.payment_failed`).
    RecordSubscriptionPaymentFailed {
        /// The subscription.
        subscription_id: StripeId,
        /// Stripe's invoice.
        invoice_id: StripeId,
        /// Stripe's attempt number; the same attempt twice records once.
        attempt: u32,
        /// Stripe's code; cut to [`MAX_FAILURE_CODE`] characters.
        code: String,
        /// Stripe's message; cut to [`MAX_FAILURE_MESSAGE`] characters.
        message: String,
        /// When Stripe tries again, if it will.
        next_attempt_at: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user asked to end the subscription when its period ends, and
    /// Stripe accepted.
    ScheduleSubscriptionCancel {
        /// The subscription.
        subscription_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stripe's view of a subscription (`customer.subscription.updated`),
    /// applied unless a newer one was.
    RecordSubscriptionState {
        /// The subscription.
        subscription_id: StripeId,
        /// Its status.
        status: SubscriptionStatus,
        /// Whether it ends with its period.
        cancel_at_period_end: bool,
        /// When its current period ends.
        current_period_end: Option<DateTime<Utc>>,
        /// When Stripe reported it (the event's time).
        observed_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The subscription is over (canceled now, or `customer.subscription.deleted`).
    EndSubscription {
        /// The subscription.
        subscription_id: StripeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The treasury's transfer for a top-up is on chain.
    CompleteChainTransfer {
        /// The top-up.
        top_up_id: Uuid,
        /// Where the transfer's tag event is.
        event: ChainEventRef,
        /// When.
        at: DateTime<Utc>,
    },
}

impl WalletCommand {
    /// The command's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            WalletCommand::Open { .. } => "open",
            WalletCommand::IssueLinkChallenge { .. } => "issue_link_challenge",
            WalletCommand::CompleteLink { .. } => "complete_link",
            WalletCommand::CreateTopUp { .. } => "create_top_up",
            WalletCommand::CreateAutoTopUp { .. } => "create_auto_top_up",
            WalletCommand::RecordPaymentSucceeded { .. } => "record_payment_succeeded",
            WalletCommand::RecordReceipt { .. } => "record_receipt",
            WalletCommand::RecordPaymentFailed { .. } => "record_payment_failed",
            WalletCommand::Debit { .. } => "debit",
            WalletCommand::RecordRefund { .. } => "record_refund",
            WalletCommand::RecordDispute { .. } => "record_dispute",
            WalletCommand::ConfigureAutoTopUp { .. } => "configure_auto_top_up",
            WalletCommand::DisableAutoTopUp { .. } => "disable_auto_top_up",
            WalletCommand::AttachStripeCustomer { .. } => "attach_stripe_customer",
            WalletCommand::SavePaymentMethod { .. } => "save_payment_method",
            WalletCommand::SetDefaultPaymentMethod { .. } => "set_default_payment_method",
            WalletCommand::RemovePaymentMethod { .. } => "remove_payment_method",
            WalletCommand::ObserveRunway { .. } => "observe_runway",
            WalletCommand::RecordChainTwin { .. } => "record_chain_twin",
            WalletCommand::StartChainTransfer { .. } => "start_chain_transfer",
            WalletCommand::CompleteChainTransfer { .. } => "complete_chain_transfer",
            WalletCommand::RecordBill { .. } => "record_bill",
            WalletCommand::RecordSlaCredit { .. } => "record_sla_credit",
            WalletCommand::StartSubscription { .. } => "start_subscription",
            WalletCommand::RecordSubscriptionInvoicePaid { .. } => {
                "record_subscription_invoice_paid"
            }
            WalletCommand::RecordSubscriptionPaymentFailed { .. } => {
                "record_subscription_payment_failed"
            }
            WalletCommand::ScheduleSubscriptionCancel { .. } => "schedule_subscription_cancel",
            WalletCommand::RecordSubscriptionState { .. } => "record_subscription_state",
            WalletCommand::EndSubscription { .. } => "end_subscription",
        }
    }
}
