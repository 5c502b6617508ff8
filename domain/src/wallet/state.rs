//! The state an open wallet's decisions read, and its queries.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::*;
use crate::money::TftAmount;

/// Everything a decision about an open wallet needs.
///
/// The balance is kept beside the ledger it sums; both change in one place
/// only (`WalletState::post`), so `balance == sum(ledger amounts)` always.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletState {
    /// The owning user's subject.
    pub owner: String,
    /// When the wallet was opened.
    pub opened_at: DateTime<Utc>,
    /// The TFChain account proved by the latest completed challenge.
    pub linked: Option<LinkedAccount>,
    /// Every challenge issued, in order.
    pub challenges: Vec<LinkChallenge>,
    /// Card top-ups by Stripe payment intent.
    pub top_ups: BTreeMap<StripeId, TopUp>,
    /// Debits done, by id, with their amount.
    pub debits: BTreeMap<DebitId, TftAmount>,
    /// Refunds recorded, by Stripe refund id.
    pub refunds: BTreeMap<StripeId, Clawback>,
    /// Disputes recorded, by Stripe dispute id.
    pub disputes: BTreeMap<StripeId, Clawback>,
    /// The auto top-up rule, when on.
    pub auto_top_up: Option<AutoTopUpConfig>,
    /// The wallet's Stripe customer, once created.
    #[serde(default)]
    pub stripe_customer: Option<StripeId>,
    /// Saved cards, by payment method id.
    #[serde(default)]
    pub cards: BTreeMap<StripeId, SavedCard>,
    /// The card charged by default.
    #[serde(default)]
    pub default_card: Option<StripeId>,
    /// Runway thresholds (hours) currently crossed and alerted.
    #[serde(default)]
    pub runway_alerts: BTreeSet<u64>,
    /// The custodial chain account and twin, once created.
    #[serde(default)]
    pub chain_account: Option<ChainAccount>,
    /// The treasury's transfers of credited top-ups, by top-up.
    #[serde(default)]
    pub chain_transfers: BTreeMap<Uuid, ChainTransfer>,
    /// The newest chain bill recorded, and the discount the chain applied
    /// on it.
    #[serde(default)]
    pub last_bill: Option<LastBill>,
    /// The SLA credits received, by credit id.
    #[serde(default)]
    pub sla_credits: BTreeSet<String>,
    /// Monthly subscriptions, current and ended, by Stripe subscription id.
    #[serde(default)]
    pub subscriptions: BTreeMap<StripeId, Subscription>,
    pub(super) ledger: Vec<LedgerEntry>,
    pub(super) balance: i128,
}

impl WalletState {
    /// The balance in TFT base units: the sum of the ledger. Negative only
    /// when a refund or dispute took back TFT that had been spent.
    pub fn balance(&self) -> i128 {
        self.balance
    }

    /// Every credit and debit, oldest first.
    pub fn ledger(&self) -> &[LedgerEntry] {
        &self.ledger
    }

    /// A challenge by id.
    pub fn challenge(&self, challenge_id: Uuid) -> Option<&LinkChallenge> {
        self.challenges
            .iter()
            .find(|c| c.challenge_id == challenge_id)
    }

    /// A top-up by its payment intent.
    pub fn top_up(&self, payment_intent_id: &StripeId) -> Option<&TopUp> {
        self.top_ups.get(payment_intent_id)
    }

    /// The credited top-up a charge paid.
    pub fn top_up_by_charge(&self, charge_id: &StripeId) -> Option<&TopUp> {
        self.top_ups
            .values()
            .find(|t| t.charge_id.as_ref() == Some(charge_id))
    }

    /// An automatic top-up still waiting for Stripe, if any.
    pub fn pending_auto_top_up(&self) -> Option<&TopUp> {
        self.top_ups
            .values()
            .find(|t| t.origin == TopUpOrigin::Auto && t.status == TopUpStatus::Pending)
    }

    /// Cents of automatic top-ups, pending or credited, created in the
    /// calendar month (UTC) of `at`: what counts against the monthly cap.
    pub fn auto_top_up_cents_in_month(&self, at: DateTime<Utc>) -> u64 {
        self.top_ups
            .values()
            .filter(|t| {
                t.origin == TopUpOrigin::Auto
                    && t.counts_against_cap()
                    && t.created_at.year() == at.year()
                    && t.created_at.month() == at.month()
            })
            .map(|t| t.usd_cents)
            .sum()
    }

    /// The subscription that has not ended, if any (at most one).
    pub fn current_subscription(&self) -> Option<&Subscription> {
        self.subscriptions
            .values()
            .filter(|s| !s.status.is_ended())
            .max_by_key(|s| s.started_at)
    }

    pub(super) fn top_up_by_id(&self, top_up_id: Uuid) -> Option<&TopUp> {
        self.top_ups.values().find(|t| t.top_up_id == top_up_id)
    }

    /// Adds a ledger line and moves the balance with it: the only place
    /// either changes.
    pub(super) fn post(
        &mut self,
        kind: EntryKind,
        amount: i128,
        reference: &str,
        at: DateTime<Utc>,
    ) {
        self.ledger.push(LedgerEntry {
            kind,
            amount,
            reference: reference.to_string(),
            at,
            contract_id: None,
            bills: 0,
        });
        self.balance += amount;
    }

    /// Posts a contract's bill: a debit naming the contract, added to the
    /// contract's line of that UTC day when there is one (a contract is
    /// billed hourly; the ledger keeps a line per contract and day, every
    /// bill stays an event of its own).
    pub(super) fn post_bill(
        &mut self,
        amount: i128,
        reference: &str,
        contract_id: u64,
        at: DateTime<Utc>,
    ) {
        let day = at.date_naive();
        let same_day = self
            .ledger
            .iter_mut()
            .rev()
            .take_while(|e| e.at.date_naive() == day)
            .find(|e| {
                e.kind == EntryKind::Bill
                    && e.contract_id == Some(contract_id)
                    && e.reference == reference
            });
        match same_day {
            Some(line) => {
                line.amount += amount;
                line.bills += 1;
                self.balance += amount;
            }
            None => {
                self.post(EntryKind::Bill, amount, reference, at);
                if let Some(entry) = self.ledger.last_mut() {
                    entry.contract_id = Some(contract_id);
                    entry.bills = 1;
                }
            }
        }
    }
}
