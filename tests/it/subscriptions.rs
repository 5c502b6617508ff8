//! Recurring top-ups end to end: a monthly Stripe subscription on a saved
//! card, against localstripe behind the test-side wrapper
//! (tests/it/common/stripe.rs, which renews a subscription as Stripe's
//! billing cycle would), the webhook intake and the Stripe inbox worker.

use std::time::{Duration, Instant};

use crate::common::*;
use axum::http::Method;
use serde_json::{json, Value};

const VISA: &str = "4242424242424242";
/// Attaches fine, declined on every charge.
const DECLINED_ON_CHARGE: &str = "4000000000000341";
/// TFT base units $25 buys at the test price ($0.01 / TFT): 2,500 TFT.
const TFT_FOR_2500_CENTS: i64 = 2_500 * 10_000_000;

async fn stripe_app() -> TestApp {
    spawn_app_with(AppOptions {
        stripe: true,
        ..AppOptions::default()
    })
    .await
}

fn ls(app: &TestApp) -> &crate::common::stripe::LocalStripe {
    app.stripe.as_ref().expect("localstripe")
}

async fn wallet(app: &TestApp, token: &str) -> Value {
    let r = app.get("/v1/wallet", token).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// Polls the wallet until `check` holds (webhooks and the worker are async).
async fn wallet_until(
    app: &TestApp,
    token: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let w = wallet(app, token).await;
        if check(&w) {
            return w;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}; wallet: {w:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn save_card(app: &TestApp, token: &str, number: &str) -> String {
    let r = app
        .post("/v1/wallet/setup-intents", token, &json!({}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let si: Value = r.json().await.expect("json");
    let pm = ls(app)
        .save_card(si["setup_intent_id"].as_str().expect("si"), number)
        .await;
    let saved = pm.clone();
    wallet_until(app, token, "card saved", move |w| {
        w["payment_methods"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["payment_method_id"] == saved.as_str()))
    })
    .await;
    pm
}

async fn post_keyed(
    app: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn subscribe(app: &TestApp, token: &str, key: &str, cents: u64) -> Value {
    let r = post_keyed(
        app,
        "/v1/wallet/subscriptions",
        token,
        key,
        &json!({ "usd_cents": cents }),
    )
    .await;
    assert_eq!(
        r.status(),
        201,
        "subscribe: {}",
        r.text().await.unwrap_or_default()
    );
    r.json().await.expect("json")
}

async fn inbox_pending(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM stripe_inbox WHERE processed_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

async fn inbox_settled(app: &TestApp) {
    let started = Instant::now();
    while inbox_pending(app).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "inbox not drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn events_of(app: &TestApp, wallet: &str, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = $2")
        .bind(wallet)
        .bind(kind)
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

fn subscription_credits(w: &Value) -> usize {
    w["top_ups"].as_array().map_or(0, |t| {
        t.iter().filter(|t| t["origin"] == "subscription").count()
    })
}

#[tokio::test]
async fn a_subscriptions_first_and_second_invoices_credit_the_wallet_once_each() {
    let app = stripe_app().await;
    let pm = save_card(&app, &alice(), VISA).await;
    let created = subscribe(&app, &alice(), "monthly-25", 2_500).await;
    let sub = created["subscription_id"].as_str().expect("id").to_string();
    assert!(sub.starts_with("sub_"), "{created}");
    assert_eq!(created["status"], "active");
    assert_eq!(created["usd_cents"], 2_500);
    assert_eq!(created["payment_method_id"], pm.as_str());
    assert_eq!(created["cancel_at_period_end"], false);
    assert!(created["next_renewal_at"].is_string(), "{created}");

    // At Stripe: the wallet in the subscription's metadata, a monthly
    // Price of $25 found by its lookup key on the recurring top-up Product.
    let at_stripe = ls(&app)
        .call(Method::GET, &format!("/v1/subscriptions/{sub}"), &[])
        .await;
    assert_eq!(at_stripe["metadata"]["wallet_id"], "alice");
    let price = created["price_id"].as_str().expect("price").to_string();
    let prices = ls(&app)
        .call(
            Method::GET,
            "/v1/prices?lookup_keys[0]=marketplace_monthly_top_up_usd_2500",
            &[],
        )
        .await;
    assert_eq!(prices["data"].as_array().map(Vec::len), Some(1), "{prices}");
    assert_eq!(prices["data"][0]["id"], price.as_str());
    assert_eq!(prices["data"][0]["product"], "marketplace_recurring_top_up");
    assert_eq!(prices["data"][0]["recurring"]["interval"], "month");

    // The first invoice was paid on subscribing: credited once.
    let w = wallet_until(&app, &alice(), "first invoice credited", |w| {
        w["subscription"]["invoices_paid"] == 1 && w["balance_tft_units"] == TFT_FOR_2500_CENTS
    })
    .await;
    assert_eq!(w["subscription"]["subscription_id"], sub.as_str());
    assert_eq!(w["subscription"]["last_invoice"]["status"], "paid");
    assert_eq!(subscription_credits(&w), 1);

    // A month later: the second invoice, credited once too.
    let renewed = ls(&app).renew(&sub, None).await;
    assert_eq!(renewed["status"], "paid", "{renewed}");
    let w = wallet_until(&app, &alice(), "second invoice credited", |w| {
        w["subscription"]["invoices_paid"] == 2
    })
    .await;
    assert_eq!(w["balance_tft_units"], 2 * TFT_FOR_2500_CENTS);
    assert_eq!(subscription_credits(&w), 2);
    assert_eq!(w["ledger"].as_array().map(Vec::len), Some(2));

    // Every invoice.paid delivered again, newest first, and again under a
    // new event id (as a second delivery path would): nothing more.
    let paid: Vec<Value> = ls(&app)
        .events()
        .into_iter()
        .filter(|e| e["type"] == "invoice.paid")
        .collect();
    assert_eq!(paid.len(), 2, "one invoice.paid per invoice");
    for event in paid.iter().rev() {
        assert!(ls(&app).deliver(event).await.status().is_success());
        let mut copy = event.clone();
        copy["id"] = json!(format!("evt_copy_{}", uuid::Uuid::new_v4().simple()));
        assert!(ls(&app).deliver(&copy).await.status().is_success());
    }
    inbox_settled(&app).await;
    let w = wallet(&app, &alice()).await;
    assert_eq!(w["balance_tft_units"], 2 * TFT_FOR_2500_CENTS);
    assert_eq!(w["subscription"]["invoices_paid"], 2);
    assert_eq!(events_of(&app, "alice", "SubscriptionInvoicePaid").await, 2);

    // The same Idempotency-Key again: the same subscription, none more at Stripe.
    let again = subscribe(&app, &alice(), "monthly-25", 2_500).await;
    assert_eq!(again["subscription_id"], sub.as_str());
    let customer = at_stripe["customer"].as_str().expect("customer");
    let subs = ls(&app)
        .call(
            Method::GET,
            &format!("/v1/subscriptions?customer={customer}"),
            &[],
        )
        .await;
    assert_eq!(subs["data"].as_array().map(Vec::len), Some(1), "{subs}");
    // Another $25 subscription of another user reuses the Price.
    save_card(&app, &bob(), VISA).await;
    let bobs = subscribe(&app, &bob(), "bob-monthly", 2_500).await;
    assert_eq!(bobs["price_id"], price.as_str());
}

#[tokio::test]
async fn invoices_delivered_late_twice_and_out_of_order_credit_once_each() {
    let app = stripe_app().await;
    save_card(&app, &alice(), VISA).await;
    // Every webhook from here on is held, to be delivered in another order.
    ls(&app).hold(true);
    let created = subscribe(&app, &alice(), "held", 2_500).await;
    let sub = created["subscription_id"].as_str().expect("id").to_string();
    ls(&app).wait_held("invoice.paid", 1).await;
    let renewed = ls(&app).renew(&sub, None).await;
    assert_eq!(renewed["status"], "paid", "{renewed}");
    ls(&app).wait_held("invoice.paid", 2).await;
    let held = ls(&app).take_held();
    // Nothing credited without the webhooks.
    assert_eq!(wallet(&app, &alice()).await["balance_tft_units"], 0);
    // Newest first, each twice.
    for event in held.iter().rev() {
        assert!(ls(&app).deliver(event).await.status().is_success());
        assert!(ls(&app).deliver(event).await.status().is_success());
    }
    let w = wallet_until(&app, &alice(), "both invoices credited", |w| {
        w["subscription"]["invoices_paid"] == 2
    })
    .await;
    inbox_settled(&app).await;
    let w2 = wallet(&app, &alice()).await;
    assert_eq!(w2["balance_tft_units"], 2 * TFT_FOR_2500_CENTS, "{w}");
    assert_eq!(subscription_credits(&w2), 2);
    assert_eq!(events_of(&app, "alice", "SubscriptionInvoicePaid").await, 2);
}

#[tokio::test]
async fn a_declined_renewal_records_subscription_payment_failed_and_credits_nothing() {
    let app = stripe_app().await;
    save_card(&app, &alice(), VISA).await;
    let created = subscribe(&app, &alice(), "monthly", 2_500).await;
    let sub = created["subscription_id"].as_str().expect("id").to_string();
    wallet_until(&app, &alice(), "first invoice credited", |w| {
        w["balance_tft_units"] == TFT_FOR_2500_CENTS
    })
    .await;
    // The renewal is charged to a card that declines.
    let declined = ls(&app).renew(&sub, Some(DECLINED_ON_CHARGE)).await;
    assert_eq!(declined["status"], "open", "{declined}");
    assert_eq!(declined["charge"]["failure_code"], "card_declined");
    let w = wallet_until(&app, &alice(), "renewal failure recorded", |w| {
        w["subscription"]["last_invoice"]["status"] == "failed"
    })
    .await;
    assert_eq!(
        w["subscription"]["last_invoice"]["failure_code"],
        "card_declined"
    );
    assert_eq!(w["balance_tft_units"], TFT_FOR_2500_CENTS);
    assert_eq!(w["subscription"]["invoices_paid"], 1);
    // Stripe marks it past due and retries; the wallet shows it.
    wallet_until(&app, &alice(), "past due", |w| {
        w["subscription"]["status"] == "past_due"
    })
    .await;
    inbox_settled(&app).await;
    // Recorded once, for notifications to pick up; the activity feed shows it.
    assert_eq!(
        events_of(&app, "alice", "SubscriptionPaymentFailed").await,
        1
    );
    let failed: Vec<Value> = ls(&app)
        .events()
        .into_iter()
        .filter(|e| e["type"] == "invoice.payment_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(ls(&app).deliver(&failed[0]).await.status().is_success());
    inbox_settled(&app).await;
    assert_eq!(
        events_of(&app, "alice", "SubscriptionPaymentFailed").await,
        1
    );
    let activity: Value = app
        .get("/v1/wallet/activity", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert!(activity["items"].as_array().is_some_and(|i| i
        .iter()
        .any(|e| e["event_type"] == "SubscriptionPaymentFailed")));
    // Alice is told, once, though Stripe told us twice.
    let started = Instant::now();
    let told = loop {
        let feed: Value = app
            .get("/v1/notifications", &alice())
            .await
            .json()
            .await
            .expect("json");
        let told: Vec<Value> = feed["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|n| n["kind"] == "subscription_payment_failed")
            .cloned()
            .collect();
        if !told.is_empty() || started.elapsed() > Duration::from_secs(30) {
            break told;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["details"]["attempt"], 1, "{told:?}");
}

#[tokio::test]
async fn a_subscription_cancels_at_period_end_or_now() {
    let app = stripe_app().await;
    save_card(&app, &alice(), VISA).await;
    let created = subscribe(&app, &alice(), "monthly", 1_000).await;
    let sub = created["subscription_id"].as_str().expect("id").to_string();

    let r = post_keyed(
        &app,
        &format!("/v1/wallet/subscriptions/{sub}/cancel"),
        &alice(),
        "cancel-later",
        &json!({ "at_period_end": true }),
    )
    .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let v: Value = r.json().await.expect("json");
    let read = app
        .get(
            &format!(
                "/v1/wallet/subscriptions/{sub}?min_version={}",
                v["version"]
            ),
            &alice(),
        )
        .await;
    assert_eq!(read.status(), 200);
    let s: Value = read.json().await.expect("json");
    // What the API answers is what its document says.
    let doc: Value = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let path = "/v1/wallet/subscriptions/{subscription_id}";
    crate::openapi::assert_fits(
        &doc,
        crate::openapi::response_schema(&doc, path, "get", 200),
        &s,
    );
    crate::openapi::assert_fits(
        &doc,
        crate::openapi::response_schema(&doc, "/v1/wallet/subscriptions", "post", 201),
        &created,
    );
    assert_eq!(s["cancel_at_period_end"], true);
    assert_eq!(s["status"], "active");
    assert!(s["next_renewal_at"].is_null(), "{s}");
    let at_stripe = ls(&app)
        .call(Method::GET, &format!("/v1/subscriptions/{sub}"), &[])
        .await;
    assert_eq!(at_stripe["cancel_at_period_end"], true);

    // Now, after all.
    let r = app
        .client
        .delete(app.url(&format!("/v1/wallet/subscriptions/{sub}")))
        .bearer_auth(alice())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let at_stripe = ls(&app)
        .call(Method::GET, &format!("/v1/subscriptions/{sub}"), &[])
        .await;
    assert_eq!(at_stripe["status"], "canceled");
    let w = wallet_until(&app, &alice(), "subscription ended", |w| {
        w["subscription"]["status"] == "canceled"
    })
    .await;
    assert!(w["subscription"]["ended_at"].is_string());
    // Stripe's customer.subscription.deleted arrives too: still ended once.
    inbox_settled(&app).await;
    assert_eq!(events_of(&app, "alice", "SubscriptionEnded").await, 1);
    // Canceling what has ended is refused; a new subscription may start.
    let r = app
        .post(
            &format!("/v1/wallet/subscriptions/{sub}/cancel"),
            &alice(),
            &json!({ "at_period_end": false }),
        )
        .await;
    let problem = expect_problem(r, 422).await;
    assert!(problem["type"]
        .as_str()
        .is_some_and(|t| t.ends_with("/subscription-ended")));
    let next = subscribe(&app, &alice(), "monthly-again", 1_000).await;
    assert_ne!(next["subscription_id"], sub.as_str());
}

#[tokio::test]
async fn bad_subscription_requests_are_refused_and_change_nothing() {
    let app = stripe_app().await;
    let post = |body: Value| {
        let app = &app;
        async move { app.post("/v1/wallet/subscriptions", &alice(), &body).await }
    };
    // No saved card.
    expect_problem(post(json!({ "usd_cents": 2_500 })).await, 422).await;
    save_card(&app, &alice(), VISA).await;
    let before = app.event_count("alice").await;
    // Amounts out of range are invalid; a card that is not hers is one the
    // wallet does not know (its state refuses, not the request's shape).
    for (body, kind) in [
        (json!({ "usd_cents": 499 }), "/invalid-command"),
        (json!({ "usd_cents": 200_001 }), "/invalid-command"),
        (
            json!({ "usd_cents": 2_500, "payment_method_id": "pm_not_hers" }),
            "/unknown-card",
        ),
    ] {
        let problem = expect_problem(post(body.clone()).await, 422).await;
        assert!(
            problem["type"].as_str().is_some_and(|t| t.ends_with(kind)),
            "{body}: {problem}"
        );
    }
    expect_problem(
        post(json!({ "usd_cents": 2_500, "every": "week" })).await,
        422,
    )
    .await;
    // A stale If-Match: refused before Stripe is asked.
    let r = app
        .client
        .post(app.url("/v1/wallet/subscriptions"))
        .bearer_auth(alice())
        .header("if-match", "1")
        .json(&json!({ "usd_cents": 2_500 }))
        .send()
        .await
        .expect("request");
    expect_problem(r, 409).await;
    assert_eq!(app.event_count("alice").await, before);
    let customer = wallet(&app, &alice()).await;
    assert!(customer["subscription"].is_null());
    // Nothing was created at Stripe.
    let subs = ls(&app).call(Method::GET, "/v1/subscriptions", &[]).await;
    assert_eq!(subs["data"].as_array().map(Vec::len), Some(0), "{subs}");

    // A card that declines: Stripe refuses the first invoice, no subscription.
    let declining = save_card(&app, &bob(), DECLINED_ON_CHARGE).await;
    let bob_before = app.event_count("bob").await;
    let r = app
        .post(
            "/v1/wallet/subscriptions",
            &bob(),
            &json!({ "usd_cents": 2_500, "payment_method_id": declining }),
        )
        .await;
    let problem = expect_problem(r, 422).await;
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/payment-refused")),
        "{problem}"
    );
    assert_eq!(app.event_count("bob").await, bob_before);
    assert!(wallet(&app, &bob()).await["subscription"].is_null());

    // A running subscription: a second one is refused (409), as is another's.
    let created = subscribe(&app, &alice(), "first", 2_500).await;
    let sub = created["subscription_id"].as_str().expect("id").to_string();
    let problem = expect_problem(post(json!({ "usd_cents": 1_000 })).await, 409).await;
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/already-subscribed")),
        "{problem}"
    );
    expect_problem(
        app.get(&format!("/v1/wallet/subscriptions/{sub}"), &bob())
            .await,
        404,
    )
    .await;
    let r = app
        .post(
            &format!("/v1/wallet/subscriptions/{sub}/cancel"),
            &bob(),
            &json!({ "at_period_end": true }),
        )
        .await;
    expect_problem(r, 404).await;
    let at_stripe = ls(&app)
        .call(Method::GET, &format!("/v1/subscriptions/{sub}"), &[])
        .await;
    assert_eq!(at_stripe["cancel_at_period_end"], false);
}

#[tokio::test]
async fn invoices_of_subscriptions_that_are_not_the_marketplaces_are_skipped() {
    let app = stripe_app().await;
    // A customer of the same Stripe account made by another product.
    let customer = ls(&app)
        .call(
            Method::POST,
            "/v1/customers",
            &[("description", "not ours")],
        )
        .await;
    let customer = customer["id"].as_str().expect("customer").to_string();
    let event = json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": "invoice.paid",
        "data": { "object": {
            "id": "in_1NotOurs", "object": "invoice", "customer": customer,
            "currency": "usd", "amount_due": 900, "amount_paid": 900, "attempt_count": 1,
            "status": "paid", "next_payment_attempt": null,
            "lines": { "object": "list", "data": [{ "period": { "start": 1764547200, "end": 1767225600 } }], "has_more": false, "url": "/v1/invoices/in_1NotOurs/lines" },
            "parent": { "type": "subscription_details", "quote_details": null,
                        "subscription_details": { "metadata": {}, "subscription": "sub_1NotOurs" } }
        } }
    });
    assert!(ls(&app).deliver(&event).await.status().is_success());
    inbox_settled(&app).await;
    let (error,): (Option<String>,) =
        sqlx::query_as("SELECT last_error FROM stripe_inbox WHERE event_id = $1")
            .bind(event["id"].as_str())
            .fetch_one(&app.pool)
            .await
            .expect("inbox row");
    assert_eq!(error, None, "skipped, not set aside");
    assert_eq!(app.total_events().await, 0);
}
