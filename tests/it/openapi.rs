//! The OpenAPI document stays true: every documented operation exists and
//! answers with documented statuses, nothing routed is undocumented, and
//! real responses fit their documented schemas.

use crate::common::*;
use serde_json::{json, Value};

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Checks `value` against a (subset of) JSON Schema as utoipa emits it:
/// objects with properties/required, arrays, scalar types, oneOf, null.
fn check(doc: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(options) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        let fits = options.iter().any(|o| {
            let mut e = Vec::new();
            check(doc, o, value, path, &mut e);
            e.is_empty()
        });
        if !fits {
            errors.push(format!("{path}: fits none of the documented alternatives"));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if value.is_null() {
        if !types.is_empty() && !types.contains(&"null") {
            errors.push(format!("{path}: null but documented as {types:?}"));
        }
        return;
    }
    let actual = match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Null => "null",
    };
    let fits_type = types.is_empty()
        || types.contains(&actual)
        || (actual == "integer" && types.contains(&"number"));
    if !fits_type {
        errors.push(format!("{path}: {actual} but documented as {types:?}"));
        return;
    }
    if let (Value::Object(map), Some(props)) =
        (value, schema.get("properties").and_then(Value::as_object))
    {
        for key in map.keys() {
            if !props.contains_key(key) {
                errors.push(format!("{path}.{key}: not documented"));
            }
        }
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().unwrap_or_default();
            if !map.contains_key(req) {
                errors.push(format!("{path}.{req}: documented as required but missing"));
            }
        }
        for (key, sub) in props {
            if let Some(v) = map.get(key) {
                check(doc, sub, v, &format!("{path}.{key}"), errors);
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
}

pub(crate) fn response_schema<'a>(
    doc: &'a Value,
    path: &str,
    method: &str,
    status: u16,
) -> &'a Value {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "{method} {path} does not document {status}"
    );
    &response["content"]
        .as_object()
        .and_then(|c| c.values().next())
        .expect("documented body")["schema"]
}

#[track_caller]
pub(crate) fn assert_fits(doc: &Value, schema: &Value, value: &Value) {
    let mut errors = Vec::new();
    check(doc, schema, value, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "response does not fit its schema: {errors:#?}\n{value:#}"
    );
}

