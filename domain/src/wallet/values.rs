//! Value objects of a wallet and its money arithmetic. Constructors validate;
//! the limits are the marketplace's own. Deserialisation does not validate
//! again: events are facts and must load even if a limit later changes.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::deployment::SpecError;
use crate::money::{TftAmount, TftPrice, UNITS_PER_WHOLE};

/// The smallest card top-up, in USD cents ($5).
pub const MIN_TOP_UP_CENTS: u64 = 500;
/// The largest card top-up, in USD cents ($10,000).
pub const MAX_TOP_UP_CENTS: u64 = 1_000_000;
/// The largest monthly cap of automatic top-ups, in USD cents ($50,000).
pub const MAX_MONTHLY_CAP_CENTS: u64 = 5_000_000;
/// USD chain units in one cent (1 USD = 10,000,000 units).
pub const USD_UNITS_PER_CENT: u64 = UNITS_PER_WHOLE / 100;
/// The longest a link challenge may stay open.
pub const MAX_CHALLENGE_TTL: TimeDelta = TimeDelta::minutes(15);
/// The longest a top-up quote may stay valid.
pub const MAX_QUOTE_TTL: TimeDelta = TimeDelta::minutes(30);
/// How long the marketplace holds a top-up's quote (its longest).
pub const QUOTE_TTL: TimeDelta = MAX_QUOTE_TTL;
/// Longest debit reason, in characters.
pub const MAX_REASON: usize = 500;
/// Longest payment failure code kept, in characters (longer ones are cut).
pub const MAX_FAILURE_CODE: usize = 100;
/// Longest payment failure message kept, in characters (longer ones are cut).
pub const MAX_FAILURE_MESSAGE: usize = 1_000;

/// A TFChain account: an SS58 address. Only its shape is checked (47 or 48
/// base58 characters); whether the checksum holds and who owns the key is
/// for the signature check outside the domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TfchainAccount(String);

/// The base58 alphabet: digits and letters without `0`, `O`, `I` and `l`.
fn is_base58(b: u8) -> bool {
    b.is_ascii_alphanumeric() && !matches!(b, b'0' | b'O' | b'I' | b'l')
}

impl TfchainAccount {
    /// Validates the shape of an SS58 address.
    pub fn new(address: &str) -> Result<Self, SpecError> {
        if !(47..=48).contains(&address.len()) || !address.bytes().all(is_base58) {
            return Err(SpecError::new(
                "account",
                "must be an SS58 address: 47 or 48 base58 characters",
            ));
        }
        Ok(Self(address.to_string()))
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TfchainAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scheme of the key that signs for a TFChain account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// Ed25519.
    Ed25519,
    /// Schnorrkel/Ristretto (Substrate's default).
    Sr25519,
}

impl KeyType {
    /// The scheme's name as the API and events spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Sr25519 => "sr25519",
        }
    }
}

/// The random part of a link challenge, drawn outside the domain: 16 to 128
/// ASCII letters, digits, `-` or `_` (hex or base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LinkNonce(String);

impl LinkNonce {
    /// Validates a nonce.
    pub fn new(nonce: &str) -> Result<Self, SpecError> {
        let ok = (16..=128).contains(&nonce.len())
            && nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(SpecError::new(
                "nonce",
                "must be 16 to 128 ASCII letters, digits, '-' or '_'",
            ));
        }
        Ok(Self(nonce.to_string()))
    }
    /// The nonce.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An identifier Stripe gave: a payment intent (`pi_…`), charge (`ch_…`),
/// refund (`re_…`), dispute (`dp_…`) or payment method (`pm_…`). Only the
/// shape is checked: 3 to 255 ASCII letters, digits or `_`, with a `_` after
/// a prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StripeId(String);

