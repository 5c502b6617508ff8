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
