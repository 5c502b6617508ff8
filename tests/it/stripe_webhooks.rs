//! Stripe webhook intake: a verified event is stored once in the inbox; a
//! bad or stale signature is 400 and stores nothing.

use crate::common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn event(id: &str, kind: &str) -> String {
    json!({
        "id": id, "object": "event", "type": kind, "created": 1_763_800_000, "livemode": false,
        "api_version": "2024-06-20", "pending_webhooks": 1,
        "data": { "object": { "id": "pi_123", "object": "payment_intent", "amount_received": 2500 } }
    })
    .to_string()
}

async fn deliver(app: &TestApp, body: &str, signature: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/webhooks/stripe"))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("deliver")
}

async fn inbox(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM stripe_inbox")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_signed_event_is_stored_once_and_a_bad_one_not_at_all() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let body = event("evt_1", "payment_intent.succeeded");

    let r = deliver(&app, &body, &sign(STRIPE_SECRET, now, &body)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v, json!({ "received": true, "first_delivery": true }));
    // Stripe retries: the same event again is acknowledged and stored once.
    let r = deliver(&app, &body, &sign(STRIPE_SECRET, now, &body)).await;
    assert_eq!(
        r.json::<Value>().await.expect("json")["first_delivery"],
        false
    );
    assert_eq!(inbox(&app).await, 1);
    let (kind, payload): (String, Value) =
        sqlx::query_as("SELECT event_type, payload FROM stripe_inbox WHERE event_id = 'evt_1'")
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert_eq!(kind, "payment_intent.succeeded");
    assert_eq!(payload["data"]["object"]["amount_received"], 2500);

    // Refused, nothing stored: wrong secret, tampered body, stale or future timestamp, no header.
    let other = event("evt_2", "charge.refunded");
    let cases = [
        ("wrong secret", sign("whsec_someone_else", now, &other)),
        (
            "tampered body",
            sign(STRIPE_SECRET, now, &event("evt_3", "charge.refunded")),
        ),
        ("stale", sign(STRIPE_SECRET, now - 301, &other)),
        ("from the future", sign(STRIPE_SECRET, now + 310, &other)),
        ("garbage", "t=x,v1=zz".to_string()),
    ];
    for (what, signature) in cases {
        let r = deliver(&app, &other, &signature).await;
        assert_eq!(r.status(), 400, "{what}");
        expect_problem(r, 400).await;
    }
    let r = app
        .client
        .post(app.url("/v1/webhooks/stripe"))
        .body(other.clone())
        .send()
        .await
        .expect("deliver");
    expect_problem(r, 400).await;
    assert_eq!(inbox(&app).await, 1, "refused events are not stored");

    // Out of order: an older event arriving later is stored too; the order is kept by `created`.
    let older = json!({
        "id": "evt_0", "object": "event", "type": "payment_intent.created", "created": 1_763_700_000,
        "livemode": false, "data": { "object": {} }
    })
    .to_string();
    assert_eq!(
        deliver(&app, &older, &sign(STRIPE_SECRET, now, &older))
            .await
            .status(),
        200
    );
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT event_id FROM stripe_inbox WHERE processed_at IS NULL ORDER BY created, event_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("queue");
    assert_eq!(order, vec!["evt_0", "evt_1"]);

    // A signed body that is not a Stripe event is refused.
    let junk = json!({ "hello": "world" }).to_string();
    expect_problem(
        deliver(&app, &junk, &sign(STRIPE_SECRET, now, &junk)).await,
        400,
    )
    .await;
    assert_eq!(inbox(&app).await, 2);
}

#[tokio::test]
async fn without_stripe_configured_payments_say_so() {
    let app = spawn_app_with(AppOptions {
        payments: false,
        ..Default::default()
    })
    .await;
    let body = event("evt_1", "payment_intent.succeeded");
    let now = chrono::Utc::now().timestamp();
    let r = deliver(&app, &body, &sign(STRIPE_SECRET, now, &body)).await;
    let p = expect_problem(r, 503).await;
    assert_eq!(p["type"], "/problems/not-configured");
    assert!(p["detail"]
        .as_str()
        .is_some_and(|d| d.contains("payments are not configured")));
    assert_eq!(inbox(&app).await, 0);
}
