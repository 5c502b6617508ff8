//! The node catalog and maintenance windows through HTTP: users browse,
//! the farm's approved provider schedules, users with deployments on the
//! node see the window.

use std::collections::HashMap;

use crate::common::*;
use chrono::{Duration, Utc};
use cqrs_es::EventStore;
use marketplace_app::store;
use marketplace_domain::node::{Certification, Node, NodeCommand, NodeResources, NodeSnapshot};
use marketplace_domain::EventSourced;
use marketplace_projections::{nodes::NodeProjection, providers::ProviderRequestProjection, tail};
use serde_json::{json, Value};

const GIB: u64 = 1 << 30;

pub(crate) fn snapshot(node_id: u32, farm_id: u32, cru: u64, certified: bool) -> NodeSnapshot {
    NodeSnapshot {
        node_id,
        farm_id,
        twin_id: 100 + node_id,
        country: "Belgium".into(),
        city: "Ghent".into(),
        total: NodeResources {
            cru,
            mru: 64 * GIB,
            sru: 1024 * GIB,
            hru: 0,
        },
        used: NodeResources {
            cru: 2,
            mru: 8 * GIB,
            sru: 100 * GIB,
            hru: 0,
        },
        public_ipv4: node_id.is_multiple_of(2),
        farm_free_ips: if node_id.is_multiple_of(2) { 3 } else { 0 },
        public_ipv6: true,
        certification: if certified {
            Certification::Certified
        } else {
            Certification::Diy
        },
        dedicated: false,
        rentable: true,
        rented: false,
        gpus: 0,
        extra_fee: 0,
        powered_up: true,
        uptime_seconds: 86_400,
        last_report: Utc::now(),
    }
}

/// Syncs nodes as the grid sync worker would, straight through the store.
pub(crate) async fn sync_nodes(app: &TestApp, snapshots: Vec<NodeSnapshot>) {
    let nodes = store::<Node>(app.pool.clone());
    for s in snapshots {
        let id = s.node_id.to_string();
        let ctx = nodes.load_aggregate(&id).await.expect("load");
        let events = ctx
            .aggregate
            .decide_command(NodeCommand::Sync {
                snapshot: s,
                now: Utc::now(),
            })
            .expect("sync");
        let meta = HashMap::from([("actor_subject".to_string(), "test-sync".to_string())]);
        nodes.commit(events, ctx, meta).await.expect("commit");
    }
    tail::catch_up(&app.pool, &NodeProjection, 500)
        .await
        .expect("catch up");
}

pub(crate) async fn approve_farm(app: &TestApp, provider: &str, farm_id: u32) {
    let farmer = token(provider, &["cloud-provider"]);
    let body = json!({
        "company": "Green Edge BV", "contact_email": "ops@greenedge.example",
        "farm_id": farm_id, "node_ids": [1], "country": "Belgium"
    });
    assert_eq!(
        app.post("/v1/provider-requests", &farmer, &body)
            .await
            .status(),
        202
    );
    let r = app
        .post(
            &format!("/v1/provider-requests/{farm_id}/approve"),
            &operator(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    tail::catch_up(&app.pool, &ProviderRequestProjection, 100)
        .await
        .expect("catch up");
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["node_id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn users_browse_the_catalog_with_filters_and_cursors() {
    let app = spawn_app().await;
    sync_nodes(
        &app,
        vec![
            snapshot(1, 1, 8, false),
            snapshot(2, 1, 16, true),
            snapshot(3, 2, 32, false),
            snapshot(4, 2, 4, true),
        ],
    )
    .await;

    let page: Value = app
        .get("/v1/nodes", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&page), vec![1, 2, 3, 4]);
    assert_eq!(page["items"][0]["free_cru"], 6);
    assert_eq!(page["items"][0]["status"], "up");
    assert!(page["items"][0]["hourly_price_usd_units"]
        .as_i64()
        .is_some_and(|p| p > 0));

    let page: Value = app
        .get("/v1/nodes?free_cru=10", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&page), vec![2, 3]);
    let page: Value = app
        .get("/v1/nodes?certified=true&farm_ids=2", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&page), vec![4]);
    let page: Value = app
        .get("/v1/nodes?has_ipv4=true&sort=free_cru", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&page), vec![2, 4]);
    let page: Value = app
        .get("/v1/nodes?country=BELGIUM&status=up,standby", &alice())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&page).len(), 4);

    // Paging by price, two at a time, covers every node once.
    let mut seen = Vec::new();
    let mut path = "/v1/nodes?sort=price&limit=2".to_string();
    loop {
        let page: Value = app.get(&path, &alice()).await.json().await.expect("json");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/nodes?sort=price&limit=2&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, vec![1, 2, 3, 4]);

    for bad in [
        "?sort=colour",
        "?status=sleeping",
        "?farm_ids=x",
        "?limit=0",
        "?cursor=zzz",
        "?free_cru=-1",
    ] {
        expect_problem(app.get(&format!("/v1/nodes{bad}"), &alice()).await, 400).await;
    }
    let detail: Value = app
        .get("/v1/nodes/3", &bob())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(detail["node_id"], 3);
    expect_problem(app.get("/v1/nodes/99", &alice()).await, 404).await;
}

