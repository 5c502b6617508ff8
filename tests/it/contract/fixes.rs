//! What the fuzzer found the server doing against its document, fixed in
//! the server: each answer here is what the document now says.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn the_server_reads_requests_as_the_document_describes_them() {
    let app = spawn_app().await;

    // `If-Match` is a version, quoted or not; an empty or other value is
    // malformed (it was taken as absent, or its quotes trimmed away).
    let (id, _) = app.request(&alice(), &vm_body("web1")).await;
    for bad in ["", "\"\"1\"\"", "W/\"1\"", "one"] {
        let r = app
            .client
            .post(app.url(&format!("/v1/deployments/{id}/cancel")))
            .bearer_auth(alice())
            .header("if-match", bad)
            .json(&json!({ "reason": "x" }))
            .send()
            .await
            .expect("send");
        expect_problem(r, 400).await;
    }

    // A number with a zero fraction is the integer JSON Schema says it is;
    // an integer beyond int64 (every documented integer's format) is refused.
    let mut body = vm_body("web2");
    body["spec"]["size"]["cpu"] = json!(2.0);
    let r = app.post("/v1/deployments", &alice(), &body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let mut body = vm_body("web3");
    body["spec"]["size"]["cpu"] = json!(2.5);
    let problem = expect_problem(app.post("/v1/deployments", &alice(), &body).await, 422).await;
    // (serde buffers a tagged enum's body, so the path stops at `spec`)
    assert!(
        problem["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("spec")),
        "{problem}"
    );
    let r = app
        .client
        .post(app.url("/v1/quotes"))
        .bearer_auth(alice())
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"spec": {}, "balance_tft_units": 9223372036854775808}}"#,
            vm_body("x")["spec"]
        ))
        .send()
        .await
        .expect("send");
    let problem = expect_problem(r, 422).await;
    assert_eq!(problem["field"], "balance_tft_units", "{problem}");
    let r = app
        .get("/v1/nodes?min_uptime_seconds=9223372036854775808", &alice())
        .await;
    expect_problem(r, 400).await;

    // A negative `after` is refused even beside a `Last-Event-ID`.
    let r = app
        .client
        .get(app.url(&format!("/v1/deployments/{id}/events?after=-1")))
        .bearer_auth(alice())
        .header("last-event-id", "1")
        .send()
        .await
        .expect("send");
    expect_problem(r, 400).await;

    // A provider with no farm yet gets its malformed filter refused, not an
    // empty page; an empty alliance cursor is malformed too.
    let farmer = token("farmer-without-farms", &["cloud-provider"]);
    let r = app.get("/v1/provider/nodes?status=sideways", &farmer).await;
    expect_problem(r, 400).await;
    let r = app.get("/v1/alliances?cursor=", &farmer).await;
    expect_problem(r, 400).await;

    // An audit search's text filter is 1 to 200 characters: empty is not "any".
    let r = app.get("/v1/audit/events?event_type=", &operator()).await;
    expect_problem(r, 400).await;
}

/// What the fuzzer found the server refusing as malformed although the
/// document allowed it, now answered as what it is: a rule across fields
/// gets its own problem type, a node missing from the catalog is a rule,
/// and a text holding U+0000 (which PostgreSQL cannot store) is refused
/// naming its field, where it used to fail its whole commit with a 503.
#[tokio::test]
async fn rules_across_fields_and_unstorable_texts_get_their_own_answers() {
    use crate::alliances::{alliance_grid, found_body, provider, this_month};
    let grid = alliance_grid(this_month()).await;
    let app = &grid.app;
    crate::nodes_api::approve_farm(app, "p1", 1).await;
    let rule_of = |p: &serde_json::Value| p["type"].as_str().unwrap_or_default().to_string();

    // Fixed shares that do not make the whole; SLA tiers out of order.
    let mut body = found_body("Pool");
    body["rule"] = json!({ "kind": "fixed", "shares": { "p1": 9_000 } });
    let p = expect_problem(app.post("/v1/alliances", &provider("p1"), &body).await, 422).await;
    assert_eq!(rule_of(&p), "/problems/shares-must-sum-to-whole", "{p:#}");
    let mut body = found_body("Pool");
    body["sla"]["tiers"] = json!([
        { "below_bps": 9000, "credit_bps": 1000 },
        { "below_bps": 9500, "credit_bps": 2500 }
    ]);
    let p = expect_problem(app.post("/v1/alliances", &provider("p1"), &body).await, 422).await;
    assert_eq!(rule_of(&p), "/problems/sla-tiers-out-of-order", "{p:#}");
    // A rule kind that lists no shares may not carry any.
    let mut body = found_body("Pool");
    body["rule"] = json!({ "kind": "equal", "shares": { "p1": 10_000 } });
    let p = expect_problem(app.post("/v1/alliances", &provider("p1"), &body).await, 422).await;
    assert_eq!(rule_of(&p), "/problems/invalid-command", "{p:#}");

    // A node that is not in the catalog.
    let r = app
        .post("/v1/alliances", &provider("p1"), &found_body("Pool"))
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let p = expect_problem(
        app.post(
            &format!("/v1/alliances/{id}/nodes"),
            &provider("p1"),
            &json!({ "node_id": 4_000_000_000u32 }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(rule_of(&p), "/problems/unknown-node", "{p:#}");

    // Discount tiers whose levels do not rise.
    let current: serde_json::Value = app
        .get("/v1/pricing", &operator())
        .await
        .json()
        .await
        .expect("json");
    let mut policy = current["policy"].clone();
    policy["discounts"] = json!([
        { "level": "silver", "min_half_months": 3, "percent": 30 },
        { "level": "bronze", "min_half_months": 6, "percent": 40 }
    ]);
    let r = app.put("/v1/pricing", &operator(), &policy).await;
    let p = expect_problem(r, 422).await;
    assert_eq!(
        rule_of(&p),
        "/problems/discount-tiers-out-of-order",
        "{p:#}"
    );

    // U+0000 in a text, or in a key: refused naming the field, nothing written.
    let (deployment, _) = app.request(&alice(), &vm_body("nul1")).await;
    let events = |id: String| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("count")
    };
    let before = events(deployment.clone()).await;
    let p = expect_problem(
        app.post(
            &format!("/v1/deployments/{deployment}/cancel"),
            &alice(),
            &json!({ "reason": "bye\u{0}" }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["field"], "reason", "{p:#}");
    assert_eq!(events(deployment.clone()).await, before);
    let mut body = found_body("Pool");
    body["rule"] = json!({ "kind": "fixed", "shares": { "p\u{0}1": 10_000 } });
    let p = expect_problem(app.post("/v1/alliances", &provider("p1"), &body).await, 422).await;
    assert_eq!(p["field"], "rule.shares.p\u{0}1", "{p:#}");
}