#[tokio::test]
async fn the_document_describes_what_the_api_does() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");

    let expected = [
        ("/v1/deployments", "post"),
        ("/v1/deployments", "get"),
        ("/v1/deployments/{id}", "get"),
        ("/v1/deployments/{id}/events", "get"),
        ("/v1/deployments/{id}/resize", "post"),
        ("/v1/deployments/{id}/cancel", "post"),
        ("/v1/deployments/{id}/node", "post"),
        ("/v1/deployments/{id}/contract", "post"),
        ("/v1/deployments/{id}/running", "post"),
        ("/v1/deployments/{id}/failed", "post"),
        ("/v1/deployments/{id}/grace-period/start", "post"),
        ("/v1/deployments/{id}/grace-period/end", "post"),
        ("/v1/deployments/{id}/delete", "post"),
        ("/v1/quotes", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/v1/pricing", "get"),
        ("/v1/pricing", "put"),
        ("/v1/pricing/history", "get"),
        ("/v1/provider-requests", "get"),
        ("/v1/provider-requests", "post"),
        ("/v1/provider-requests/{farm_id}", "get"),
        ("/v1/provider-requests/{farm_id}/answer", "post"),
        ("/v1/provider-requests/{farm_id}/approve", "post"),
        ("/v1/provider-requests/{farm_id}/reject", "post"),
        (
            "/v1/provider-requests/{farm_id}/request-information",
            "post",
        ),
        ("/v1/provider-requests/{farm_id}/withdraw", "post"),
        ("/v1/nodes", "get"),
        ("/v1/nodes/{node_id}", "get"),
        ("/v1/nodes/{node_id}/maintenance", "post"),
        ("/v1/nodes/{node_id}/maintenance/{window_id}", "put"),
        ("/v1/nodes/{node_id}/maintenance/{window_id}/cancel", "post"),
        ("/v1/audit/verify", "get"),
        ("/v1/audit/access-log", "get"),
        ("/v1/audit/aggregates/{aggregate_type}/{id}/diff", "get"),
        ("/v1/audit/aggregates/{aggregate_type}/{id}/events", "get"),
        ("/v1/audit/aggregates/{aggregate_type}/{id}/state", "get"),
        ("/v1/audit/checkpoints", "get"),
        ("/v1/audit/correlations/{correlation_id}", "get"),
        ("/v1/audit/events", "get"),
        ("/v1/notifications", "get"),
        ("/v1/notifications/stream", "get"),
        ("/v1/notifications/{id}/read", "post"),
        ("/v1/notifications/read", "post"),
        ("/v1/webhook-endpoints", "post"),
        ("/v1/webhook-endpoints", "get"),
        ("/v1/webhook-endpoints/{id}", "delete"),
        ("/v1/webhook-endpoints/{id}/deliveries", "get"),
        (
            "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver",
            "post",
        ),
        ("/v1/provider/farms", "get"),
        ("/v1/provider/nodes", "get"),
        ("/v1/provider/maintenance", "get"),
        ("/v1/webhooks/stripe", "post"),
        ("/v1/operator/dead-letters", "get"),
        ("/v1/operator/dead-letters/retry", "post"),
        ("/v1/wallet", "get"),
        ("/v1/wallets/{wallet_id}", "get"),
        ("/v1/wallet/activity", "get"),
        ("/v1/wallet/statements/{month}", "get"),
        ("/v1/wallets/{wallet_id}/statements/{month}", "get"),
        ("/v1/wallet/link-challenges", "post"),
        (
            "/v1/wallet/link-challenges/{challenge_id}/signature",
            "post",
        ),
        ("/v1/wallet/setup-intents", "post"),
        ("/v1/wallet/payment-methods", "get"),
        (
            "/v1/wallet/payment-methods/{payment_method_id}/default",
            "post",
        ),
        ("/v1/wallet/payment-methods/{payment_method_id}", "delete"),
        ("/v1/wallet/top-ups", "post"),
        ("/v1/wallet/top-ups/{top_up_id}", "get"),
        ("/v1/wallet/auto-top-up", "put"),
        ("/v1/wallet/auto-top-up", "delete"),
        ("/v1/wallets/{wallet_id}/debits", "post"),
        ("/v1/wallet/subscriptions", "post"),
        ("/v1/wallet/subscriptions/{subscription_id}", "get"),
        ("/v1/wallet/subscriptions/{subscription_id}", "delete"),
        ("/v1/wallet/subscriptions/{subscription_id}/cancel", "post"),
        ("/v1/stripe-events", "get"),
        ("/v1/stripe-events/{event_id}/retry", "post"),
        ("/v1/alliances", "get"),
        ("/v1/alliances", "post"),
        ("/v1/alliances/{id}", "get"),
        ("/v1/alliances/{id}/dissolve", "post"),
        ("/v1/alliances/{id}/invitation/accept", "post"),
        ("/v1/alliances/{id}/invitation/decline", "post"),
        ("/v1/alliances/{id}/invitations", "post"),
        ("/v1/alliances/{id}/leave", "post"),
        ("/v1/alliances/{id}/nodes", "post"),
        ("/v1/alliances/{id}/nodes/{node_id}/withdraw", "post"),
        ("/v1/alliances/{id}/payout-account/challenges", "post"),
        (
            "/v1/alliances/{id}/payout-account/challenges/{challenge_id}/signature",
            "post",
        ),
        ("/v1/alliances/{id}/proposals/{proposal}/votes", "post"),
        ("/v1/alliances/{id}/rule", "put"),
        ("/v1/alliances/{id}/settlements", "get"),
        ("/v1/alliances/{id}/sla", "put"),
        ("/v1/alliances/{id}/statements/{period}", "get"),
        ("/v1/me", "get"),
        ("/v1/me", "patch"),
        ("/v1/me/contact-email/verification", "post"),
        ("/v1/me/contact-email/verify", "post"),
        ("/v1/users", "get"),
        ("/v1/users/{user_id}", "get"),
    ];
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            documented.push((path.clone(), method.clone()));
        }
    }
    documented.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    want.sort();
    assert_eq!(documented, want, "documented operations");

    // Every documented operation is routed: without a token it answers a
    // documented 401 (the health checks answer 200), never a 404 or 405.
    let some_id = uuid::Uuid::new_v4().to_string();
    for (path, method) in &documented {
        let url = app.url(
            &path
                .replace("{id}", &some_id)
                .replace("{farm_id}", "7")
                .replace("{node_id}", "11")
                .replace("{window_id}", &some_id)
                .replace("{wallet_id}", "alice")
                .replace("{user_id}", "alice")
                .replace("{challenge_id}", &some_id)
                .replace("{top_up_id}", &some_id)
                .replace("{payment_method_id}", "pm_test")
                .replace("{event_id}", "evt_test")
                .replace("{month}", "2026-11")
                .replace("{period}", "2026-11")
                .replace("{proposal}", "1")
                .replace("{correlation_id}", &some_id),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let mut request = app.client.request(method.clone(), &url);
        if method != reqwest::Method::GET {
            request = request.json(&json!({}));
        }
        let r = request.send().await.expect("send");
        let method = method.as_str().to_lowercase();
        let status = r.status().as_u16();
        let is_health = ["/healthz", "/readyz", "/metrics"].contains(&path.as_str());
        // Stripe authenticates by signature, not by token: unsigned is 400.
        let expected = match path.as_str() {
            _ if is_health => 200,
            "/v1/webhooks/stripe" => 400,
            _ => 401,
        };
        assert_eq!(status, expected, "{method} {path}");
        if path == "/metrics" {
            assert!(r.headers()["content-type"]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/plain")));
            continue;
        }
        let body: Value = r.json().await.expect("json body");
        assert_fits(&doc, response_schema(&doc, path, &method, status), &body);
    }

    // Real answers fit their documented schemas.
    let r = app
        .post("/v1/deployments", &alice(), &vm_body("web1"))
        .await;
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.expect("json");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/deployments", "post", 202),
        &accepted,
    );
    let id = accepted["id"].as_str().expect("id");

    let detail = app.read(&alice(), id, 1).await;
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/deployments/{id}", "get", 200),
        &detail,
    );
    let page: Value = app
        .get("/v1/deployments", &alice())
        .await
        .json()
        .await
        .expect("page");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/deployments", "get", 200),
        &page,
    );
    let (k8s, _) = app.request(&alice(), &k8s_body("cluster")).await;
    let detail = app.read(&alice(), &k8s, 1).await;
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/deployments/{id}", "get", 200),
        &detail,
    );

    let quote: Value = app
        .post(
            "/v1/quotes",
            &alice(),
            &json!({ "spec": vm_body("x")["spec"] }),
        )
        .await
        .json()
        .await
        .expect("quote");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/quotes", "post", 200),
        &quote,
    );

    let problem: Value = app
        .post("/v1/deployments", &alice(), &json!({ "name": "x" }))
        .await
        .json()
        .await
        .expect("problem");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/deployments", "post", 422),
        &problem,
    );

    // Supply-side answers fit too.
    let farmer = token("farmer", &["cloud-provider"]);
    let submit = json!({
        "company": "Green Edge BV", "contact_email": "ops@greenedge.example",
        "farm_id": 7, "node_ids": [1, 2], "country": "Belgium"
    });
    assert_eq!(
        app.post("/v1/provider-requests", &farmer, &submit)
            .await
            .status(),
        202
    );
    let r = app
        .get("/v1/provider-requests/7?min_version=1", &farmer)
        .await;
    assert_eq!(r.status(), 200);
    let request: Value = r.json().await.expect("json");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/provider-requests/{farm_id}", "get", 200),
        &request,
    );
    let pricing: Value = app
        .get("/v1/pricing", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/pricing", "get", 200),
        &pricing,
    );
    let nodes: Value = app
        .get("/v1/nodes", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_fits(&doc, response_schema(&doc, "/v1/nodes", "get", 200), &nodes);

    // Wallet answers fit too.
    let wallet: Value = app
        .get("/v1/wallet", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/wallet", "get", 200),
        &wallet,
    );
    let activity: Value = app
        .get("/v1/wallet/activity", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/wallet/activity", "get", 200),
        &activity,
    );
    let r = app
        .post(
            "/v1/wallet/top-ups",
            &alice(),
            &json!({ "usd_cents": 1000 }),
        )
        .await;
    assert_eq!(r.status(), 503, "no Stripe key in this app");
    let problem: Value = r.json().await.expect("json");
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/wallet/top-ups", "post", 503),
        &problem,
    );

    // The checker itself catches an undocumented field.
    let mut extra = accepted.clone();
    extra["surprise"] = json!(1);
    let mut errors = Vec::new();
    check(
        &doc,
        response_schema(&doc, "/v1/deployments", "post", 202),
        &extra,
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 1);
}
