//! Provider requests and the pricing policy through HTTP, for all three roles.

use crate::common::*;
use serde_json::{json, Value};

fn farmer() -> String {
    token("farmer", &["cloud-provider"])
}
fn other_farmer() -> String {
    token("other-farmer", &["cloud-provider"])
}

fn request_body(farm_id: u32) -> Value {
    json!({
        "company": "Green Edge BV",
        "contact_email": "ops@greenedge.example",
        "farm_id": farm_id,
        "node_ids": [11, 12, 13],
        "country": "Belgium",
        "message": "Three certified nodes in Ghent"
    })
}

async fn accepted_version(r: reqwest::Response) -> u64 {
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    r.json::<Value>().await.expect("json")["version"]
        .as_u64()
        .expect("version")
}

async fn read_request(app: &TestApp, token: &str, farm: u32, version: u64) -> Value {
    let r = app
        .get(
            &format!("/v1/provider-requests/{farm}?min_version={version}"),
            token,
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    r.json().await.expect("json")
}

#[tokio::test]
async fn a_provider_request_goes_through_review() {
    let app = spawn_app().await;
    let v = accepted_version(
        app.post("/v1/provider-requests", &farmer(), &request_body(7))
            .await,
    )
    .await;
    let r = read_request(&app, &farmer(), 7, v).await;
    assert_eq!(
        (r["status"].as_str(), r["round"].as_i64()),
        (Some("submitted"), Some(1))
    );
    assert_eq!(r["node_ids"], json!([11, 12, 13]));

    // One open request per farm.
    let r = app
        .post("/v1/provider-requests", &other_farmer(), &request_body(7))
        .await;
    expect_problem(r, 409).await;

    // The operator asks; the provider answers; the operator approves.
    let op = operator();
    let v = accepted_version(
        app.post(
            "/v1/provider-requests/7/request-information",
            &op,
            &json!({ "question": "Which uplink?" }),
        )
        .await,
    )
    .await;
    assert_eq!(
        read_request(&app, &farmer(), 7, v).await["status"],
        "information_requested"
    );
    // Only its provider answers; another provider is told it does not exist.
    let r = app
        .post(
            "/v1/provider-requests/7/answer",
            &other_farmer(),
            &json!({ "answer": "x" }),
        )
        .await;
    expect_problem(r, 404).await;
    let v = accepted_version(
        app.post(
            "/v1/provider-requests/7/answer",
            &farmer(),
            &json!({ "answer": "10 Gbit/s" }),
        )
        .await,
    )
    .await;
    let r = read_request(&app, &op, 7, v).await;
    assert_eq!(
        (r["status"].as_str(), r["last_answer"].as_str()),
        (Some("submitted"), Some("10 Gbit/s"))
    );
    let v = accepted_version(
        app.post("/v1/provider-requests/7/approve", &op, &json!({}))
            .await,
    )
    .await;
    assert_eq!(
        read_request(&app, &farmer(), 7, v).await["status"],
        "approved"
    );

    // Approved: no second request for the farm.
    let r = app
        .post("/v1/provider-requests", &farmer(), &request_body(7))
        .await;
    expect_problem(r, 409).await;
}

#[tokio::test]
async fn roles_and_tenancy_on_provider_requests() {
    let app = spawn_app().await;
    accepted_version(
        app.post("/v1/provider-requests", &farmer(), &request_body(7))
            .await,
    )
    .await;
    let v = accepted_version(
        app.post("/v1/provider-requests", &other_farmer(), &request_body(8))
            .await,
    )
    .await;
    read_request(&app, &other_farmer(), 8, v).await;

    // Users and providers cannot review.
    for t in [alice(), farmer()] {
        let r = app
            .post("/v1/provider-requests/7/approve", &t, &json!({}))
            .await;
        expect_problem(r, 403).await;
    }
    // A user cannot apply or read requests.
    expect_problem(
        app.post("/v1/provider-requests", &alice(), &request_body(9))
            .await,
        403,
    )
    .await;
    expect_problem(app.get("/v1/provider-requests", &alice()).await, 403).await;
    // Another provider's request is not found.
    expect_problem(
        app.get("/v1/provider-requests/7", &other_farmer()).await,
        404,
    )
    .await;
    expect_problem(
        app.post(
            "/v1/provider-requests/7/withdraw",
            &other_farmer(),
            &json!({}),
        )
        .await,
        404,
    )
    .await;

    // A provider lists only its own; the operator's queue lists all, oldest first.
    let mine: Value = app
        .get("/v1/provider-requests", &farmer())
        .await
        .json()
        .await
        .expect("json");
    let farms: Vec<i64> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["farm_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(farms, vec![7]);
    let queue: Value = app
        .get("/v1/provider-requests?status=submitted", &operator())
        .await
        .json()
        .await
        .expect("json");
    let farms: Vec<i64> = queue["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["farm_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(farms, vec![7, 8], "oldest first");
    let page: Value = app
        .get("/v1/provider-requests?limit=1", &operator())
        .await
        .json()
        .await
        .expect("json");
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let next: Value = app
        .get(
            &format!("/v1/provider-requests?limit=1&cursor={cursor}"),
            &operator(),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(next["items"][0]["farm_id"], 8);

    // Rejection with a reason, then a second round.
    let r = app
        .post(
            "/v1/provider-requests/7/reject",
            &operator(),
            &json!({ "reason": "" }),
        )
        .await;
    expect_problem(r, 422).await;
    accepted_version(
        app.post(
            "/v1/provider-requests/7/reject",
            &operator(),
            &json!({ "reason": "No SLA" }),
        )
        .await,
    )
    .await;
    let v = accepted_version(
        app.post("/v1/provider-requests", &farmer(), &request_body(7))
            .await,
    )
    .await;
    let r = read_request(&app, &farmer(), 7, v).await;
    assert_eq!(
        (r["round"].as_i64(), r["last_reason"].as_str()),
        (Some(2), Some("No SLA"))
    );

    // Bad input: nothing stored.
    let before = app.total_events().await;
    let mut bad = request_body(9);
    bad["contact_email"] = json!("not-an-email");
    let p = expect_problem(
        app.post("/v1/provider-requests", &farmer(), &bad).await,
        422,
    )
    .await;
    assert_eq!(p["field"], "contact_email");
    let mut bad = request_body(9);
    bad["node_ids"] = json!([]);
    expect_problem(
        app.post("/v1/provider-requests", &farmer(), &bad).await,
        422,
    )
    .await;
    assert_eq!(app.total_events().await, before);
}

#[tokio::test]
async fn a_pricing_change_moves_the_next_quote_and_is_in_the_history() {
    let app = spawn_app().await;
    async fn quote(app: &TestApp) -> Value {
        let body = json!({ "spec": vm_body("x")["spec"] });
        app.post("/v1/quotes", &alice(), &body)
            .await
            .json()
            .await
            .expect("quote")
    }
    let before = quote(&app).await;
    assert_eq!(before["hourly_usd_units"], 157_500);

    let current: Value = app
        .get("/v1/pricing", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(current["version"], 0);
    assert_eq!(current["policy"]["cu_per_hour"], 100_000);

    let mut policy = current["policy"].clone();
    policy["cu_per_hour"] = json!(200_000);
    // Only operators change prices.
    let r = app.put("/v1/pricing", &alice(), &policy).await;
    expect_problem(r, 403).await;
    let mut invalid = policy.clone();
    invalid["certified_multiplier_bps"] = json!(5);
    let r = app.put("/v1/pricing", &operator(), &invalid).await;
    let p = expect_problem(r, 422).await;
    assert_eq!(p["field"], "certified_multiplier_bps");

    let r = app.put("/v1/pricing", &operator(), &policy).await;
    assert_eq!(r.status(), 202);

    // The very next quote uses the new price: 0.02 + 0.00175 + 0.004.
    let after = quote(&app).await;
    assert_eq!(after["hourly_usd_units"], 257_500);
    let current: Value = app
        .get("/v1/pricing", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(current["version"], 1);

    // The same policy again changes nothing.
    let r = app.put("/v1/pricing", &operator(), &policy).await;
    expect_problem(r, 422).await;

    // The history shows the change, once the view has it.
    let mut history = Value::Null;
    for _ in 0..100 {
        history = app
            .get("/v1/pricing/history", &operator())
            .await
            .json()
            .await
            .expect("json");
        if history["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(history["items"][0]["version"], 1);
    assert_eq!(history["items"][0]["changed_by"], "ops");
    assert_eq!(history["items"][0]["policy"]["cu_per_hour"], 200_000);
    expect_problem(app.get("/v1/pricing/history", &alice()).await, 403).await;
}

#[tokio::test]
async fn prices_stay_up_and_current_when_the_pricing_view_is_behind() {
    // No projection runners: the pricing view never learns of the change.
    let app = spawn_app_with(AppOptions {
        projections: false,
        ..AppOptions::default()
    })
    .await;
    let current: Value = app
        .get("/v1/pricing", &alice())
        .await
        .json()
        .await
        .expect("json");
    let mut policy = current["policy"].clone();
    policy["cu_per_hour"] = json!(200_000);
    let r = app.put("/v1/pricing", &operator(), &policy).await;
    assert_eq!(r.status(), 202);
    // Once the bounded wait for the view is over, the quote is priced by
    // the policy folded from the store: the new one, not an error.
    let body = json!({ "spec": vm_body("x")["spec"] });
    let r = app.post("/v1/quotes", &alice(), &body).await;
    assert_eq!(r.status(), 200);
    let quote: Value = r.json().await.expect("quote");
    assert_eq!(quote["hourly_usd_units"], 257_500);
    let current: Value = app
        .get("/v1/pricing", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(current["version"], 1);
}
