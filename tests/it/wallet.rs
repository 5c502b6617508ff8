//! Wallets end to end: real PostgreSQL, localstripe behind the test-side
//! wrapper (tests/it/common/stripe.rs), signed webhooks, the Stripe inbox
//! worker, the auto top-up and runway workers.

use std::time::{Duration, Instant};

use crate::common::*;
use axum::http::Method;
use marketplace_domain::TftPrice;
use marketplace_workers::stripe::{
    AutoTopUpOptions, AutoTopUpResult, AutoTopUpWorker, RunwayWorker,
};
use serde_json::{json, Value};

const VISA: &str = "4242424242424242";
/// Declined on charge (attaches fine).
const DECLINED_ON_CHARGE: &str = "4000000000000341";
/// Needs 3-D Secure: off-session charges need the cardholder.
const NEEDS_AUTH: &str = "4000002760003184";

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

async fn create_top_up(app: &TestApp, token: &str, cents: u64) -> Value {
    let r = app
        .post("/v1/wallet/top-ups", token, &json!({ "usd_cents": cents }))
        .await;
    assert_eq!(
        r.status(),
        201,
        "top-up: {}",
        r.text().await.unwrap_or_default()
    );
    r.json().await.expect("json")
}

/// A paid $25 top-up, credited: (top-up, charge id).
async fn paid_top_up(app: &TestApp, token: &str) -> (Value, String) {
    let top_up = create_top_up(app, token, 2_500).await;
    let pi = top_up["payment_intent_id"].as_str().expect("pi");
    let paid = ls(app).pay(pi, VISA).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let w = wallet_until(app, token, "credit", |w| w["balance_tft_units"] != 0).await;
    let charge = w["top_ups"][0]["charge_id"]
        .as_str()
        .expect("charge")
        .to_string();
    (top_up, charge)
}

async fn inbox_pending(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM stripe_inbox WHERE processed_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

async fn inbox_errors(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT last_error FROM stripe_inbox WHERE last_error IS NOT NULL AND processed_at IS NOT NULL")
        .fetch_all(&app.pool)
        .await
        .expect("errors")
}

async fn debit(app: &TestApp, wallet: &str, id: &str, units: i64) -> reqwest::Response {
    app.post(
        &format!("/v1/wallets/{wallet}/debits"),
        &operator(),
        &json!({ "debit_id": id, "amount_tft_units": units, "reason": "test bill" }),
    )
    .await
}

#[tokio::test]
async fn a_card_top_up_is_credited_once_at_the_quoted_price_with_its_receipt() {
    let app = stripe_app().await;
    let top_up = create_top_up(&app, &alice(), 2_500).await;
    assert!(top_up["client_secret"]
        .as_str()
        .is_some_and(|s| s.contains("_secret_")));
    assert_eq!(top_up["status"], "pending");
    assert_eq!(top_up["tft_units"], TFT_FOR_2500_CENTS);
    let pi = top_up["payment_intent_id"]
        .as_str()
        .expect("pi")
        .to_string();

    // The wallet id is in the payment intent's metadata.
    let intent = ls(&app)
        .call(Method::GET, &format!("/v1/payment_intents/{pi}"), &[])
        .await;
    assert_eq!(intent["metadata"]["wallet_id"], "alice");
    assert_eq!(intent["metadata"]["top_up_id"], top_up["top_up_id"]);

    ls(&app).pay(&pi, VISA).await;
    // The receipt is fetched and recorded just after the credit.
    let w = wallet_until(&app, &alice(), "credit and receipt", |w| {
        w["balance_tft_units"] != 0 && w["ledger"][0]["receipt_url"].is_string()
    })
    .await;
    assert_eq!(w["balance_tft_units"], TFT_FOR_2500_CENTS);
    assert_eq!(w["top_ups"][0]["status"], "credited");
    let receipt = w["ledger"][0]["receipt_url"].as_str().expect("receipt");
    assert!(receipt.starts_with("https://"), "{receipt}");
    assert_eq!(w["ledger"][0]["kind"], "top_up");
    assert_eq!(w["ledger"][0]["amount_tft_units"], TFT_FOR_2500_CENTS);

    // Stripe delivers the same event again: acknowledged, credited once.
    let succeeded = ls(&app)
        .events()
        .into_iter()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .expect("event");
    let r = ls(&app).deliver(&succeeded).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["first_delivery"], false);
    // A fresh copy under a new event id (a replay from the dashboard) is applied as a no-op.
    let mut copy = succeeded.clone();
    copy["id"] = json!("evt_replayed_copy");
    ls(&app).deliver(&copy).await;
    let started = Instant::now();
    while inbox_pending(&app).await > 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox_pending(&app).await, 0);
    let w = wallet(&app, &alice()).await;
    assert_eq!(w["balance_tft_units"], TFT_FOR_2500_CENTS);
    assert_eq!(w["ledger"].as_array().map(Vec::len), Some(1));
    assert!(inbox_errors(&app).await.is_empty());

    // The top-up reads back by id.
    let id = top_up["top_up_id"].as_str().expect("id");
    let r = app.get(&format!("/v1/wallet/top-ups/{id}"), &alice()).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.expect("json");
    assert_eq!(t["receipt_url"], receipt);
}

