//! Operators' audit reads: an aggregate's history with each event's
//! metadata and commit position, and its state at a version or a time,
//! folded by the domain's own rules.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{alice, operator, spawn_app, vm_body, TestApp};

async fn audit(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let r = app.get(path, token).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_operator_reads_a_deployments_history_and_its_state_at_any_version_or_time() {
    let app = spawn_app().await;
    let (id, _) = app.request(&alice(), &vm_body("audited")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = app
        .post(
            &format!("/v1/deployments/{id}/cancel"),
            &alice(),
            &json!({ "reason": "done" }),
        )
        .await;
    assert_eq!(r.status(), 202);

    let base = format!("/v1/audit/aggregates/deployment/{id}");
    let (status, history) = audit(&app, &format!("{base}/events"), &operator()).await;
    assert_eq!(status, 200, "{history:#}");
    let items = history["items"].as_array().expect("items");
    let types: Vec<&str> = items
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(types, ["DeploymentRequested", "DeploymentCancelled"]);
    let first = &items[0];
    assert_eq!(first["sequence"], 1);
    assert_eq!(first["event_version"], "2");
    assert_eq!(first["metadata"]["actor_subject"], "alice");
    assert_eq!(first["metadata"]["actor_role"], "cloud-user");
    assert!(first["metadata"]["correlation_id"].is_string(), "{first:#}");
    assert!(
        first["payload"]["DeploymentRequested"]["name"] == "audited",
        "{first:#}"
    );
    assert!(first["position"].as_i64().is_some() && first["txid"].as_i64().is_some());
    assert!(items[1]["position"].as_i64() > first["position"].as_i64());

    // Paged: one at a time.
    let (_, page) = audit(&app, &format!("{base}/events?limit=1"), &operator()).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["next_after"], 1);
    let (_, rest) = audit(&app, &format!("{base}/events?after=1&limit=1"), &operator()).await;
    assert_eq!(rest["items"][0]["event_type"], "DeploymentCancelled");

    // The state at each version, as the domain folds it.
    let (_, v1) = audit(&app, &format!("{base}/state?version=1"), &operator()).await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["state"]["state"]["status"], "requested", "{v1:#}");
    let (_, v2) = audit(&app, &format!("{base}/state?version=2"), &operator()).await;
    assert_eq!(v2["state"]["state"]["status"], "cancelled", "{v2:#}");
    // And at a time: the first event's commit, before the second's.
    let at = first["recorded_at"].as_str().expect("recorded_at");
    let at = urlencode(at);
    let (_, then) = audit(&app, &format!("{base}/state?at={at}"), &operator()).await;
    assert_eq!(then["version"], 1, "{then:#}");
    let (status, _) = audit(
        &app,
        &format!("{base}/state?at=2001-01-01T00:00:00Z"),
        &operator(),
    )
    .await;
    assert_eq!(status, 404, "nothing had happened by then");

    // What the cancel changed, field by field, and the event that did it.
    let (status, diff) = audit(&app, &format!("{base}/diff?from=1&to=2"), &operator()).await;
    assert_eq!(status, 200, "{diff:#}");
    let changes = diff["changes"].as_array().expect("changes");
    assert!(
        changes.iter().any(|c| c["op"] == "replace"
            && c["path"] == "/state/status"
            && c["value"] == "cancelled"),
        "{changes:#?}"
    );
    assert_eq!(diff["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(diff["events"][0]["event_type"], "DeploymentCancelled");
    let (status, _) = audit(&app, &format!("{base}/diff?from=1&to=3"), &operator()).await;
    assert_eq!(status, 404, "not at version 3");
    // Backwards: the patch that undoes the cancel, with the same event.
    let (status, undo) = audit(&app, &format!("{base}/diff?from=2&to=1"), &operator()).await;
    assert_eq!(status, 200, "{undo:#}");
    assert!(
        undo["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["op"] == "replace"
                && c["path"] == "/state/status"
                && c["value"] == "requested"),
        "{undo:#}"
    );
    assert_eq!(undo["events"][0]["event_type"], "DeploymentCancelled");
    // The same version twice: nothing changed, nothing between.
    let (status, same) = audit(&app, &format!("{base}/diff?from=2&to=2"), &operator()).await;
    assert_eq!(status, 200, "{same:#}");
    assert_eq!(same["changes"], serde_json::json!([]));
    assert_eq!(same["events"], serde_json::json!([]));
    let (status, _) = audit(&app, &format!("{base}/diff?from=0&to=2"), &operator()).await;
    assert_eq!(status, 400, "versions start at 1");

    // Every read above is in the access log, the operator's, in order.
    let (status, log) = audit(&app, "/v1/audit/access-log?actor=ops", &operator()).await;
    assert_eq!(status, 200, "{log:#}");
    let asked: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|a| a["aggregate_id"] == id.as_str())
        .filter_map(|a| a["request"].as_str())
        .collect();
    assert_eq!(
        asked.first().copied(),
        Some("events after=0 limit=100"),
        "{asked:?}"
    );
    assert!(asked.contains(&"state version=2"), "{asked:?}");
    assert!(asked.contains(&"diff from=1 to=2"), "{asked:?}");
    let (status, _) = audit(&app, "/v1/audit/access-log", &alice()).await;
    assert_eq!(status, 403);
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn audit_reads_are_for_operators_and_refuse_bad_questions() {
    let app = spawn_app().await;
    let (id, _) = app.request(&alice(), &vm_body("audited")).await;
    let base = format!("/v1/audit/aggregates/deployment/{id}");
    let (status, body) = audit(&app, &format!("{base}/events"), &alice()).await;
    assert_eq!(status, 403, "{body:#}");
    let (status, _) = audit(&app, "/v1/audit/aggregates/spaceship/1/events", &operator()).await;
    assert_eq!(status, 404);
    let (status, _) = audit(
        &app,
        "/v1/audit/aggregates/deployment/none/events",
        &operator(),
    )
    .await;
    assert_eq!(status, 404);
    // Without a bound, the latest state; with both, both hold.
    let (status, latest) = audit(&app, &format!("{base}/state"), &operator()).await;
    assert_eq!(status, 200, "{latest:#}");
    assert_eq!(latest["version"], 1);
    let (status, _) = audit(
        &app,
        &format!("{base}/state?version=1&at=2001-01-01T00:00:00Z"),
        &operator(),
    )
    .await;
    assert_eq!(status, 404, "version 1 had not happened by 2001");
    let (status, _) = audit(&app, &format!("{base}/state?version=0"), &operator()).await;
    assert_eq!(status, 400);
    let (status, _) = audit(&app, &format!("{base}/events?limit=0"), &operator()).await;
    assert_eq!(status, 400);
}

async fn verify(app: &TestApp) -> Value {
    let r = app.get("/v1/audit/verify", &operator()).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

#[tokio::test]
async fn an_edited_or_removed_event_is_found_by_verify_naming_its_aggregate_and_sequence() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let (id, _) = app.request(&alice(), &vm_body(name)).await;
        let r = app
            .post(
                &format!("/v1/deployments/{id}/cancel"),
                &alice(),
                &json!({}),
            )
            .await;
        assert_eq!(r.status(), 202);
        ids.push(id);
    }
    let clean = verify(&app).await;
    assert!(clean["broken"].is_null(), "{clean:#}");
    assert!(clean["checked"].as_i64().is_some_and(|n| n >= 4));

    // Behind the store's back: the first deployment's request is edited.
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload, '{DeploymentRequested,name}', '\"forged\"')
          WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(&ids[0])
    .execute(&app.pool)
    .await
    .expect("tamper");
    let found = verify(&app).await;
    let broken = &found["broken"];
    assert_eq!(broken["aggregate_id"], ids[0].as_str(), "{found:#}");
    assert_eq!(broken["sequence"], 1);
    assert_eq!(broken["reason"], "edited");

    // Put back exactly, and the chain checks out again; then a removal.
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload, '{DeploymentRequested,name}', '\"one\"')
          WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(&ids[0])
    .execute(&app.pool)
    .await
    .expect("restore");
    assert!(verify(&app).await["broken"].is_null());
    sqlx::query("DELETE FROM events WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 1")
        .bind(&ids[1])
        .execute(&app.pool)
        .await
        .expect("delete");
    let found = verify(&app).await;
    assert_eq!(
        found["broken"]["aggregate_id"],
        ids[1].as_str(),
        "{found:#}"
    );
    assert_eq!(found["broken"]["sequence"], 2);
    assert_eq!(found["broken"]["reason"], "missing before it");
}