impl StripeId {
    /// Validates an id; `field` names it in the error.
    pub fn new(field: &str, id: &str) -> Result<Self, SpecError> {
        let prefixed = id.find('_').is_some_and(|i| i > 0 && i + 1 < id.len());
        let ok = (3..=255).contains(&id.len())
            && prefixed
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(SpecError::new(
                field,
                "must be a Stripe id: a prefix, '_', then letters or digits",
            ));
        }
        Ok(Self(id.to_string()))
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StripeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The marketplace's own id of a debit, chosen by whoever charges the wallet
/// so that a retry carries the same id (a bill's chain event, say
/// `bill-1234-5`): 1 to 128 ASCII letters, digits, `-`, `_`, `.` or `:`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DebitId(String);

impl DebitId {
    /// Validates a debit id.
    pub fn new(id: &str) -> Result<Self, SpecError> {
        let ok = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !ok {
            return Err(SpecError::new(
                "debit_id",
                "must be 1 to 128 ASCII letters, digits, '-', '_', '.' or ':'",
            ));
        }
        Ok(Self(id.to_string()))
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where Stripe shows the payment's receipt: an https URL of at most 2,048
/// characters. A webhook with a malformed one is still credited, without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReceiptUrl(String);

impl ReceiptUrl {
    /// Validates a receipt URL.
    pub fn new(url: &str) -> Result<Self, SpecError> {
        let ok = url.len() <= 2_048
            && url.len() > "https://".len()
            && url.starts_with("https://")
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(SpecError::new(
                "receipt_url",
                "must be an https URL of at most 2048 characters",
            ));
        }
        Ok(Self(url.to_string()))
    }
    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An issued link challenge: the user proves control of `account` by signing
/// [`LinkChallenge::message`] with its key, once, before `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkChallenge {
    /// The challenge's id.
    pub challenge_id: Uuid,
    /// The random part.
    pub nonce: LinkNonce,
    /// The account to link.
    pub account: TfchainAccount,
    /// The scheme of its key.
    pub key_type: KeyType,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// From this instant on it can no longer be completed.
    pub expires_at: DateTime<Utc>,
    /// Whether it is still open.
    pub status: ChallengeStatus,
}

impl LinkChallenge {
    /// The exact text the account's key must sign. It names the user, so a
    /// signature made for one user cannot link the account to another, and
    /// the challenge id, so it cannot be replayed against another challenge.
    /// (Substrate wallets wrap a raw message in `<Bytes>…</Bytes>` before
    /// signing; the verifier outside accepts either form.)
    pub fn message(&self, owner: &str) -> String {
        format!(
            "Link TFChain account {} to ThreeFold marketplace user {owner}\n\
             challenge: {}\nnonce: {}\nexpires: {}",
            self.account,
            self.challenge_id,
            self.nonce.as_str(),
            self.expires_at.format("%Y-%m-%dT%H:%M:%SZ"),
        )
    }
}

/// Where a link challenge is: each is good for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeStatus {
    /// Waiting for its signature.
    Open,
    /// Completed: the account was linked.
    Linked,
    /// Burned by a signature that did not verify.
    Failed,
}

/// The TFChain account a wallet is linked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedAccount {
    /// The account.
    pub account: TfchainAccount,
    /// The scheme of its key.
    pub key_type: KeyType,
    /// The challenge that proved it.
    pub challenge_id: Uuid,
    /// When.
    pub linked_at: DateTime<Utc>,
}

/// Whether the user or the auto top-up rule started a top-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopUpOrigin {
    /// The user paid by card.
    Manual,
    /// The card on file was charged because the balance fell below the threshold.
    Auto,
    /// A paid invoice of the wallet's monthly subscription (the top-up is
    /// keyed by the invoice's id, not a payment intent's).
    Subscription,
}

/// Where a top-up's payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopUpStatus {
    /// Waiting for Stripe.
    Pending,
    /// The last attempt failed; Stripe may still succeed on a later attempt
    /// against the same payment intent.
    Failed,
    /// Paid and credited. Final.
    Credited,
}