#[tokio::test]
async fn a_declined_card_records_the_failure_and_credits_nothing() {
    let app = stripe_app().await;
    let top_up = create_top_up(&app, &alice(), 1_000).await;
    let pi = top_up["payment_intent_id"].as_str().expect("pi");
    let answer = ls(&app).pay(pi, DECLINED_ON_CHARGE).await;
    assert!(
        answer["error"].is_object() || answer["status"] == "requires_payment_method",
        "{answer}"
    );
    let w = wallet_until(&app, &alice(), "failure", |w| {
        w["top_ups"][0]["status"] == "failed"
    })
    .await;
    assert_eq!(w["top_ups"][0]["failure_code"], "card_declined");
    assert_eq!(w["balance_tft_units"], 0);
    assert!(w["ledger"].as_array().is_some_and(Vec::is_empty));
    // The user sees it in their activity.
    let r = app.get("/v1/wallet/activity", &alice()).await;
    let a: Value = r.json().await.expect("json");
    assert!(a["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|i| i["event_type"] == "TopUpFailed"));

    // (A later successful attempt on the same intent is credited: the domain
    // tests cover it; localstripe cannot retry a failed intent.)
}

#[tokio::test]
async fn webhooks_out_of_order_change_the_ledger_once_and_correctly() {
    let app = stripe_app().await;
    ls(&app).hold(true);
    let top_up = create_top_up(&app, &alice(), 2_500).await;
    let pi = top_up["payment_intent_id"]
        .as_str()
        .expect("pi")
        .to_string();
    let paid = ls(&app).pay(&pi, VISA).await;
    let charge = paid["latest_charge"]
        .as_str()
        .expect("charge id")
        .to_string();
    ls(&app).wait_held("payment_intent.succeeded", 1).await;
    // Two partial refunds: $5, then $5 more ($10 refunded in all).
    ls(&app)
        .call(
            Method::POST,
            "/v1/refunds",
            &[("charge", &charge), ("amount", "500")],
        )
        .await;
    ls(&app).wait_held("charge.refunded", 1).await;
    ls(&app)
        .call(
            Method::POST,
            "/v1/refunds",
            &[("charge", &charge), ("amount", "500")],
        )
        .await;
    ls(&app).wait_held("charge.refunded", 2).await;
    let mut held: Vec<Value> = ls(&app)
        .take_held()
        .into_iter()
        .filter(|e| e["type"] == "payment_intent.succeeded" || e["type"] == "charge.refunded")
        .collect();
    assert_eq!(held.len(), 3);
    // Delivered newest first: the second refund, the first refund, then the payment.
    held.reverse();
    for e in &held {
        assert_eq!(ls(&app).deliver(e).await.status(), 200);
    }
    // 2,500 TFT credited, 1,000 TFT taken back (10 of 25 dollars), once.
    let expected = TFT_FOR_2500_CENTS - 1_000 * 10_000_000;
    let w = wallet_until(&app, &alice(), "credit and refunds", |w| {
        w["balance_tft_units"] == expected
    })
    .await;
    assert_eq!(w["top_ups"][0]["returned_cents"], 1_000);
    // Everything again, in yet another order: nothing changes.
    held.reverse();
    for e in &held {
        let mut again = e.clone();
        again["id"] = json!(format!("{}_again", e["id"].as_str().unwrap_or_default()));
        ls(&app).deliver(&again).await;
    }
    let started = Instant::now();
    while inbox_pending(&app).await > 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let w = wallet(&app, &alice()).await;
    assert_eq!(w["balance_tft_units"], expected);
    let sum: i64 = w["ledger"]
        .as_array()
        .expect("ledger")
        .iter()
        .map(|e| e["amount_tft_units"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(sum, expected, "balance is the sum of the ledger");
    // A failure reported after the success changes nothing.
    let mut late_failure = held
        .iter()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .expect("succeeded")
        .clone();
    late_failure["id"] = json!("evt_late_failure");
    late_failure["type"] = json!("payment_intent.payment_failed");
    late_failure["data"]["object"]["last_payment_error"] =
        json!({ "code": "card_declined", "message": "late" });
    ls(&app).deliver(&late_failure).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = wallet(&app, &alice()).await;
    assert_eq!(w["top_ups"][0]["status"], "credited");
    assert_eq!(w["balance_tft_units"], expected);
}

#[tokio::test]
async fn a_refund_and_a_dispute_take_back_what_they_bought() {
    let app = stripe_app().await;
    let (_, charge) = paid_top_up(&app, &alice()).await;
    ls(&app)
        .call(
            Method::POST,
            "/v1/refunds",
            &[("charge", &charge), ("amount", "1000")],
        )
        .await;
    let w = wallet_until(&app, &alice(), "refund", |w| {
        w["balance_tft_units"] == TFT_FOR_2500_CENTS - 1_000 * 10_000_000
    })
    .await;
    assert_eq!(w["ledger"][0]["kind"], "refund");
    ls(&app).dispute(&charge, 1_500).await;
    let w = wallet_until(&app, &alice(), "dispute", |w| w["balance_tft_units"] == 0).await;
    assert_eq!(w["ledger"][0]["kind"], "dispute");
    assert_eq!(w["top_ups"][0]["returned_cents"], 2_500);
    assert!(inbox_errors(&app).await.is_empty());
}

#[tokio::test]
async fn a_refund_of_spent_tft_is_recorded_as_debt() {
    let app = stripe_app().await;
    let (_, charge) = paid_top_up(&app, &alice()).await;
    let r = debit(&app, "alice", "bill-1", 2_000 * 10_000_000).await;
    assert_eq!(r.status(), 202);
    ls(&app)
        .call(Method::POST, "/v1/refunds", &[("charge", &charge)])
        .await;
    let w = wallet_until(&app, &alice(), "refund", |w| {
        w["balance_tft_units"].as_i64().is_some_and(|b| b < 0)
    })
    .await;
    assert_eq!(w["balance_tft_units"], -2_000 * 10_000_000i64);
}

#[tokio::test]
async fn debits_are_idempotent_and_never_go_below_zero() {
    let app = stripe_app().await;
    paid_top_up(&app, &alice()).await;
    let r = debit(&app, "alice", "bill-1", 1_000 * 10_000_000).await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.expect("json");
    let r = debit(&app, "alice", "bill-1", 1_000 * 10_000_000).await;
    assert_eq!(r.status(), 202);
    let again: Value = r.json().await.expect("json");
    assert_eq!(
        v["version"], again["version"],
        "the same debit twice debits once"
    );
    let body = expect_problem(
        debit(&app, "alice", "bill-2", 2_000 * 10_000_000).await,
        422,
    )
    .await;
    assert_eq!(body["type"], "/problems/insufficient-balance");
    // An operator's If-Match on a version the wallet is not at: 409, nothing changes.
    let r = app
        .client
        .post(app.url("/v1/wallets/alice/debits"))
        .bearer_auth(operator())
        .header("if-match", "\"1\"")
        .json(&json!({ "debit_id": "bill-3", "amount_tft_units": 1, "reason": "x" }))
        .send()
        .await
        .expect("send");
    expect_problem(r, 409).await;
    // A different amount under a used id is refused.
    expect_problem(debit(&app, "alice", "bill-1", 5).await, 422).await;
    // Users cannot debit.
    let r = app
        .post(
            "/v1/wallets/alice/debits",
            &alice(),
            &json!({ "debit_id": "x", "amount_tft_units": 1, "reason": "x" }),
        )
        .await;
    expect_problem(r, 403).await;
    // No wallet: 404.
    expect_problem(debit(&app, "nobody", "bill-1", 1).await, 404).await;
    // The view shows the one debit once it has caught up with it.
    let w = wallet_until(&app, &alice(), "the debit", |w| {
        w["version"].as_i64() >= v["version"].as_i64()
    })
    .await;
    assert_eq!(
        w["balance_tft_units"],
        TFT_FOR_2500_CENTS - 1_000 * 10_000_000
    );
}

#[tokio::test]
async fn another_users_wallet_and_top_ups_answer_404() {
    let app = stripe_app().await;
    let top_up = create_top_up(&app, &alice(), 1_000).await;
    let id = top_up["top_up_id"].as_str().expect("id");
    let version = top_up["version"].as_u64().expect("version");
    wallet_until(&app, &alice(), "view", |w| {
        w["version"].as_u64() >= Some(version)
    })
    .await;
    expect_problem(app.get("/v1/wallets/alice", &bob()).await, 404).await;
    expect_problem(
        app.get(&format!("/v1/wallet/top-ups/{id}"), &bob()).await,
        404,
    )
    .await;
    // The owner and operators read it.
    assert_eq!(
        app.get(&format!("/v1/wallet/top-ups/{id}"), &alice())
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/v1/wallets/alice", &alice()).await.status(), 200);
    assert_eq!(
        app.get("/v1/wallets/alice", &operator()).await.status(),
        200
    );
    // Bob's own wallet is empty, not Alice's.
    let w = wallet(&app, &bob()).await;
    assert_eq!(w["wallet_id"], "bob");
    assert_eq!(w["version"], 0);
    assert!(w["top_ups"].as_array().is_some_and(Vec::is_empty));
}

#[tokio::test]
async fn top_ups_answer_503_when_payments_are_not_configured() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/wallet/top-ups",
            &alice(),
            &json!({ "usd_cents": 1000 }),
        )
        .await;
    let body = expect_problem(r, 503).await;
    assert_eq!(body["type"], "/problems/not-configured");
    assert!(body["detail"]
        .as_str()
        .is_some_and(|d| d.contains("STRIPE_SECRET_KEY")));
    let r = app
        .post("/v1/wallet/setup-intents", &alice(), &json!({}))
        .await;
    expect_problem(r, 503).await;
    let w = wallet(&app, &alice()).await;
    assert_eq!(w["payments_configured"], false);
    // Out-of-range amounts are refused before Stripe is asked.
    let app = stripe_app().await;
    let r = app
        .post("/v1/wallet/top-ups", &alice(), &json!({ "usd_cents": 499 }))
        .await;
    expect_problem(r, 422).await;
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
    let pm2 = pm.clone();
    wallet_until(app, token, "card saved", move |w| {
        w["payment_methods"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["payment_method_id"] == pm2.as_str()))
    })
    .await;
    pm
}

#[tokio::test]
async fn cards_are_saved_by_setup_intent_listed_defaulted_and_detached() {
    let app = stripe_app().await;
    let first = save_card(&app, &alice(), VISA).await;
    let second = save_card(&app, &alice(), DECLINED_ON_CHARGE).await;
    let r = app.get("/v1/wallet/payment-methods", &alice()).await;
    let list: Value = r.json().await.expect("json");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let card = items
        .iter()
        .find(|c| c["payment_method_id"] == first.as_str())
        .expect("first");
    assert_eq!(
        (
            card["brand"].as_str(),
            card["last4"].as_str(),
            card["default"].as_bool()
        ),
        (Some("visa"), Some("4242"), Some(true))
    );

    let r = app
        .post(
            &format!("/v1/wallet/payment-methods/{second}/default"),
            &alice(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    expect_problem(
        app.post(
            "/v1/wallet/payment-methods/pm_unknown/default",
            &alice(),
            &json!({}),
        )
        .await,
        404,
    )
    .await;
    // Bob cannot touch Alice's card.
    let r = app
        .client
        .delete(app.url(&format!("/v1/wallet/payment-methods/{first}")))
        .bearer_auth(bob())
        .send()
        .await
        .expect("delete");
    expect_problem(r, 404).await;

    let r = app
        .client
        .delete(app.url(&format!("/v1/wallet/payment-methods/{first}")))
        .bearer_auth(alice())
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 202);
    let w = wallet_until(&app, &alice(), "detached", |w| {
        w["payment_methods"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
    })
    .await;
    assert_eq!(w["payment_methods"][0]["default"], true);
    // Stripe's payment_method.detached webhook arrives too: nothing more changes.
    let started = Instant::now();
    while !ls(&app)
        .events()
        .iter()
        .any(|e| e["type"] == "payment_method.detached")
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while inbox_pending(&app).await > 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(inbox_errors(&app).await.is_empty());
    assert_eq!(
        wallet(&app, &alice()).await["payment_methods"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

fn auto_worker(app: &TestApp) -> AutoTopUpWorker {
    AutoTopUpWorker::new(
        app.pool.clone(),
        app.payments.clone().expect("payments"),
        AutoTopUpOptions {
            interval: Duration::from_secs(3600),
            retry_after: chrono::Duration::hours(24),
            tft_price: TftPrice::from_usd_units(100_000).expect("price"),
        },
    )
}

async fn auto_top_up_events(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'wallet' AND event_type = 'TopUpCreated'
         AND payload->'TopUpCreated'->>'origin' = 'auto'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count")
}

/// How many debits the wallet's ledger shows.
fn debits_in(w: &Value) -> usize {
    w["ledger"]
        .as_array()
        .map_or(0, |l| l.iter().filter(|e| e["kind"] == "debit").count())
}

/// Runs `n` concurrent debits of `units` and as many concurrent auto top-up
/// checks from two workers.
async fn drop_concurrently(app: &TestApp, tag: &str, n: usize, units: i64) -> Vec<AutoTopUpResult> {
    let (w1, w2) = (auto_worker(app), auto_worker(app));
    let debits = (0..n).map(|i| {
        let id = format!("{tag}-{i}");
        async move { debit(app, "alice", &id, units).await.status().as_u16() }
    });
    let checks = (0..n).map(|i| {
        let w = if i % 2 == 0 { w1.clone() } else { w2.clone() };
        async move {
            // Interleave with the debits.
            tokio::time::sleep(Duration::from_millis(5 * i as u64)).await;
            w.check("alice").await.expect("check")
        }
    });
    let (statuses, mut results) = tokio::join!(
        futures::future::join_all(debits),
        futures::future::join_all(checks)
    );
    assert!(statuses.iter().all(|s| *s == 202), "debits: {statuses:?}");
    // And once more after every debit landed.
    results.push(w1.check("alice").await.expect("check"));
    results.push(w2.check("alice").await.expect("check"));
    results
}

#[tokio::test]
async fn auto_top_up_fires_exactly_once_under_concurrent_balance_drops_and_respects_the_cap() {
    let app = stripe_app().await;
    paid_top_up(&app, &alice()).await; // 2,500 TFT
    save_card(&app, &alice(), VISA).await;
    // Below 1,000 TFT, charge $10 (1,000 TFT), at most $20 a month.
    let r = app.put("/v1/wallet/auto-top-up", &alice(), &json!({ "threshold_tft_units": 1_000 * 10_000_000i64, "amount_cents": 1_000, "monthly_cap_cents": 2_000 })).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let v: Value = r.json().await.expect("json");
    let version = v["version"].as_i64().expect("version");
    app.get(&format!("/v1/wallet?min_version={version}"), &alice())
        .await;

    // Eight concurrent 200-TFT debits take the balance to 900 TFT while two
    // workers check concurrently: one charge, never two.
    let results = drop_concurrently(&app, "a", 8, 200 * 10_000_000).await;
    let charged = results
        .iter()
        .filter(|r| matches!(r, AutoTopUpResult::Charged(_)))
        .count();
    assert_eq!(charged, 1, "{results:?}");
    assert_eq!(auto_top_up_events(&app).await, 1);
    // 1,900 TFT is also where three of the eight debits leave the balance:
    // wait for the view to have all eight as well.
    let w = wallet_until(&app, &alice(), "auto credit", |w| {
        debits_in(w) == 8 && w["balance_tft_units"] == (900 + 1_000) * 10_000_000i64
    })
    .await;
    assert_eq!(w["top_ups"][0]["origin"], "auto");

    // Down again (1,900 → 900): the second and last charge the cap allows.
    let results = drop_concurrently(&app, "b", 5, 200 * 10_000_000).await;
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, AutoTopUpResult::Charged(_)))
            .count(),
        1,
        "{results:?}"
    );
    wallet_until(&app, &alice(), "second auto credit", |w| {
        debits_in(w) == 13 && w["balance_tft_units"] == (900 + 1_000) * 10_000_000i64
    })
    .await;

    // Down again: $20 used this month, the cap stops a third.
    let results = drop_concurrently(&app, "c", 5, 200 * 10_000_000).await;
    assert!(
        results
            .iter()
            .all(|r| !matches!(r, AutoTopUpResult::Charged(_))),
        "{results:?}"
    );
    assert!(results.contains(&AutoTopUpResult::Skipped("monthly cap reached")));
    assert_eq!(auto_top_up_events(&app).await, 2);
    // Stripe holds exactly the two automatic intents.
    let intents = ls(&app).call(Method::GET, "/v1/payment_intents", &[]).await;
    let auto = intents["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|i| i["metadata"]["origin"] == "auto")
        .count();
    assert_eq!(auto, 2);
}

#[tokio::test]
async fn auto_top_up_failures_are_recorded_for_the_user() {
    for (card, code) in [
        (DECLINED_ON_CHARGE, "card_declined"),
        (NEEDS_AUTH, "authentication_required"),
    ] {
        let app = stripe_app().await;
        paid_top_up(&app, &alice()).await;
        let pm = save_card(&app, &alice(), card).await;
        let r = app.put("/v1/wallet/auto-top-up", &alice(), &json!({ "threshold_tft_units": 1_000 * 10_000_000i64, "amount_cents": 1_000, "monthly_cap_cents": 5_000, "payment_method_id": pm })).await;
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.expect("json");
        app.get(
            &format!("/v1/wallet?min_version={}", v["version"]),
            &alice(),
        )
        .await;
        assert_eq!(
            debit(&app, "alice", "bill", 2_000 * 10_000_000)
                .await
                .status(),
            202
        );
        let result = auto_worker(&app).check("alice").await.expect("check");
        assert_eq!(result, AutoTopUpResult::Failed(code.to_string()), "{card}");
        let w = wallet_until(&app, &alice(), "failure", |w| {
            w["top_ups"][0]["status"] == "failed"
        })
        .await;
        assert_eq!(w["top_ups"][0]["failure_code"], code);
        assert_eq!(w["balance_tft_units"], 500 * 10_000_000i64);
        let r = app.get("/v1/wallet/activity", &alice()).await;
        let a: Value = r.json().await.expect("json");
        assert!(a["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["event_type"] == "TopUpFailed"));
        // No second charge right after a refusal.
        let again = auto_worker(&app).check("alice").await.expect("check");
        assert_eq!(
            again,
            AutoTopUpResult::Skipped("cooling down after a failure")
        );
    }
}

#[tokio::test]
async fn runway_alerts_once_per_crossing_and_the_discount_level_shows() {
    let app = stripe_app().await;
    paid_top_up(&app, &alice()).await; // 2,500 TFT
                                       // A running VM burns TFT every hour.
    let (id, _) = app.request(&alice(), &vm_body("web1")).await;
    let op = operator();
    for (path, body) in [
        ("node", json!({ "node_id": 11, "farm_id": 1 })),
        ("contract", json!({ "contract_id": 4242 })),
        (
            "running",
            json!({ "workloads": [{ "name": "web1", "state": "ok" }] }),
        ),
    ] {
        let r = app
            .post(&format!("/v1/deployments/{id}/{path}"), &op, &body)
            .await;
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.expect("json");
        app.read(&alice(), &id, v["version"].as_u64().expect("v"))
            .await;
    }
    let w = wallet(&app, &alice()).await;
    let burn = w["runway"]["hourly_burn_tft_units"].as_i64().expect("burn");
    assert!(burn > 0, "{w:#}");
    let runway = w["runway"]["runway_hours"].as_i64().expect("runway");
    assert_eq!(runway, w["balance_tft_units"].as_i64().expect("b") / burn);
    let level = w["runway"]["discount_level"]
        .as_str()
        .expect("level")
        .to_string();
    assert_ne!(level, "none", "2,500 TFT is months of a small VM: {w:#}");
    // The quote uses the wallet's balance for the discount when none is given.
    let r = app
        .post(
            "/v1/quotes",
            &alice(),
            &json!({ "spec": vm_body("q")["spec"], "certified": false }),
        )
        .await;
    let q: Value = r.json().await.expect("json");
    assert_eq!(q["discount"], level.as_str());

    // Thresholds around the current runway: only the higher one is crossed.
    let worker = |thresholds: Vec<u64>| {
        RunwayWorker::new(
            app.pool.clone(),
            TftPrice::from_usd_units(100_000).expect("price"),
            thresholds,
            Duration::from_secs(3600),
        )
    };
    let r = runway as u64;
    let w1 = worker(vec![r + 10, r / 2]);
    assert_eq!(w1.measure_once().await.expect("measure"), 1);
    assert_eq!(
        w1.measure_once().await.expect("measure"),
        0,
        "alerts once per crossing"
    );
    // The view catches up with the alert.
    let started = Instant::now();
    let alert = loop {
        let a: Value = app
            .get("/v1/wallet/activity", &alice())
            .await
            .json()
            .await
            .expect("json");
        let found = a["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["event_type"] == "RunwayAlertRaised")
            .cloned();
        if let Some(alert) = found {
            break alert;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no alert in the activity"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        alert["event"]["RunwayAlertRaised"]["threshold_hours"],
        r + 10
    );
    // A top-up lifts the runway above it: cleared, and a later fall alerts again.
    let top_up = create_top_up(&app, &alice(), 100_000).await;
    ls(&app)
        .pay(top_up["payment_intent_id"].as_str().expect("pi"), VISA)
        .await;
    wallet_until(&app, &alice(), "second credit", |w| {
        w["balance_tft_units"].as_i64().unwrap_or(0) > TFT_FOR_2500_CENTS
    })
    .await;
    assert_eq!(w1.measure_once().await.expect("measure"), 1, "cleared");
    let w = wallet_until(&app, &alice(), "alerts cleared", |w| {
        w["runway_alerts"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert!(w["runway"]["runway_hours"].as_u64().expect("runway") > r + 10);
}

async fn challenge(app: &TestApp, token: &str, account: &str, key_type: &str) -> Value {
    let r = app
        .post(
            "/v1/wallet/link-challenges",
            token,
            &json!({ "account": account, "key_type": key_type }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    r.json().await.expect("json")
}

async fn answer(
    app: &TestApp,
    token: &str,
    challenge_id: &str,
    signature: &[u8],
) -> reqwest::Response {
    app.post(
        &format!("/v1/wallet/link-challenges/{challenge_id}/signature"),
        token,
        &json!({ "signature": format!("0x{}", hex::encode(signature)) }),
    )
    .await
}

#[tokio::test]
async fn a_tfchain_account_links_with_a_valid_signature_only_once() {
    use marketplace_app::tfchain::ss58_address;
    let app = spawn_app().await;
    let sr = schnorrkel::Keypair::generate();
    let account = ss58_address(&sr.public.to_bytes(), 42);

    // A valid sr25519 signature (Substrate's context, polkadot.js's <Bytes> wrapping) links.
    let c = challenge(&app, &alice(), &account, "sr25519").await;
    let message = c["message"].as_str().expect("message");
    assert!(message.contains(&account) && message.contains("alice"));
    let sig = sr
        .sign_simple(b"substrate", format!("<Bytes>{message}</Bytes>").as_bytes())
        .to_bytes();
    let id = c["challenge_id"].as_str().expect("id");
    let r = answer(&app, &alice(), id, &sig).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let v: Value = r.json().await.expect("json");
    let w: Value = app
        .get(
            &format!("/v1/wallet?min_version={}", v["version"]),
            &alice(),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(w["linked_account"]["account"], account.as_str());
    assert_eq!(w["linked_account"]["key_type"], "sr25519");

    // The same signature replayed: the challenge is used.
    let body = expect_problem(answer(&app, &alice(), id, &sig).await, 422).await;
    assert_eq!(body["type"], "/problems/challenge-used");
    // Replayed against a new challenge: it signs another message.
    let c2 = challenge(&app, &alice(), &account, "sr25519").await;
    let body = expect_problem(
        answer(
            &app,
            &alice(),
            c2["challenge_id"].as_str().expect("id"),
            &sig,
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["type"], "/problems/signature-invalid");

    // Signed by another key: refused, and the challenge is burned.
    let c3 = challenge(&app, &alice(), &account, "sr25519").await;
    let other = schnorrkel::Keypair::generate();
    let m3 = c3["message"].as_str().expect("message");
    let wrong = other.sign_simple(b"substrate", m3.as_bytes()).to_bytes();
    let id3 = c3["challenge_id"].as_str().expect("id");
    let body = expect_problem(answer(&app, &alice(), id3, &wrong).await, 422).await;
    assert_eq!(body["type"], "/problems/signature-invalid");
    let right = sr.sign_simple(b"substrate", m3.as_bytes()).to_bytes();
    let body = expect_problem(answer(&app, &alice(), id3, &right).await, 422).await;
    assert_eq!(body["type"], "/problems/challenge-used");
    // Bob cannot answer Alice's challenge.
    let c4 = challenge(&app, &alice(), &account, "sr25519").await;
    let m4 = c4["message"].as_str().expect("message");
    let s4 = sr.sign_simple(b"substrate", m4.as_bytes()).to_bytes();
    expect_problem(
        answer(&app, &bob(), c4["challenge_id"].as_str().expect("id"), &s4).await,
        404,
    )
    .await;

    // An ed25519 account links too, replacing the first link.
    let ed = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let ed_account = ss58_address(&ed.verifying_key().to_bytes(), 42);
    let c5 = challenge(&app, &alice(), &ed_account, "ed25519").await;
    use ed25519_dalek::Signer;
    let s5 = ed
        .sign(c5["message"].as_str().expect("message").as_bytes())
        .to_bytes();
    let r = answer(
        &app,
        &alice(),
        c5["challenge_id"].as_str().expect("id"),
        &s5,
    )
    .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.expect("json");
    let w: Value = app
        .get(
            &format!("/v1/wallet?min_version={}", v["version"]),
            &alice(),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(w["linked_account"]["account"], ed_account.as_str());

    // An address whose checksum fails is refused before any challenge.
    let mut bad = account.clone();
    let last = bad.pop().expect("char");
    bad.push(if last == 'a' { 'b' } else { 'a' });
    let r = app
        .post(
            "/v1/wallet/link-challenges",
            &alice(),
            &json!({ "account": bad, "key_type": "sr25519" }),
        )
        .await;
    expect_problem(r, 422).await;
}

async fn dump_wallet_views(pool: &sqlx::PgPool) -> Value {
    sqlx::query_scalar(
        "SELECT jsonb_build_array(
            (SELECT coalesce(jsonb_agg(to_jsonb(v) ORDER BY v.wallet_id), '[]') FROM wallet_views v),
            (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.wallet_id, a.sequence), '[]') FROM wallet_activity a),
            (SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.stripe_id), '[]') FROM wallet_stripe_refs r))",
    )
    .fetch_one(pool)
    .await
    .expect("dump")
}

#[tokio::test]
async fn the_wallet_view_rebuilt_from_the_store_equals_the_live_one() {
    let app = stripe_app().await;
    let (_, charge) = paid_top_up(&app, &alice()).await;
    ls(&app)
        .call(
            Method::POST,
            "/v1/refunds",
            &[("charge", &charge), ("amount", "700")],
        )
        .await;
    ls(&app).dispute(&charge, 800).await;
    save_card(&app, &alice(), VISA).await;
    let w = wallet_until(&app, &alice(), "clawbacks", |w| {
        w["top_ups"][0]["returned_cents"] == 1_500
    })
    .await;
    let version = w["version"].as_u64().expect("version");
    // Let the card's event land too.
    let w = wallet_until(&app, &alice(), "settled", |w| {
        w["version"].as_u64() >= Some(version)
    })
    .await;
    assert_eq!(
        w["balance_tft_units"],
        TFT_FOR_2500_CENTS - 1_500 * 10_000_000i64
    );
    let live = dump_wallet_views(&app.pool).await;
    marketplace_projections::tail::rebuild(
        &app.pool,
        &marketplace_projections::wallets::WalletProjection,
        7,
    )
    .await
    .expect("rebuild");
    assert_eq!(dump_wallet_views(&app.pool).await, live);
}

#[tokio::test]
async fn a_retried_top_up_with_the_same_idempotency_key_is_the_same_top_up() {
    let app = stripe_app().await;
    let send = || {
        app.client
            .post(app.url("/v1/wallet/top-ups"))
            .bearer_auth(alice())
            .header("idempotency-key", "top-up-1")
            .json(&json!({ "usd_cents": 2500 }))
            .send()
    };
    let first: Value = send().await.expect("first").json().await.expect("json");
    let again: Value = send().await.expect("again").json().await.expect("json");
    assert_eq!(first["top_up_id"], again["top_up_id"]);
    assert_eq!(first["payment_intent_id"], again["payment_intent_id"]);
    assert_eq!(first["client_secret"], again["client_secret"]);
    let intents = ls(&app).call(Method::GET, "/v1/payment_intents", &[]).await;
    assert_eq!(intents["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_event_missing_a_field_stripe_always_sends_is_set_aside() {
    let app = stripe_app().await;
    let top_up = create_top_up(&app, &alice(), 2_500).await;
    let pi = top_up["payment_intent_id"].as_str().expect("pi");
    // What localstripe alone would send: no amount_received, confirmation_method...
    let event = json!({
        "id": "evt_incomplete", "object": "event", "type": "payment_intent.succeeded",
        "created": chrono::Utc::now().timestamp(), "livemode": false, "pending_webhooks": 1,
        "api_version": "2024-06-20",
        "data": { "object": {
            "id": pi, "object": "payment_intent", "amount": 2500, "currency": "usd",
            "status": "succeeded", "metadata": { "wallet_id": "alice" },
            "latest_charge": "ch_incomplete"
        } }
    });
    assert_eq!(ls(&app).deliver(&event).await.status(), 200);
    let started = Instant::now();
    let error = loop {
        let errors = inbox_errors(&app).await;
        if let Some(e) = errors.into_iter().next() {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not set aside");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error.contains("malformed payment intent"), "{error}");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("marketplace_stripe_inbox_set_aside 1"),
        "{metrics}"
    );
    assert!(metrics.contains("marketplace_projection_lag_events{projection=\"wallets\"}"));
    // Operators see it and can queue it again; users cannot.
    expect_problem(app.get("/v1/stripe-events", &alice()).await, 403).await;
    let listed: Value = app
        .get("/v1/stripe-events", &operator())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"][0]["event_id"], "evt_incomplete");
    let r = app
        .post(
            "/v1/stripe-events/evt_incomplete/retry",
            &operator(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    expect_problem(
        app.post(
            "/v1/stripe-events/evt_unknown/retry",
            &operator(),
            &json!({}),
        )
        .await,
        404,
    )
    .await;
    // Still malformed: set aside again, and the balance never moved.
    let started = Instant::now();
    loop {
        let attempts: i32 = sqlx::query_scalar(
            "SELECT attempts FROM stripe_inbox WHERE event_id = 'evt_incomplete' AND processed_at IS NOT NULL",
        )
        .fetch_optional(&app.pool)
        .await
        .expect("row")
        .unwrap_or(0);
        if attempts == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(error.contains("amount_"), "{error}");
    assert_eq!(wallet(&app, &alice()).await["balance_tft_units"], 0);
}

#[tokio::test]
async fn wallet_commands_replay_their_first_answer_for_the_same_idempotency_key() {
    use marketplace_app::tfchain::ss58_address;
    let app = spawn_app().await;
    let sr = schnorrkel::Keypair::generate();
    let account = ss58_address(&sr.public.to_bytes(), 42);
    let c = challenge(&app, &alice(), &account, "sr25519").await;
    let sig = sr
        .sign_simple(b"substrate", c["message"].as_str().expect("m").as_bytes())
        .to_bytes();
    let path = format!(
        "/v1/wallet/link-challenges/{}/signature",
        c["challenge_id"].as_str().expect("id")
    );
    let send = |signature: String| {
        app.client
            .post(app.url(&path))
            .bearer_auth(alice())
            .header("idempotency-key", "link-1")
            .json(&json!({ "signature": signature }))
            .send()
    };
    let first = send(hex::encode(sig)).await.expect("send");
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.expect("json");
    // A retry (the answer was lost): the same 202, not "challenge used".
    let again = send(hex::encode(sig)).await.expect("send");
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.expect("json"), first);
    // The same key for another request: refused.
    let other = send(hex::encode([0u8; 64])).await.expect("send");
    let body = expect_problem(other, 422).await;
    assert_eq!(body["type"], "/problems/idempotency-key-reused");
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = 'alice' AND event_type = 'AccountLinked'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(events, 1);
}

#[tokio::test]
async fn a_setup_intent_without_metadata_saves_the_card_of_its_customers_wallet() {
    let app = stripe_app().await;
    let r = app
        .post("/v1/wallet/setup-intents", &alice(), &json!({}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let si: Value = r.json().await.expect("json");
    ls(&app).hold(true);
    let pm = ls(&app)
        .save_card(si["setup_intent_id"].as_str().expect("si"), VISA)
        .await;
    ls(&app).wait_held("setup_intent.succeeded", 1).await;
    let mut event = ls(&app)
        .take_held()
        .into_iter()
        .find(|e| e["type"] == "setup_intent.succeeded")
        .expect("setup_intent.succeeded");
    // The API allows `metadata: null` on a SetupIntent (one made from the
    // dashboard or by another integration for the same customer).
    event["data"]["object"]["metadata"] = Value::Null;
    assert_eq!(ls(&app).deliver(&event).await.status(), 200);
    let w = wallet_until(&app, &alice(), "card saved", |w| {
        w["payment_methods"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["payment_method_id"] == pm.as_str()))
    })
    .await;
    assert_eq!(w["payment_methods"][0]["last4"], "4242");
    assert!(inbox_errors(&app).await.is_empty());
}

#[tokio::test]
async fn a_setup_intent_without_metadata_saves_its_card_even_before_any_view_knows_the_customer() {
    // No projection runners: the views never learn the wallet's customer, as
    // when a webhook outruns them; only Stripe's customer can say whose it is.
    let app = spawn_app_with(AppOptions {
        stripe: true,
        projections: false,
        ..AppOptions::default()
    })
    .await;
    let r = app
        .post("/v1/wallet/setup-intents", &alice(), &json!({}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let si: Value = r.json().await.expect("json");
    ls(&app).hold(true);
    ls(&app)
        .save_card(si["setup_intent_id"].as_str().expect("si"), VISA)
        .await;
    ls(&app).wait_held("setup_intent.succeeded", 1).await;
    let mut event = ls(&app)
        .take_held()
        .into_iter()
        .find(|e| e["type"] == "setup_intent.succeeded")
        .expect("setup_intent.succeeded");
    event["data"]["object"]["metadata"] = Value::Null;
    assert_eq!(ls(&app).deliver(&event).await.status(), 200);
    processed(&app, "setup_intent.succeeded", 1).await;
    let saved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events
          WHERE aggregate_type = 'wallet' AND aggregate_id = 'alice'
            AND event_type = 'PaymentMethodSaved'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(saved, 1, "the card is saved to alice's wallet");
    assert!(inbox_errors(&app).await.is_empty());
}

#[tokio::test]
async fn a_payment_from_an_api_version_before_2022_11_15_is_credited_by_its_charges_list() {
    let app = stripe_app().await;
    ls(&app).hold(true);
    let top_up = create_top_up(&app, &alice(), 2_500).await;
    let pi = top_up["payment_intent_id"].as_str().expect("pi");
    let paid = ls(&app).pay(pi, VISA).await;
    let charge_id = paid["latest_charge"].as_str().expect("charge").to_string();
    ls(&app).wait_held("payment_intent.succeeded", 1).await;
    let mut event = ls(&app)
        .take_held()
        .into_iter()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .expect("payment_intent.succeeded");
    // What an endpoint pinned to an older API version receives: the
    // intent's charges as a list object, and no `latest_charge`.
    let charge = ls(&app)
        .call(Method::GET, &format!("/v1/charges/{charge_id}"), &[])
        .await;
    event["api_version"] = json!("2020-08-27");
    let object = event["data"]["object"].as_object_mut().expect("object");
    object.remove("latest_charge");
    object.insert(
        "charges".into(),
        json!({
            "object": "list", "data": [charge], "has_more": false, "total_count": 1,
            "url": format!("/v1/charges?payment_intent={pi}")
        }),
    );
    assert_eq!(ls(&app).deliver(&event).await.status(), 200);
    let w = wallet_until(&app, &alice(), "credit", |w| w["balance_tft_units"] != 0).await;
    assert_eq!(w["balance_tft_units"], TFT_FOR_2500_CENTS);
    assert_eq!(w["top_ups"][0]["charge_id"], charge_id.as_str());
    assert_eq!(w["ledger"][0]["receipt_url"], charge["receipt_url"]);
    assert!(inbox_errors(&app).await.is_empty());
}

/// The inbox row of each event of `kind` seen so far: (event id, processed, last error).
async fn inbox_rows(app: &TestApp, kind: &str) -> Vec<(String, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT event_id, processed_at IS NOT NULL, last_error FROM stripe_inbox
         WHERE event_type = $1 ORDER BY created, event_id",
    )
    .bind(kind)
    .fetch_all(&app.pool)
    .await
    .expect("inbox rows")
}

/// Waits until `n` events of `kind` are in the inbox and processed.
async fn processed(app: &TestApp, kind: &str, n: usize) -> Vec<(String, bool, Option<String>)> {
    let started = Instant::now();
    loop {
        let rows = inbox_rows(app, kind).await;
        if rows.len() >= n && rows.iter().all(|(_, done, _)| *done) {
            return rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{kind}: not all processed: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn refunds_and_disputes_of_charges_that_are_not_the_marketplaces_are_skipped() {
    let app = stripe_app().await;
    // Another product on the same Stripe account: its own payment intent,
    // without the marketplace's metadata, paid, refunded and disputed.
    let other = ls(&app)
        .call(
            Method::POST,
            "/v1/payment_intents",
            &[("amount", "1500"), ("currency", "usd")],
        )
        .await;
    let pi = other["id"].as_str().expect("pi").to_string();
    let paid = ls(&app).pay(&pi, VISA).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let charge_id = paid["latest_charge"].as_str().expect("charge").to_string();
    ls(&app)
        .call(
            Method::POST,
            "/v1/refunds",
            &[("charge", &charge_id), ("amount", "500")],
        )
        .await;
    ls(&app).dispute(&charge_id, 1_000).await;
    // And a charge made without a payment intent (the legacy Charges API).
    let mut legacy = ls(&app)
        .call(Method::GET, &format!("/v1/charges/{charge_id}"), &[])
        .await;
    legacy["id"] = json!("ch_legacy_other_product");
    legacy["payment_intent"] = Value::Null;
    legacy["amount_refunded"] = json!(1500);
    legacy["refunded"] = json!(true);
    let event = json!({
        "id": "evt_legacy_refund", "object": "event", "type": "charge.refunded",
        "api_version": "2024-06-20", "created": chrono::Utc::now().timestamp(),
        "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": legacy }
    });
    assert_eq!(ls(&app).deliver(&event).await.status(), 200);

    // Each is recognised as not ours and done with, not retried until set aside.
    let refunds = processed(&app, "charge.refunded", 2).await;
    let disputes = processed(&app, "charge.dispute.created", 1).await;
    for (id, _, error) in refunds.iter().chain(&disputes) {
        assert_eq!(error, &None, "{id}");
    }
    assert!(inbox_errors(&app).await.is_empty());
    let wallet_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'wallet'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(wallet_events, 0, "no wallet was touched");
}

#[tokio::test]
async fn a_refund_of_ours_that_arrives_before_the_payment_waits_even_when_no_view_knows_it() {
    // No projection runners: the wallet views know neither the intent nor
    // the charge, so only Stripe's own metadata can say the refund is ours.
    let app = spawn_app_with(AppOptions {
        stripe: true,
        projections: false,
        ..AppOptions::default()
    })
    .await;
    ls(&app).hold(true);
    let top_up = create_top_up(&app, &alice(), 2_500).await;
    let pi = top_up["payment_intent_id"].as_str().expect("pi");
    let paid = ls(&app).pay(pi, VISA).await;
    let charge_id = paid["latest_charge"].as_str().expect("charge").to_string();
    ls(&app).wait_held("payment_intent.succeeded", 1).await;
    ls(&app)
        .call(
            Method::POST,
            "/v1/refunds",
            &[("charge", &charge_id), ("amount", "500")],
        )
        .await;
    ls(&app).wait_held("charge.refunded", 1).await;
    let held = ls(&app).take_held();
    let of = |kind: &str| {
        held.iter()
            .find(|e| e["type"] == kind)
            .cloned()
            .expect("held event")
    };
    let refund = of("charge.refunded");
    assert_eq!(ls(&app).deliver(&refund).await.status(), 200);
    // Retried while its payment is not credited, never done with.
    let started = Instant::now();
    loop {
        let (attempts, done): (i32, bool) = sqlx::query_as(
            "SELECT attempts, processed_at IS NOT NULL FROM stripe_inbox WHERE event_id = $1",
        )
        .bind(refund["id"].as_str().expect("id"))
        .fetch_one(&app.pool)
        .await
        .expect("row");
        assert!(!done, "a refund of ours was skipped before its payment");
        if attempts >= 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "not retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ls(&app)
            .deliver(&of("payment_intent.succeeded"))
            .await
            .status(),
        200
    );
    processed(&app, "charge.refunded", 1).await;
    let count = |kind: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM events WHERE aggregate_id = 'alice' AND event_type = $1",
            )
            .bind(kind)
            .fetch_one(&pool)
            .await
            .expect("count")
        }
    };
    assert_eq!(count("TopUpCredited").await, 1);
    assert_eq!(count("RefundRecorded").await, 1);
    assert!(inbox_errors(&app).await.is_empty());
}

#[tokio::test]
async fn a_receipt_that_cannot_be_fetched_does_not_hold_back_the_credit() {
    let app = stripe_app().await;
    ls(&app).fail_charge_reads(true);
    let top_up = create_top_up(&app, &alice(), 2_500).await;
    let pi = top_up["payment_intent_id"].as_str().expect("pi");
    ls(&app).pay(pi, VISA).await;
    // Credited at once, while the receipt cannot be read.
    let w = wallet_until(&app, &alice(), "credit", |w| w["balance_tft_units"] != 0).await;
    assert_eq!(w["balance_tft_units"], TFT_FOR_2500_CENTS);
    assert_eq!(w["top_ups"][0]["status"], "credited");
    assert_eq!(w["ledger"][0]["receipt_url"], Value::Null);
    // The receipt is retried on its own, and attached once it can be read.
    let started = Instant::now();
    loop {
        let rows = inbox_rows(&app, "payment_intent.succeeded").await;
        if rows
            .iter()
            .any(|(_, done, e)| !done && e.as_deref().is_some_and(|e| e.contains("receipt")))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "receipt not retried: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ls(&app).fail_charge_reads(false);
    let w = wallet_until(&app, &alice(), "receipt", |w| {
        w["ledger"][0]["receipt_url"].is_string()
    })
    .await;
    let receipt = w["ledger"][0]["receipt_url"].as_str().expect("receipt");
    assert!(receipt.starts_with("https://"), "{receipt}");
    assert_eq!(w["top_ups"][0]["receipt_url"], receipt);
    assert_eq!(w["balance_tft_units"], TFT_FOR_2500_CENTS);
    assert_eq!(w["ledger"].as_array().map(Vec::len), Some(1));
    processed(&app, "payment_intent.succeeded", 1).await;
    let credits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = 'alice' AND event_type = 'TopUpCredited'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(credits, 1, "credited exactly once");
    assert!(inbox_errors(&app).await.is_empty());
}

#[path = "wallet_statements.rs"]
mod statements;
