//! The alliance API's refusals: roles, tenancy, approval, node ownership,
//! `If-Match`, and that every alliance path documents its problems.

use serde_json::json;

use super::*;
use crate::common::{alice, expect_problem, operator};
use crate::nodes_api::approve_farm;

#[tokio::test]
async fn alliance_commands_refuse_strangers_unapproved_providers_and_foreign_nodes() {
    let grid = alliance_grid(this_month()).await;
    approve_farm(&grid.app, "p1", 1).await;
    approve_farm(&grid.app, "p2", 2).await;

    // A user may not found one; a provider without an approved farm may not.
    let body = found_body("Pool");
    expect_problem(grid.app.post("/v1/alliances", &alice(), &body).await, 403).await;
    let p = expect_problem(
        grid.app
            .post("/v1/alliances", &provider("nobody"), &body)
            .await,
        422,
    )
    .await;
    assert_eq!(
        p["type"]
            .as_str()
            .map(|t| t.ends_with("provider-not-approved")),
        Some(true),
        "{p:#}"
    );
    // A malformed SLA is a 422 naming the field.
    let mut bad = found_body("Pool");
    bad["sla"]["target_bps"] = json!(10_001);
    expect_problem(
        grid.app.post("/v1/alliances", &provider("p1"), &bad).await,
        422,
    )
    .await;

    let r = grid.app.post("/v1/alliances", &provider("p1"), &body).await;
    let version = accepted_id(r).await;
    let (id, version) = version;
    // No farm yet: nodes wait for it.
    alliance(&grid, &provider("p1"), &id, version).await;
    let p = expect_problem(
        grid.app
            .post(
                &format!("/v1/alliances/{id}/nodes"),
                &provider("p1"),
                &json!({ "node_id": 1 }),
            )
            .await,
        422,
    )
    .await;
    assert!(
        p["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("farm-not-assigned")),
        "{p:#}"
    );

    // Strangers are told it does not exist; operators see it.
    expect_problem(
        grid.app
            .get(&format!("/v1/alliances/{id}"), &provider("p2"))
            .await,
        404,
    )
    .await;
    assert_eq!(
        grid.app
            .get(&format!("/v1/alliances/{id}"), &operator())
            .await
            .status(),
        200
    );
    expect_problem(
        grid.app
            .post(
                &format!("/v1/alliances/{id}/invitations"),
                &provider("p2"),
                &json!({ "provider": "p2" }),
            )
            .await,
        404,
    )
    .await;
    let listed: Value = grid
        .app
        .get("/v1/alliances", &provider("p2"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));

    // If-Match: a stale version is a 409 and changes nothing.
    let r = put(
        &grid,
        &format!("/v1/alliances/{id}/rule"),
        &provider("p1"),
        &json!({ "kind": "equal" }),
        Some(version + 5),
    )
    .await;
    expect_problem(r, 409).await;
    let r = put(
        &grid,
        &format!("/v1/alliances/{id}/rule"),
        &provider("p1"),
        &json!({ "kind": "equal" }),
        Some(version),
    )
    .await;
    accepted(r).await;

    // With its farm, a member contributes only nodes of its approved farms.
    let stores = Stores::new(&grid.app.pool);
    let chain: Arc<dyn Chain> = grid.chain.clone();
    assign_farms_once(&grid.app.pool, &stores, &*chain, &grid.custody)
        .await
        .expect("farm");
    assert_eq!(
        assign_farms_once(&grid.app.pool, &stores, &*chain, &grid.custody)
            .await
            .expect("farm again"),
        0,
        "a farm is made once"
    );
    let p = expect_problem(
        grid.app
            .post(
                &format!("/v1/alliances/{id}/nodes"),
                &provider("p1"),
                &json!({ "node_id": 3 }),
            )
            .await,
        422,
    )
    .await;
    assert!(
        p["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("node-not-yours")),
        "{p:#}"
    );
    accepted(
        grid.app
            .post(
                &format!("/v1/alliances/{id}/nodes"),
                &provider("p1"),
                &json!({ "node_id": 1 }),
            )
            .await,
    )
    .await;
    expect_problem(
        grid.app
            .post(
                &format!("/v1/alliances/{id}/nodes"),
                &provider("p1"),
                &json!({ "node_id": 1 }),
            )
            .await,
        409,
    )
    .await;

    // The catalog shows the alliance and filters by it and by SLA target.
    let nodes_of = |query: String| {
        let grid = &grid;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let v: Value = grid
                    .app
                    .get(&format!("/v1/nodes?{query}"), &alice())
                    .await
                    .json()
                    .await
                    .expect("json");
                let items = v["items"].as_array().cloned().unwrap_or_default();
                if !items.is_empty() || std::time::Instant::now() > deadline {
                    return items;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    let listed = nodes_of(format!("alliance_id={id}")).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["node_id"], 1);
    assert_eq!(listed[0]["alliance"]["name"], "Pool");
    assert_eq!(listed[0]["alliance"]["sla_target_bps"], 9800);
    assert!(listed[0]["alliance"]["measured_uptime_bps"].is_u64());
    assert_eq!(nodes_of("sla_min_bps=9800".into()).await.len(), 1);
    let none: Value = grid
        .app
        .get("/v1/nodes?sla_min_bps=9900", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));

    // Placement honours "alliance nodes only": node 1 leaves, p2's node 4
    // joins (node 1 would be the first choice otherwise).
    let step = |path: String, who: &'static str, body: Value| {
        let grid = &grid;
        async move { accepted(grid.app.post(&path, &provider(who), &body).await).await }
    };
    step(
        format!("/v1/alliances/{id}/nodes/1/withdraw"),
        "p1",
        json!({}),
    )
    .await;
    step(
        format!("/v1/alliances/{id}/invitations"),
        "p1",
        json!({ "provider": "p2" }),
    )
    .await;
    step(
        format!("/v1/alliances/{id}/invitation/accept"),
        "p2",
        json!({}),
    )
    .await;
    let v = step(
        format!("/v1/alliances/{id}/nodes"),
        "p2",
        json!({ "node_id": 4 }),
    )
    .await;
    alliance(&grid, &provider("p2"), &id, v).await;
    let mut body = crate::provisioning::vm("pooled", 2, false);
    body["placement"]["alliance_id"] = json!(id);
    let d = grid.request(&alice(), &body).await;
    let detail = grid.settled(&alice(), &d, &["running", "failed"]).await;
    assert_eq!(detail["status"], "running", "{detail:#}");
    assert_eq!(detail["node_id"], 4);

    // The founder cannot leave; a member can; only the founder dissolves.
    let p = expect_problem(
        grid.app
            .post(
                &format!("/v1/alliances/{id}/leave"),
                &provider("p1"),
                &json!({}),
            )
            .await,
        422,
    )
    .await;
    assert!(
        p["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("founder-cannot-leave")),
        "{p:#}"
    );
    step(format!("/v1/alliances/{id}/leave"), "p2", json!({})).await;
    expect_problem(
        grid.app
            .post(
                &format!("/v1/alliances/{id}/dissolve"),
                &provider("p2"),
                &json!({}),
            )
            .await,
        403,
    )
    .await;
    let v = step(format!("/v1/alliances/{id}/dissolve"), "p1", json!({})).await;
    let a = alliance(&grid, &provider("p1"), &id, v).await;
    assert_eq!(a["dissolved_from"], json!(this_month().next().to_string()));
    let members = a["members"].as_array().cloned().expect("members");
    let p2 = members.iter().find(|m| m["member"] == "p2").expect("p2");
    assert_eq!(p2["until"], json!(this_month().next().to_string()));
}

async fn accepted_id(r: reqwest::Response) -> (String, u64) {
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 202, "{v:#}");
    (
        v["id"].as_str().expect("id").to_string(),
        v["version"].as_u64().expect("version"),
    )
}

#[tokio::test]
async fn every_alliance_operation_documents_its_problems() {
    let doc = serde_json::to_value(marketplace_api::openapi()).expect("openapi");
    let paths = doc["paths"].as_object().expect("paths");
    let alliance_paths: Vec<_> = paths
        .iter()
        .filter(|(p, _)| p.starts_with("/v1/alliances"))
        .collect();
    assert!(alliance_paths.len() >= 14, "{}", alliance_paths.len());
    for (path, ops) in alliance_paths {
        for (method, op) in ops.as_object().expect("ops") {
            let responses = op["responses"].as_object().expect("responses");
            for code in ["401", "403"] {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
        }
    }
}