/// Why a payment attempt failed, as Stripe said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailure {
    /// Stripe's code (`card_declined`), possibly empty.
    pub code: String,
    /// Stripe's message.
    pub message: String,
}

/// A card top-up: its quote, its payment, and what was returned of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUp {
    /// The marketplace's id.
    pub top_up_id: Uuid,
    /// Stripe's payment intent.
    pub payment_intent_id: StripeId,
    /// The price the user pays, in cents.
    pub usd_cents: u64,
    /// The TFT price quoted.
    pub tft_price: TftPrice,
    /// The TFT credited once paid, fixed by the quote.
    pub tft_amount: TftAmount,
    /// Until when the user may confirm the payment against this quote.
    pub quote_expires_at: DateTime<Utc>,
    /// Manual or automatic.
    pub origin: TopUpOrigin,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where its payment is.
    pub status: TopUpStatus,
    /// The last failed attempt, if any.
    pub last_failure: Option<PaymentFailure>,
    /// Stripe's charge, once paid.
    pub charge_id: Option<StripeId>,
    /// The receipt, once paid.
    pub receipt_url: Option<ReceiptUrl>,
    /// Cents refunded or disputed so far.
    pub returned_cents: u64,
    /// TFT taken back so far for those cents.
    pub returned_tft: TftAmount,
}

impl TopUp {
    /// Whether the user may still confirm the payment at `now`.
    pub fn quote_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.status != TopUpStatus::Credited && now < self.quote_expires_at
    }

    /// Whether it counts against the monthly cap: pending or credited.
    pub fn counts_against_cap(&self) -> bool {
        self.status != TopUpStatus::Failed
    }
}

/// The user's rule for automatic top-ups (ours, not the grid's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoTopUpConfig {
    /// Top up when the balance falls below this.
    pub threshold: TftAmount,
    /// How much to charge each time, in cents.
    pub amount_cents: u64,
    /// The most charged per calendar month (UTC), in cents.
    pub monthly_cap_cents: u64,
    /// The card on file.
    pub payment_method_id: StripeId,
}

impl AutoTopUpConfig {
    /// Validates a rule.
    pub fn new(
        threshold: TftAmount,
        amount_cents: u64,
        monthly_cap_cents: u64,
        payment_method_id: StripeId,
    ) -> Result<Self, SpecError> {
        if threshold.base_units() == 0 {
            return Err(SpecError::new("threshold", "must be more than zero"));
        }
        check_top_up_cents("amount_cents", amount_cents)?;
        if !(amount_cents..=MAX_MONTHLY_CAP_CENTS).contains(&monthly_cap_cents) {
            return Err(SpecError::new(
                "monthly_cap_cents",
                format!(
                    "must be between the amount ({amount_cents}) and \
                     {MAX_MONTHLY_CAP_CENTS} cents, got {monthly_cap_cents}"
                ),
            ));
        }
        Ok(Self {
            threshold,
            amount_cents,
            monthly_cap_cents,
            payment_method_id,
        })
    }
}

/// A card saved on the wallet's Stripe customer, as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCard {
    /// Stripe's payment method id.
    pub payment_method_id: StripeId,
    /// The card's brand (`visa`), as Stripe names it; may be empty.
    pub brand: String,
    /// The last four digits; may be empty.
    pub last4: String,
    /// Expiry month, 1 to 12 (0 when unknown).
    pub exp_month: u32,
    /// Expiry year (0 when unknown).
    pub exp_year: u32,
}

/// A refund or dispute already recorded, kept so a repeat counts once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clawback {
    /// The charge it returned money from.
    pub charge_id: StripeId,
    /// Cents returned.
    pub amount_cents: u64,
    /// TFT taken back.
    pub tft_amount: TftAmount,
}

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A paid top-up (credit).
    TopUp,
    /// A charge to the wallet (debit).
    Debit,
    /// A card refund taking back TFT (debit).
    Refund,
    /// A card dispute taking back TFT (debit).
    Dispute,
    /// A contract's bill, taken by the chain (debit).
    Bill,
    /// An alliance's SLA credit for a node that missed its target, sent to
    /// the wallet's chain account (credit).
    SlaCredit,
}

