//! Top-up money rules the wallet decides with: a quote turned into a
//! top-up, and what a refund or dispute takes back.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::aggregate::WalletState;
use super::errors::WalletError;
use super::events::WalletEvent;
use super::values::*;
use crate::money::{TftAmount, TftPrice};

/// Refunds and disputes differ only in which ids they are kept under.
#[derive(Clone, Copy)]
pub(super) enum ClawbackKind {
    Refund,
    Dispute,
}

/// The figures of a new top-up, manual or automatic.
pub(super) struct Quote {
    pub(super) top_up_id: Uuid,
    pub(super) payment_intent_id: StripeId,
    pub(super) usd_cents: u64,
    pub(super) tft_price: TftPrice,
    pub(super) quote_expires_at: DateTime<Utc>,
    pub(super) origin: TopUpOrigin,
    pub(super) at: DateTime<Utc>,
}

impl Quote {
    /// The `TopUpCreated` event, or why the quote is refused.
    pub(super) fn created(self, s: &WalletState) -> Result<WalletEvent, WalletError> {
        if s.top_ups.contains_key(&self.payment_intent_id)
            || s.top_up_by_id(self.top_up_id).is_some()
        {
            return Err(WalletError::DuplicateTopUp);
        }
        if self.quote_expires_at <= self.at || self.quote_expires_at - self.at > MAX_QUOTE_TTL {
            return Err(SpecError::new(
                "quote_expires_at",
                format!(
                    "must be after now and at most {} minutes later",
                    MAX_QUOTE_TTL.num_minutes()
                ),
            )
            .into());
        }
        let tft_amount = tft_for_cents(self.usd_cents, self.tft_price)
            .filter(|t| t.base_units() > 0)
            .ok_or_else(|| SpecError::new("tft_price", "the quote must buy some TFT"))?;
        Ok(WalletEvent::TopUpCreated {
            top_up_id: self.top_up_id,
            payment_intent_id: self.payment_intent_id,
            usd_cents: self.usd_cents,
            tft_amount,
            tft_price: self.tft_price,
            quote_expires_at: self.quote_expires_at,
            origin: self.origin,
            at: self.at,
        })
    }
}

/// Decides a refund or dispute: `None` when this id was already recorded
/// with the same figures, else the top-up it returns money from and the TFT
/// to take back.
pub(super) fn clawback(
    s: &WalletState,
    kind: ClawbackKind,
    charge_id: &StripeId,
    id: &StripeId,
    amount_cents: u64,
) -> Result<Option<(Uuid, TftAmount)>, WalletError> {
    let done = match kind {
        ClawbackKind::Refund => s.refunds.get(id),
        ClawbackKind::Dispute => s.disputes.get(id),
    };
    if let Some(done) = done {
        return if done.charge_id == *charge_id && done.amount_cents == amount_cents {
            Ok(None)
        } else {
            Err(WalletError::IdConflict {
                id: id.as_str().to_string(),
            })
        };
    }
    if amount_cents == 0 {
        return Err(SpecError::new("amount_cents", "must be more than zero").into());
    }
    let t = s
        .top_up_by_charge(charge_id)
        .ok_or_else(|| WalletError::UnknownCharge(charge_id.clone()))?;
    let total = t.returned_cents.saturating_add(amount_cents);
    if total > t.usd_cents {
        return Err(WalletError::RefundExceedsPayment {
            paid_cents: t.usd_cents,
            returned_cents: t.returned_cents,
            asked_cents: amount_cents,
        });
    }
    let tft = tft_to_return(t.tft_amount, t.usd_cents, total, t.returned_tft);
    Ok(Some((t.top_up_id, tft)))
}

/// Counts a refund or dispute against its top-up and answers the record kept
/// under its id.
pub(super) fn returned(
    s: &mut WalletState,
    charge_id: &StripeId,
    top_up_id: Uuid,
    amount_cents: u64,
    tft_amount: TftAmount,
) -> Clawback {
    if let Some(t) = s.top_ups.values_mut().find(|t| t.top_up_id == top_up_id) {
        t.returned_cents = t.returned_cents.saturating_add(amount_cents);
        t.returned_tft = TftAmount::from_base_units(
            t.returned_tft
                .base_units()
                .saturating_add(tft_amount.base_units()),
        );
    }
    Clawback {
        charge_id: charge_id.clone(),
        amount_cents,
        tft_amount,
    }
}
