//! Operators' searches over the audit index, correlation trees across
//! aggregates, the global checkpoints catching what per-aggregate chains
//! cannot, an aggregate's state at each version for every aggregate type,
//! the CLI's audit commands, an export in constant memory, and a view built
//! as it stood at a past time.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::common::{alice, operator, spawn_app, token, vm_body, TestApp};
use crate::nodes_api::{approve_farm, snapshot, sync_nodes};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.get(path, &operator()).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until the audit index has every event stored.
async fn indexed(app: &TestApp) {
    for _ in 0..400 {
        let (stored, indexed): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM audit_events)",
        )
        .fetch_one(&app.pool)
        .await
        .expect("counts");
        if stored == indexed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the audit index did not catch up");
}

/// One conversation (the caller's `X-Correlation-Id`) touching a
/// deployment, a wallet and a node: the tree finds all three, each event
/// once, and a search by correlation id and by actor finds the same.
#[tokio::test]
async fn a_correlation_id_is_followed_across_a_deployment_a_wallet_and_a_node() {
    let app = spawn_app().await;
    sync_nodes(&app, vec![snapshot(11, 5, 8, false)]).await;
    approve_farm(&app, "farmer", 5).await;
    let conversation = format!("incident-{}", uuid::Uuid::new_v4());
    let send = |path: &str, token: String, body: Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(token)
            .header("x-correlation-id", conversation.clone())
            .json(&body)
            .send()
    };
    let r = send("/v1/deployments", alice(), vm_body("traced"))
        .await
        .expect("send");
    assert_eq!(r.status(), 202);
    let deployment = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let account = marketplace_app::tfchain::ss58_address(
        &schnorrkel::Keypair::generate().public.to_bytes(),
        42,
    );
    let r = send(
        "/v1/wallet/link-challenges",
        alice(),
        json!({ "account": account, "key_type": "sr25519" }),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let start = Utc::now() + chrono::Duration::days(2);
    let r = send(
        "/v1/nodes/11/maintenance",
        token("farmer", &["cloud-provider"]),
        json!({ "window_id": "5b0f3c1e-0000-4000-8000-00000000000a", "starts_at": start,
                "ends_at": start + chrono::Duration::hours(2), "reason": "fans" }),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    // Another conversation that must not show up.
    app.request(&alice(), &vm_body("unrelated")).await;
    indexed(&app).await;

    let (status, tree) = get(&app, &format!("/v1/audit/correlations/{conversation}")).await;
    assert_eq!(status, 200, "{tree:#}");
    let aggregates: Vec<&str> = tree["aggregates"]
        .as_array()
        .expect("aggregates")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let types: Vec<&str> = aggregates
        .iter()
        .map(|a| a.split('/').next().unwrap_or(""))
        .collect();
    assert_eq!(types, ["deployment", "node", "wallet"], "{aggregates:?}");
    assert!(aggregates.contains(&format!("deployment/{deployment}").as_str()));
    assert!(aggregates.contains(&"node/11"));
    let events = tree["events"].as_array().expect("events");
    assert!(events
        .iter()
        .all(|e| e["metadata"]["correlation_id"] == conversation.as_str()));
    let positions: Vec<i64> = events
        .iter()
        .filter_map(|e| e["position"].as_i64())
        .collect();
    let mut unique = positions.clone();
    unique.dedup();
    assert_eq!(positions, unique, "each event once");
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == "MaintenanceScheduled"),
        "{events:#?}"
    );

    // The search by correlation id finds the same events; by actor and
    // type, only the farmer's maintenance.
    let (status, found) = get(
        &app,
        &format!("/v1/audit/events?correlation_id={conversation}"),
    )
    .await;
    assert_eq!(status, 200, "{found:#}");
    assert_eq!(found["items"].as_array().map(Vec::len), Some(events.len()));
    let (_, farmer) = get(&app, "/v1/audit/events?actor=farmer&aggregate_type=node").await;
    let farmer_types: Vec<&str> = farmer["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(farmer_types, ["MaintenanceScheduled"], "{farmer:#}");
    // Paged by cursor: one at a time gives the same events in order.
    let (_, first) = get(
        &app,
        &format!("/v1/audit/events?correlation_id={conversation}&limit=1"),
    )
    .await;
    let cursor = first["next"].as_str().expect("a next cursor").to_string();
    let (_, second) = get(
        &app,
        &format!("/v1/audit/events?correlation_id={conversation}&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        second["items"][0]["position"],
        found["items"][1]["position"]
    );
    // Time range: nothing before the conversation began.
    let (_, before) = get(
        &app,
        &format!("/v1/audit/events?correlation_id={conversation}&to=2001-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(before["items"].as_array().map(Vec::len), Some(0));

    // Bad questions change nothing and say why.
    for bad in [
        "/v1/audit/events",
        "/v1/audit/events?actor=x&cursor=garbage",
        "/v1/audit/events?aggregate_type=spaceship",
        "/v1/audit/events?actor=x&limit=0",
        "/v1/audit/events?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let (status, _) = get(&app, bad).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = get(&app, "/v1/audit/correlations/nobody-said-this").await;
    assert_eq!(status, 404);
    for path in [
        format!("/v1/audit/correlations/{conversation}"),
        "/v1/audit/events?actor=alice".into(),
    ] {
        assert_eq!(app.get(&path, &alice()).await.status(), 403, "{path}");
    }
    // The searches are in the access log.
    let (_, log) = get(&app, "/v1/audit/access-log?actor=ops&limit=500").await;
    let asked: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["request"].as_str())
        .collect();
    assert!(
        asked.contains(&format!("correlate {conversation}").as_str()),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|a| a.starts_with("search actor=farmer")),
        "{asked:?}"
    );
}
