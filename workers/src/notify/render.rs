//! What a notification says, per kind: a subject, a plain-text body and an
//! HTML body, from plain format strings kept together here. Dates are
//! written in the user's time zone (an unknown zone falls back to UTC).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// A notification put into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// One line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// The zone called `name`, or UTC.
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// `at` in `tz`, e.g. `2026-12-03 14:00 CET`.
pub fn date(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

fn date_field(payload: &Value, key: &str, tz: Tz) -> String {
    payload[key]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| date(d.with_timezone(&Utc), tz))
        .unwrap_or_else(|| "an unknown date".into())
}

fn text(payload: &Value, key: &str) -> String {
    match &payload[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// Escapes text for HTML.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The subject and the paragraphs of a notification of `kind`.
fn words(kind: &str, deployment: Option<&str>, payload: &Value, tz: Tz) -> (String, Vec<String>) {
    let dep = deployment.unwrap_or("your deployment");
    match kind {
        "balance_low" => (
            "Your balance is running low".into(),
            vec![format!(
                "At the current spend your wallet lasts about {} hours (below your {}-hour alert). Top up to keep your deployments running.",
                text(payload, "runway_hours"),
                text(payload, "threshold_hours")
            )],
        ),
        "auto_top_up_failed" => (
            "Your automatic top-up failed".into(),
            vec![
                format!("The card on file was declined: {}.", text(payload, "message")),
                "Update your payment method or top up by hand.".into(),
            ],
        ),
        "subscription_payment_failed" => (
            "Your monthly top-up payment failed".into(),
            vec![
                format!(
                    "The card on file was declined for your monthly top-up: {}.",
                    text(payload, "message")
                ),
                match payload["next_attempt_at"].as_str() {
                    Some(_) => format!(
                        "It is tried again on {}; update your payment method before then.",
                        date_field(payload, "next_attempt_at", tz)
                    ),
                    None => "It is not tried again: update your payment method and subscribe again, or top up by hand.".into(),
                },
            ],
        ),
        "grace_period_started" => (
            "Deployment paused: out of funds".into(),
            vec![format!(
                "Deployment {dep} is in its grace period. Unless your balance is topped up, it and its data are deleted on {}.",
                date_field(payload, "deletion_at", tz)
            )],
        ),
        "grace_period_ended" => (
            "Deployment resumed".into(),
            vec![format!("Deployment {dep} was paid for and runs again.")],
        ),
        "deleted_out_of_funds" => (
            "Deployment deleted: out of funds".into(),
            vec![format!(
                "Deployment {dep} stayed unpaid through its grace period and was deleted."
            )],
        ),
        "deployment_running" => (
            "Deployment running".into(),
            vec![format!("Deployment {dep} is up and running.")],
        ),
        "deployment_failed" => (
            "Deployment failed".into(),
            vec![format!(
                "Deployment {dep} could not be brought up: {}.",
                text(payload, "reason")
            )],
        ),
        "maintenance_announced" => (
            format!("Maintenance planned on node {}", text(payload, "node_id")),
            vec![
                format!(
                    "Node {} runs your deployment and will be under maintenance from {} to {}.",
                    text(payload, "node_id"),
                    date_field(payload, "start", tz),
                    date_field(payload, "end", tz)
                ),
                format!("Reason: {}", text(payload, "reason")),
            ],
        ),
        "maintenance_soon" => (
            format!("Maintenance on node {} within 24 hours", text(payload, "node_id")),
            vec![format!(
                "Reminder: node {} is under maintenance from {} to {}.",
                text(payload, "node_id"),
                date_field(payload, "start", tz),
                date_field(payload, "end", tz)
            )],
        ),
        "provider_request_answered" => match payload["answer"].as_str() {
            Some("approved") => (
                "Your provider request was approved".into(),
                vec![format!(
                    "Farm {} is now listed on the marketplace.",
                    text(payload, "farm_id")
                )],
            ),
            Some("rejected") => (
                "Your provider request was rejected".into(),
                vec![format!("Reason: {}", text(payload, "reason"))],
            ),
            _ => (
                "More information needed for your provider request".into(),
                vec![format!("The reviewers ask: {}", text(payload, "question"))],
            ),
        },
        "alliance_settlement_paid" => (
            "Alliance payout sent".into(),
            vec![format!(
                "Your share of alliance {} for {} was sent on chain: {} TFT base units (transfer {}).",
                text(payload, "alliance_id"),
                text(payload, "period"),
                text(payload, "amount_tft_units"),
                text(payload, "transfer")
            )],
        ),
        other => (format!("Notification: {other}"), vec![payload.to_string()]),
    }
}

/// Puts a notification of `kind` into words, its dates in `tz`.
pub fn render(
    kind: &str,
    deployment: Option<&str>,
    payload: &Value,
    at: DateTime<Utc>,
    tz: Tz,
) -> Message {
    let (subject, paragraphs) = words(kind, deployment, payload, tz);
    let when = date(at, tz);
    let mut text = String::new();
    for p in &paragraphs {
        text.push_str(p);
        text.push_str("\n\n");
    }
    text.push_str(&format!("({when})\n"));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><body>\n<h1>{}</h1>\n",
        escape(&subject)
    );
    for p in &paragraphs {
        html.push_str(&format!("<p>{}</p>\n", escape(p)));
    }
    html.push_str(&format!(
        "<p style=\"color:#666\">{}</p>\n</body></html>\n",
        escape(&when)
    ));
    Message {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_are_in_the_users_zone_and_html_is_escaped() {
        let tz = zone("Europe/Brussels");
        let m = render(
            "grace_period_started",
            Some("d1"),
            &json!({ "deletion_at": "2026-07-01T10:00:00Z" }),
            "2026-06-17T10:00:00Z".parse().expect("date"),
            tz,
        );
        assert!(m.text.contains("2026-07-01 12:00 CEST"), "{}", m.text);
        let m = render(
            "deployment_failed",
            None,
            &json!({ "reason": "<b>no</b>" }),
            Utc::now(),
            zone("Nowhere/Else"),
        );
        assert!(m.html.contains("&lt;b&gt;no&lt;/b&gt;"), "{}", m.html);
        assert!(m.text.contains("UTC"));
    }
}