#[tokio::test]
async fn maintenance_windows_by_the_farms_provider_and_seen_on_deployments() {
    let app = spawn_app().await;
    sync_nodes(
        &app,
        vec![snapshot(11, 5, 8, false), snapshot(21, 6, 8, false)],
    )
    .await;
    approve_farm(&app, "farmer", 5).await;
    approve_farm(&app, "other-farmer", 6).await;
    let farmer = token("farmer", &["cloud-provider"]);

    let start = Utc::now() + Duration::days(2);
    let window = |id: &str, start: chrono::DateTime<Utc>, hours: i64| json!({ "window_id": id, "starts_at": start, "ends_at": start + Duration::hours(hours), "reason": "disk swap" });
    let w1 = "5b0f3c1e-0000-4000-8000-000000000001";
    let r = app
        .post("/v1/nodes/11/maintenance", &farmer, &window(w1, start, 4))
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    // The same window again is a conflict of its own kind, not a version conflict.
    let r = app
        .post("/v1/nodes/11/maintenance", &farmer, &window(w1, start, 4))
        .await;
    let p = expect_problem(r, 409).await;
    assert_eq!(p["type"], "/problems/maintenance-exists");

    // Overlapping and past windows are refused; an adjacent one is fine.
    let r = app
        .post(
            "/v1/nodes/11/maintenance",
            &farmer,
            &window(
                "5b0f3c1e-0000-4000-8000-000000000002",
                start + Duration::hours(1),
                4,
            ),
        )
        .await;
    expect_problem(r, 422).await;
    let r = app
        .post(
            "/v1/nodes/11/maintenance",
            &farmer,
            &window(
                "5b0f3c1e-0000-4000-8000-000000000003",
                Utc::now() - Duration::hours(1),
                2,
            ),
        )
        .await;
    expect_problem(r, 422).await;
    let r = app
        .post(
            "/v1/nodes/11/maintenance",
            &farmer,
            &window(
                "5b0f3c1e-0000-4000-8000-000000000004",
                start + Duration::hours(4),
                1,
            ),
        )
        .await;
    assert_eq!(r.status(), 202);

    // Only the farm's approved provider: another provider's node is not found; users are forbidden.
    let r = app
        .post(
            "/v1/nodes/21/maintenance",
            &farmer,
            &window("5b0f3c1e-0000-4000-8000-000000000005", start, 1),
        )
        .await;
    expect_problem(r, 404).await;
    let r = app
        .post("/v1/nodes/11/maintenance", &alice(), &window(w1, start, 1))
        .await;
    expect_problem(r, 403).await;

    // Reschedule, then cancel the second one.
    let r = app.put(&format!("/v1/nodes/11/maintenance/{w1}"), &farmer, &json!({ "starts_at": start + Duration::days(1), "ends_at": start + Duration::days(1) + Duration::hours(2) })).await;
    assert_eq!(r.status(), 202);
    let r = app
        .post(
            "/v1/nodes/11/maintenance/5b0f3c1e-0000-4000-8000-000000000004/cancel",
            &farmer,
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    tail::catch_up(&app.pool, &NodeProjection, 100)
        .await
        .expect("catch up");

    let calendar: Value = app
        .get("/v1/provider/maintenance", &farmer)
        .await
        .json()
        .await
        .expect("json");
    let items = calendar["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["window_id"], w1);
    assert_eq!(items[0]["status"], "rescheduled");
    let farms: Value = app
        .get("/v1/provider/farms", &farmer)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(farms["farm_ids"], json!([5]));
    let mine: Value = app
        .get("/v1/provider/nodes", &farmer)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&mine), vec![11]);

    // A user whose deployment runs on node 11 sees the window on it.
    let (id, _) = app.request(&alice(), &vm_body("web1")).await;
    let r = app
        .post(
            &format!("/v1/deployments/{id}/node"),
            &operator(),
            &json!({ "node_id": 11, "farm_id": 5 }),
        )
        .await;
    let v = r.json::<Value>().await.expect("json")["version"]
        .as_u64()
        .expect("v");
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(d["maintenance"][0]["window_id"], w1);
    assert_eq!(d["maintenance"][0]["reason"], "disk swap");
}