/// Version 1 of `DeploymentRequested` had no `kind`. Rows written as
/// version 1 stay so in the store, and every reader sees version 2: the
/// aggregate loads (a command on it is decided), the view (live and rebuilt)
/// and the audit history.
#[tokio::test]
async fn version_1_rows_read_as_version_2_by_loads_views_rebuilds_and_the_audit() {
    let app = spawn_app().await;
    let (model, _) = app
        .request(&alice(), &crate::common::k8s_body("model"))
        .await;
    // A deployment of another id whose request is stored as version 1 wrote it.
    let old = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT aggregate_type, $2, 1, event_type, '1',
                jsonb_set(payload, '{DeploymentRequested}', (payload->'DeploymentRequested') - 'kind'),
                metadata
           FROM events WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(&model)
    .bind(&old)
    .execute(&app.pool)
    .await
    .expect("v1 row");
    let stored: (String, bool) = sqlx::query_as(
        "SELECT event_version, payload->'DeploymentRequested' ? 'kind' FROM events
          WHERE aggregate_id = $1",
    )
    .bind(&old)
    .fetch_one(&app.pool)
    .await
    .expect("stored");
    assert_eq!(stored, ("1".to_string(), false), "stored as version 1");

    // The live view reads it.
    let view = app.read(&alice(), &old, 1).await;
    assert_eq!(view["kind"], "kubernetes", "{view:#}");
    // The aggregate loads it: a cancel is decided against its state.
    let r = app
        .post(
            &format!("/v1/deployments/{old}/cancel"),
            &alice(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    // A rebuilt view reads it the same.
    marketplace_projections::tail::rebuild(
        &app.pool,
        &marketplace_projections::deployments::DeploymentProjection,
        50,
    )
    .await
    .expect("rebuild");
    let view = app.read(&alice(), &old, 2).await;
    assert_eq!(
        (view["kind"].as_str(), view["status"].as_str()),
        (Some("kubernetes"), Some("cancelled")),
        "{view:#}"
    );
    // The audit history shows the stored version and the payload as read.
    let (status, history) = audit(
        &app,
        &format!("/v1/audit/aggregates/deployment/{old}/events"),
        &operator(),
    )
    .await;
    assert_eq!(status, 200, "{history:#}");
    let first = &history["items"][0];
    assert_eq!(first["event_version"], "1");
    assert_eq!(
        first["payload"]["DeploymentRequested"]["kind"], "kubernetes",
        "{first:#}"
    );
    assert_eq!(history["items"][1]["event_version"], "2");
    // And the row itself was never rewritten.
    let still: String = sqlx::query_scalar(
        "SELECT event_version FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(&old)
    .fetch_one(&app.pool)
    .await
    .expect("row");
    assert_eq!(still, "1");
}
