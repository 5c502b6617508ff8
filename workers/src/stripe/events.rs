//! Stripe's event shapes as the inbox worker reads them, and what applying
//! one came to ([`Outcome`]). Strict: a field the real API always sends is
//! required here; Stripe adds fields freely, so unknown ones are ignored.

use std::collections::HashMap;

use marketplace_domain::wallet::StripeId;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct Event {
    pub(super) id: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) object: String,
    pub(super) created: i64,
    pub(super) livemode: bool,
    pub(super) pending_webhooks: i64,
    pub(super) data: EventData,
}

#[derive(Debug, Deserialize)]
pub(super) struct EventData {
    pub(super) object: serde_json::Value,
}

/// An id, or the object when Stripe expanded it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    pub(super) fn id(&self) -> &str {
        match self {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct PaymentError {
    pub(super) code: Option<String>,
    pub(super) decline_code: Option<String>,
    pub(super) message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PaymentIntentObject {
    pub(super) id: String,
    pub(super) object: String,
    pub(super) amount: i64,
    pub(super) amount_capturable: i64,
    pub(super) amount_received: i64,
    pub(super) currency: String,
    pub(super) status: String,
    pub(super) confirmation_method: String,
    pub(super) payment_method_types: Vec<String>,
    pub(super) metadata: HashMap<String, String>,
    /// From API version 2022-11-15: the latest charge, an id or expanded.
    pub(super) latest_charge: Option<serde_json::Value>,
    /// Before 2022-11-15 (an endpoint may be pinned to an older version):
    /// the intent's charges, a list object, and no `latest_charge`.
    pub(super) charges: Option<ChargeList>,
    pub(super) last_payment_error: Option<PaymentError>,
}

/// A list object of charges.
#[derive(Debug, Deserialize)]
pub(super) struct ChargeList {
    pub(super) object: String,
    pub(super) data: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChargeObject {
    pub(super) id: String,
    pub(super) object: String,
    pub(super) amount: i64,
    pub(super) amount_refunded: i64,
    pub(super) refunded: bool,
    pub(super) currency: String,
    pub(super) payment_intent: Option<Expandable>,
    pub(super) receipt_url: Option<String>,
    /// Stripe copies the payment intent's metadata here when it confirms.
    pub(super) metadata: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DisputeObject {
    pub(super) id: String,
    pub(super) object: String,
    pub(super) amount: i64,
    pub(super) charge: Expandable,
    pub(super) currency: String,
    pub(super) status: String,
    pub(super) payment_intent: Option<Expandable>,
    pub(super) metadata: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SetupIntentObject {
    pub(super) id: String,
    pub(super) object: String,
    pub(super) status: String,
    pub(super) usage: String,
    pub(super) customer: Option<Expandable>,
    pub(super) payment_method: Option<Expandable>,
    /// Nullable on a SetupIntent (unlike a PaymentIntent's): one made
    /// outside the marketplace, for a customer of ours, may have none.
    pub(super) metadata: Option<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PaymentMethodObject {
    pub(super) id: String,
    pub(super) object: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
}

/// The subscription part of an invoice's `parent` (API versions from
/// 2025-03-31), or of its `subscription_details` (before).
#[derive(Debug, Deserialize)]
pub(super) struct SubscriptionDetails {
    /// Set from 2025-03-31; before, the invoice names it itself.
    pub(super) subscription: Option<Expandable>,
    /// The subscription's metadata when the invoice was made.
    pub(super) metadata: Option<HashMap<String, String>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct InvoiceParent {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Period {
    pub(super) start: i64,
    pub(super) end: i64,
}

#[derive(Debug, Deserialize)]
pub(super) struct InvoiceLine {
    pub(super) period: Period,
}

#[derive(Debug, Deserialize)]
pub(super) struct InvoiceLines {
    pub(super) object: String,
    pub(super) data: Vec<InvoiceLine>,
}

/// An invoice as `invoice.paid` and `invoice.payment_failed` carry it.
/// Which subscription it bills moved in API version 2025-03-31 from
/// `subscription` (and `subscription_details`) to `parent`; its charge
/// is named only before that version (`charge`), so it is optional here.
#[derive(Debug, Deserialize)]
pub(super) struct InvoiceObject {
    pub(super) id: String,
    pub(super) object: String,
    pub(super) customer: Option<Expandable>,
    pub(super) currency: String,
    pub(super) amount_due: i64,
    pub(super) amount_paid: i64,
    pub(super) attempt_count: i64,
    pub(super) status: Option<String>,
    pub(super) next_payment_attempt: Option<i64>,
    pub(super) lines: InvoiceLines,
    /// Before 2025-03-31.
    pub(super) subscription: Option<Expandable>,
    /// Before 2025-03-31.
    pub(super) subscription_details: Option<SubscriptionDetails>,
    /// From 2025-03-31.
    pub(super) parent: Option<InvoiceParent>,
    /// Before 2025-03-31: the latest charge, an id or expanded.
    pub(super) charge: Option<serde_json::Value>,
}

impl InvoiceObject {
    fn details(&self) -> Option<&SubscriptionDetails> {
        self.parent
            .as_ref()
            .filter(|p| p.kind == "subscription_details")
            .and_then(|p| p.subscription_details.as_ref())
            .or(self.subscription_details.as_ref())
    }

    /// The subscription it bills, if it bills one.
    pub(super) fn subscription_id(&self) -> Option<&str> {
        self.subscription
            .as_ref()
            .or_else(|| self.details().and_then(|d| d.subscription.as_ref()))
            .map(Expandable::id)
    }

    /// The subscription's metadata, as the invoice copied it.
    pub(super) fn subscription_metadata(&self) -> Option<&HashMap<String, String>> {
        self.details().and_then(|d| d.metadata.as_ref())
    }

    /// The end of the period the invoice pays for: its subscription line's.
    pub(super) fn period_end(&self) -> Option<i64> {
        let _ = &self.lines.object;
        self.lines
            .data
            .iter()
            .map(|l| l.period.end.max(l.period.start))
            .max()
    }

    /// The paying (or failed) charge's id, and its failure code and
    /// message when the event carries the charge itself.
    pub(super) fn charge(&self) -> Result<Option<(String, Option<(String, String)>)>, Outcome> {
        match &self.charge {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(id)) => Ok(Some((id.clone(), None))),
            Some(obj) => {
                let c: FailedChargeObject = parse(obj, "charge")?;
                expect_object(&c.object, "charge")?;
                let failure = c
                    .failure_code
                    .map(|code| (code, c.failure_message.unwrap_or_default()));
                Ok(Some((c.id, failure)))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct FailedChargeObject {
    pub(super) id: String,
    pub(super) object: String,
    pub(super) failure_code: Option<String>,
    pub(super) failure_message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SubscriptionItemObject {
    /// From 2025-03-31 the period is the item's.
    pub(super) current_period_end: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SubscriptionItems {
    pub(super) object: String,
    pub(super) data: Vec<SubscriptionItemObject>,
}

/// A subscription as `customer.subscription.updated|deleted` carry it.
#[derive(Debug, Deserialize)]
pub(super) struct SubscriptionObject {
    pub(super) id: String,
    pub(super) object: String,
    pub(super) customer: Expandable,
    pub(super) status: String,
    pub(super) cancel_at_period_end: bool,
    pub(super) metadata: HashMap<String, String>,
    pub(super) items: SubscriptionItems,
    /// Before 2025-03-31 the period is the subscription's.
    pub(super) current_period_end: Option<i64>,
}

impl SubscriptionObject {
    /// When the current period ends, wherever this API version puts it.
    pub(super) fn period_end(&self) -> Option<i64> {
        let _ = &self.items.object;
        self.items
            .data
            .iter()
            .filter_map(|i| i.current_period_end)
            .max()
            .or(self.current_period_end)
    }
}

/// What became of an inbox event.
#[derive(Debug)]
pub enum Outcome {
    /// Applied (or nothing to do); the note says what.
    Done(String),
    /// Not applicable yet; try again later.
    Retry(String),
    /// Never applicable; set aside with this error.
    Poison(String),
}

pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    value: &serde_json::Value,
    what: &str,
) -> Result<T, Outcome> {
    serde_json::from_value(value.clone())
        .map_err(|e| Outcome::Poison(format!("malformed {what}: {e}")))
}

pub(super) fn expect_object(found: &str, wanted: &str) -> Result<(), Outcome> {
    if found == wanted {
        Ok(())
    } else {
        Err(Outcome::Poison(format!(
            "expected a {wanted}, got a {found}"
        )))
    }
}

pub(super) fn cents(amount: i64, what: &str) -> Result<u64, Outcome> {
    u64::try_from(amount).map_err(|_| Outcome::Poison(format!("negative {what}")))
}

pub(super) fn sid(field: &str, id: &str) -> Result<StripeId, Outcome> {
    StripeId::new(field, id).map_err(|e| Outcome::Poison(format!("{field}: {}", e.reason)))
}

/// The charge that paid a succeeded payment intent: its id, and its
/// receipt when the event carries the charge itself. Newer API versions
/// name it in `latest_charge`; older ones list the intent's charges, of
/// which the paying one is the succeeded one (the newest, should there be
/// several; the newest of all when none says so).
pub(super) fn paying_charge(pi: &PaymentIntentObject) -> Result<(String, Option<String>), Outcome> {
    let charge = match (&pi.latest_charge, &pi.charges) {
        (Some(charge), _) => charge,
        (None, Some(list)) => {
            expect_object(&list.object, "list")?;
            let created = |c: &&serde_json::Value| c.get("created").and_then(|t| t.as_i64());
            let succeeded = list
                .data
                .iter()
                .filter(|c| c.get("status").and_then(|s| s.as_str()) == Some("succeeded"))
                .max_by_key(created);
            succeeded
                .or_else(|| list.data.iter().max_by_key(created))
                .ok_or_else(|| Outcome::Poison("succeeded without a charge".into()))?
        }
        (None, None) => return Err(Outcome::Poison("succeeded without a charge".into())),
    };
    match charge {
        serde_json::Value::String(id) => Ok((id.clone(), None)),
        obj => {
            let c: ChargeObject = parse(obj, "charge")?;
            expect_object(&c.object, "charge")?;
            Ok((c.id, c.receipt_url))
        }
    }
}

#[cfg(test)]
mod tests {
    //! Parsing Stripe's objects as the API documents them, including the
    //! shapes older API versions and nullable fields give.

    use super::*;
    use serde_json::json;

    /// A SetupIntent as the API returns it; `metadata` is nullable there.
    fn setup_intent(metadata: serde_json::Value) -> serde_json::Value {
        json!({
            "id": "seti_1Mm8s8LkdIwHu7ix0OXBfTRG",
            "object": "setup_intent",
            "application": null,
            "automatic_payment_methods": null,
            "cancellation_reason": null,
            "client_secret": "seti_1Mm8s8LkdIwHu7ix0OXBfTRG_secret_NXDICkPqPeiBTAFqWmkbff09lRmSVXe",
            "created": 1678942624,
            "customer": "cus_NXDI9TzYmqAo1B",
            "description": null,
            "flow_directions": null,
            "last_setup_error": null,
            "latest_attempt": "setatt_1Mm8s9LkdIwHu7ixgeOJJoIU",
            "livemode": false,
            "mandate": null,
            "metadata": metadata,
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": "pm_1Mm8s9LkdIwHu7ixcRf5PBqd",
            "payment_method_options": {
                "card": { "mandate_options": null, "network": null, "request_three_d_secure": "automatic" }
            },
            "payment_method_types": ["card"],
            "single_use_mandate": null,
            "status": "succeeded",
            "usage": "off_session"
        })
    }

    #[test]
    fn a_setup_intent_with_null_or_absent_metadata_parses() {
        let mut absent = setup_intent(serde_json::Value::Null);
        absent.as_object_mut().expect("object").remove("metadata");
        for si in [
            setup_intent(serde_json::Value::Null),
            absent,
            setup_intent(json!({})),
        ] {
            let parsed = parse::<SetupIntentObject>(&si, "setup intent");
            assert!(parsed.is_ok(), "{:?}", parsed.err());
            let si = parsed.expect("parsed");
            assert!(si.metadata.unwrap_or_default().is_empty());
            assert_eq!(
                si.customer.as_ref().map(Expandable::id),
                Some("cus_NXDI9TzYmqAo1B")
            );
        }
        let si: SetupIntentObject = parse(
            &setup_intent(json!({ "wallet_id": "alice" })),
            "setup intent",
        )
        .expect("parses");
        assert_eq!(
            si.metadata
                .as_ref()
                .and_then(|m| m.get("wallet_id"))
                .map(String::as_str),
            Some("alice")
        );
    }

    /// A card charge as the API returns it (trimmed to the fields a
    /// charge always has that matter here).
    fn charge(id: &str, status: &str, created: i64) -> serde_json::Value {
        json!({
            "id": id,
            "object": "charge",
            "amount": 2500,
            "amount_captured": if status == "succeeded" { 2500 } else { 0 },
            "amount_refunded": 0,
            "balance_transaction": null,
            "billing_details": { "address": null, "email": null, "name": null, "phone": null },
            "captured": status == "succeeded",
            "created": created,
            "currency": "usd",
            "customer": "cus_NffrFeUfNV2Hib",
            "disputed": false,
            "failure_code": if status == "failed" { json!("card_declined") } else { json!(null) },
            "failure_message": if status == "failed" { json!("Your card was declined.") } else { json!(null) },
            "livemode": false,
            "metadata": { "wallet_id": "alice", "top_up_id": "8e3c5e5a-0d4e-4f59-9a5b-0c1d2e3f4a5b" },
            "paid": status == "succeeded",
            "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "payment_method": "pm_1MtwBwLkdIwHu7ixNVkcMYyV",
            "receipt_url": format!("https://pay.stripe.com/receipts/payment/{id}"),
            "refunded": false,
            "status": status
        })
    }

    /// A succeeded PaymentIntent as an API version from 2022-11-15 sends
    /// it: `latest_charge`, no `charges`.
    fn payment_intent(latest_charge: serde_json::Value) -> serde_json::Value {
        json!({
            "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "object": "payment_intent",
            "amount": 2500,
            "amount_capturable": 0,
            "amount_details": { "tip": {} },
            "amount_received": 2500,
            "application": null,
            "automatic_payment_methods": null,
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "automatic",
            "client_secret": "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
            "confirmation_method": "automatic",
            "created": 1680800504,
            "currency": "usd",
            "customer": "cus_NffrFeUfNV2Hib",
            "description": null,
            "last_payment_error": null,
            "latest_charge": latest_charge,
            "livemode": false,
            "metadata": { "wallet_id": "alice", "top_up_id": "8e3c5e5a-0d4e-4f59-9a5b-0c1d2e3f4a5b" },
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": "pm_1MtwBwLkdIwHu7ixNVkcMYyV",
            "payment_method_types": ["card"],
            "status": "succeeded"
        })
    }

    /// The same intent as an API version before 2022-11-15 sends it: a
    /// `charges` list (newest first), no `latest_charge`.
    fn legacy_payment_intent(charges: Vec<serde_json::Value>) -> serde_json::Value {
        let mut pi = payment_intent(json!(null));
        let pi_map = pi.as_object_mut().expect("object");
        pi_map.remove("latest_charge");
        pi_map.insert(
            "charges".into(),
            json!({
                "object": "list",
                "data": charges,
                "has_more": false,
                "total_count": charges.len(),
                "url": "/v1/charges?payment_intent=pi_3MtwBwLkdIwHu7ix28a3tqPa"
            }),
        );
        pi
    }

    fn paid_by(pi: serde_json::Value) -> (String, Option<String>) {
        let pi: PaymentIntentObject = parse(&pi, "payment intent").expect("parses");
        match paying_charge(&pi) {
            Ok(found) => found,
            Err(outcome) => panic!("no paying charge: {outcome:?}"),
        }
    }

    #[test]
    fn the_paying_charge_is_the_latest_charge_as_an_id_or_expanded() {
        assert_eq!(
            paid_by(payment_intent(json!("ch_3MtwBwLkdIwHu7ix2FYvWJ8q"))),
            ("ch_3MtwBwLkdIwHu7ix2FYvWJ8q".to_string(), None)
        );
        let expanded = charge("ch_3MtwBwLkdIwHu7ix2FYvWJ8q", "succeeded", 1680800505);
        assert_eq!(
            paid_by(payment_intent(expanded)),
            (
                "ch_3MtwBwLkdIwHu7ix2FYvWJ8q".to_string(),
                Some("https://pay.stripe.com/receipts/payment/ch_3MtwBwLkdIwHu7ix2FYvWJ8q".into())
            )
        );
    }

    #[test]
    fn an_intent_from_an_api_version_before_2022_11_15_is_paid_by_its_succeeded_charge() {
        // One declined attempt, then a card that worked; the list is newest first.
        let succeeded = charge("ch_second", "succeeded", 1680800600);
        let declined = charge("ch_first", "failed", 1680800504);
        assert_eq!(
            paid_by(legacy_payment_intent(vec![
                succeeded.clone(),
                declined.clone()
            ])),
            (
                "ch_second".to_string(),
                Some("https://pay.stripe.com/receipts/payment/ch_second".into())
            )
        );
        // In whatever order the list comes.
        assert_eq!(
            paid_by(legacy_payment_intent(vec![declined, succeeded])).0,
            "ch_second"
        );
        // One charge only.
        assert_eq!(
            paid_by(legacy_payment_intent(vec![charge(
                "ch_only",
                "succeeded",
                1
            )]))
            .0,
            "ch_only"
        );
    }

    #[test]
    fn an_intent_with_no_charge_at_all_is_poison() {
        for pi in [payment_intent(json!(null)), legacy_payment_intent(vec![])] {
            let pi: PaymentIntentObject = parse(&pi, "payment intent").expect("parses");
            assert!(
                matches!(paying_charge(&pi), Err(Outcome::Poison(_))),
                "{pi:?}"
            );
        }
    }

    #[test]
    fn refunded_and_disputed_charges_carry_the_metadata_that_says_whose_they_are() {
        let mut refunded = charge("ch_3MtwBwLkdIwHu7ix2FYvWJ8q", "succeeded", 1680800505);
        refunded["amount_refunded"] = json!(500);
        refunded["refunds"] = json!({ "object": "list", "data": [], "has_more": false, "url": "/v1/charges/ch_3MtwBwLkdIwHu7ix2FYvWJ8q/refunds" });
        let c: ChargeObject = parse(&refunded, "charge").expect("parses");
        assert_eq!(
            c.metadata.get("wallet_id").map(String::as_str),
            Some("alice")
        );
        assert_eq!(
            c.payment_intent.as_ref().map(Expandable::id),
            Some("pi_3MtwBwLkdIwHu7ix28a3tqPa")
        );
        let dispute = json!({
            "id": "dp_1MtJUT2eZvKYlo2CNaw2HvEv",
            "object": "dispute",
            "amount": 1000,
            "balance_transactions": [],
            "charge": "ch_1AZtxr2eZvKYlo2CI3iegSJn",
            "created": 1680651737,
            "currency": "usd",
            "evidence": {},
            "evidence_details": { "due_by": 1682294399, "has_evidence": false, "past_due": false, "submission_count": 0 },
            "is_charge_refundable": true,
            "livemode": false,
            "metadata": {},
            "payment_intent": null,
            "reason": "general",
            "status": "warning_needs_response"
        });
        let d: DisputeObject = parse(&dispute, "dispute").expect("parses");
        assert!(d.metadata.is_empty() && d.payment_intent.is_none());
        assert_eq!(d.charge.id(), "ch_1AZtxr2eZvKYlo2CI3iegSJn");
    }

    /// A paid subscription invoice: in API versions from 2025-03-31 the
    /// subscription is under `parent`, and no charge is named; before, it
    /// is `subscription` and the charge `charge`.
    fn invoice(basil: bool) -> serde_json::Value {
        let mut inv = json!({
            "id": "in_1MtHbELkdIwHu7ixl4OzzPMv",
            "object": "invoice",
            "amount_due": 2500,
            "amount_paid": 2500,
            "amount_remaining": 0,
            "attempt_count": 1,
            "attempted": true,
            "billing_reason": "subscription_cycle",
            "collection_method": "charge_automatically",
            "created": 1680644467,
            "currency": "usd",
            "customer": "cus_NeZwdNtLEOXuvB",
            "livemode": false,
            "metadata": {},
            "next_payment_attempt": null,
            "status": "paid",
            "lines": {
                "object": "list",
                "data": [{ "id": "il_1", "object": "line_item", "amount": 2500, "currency": "usd",
                           "period": { "start": 1680644467, "end": 1683322867 } }],
                "has_more": false,
                "url": "/v1/invoices/in_1MtHbELkdIwHu7ixl4OzzPMv/lines"
            }
        });
        let map = inv.as_object_mut().expect("object");
        if basil {
            map.insert(
                "parent".into(),
                json!({
                    "type": "subscription_details",
                    "quote_details": null,
                    "subscription_details": {
                        "metadata": { "wallet_id": "alice" },
                        "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs"
                    }
                }),
            );
        } else {
            map.insert("subscription".into(), json!("sub_1MowQVLkdIwHu7ixeRlqHVzs"));
            map.insert(
                "subscription_details".into(),
                json!({ "metadata": { "wallet_id": "alice" } }),
            );
            map.insert("charge".into(), json!("ch_3MtHbFLkdIwHu7ix0ABCDEFG"));
            map.insert(
                "payment_intent".into(),
                json!("pi_3MtHbFLkdIwHu7ix0ABCDEFG"),
            );
        }
        inv
    }

    #[test]
    fn a_subscription_invoice_of_either_api_shape_names_its_subscription_and_wallet() {
        for basil in [true, false] {
            let inv: InvoiceObject = parse(&invoice(basil), "invoice").expect("parses");
            assert_eq!(inv.subscription_id(), Some("sub_1MowQVLkdIwHu7ixeRlqHVzs"));
            assert_eq!(
                inv.subscription_metadata()
                    .and_then(|m| m.get("wallet_id"))
                    .map(String::as_str),
                Some("alice")
            );
            assert_eq!(inv.period_end(), Some(1683322867));
            let charge = inv.charge().expect("charge parses").map(|(id, _)| id);
            assert_eq!(charge.is_some(), !basil);
        }
        // An invoice billing no subscription names none.
        let mut one_off = invoice(true);
        one_off["parent"] = serde_json::Value::Null;
        let inv: InvoiceObject = parse(&one_off, "invoice").expect("parses");
        assert_eq!(inv.subscription_id(), None);
        // A failed attempt's expanded charge gives Stripe's code.
        let mut failed = invoice(false);
        failed["charge"] = json!({ "id": "ch_1", "object": "charge", "failure_code": "card_declined",
                                    "failure_message": "Your card was declined." });
        let inv: InvoiceObject = parse(&failed, "invoice").expect("parses");
        let (_, failure) = inv.charge().expect("parses").expect("a charge");
        assert_eq!(failure.map(|(c, _)| c), Some("card_declined".to_string()));
    }

    #[test]
    fn an_invoice_missing_a_field_stripe_always_sends_is_poison() {
        let mut inv = invoice(true);
        inv.as_object_mut().expect("object").remove("amount_paid");
        assert!(matches!(
            parse::<InvoiceObject>(&inv, "invoice"),
            Err(Outcome::Poison(_))
        ));
    }
}
