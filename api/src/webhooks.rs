//! Stripe webhooks: verify the `Stripe-Signature`, store the event in the
//! inbox keyed by Stripe's event id, answer 2xx at once. Applying events to
//! wallets is a worker's job, so a slow or failing wallet never makes Stripe
//! retry, and a redelivered event is stored once.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::error::{ApiError, Problem};
use crate::AppState;

/// How far a signature's timestamp may be from our clock (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a webhook signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No or unreadable `Stripe-Signature` header.
    #[error("missing or malformed Stripe-Signature header")]
    Malformed,
    /// The timestamp is too far from now (a replay, or a skewed clock).
    #[error("signature timestamp outside the {TOLERANCE_SECS} s tolerance")]
    Stale,
    /// No `v1` signature matches the payload under our secret.
    #[error("no signature matches the payload")]
    Mismatch,
}

/// Checks a `Stripe-Signature` header (`t=<unix>,v1=<hex>[,v1=<hex>…]`)
/// against the raw body: HMAC-SHA256 of `"{t}.{body}"` under the endpoint
/// secret, compared in constant time, with the timestamp within tolerance.
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secret: &str,
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp: Option<i64> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", sig)) => {
                if let Ok(bytes) = hex::decode(sig) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    for signature in signatures {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| SignatureError::Mismatch)?;
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// The part of a Stripe event the inbox keeps apart from the payload.
#[derive(Debug, Deserialize)]
struct EventHead {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    livemode: bool,
}

/// The webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// Always true: the event is stored (or was already).
    pub received: bool,
    /// False when this event id had been received before.
    pub first_delivery: bool,
}

/// Receive a Stripe event (called by Stripe, authenticated by its signature).
#[utoipa::path(
    post, path = "/v1/webhooks/stripe", tag = "payments",
    request_body(content = String, content_type = "application/json", description = "The Stripe event, as Stripe signed it"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256>")),
    responses(
        (status = 200, body = Received),
        (status = 400, body = Problem, description = "Bad or stale signature, or not a Stripe event: nothing stored"),
        (status = 503, body = Problem, description = "Payments are not configured")
    )
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Received>, ApiError> {
    let Some(secret) = state
        .settings
        .stripe_webhook_secret
        .as_ref()
        .map(ExposeSecret::expose_secret)
    else {
        return Err(ApiError::NotConfigured(
            "payments are not configured: STRIPE_WEBHOOK_SECRET is unset",
        ));
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest(SignatureError::Malformed.to_string()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    if let Err(e) = verify_signature(header, &body, secret, now) {
        tracing::warn!(error = %e, "Stripe webhook refused");
        return Err(ApiError::BadRequest(e.to_string()));
    }
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not JSON: {e}")))?;
    let head: EventHead = serde_json::from_value(payload.clone())
        .map_err(|e| ApiError::BadRequest(format!("not a Stripe event: {e}")))?;
    let inserted = sqlx::query(
        "INSERT INTO stripe_inbox (event_id, event_type, created, livemode, payload)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&head.id)
    .bind(&head.kind)
    .bind(head.created)
    .bind(head.livemode)
    .bind(&payload)
    .execute(&state.pool)
    .await?;
    let first_delivery = inserted.rows_affected() == 1;
    tracing::info!(event_id = %head.id, event_type = %head.kind, first_delivery, "Stripe event stored");
    Ok(Json(Received {
        received: true,
        first_delivery,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_good_signature_passes_and_anything_else_fails() {
        let body = br#"{"id":"evt_1"}"#;
        let now = 1_700_000_000;
        let good = sign("whsec_test", now, body);
        assert_eq!(verify_signature(&good, body, "whsec_test", now), Ok(()));
        assert_eq!(
            verify_signature(&good, body, "whsec_other", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&good, br#"{"id":"evt_2"}"#, "whsec_test", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&good, body, "whsec_test", now + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(&good, body, "whsec_test", now - 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature("v1=abc", body, "whsec_test", now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature("t=1", body, "whsec_test", now),
            Err(SignatureError::Malformed)
        );
        // During secret rotation Stripe sends several v1 signatures: one match suffices.
        let rotated = format!("{},v1={}", good, "00".repeat(32));
        assert_eq!(verify_signature(&rotated, body, "whsec_test", now), Ok(()));
    }
}

/// A Stripe event the worker set aside, or one still waiting.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct InboxEvent {
    /// Stripe's event id.
    pub event_id: String,
    /// Stripe's event type.
    pub event_type: String,
    /// Stripe's `created` (unix seconds).
    pub created: i64,
    /// When it arrived.
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// When the worker finished with it (applied, or set aside).
    pub processed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Attempts so far.
    pub attempts: i32,
    /// Why it was not applied (last attempt).
    pub last_error: Option<String>,
}

/// Inbox events with an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxEvents {
    /// Newest first, at most 100: set aside, or waiting for a retry.
    pub items: Vec<InboxEvent>,
}

/// Stripe events the worker could not apply (set aside, or retrying), for operators.
#[utoipa::path(
    get, path = "/v1/stripe-events", tag = "payments",
    responses((status = 200, body = InboxEvents), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_troubled_events(
    State(state): State<AppState>,
    crate::auth::AsOperator(_actor): crate::auth::AsOperator,
) -> Result<Json<InboxEvents>, ApiError> {
    let items = sqlx::query_as(
        "SELECT event_id, event_type, created, received_at, processed_at, attempts, last_error
           FROM stripe_inbox WHERE last_error IS NOT NULL
          ORDER BY received_at DESC LIMIT 100",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(InboxEvents { items }))
}

/// Apply a set-aside Stripe event again (after fixing its cause).
#[utoipa::path(
    post, path = "/v1/stripe-events/{event_id}/retry", tag = "payments",
    params(("event_id" = String, Path, description = "Stripe's event id", pattern = "^[A-Za-z0-9]+_[A-Za-z0-9_]+$", max_length = 255)),
    responses(
        (status = 202, body = InboxEvent, description = "Queued again"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn retry_event(
    State(state): State<AppState>,
    crate::auth::AsOperator(_actor): crate::auth::AsOperator,
    crate::extract::ApiPath(event_id): crate::extract::ApiPath<String>,
) -> Result<(axum::http::StatusCode, Json<InboxEvent>), ApiError> {
    let row: Option<InboxEvent> = sqlx::query_as(
        "UPDATE stripe_inbox SET processed_at = NULL, attempts = 0, next_attempt_at = now()
          WHERE event_id = $1 AND last_error IS NOT NULL
          RETURNING event_id, event_type, created, received_at, processed_at, attempts, last_error",
    )
    .bind(&event_id)
    .fetch_optional(&state.pool)
    .await?;
    // Wake the worker.
    sqlx::query("SELECT pg_notify('stripe_inbox', '')")
        .execute(&state.pool)
        .await?;
    row.map(|r| (axum::http::StatusCode::ACCEPTED, Json(r)))
        .ok_or(ApiError::NotFound)
}