/// One line of the wallet's ledger. Credits are positive, debits negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// What it records.
    pub kind: EntryKind,
    /// TFT base units, signed.
    pub amount: i128,
    /// The payment intent, debit, refund or dispute id it comes from; for
    /// a bill, the deployment (or `contract-<id>` when none is known).
    pub reference: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The billed contract, for a bill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<u64>,
    /// For a bill line: how many of the contract's bills of that UTC day
    /// it sums.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bills: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Checks a card amount against the top-up limits.
pub fn check_top_up_cents(field: &str, cents: u64) -> Result<(), SpecError> {
    if (MIN_TOP_UP_CENTS..=MAX_TOP_UP_CENTS).contains(&cents) {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("must be between {MIN_TOP_UP_CENTS} and {MAX_TOP_UP_CENTS} cents, got {cents}"),
        ))
    }
}

/// The TFT a card payment buys at a quoted price:
/// `usd_cents * 100,000 (units per cent) * 10^7 / price`, rounded **down** to a
/// base unit, so the marketplace never credits more than was paid for.
/// `None` if it would not fit (it cannot for amounts within the top-up limits).
pub fn tft_for_cents(usd_cents: u64, price: TftPrice) -> Option<TftAmount> {
    let units =
        u128::from(usd_cents) * u128::from(USD_UNITS_PER_CENT) * u128::from(UNITS_PER_WHOLE)
            / u128::from(price.usd_units());
    u64::try_from(units).ok().map(TftAmount::from_base_units)
}

/// The TFT to take back when `returned_cents` in all (this return included)
/// of a top-up's `paid_cents` have been refunded or disputed, given that
/// `already_returned` was taken back before.
///
/// The total is proportional to the cents returned, rounded **up**, and
/// computed on the running total rather than per return, so partial returns
/// never drift: returning every cent takes back exactly the TFT credited,
/// never more.
pub fn tft_to_return(
    credited: TftAmount,
    paid_cents: u64,
    returned_cents: u64,
    already_returned: TftAmount,
) -> TftAmount {
    if paid_cents == 0 {
        return TftAmount::default();
    }
    let returned_cents = returned_cents.min(paid_cents);
    let total = (u128::from(credited.base_units()) * u128::from(returned_cents))
        .div_ceil(u128::from(paid_cents));
    // total <= credited, which fits in u64.
    let total = u64::try_from(total).unwrap_or(credited.base_units());
    TftAmount::from_base_units(total.saturating_sub(already_returned.base_units()))
}

/// The TFChain account and twin the marketplace holds for the wallet
/// (custodial; its key is derived from the marketplace's master secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainAccount {
    /// The account's SS58 address.
    pub address: String,
    /// The account's twin on the grid.
    pub twin_id: u32,
}

pub use crate::chain::ChainEventRef;

/// The newest bill a wallet recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBill {
    /// Its chain event.
    pub event: ChainEventRef,
    /// The staking discount the chain applied on it.
    pub discount_level: crate::pricing::DiscountLevel,
    /// When the chain billed it.
    pub billed_at: DateTime<Utc>,
}

/// The treasury's transfer of a credited top-up's TFT to the wallet's
/// chain account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTransfer {
    /// The top-up it pays out.
    pub top_up_id: Uuid,
    /// TFT sent.
    pub amount: TftAmount,
    /// The receiving account.
    pub to: String,
    /// The chain's best block before the transfer was submitted: a search
    /// for it after a crash starts there.
    pub from_block: u32,
    /// The transfer's tag event (`system.Remarked`), once seen on chain.
    pub done: Option<ChainEventRef>,
}

/// The smallest monthly subscription, in USD cents ($5).
pub const MIN_SUBSCRIPTION_CENTS: u64 = 500;
/// The largest monthly subscription, in USD cents ($2,000): a recurring
/// charge nobody watches is kept well below a one-off top-up's limit.
pub const MAX_SUBSCRIPTION_CENTS: u64 = 200_000;

/// Checks a monthly subscription's amount against its limits.
pub fn check_subscription_cents(field: &str, cents: u64) -> Result<(), SpecError> {
    if (MIN_SUBSCRIPTION_CENTS..=MAX_SUBSCRIPTION_CENTS).contains(&cents) {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!(
                "must be between {MIN_SUBSCRIPTION_CENTS} and {MAX_SUBSCRIPTION_CENTS} cents, got {cents}"
            ),
        ))
    }
}

/// A Stripe subscription's status, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// The first invoice is not paid yet.
    Incomplete,
    /// The first invoice was never paid: the subscription is over.
    IncompleteExpired,
    /// In a trial period (the marketplace sets none).
    Trialing,
    /// Paid up.
    Active,
    /// A renewal failed; Stripe retries it.
    PastDue,
    /// Stripe gave up retrying but keeps the subscription.
    Unpaid,
    /// Collection paused.
    Paused,
    /// Over: no more invoices.
    Canceled,
}

impl SubscriptionStatus {
    /// Stripe's name for a status; `None` for a name Stripe does not document.
    pub fn parse(name: &str) -> Option<Self> {
        use SubscriptionStatus as S;
        Some(match name {
            "incomplete" => S::Incomplete,
            "incomplete_expired" => S::IncompleteExpired,
            "trialing" => S::Trialing,
            "active" => S::Active,
            "past_due" => S::PastDue,
            "unpaid" => S::Unpaid,
            "paused" => S::Paused,
            "canceled" => S::Canceled,
            _ => return None,
        })
    }

    /// Stripe's name.
    pub fn as_str(self) -> &'static str {
        use SubscriptionStatus as S;
        match self {
            S::Incomplete => "incomplete",
            S::IncompleteExpired => "incomplete_expired",
            S::Trialing => "trialing",
            S::Active => "active",
            S::PastDue => "past_due",
            S::Unpaid => "unpaid",
            S::Paused => "paused",
            S::Canceled => "canceled",
        }
    }

    /// Whether the subscription is over for good.
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
        )
    }
}

/// The newest invoice of a subscription the wallet heard of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInvoice {
    /// Stripe's invoice.
    pub invoice_id: StripeId,
    /// Paid (and credited), or its last attempt failed.
    pub paid: bool,
    /// Cents paid, when paid.
    pub usd_cents: u64,
    /// Why the last attempt failed, when it did.
    pub failure: Option<PaymentFailure>,
    /// When Stripe retries a failed invoice, if it will.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A monthly subscription: "add $N every month" on a saved card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Stripe's subscription.
    pub subscription_id: StripeId,
    /// The monthly Price it charges.
    pub price_id: StripeId,
    /// Cents charged each month.
    pub usd_cents: u64,
    /// The saved card charged.
    pub payment_method_id: StripeId,
    /// Stripe's status, as last heard.
    pub status: SubscriptionStatus,
    /// Whether it ends when the current period does.
    pub cancel_at_period_end: bool,
    /// When the current period ends: the next renewal, unless canceled.
    pub current_period_end: Option<DateTime<Utc>>,
    /// When it was started.
    pub started_at: DateTime<Utc>,
    /// When it ended, once it has.
    pub ended_at: Option<DateTime<Utc>>,
    /// The newest invoice paid or failed.
    pub last_invoice: Option<SubscriptionInvoice>,
    /// Invoices paid and credited.
    pub invoices_paid: u32,
    /// The failed attempts recorded, by invoice and attempt number, so
    /// that the same failure reported again is recorded once.
    pub failures: BTreeSet<(StripeId, u32)>,
    /// The time of the newest Stripe state applied: an older
    /// `customer.subscription.updated` arriving late changes nothing.
    pub observed_at: DateTime<Utc>,
}
