//! A deployment's whole life through HTTP, read back through the views.

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_deployment_lives_its_whole_life_through_the_api() {
    let app = spawn_app().await;
    let (id, v) = app.request(&alice(), &vm_body("web1")).await;
    assert_eq!(v, 1);
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(d["status"], "requested");
    assert_eq!(d["owner"], "alice");
    assert_eq!(d["spec"]["size"]["cpu"], 2);
    assert_eq!(d["placement"]["country"], "Belgium");

    let op = operator();
    let step = |path: &'static str, body: Value| {
        let app = &app;
        let op = op.clone();
        let id = id.clone();
        async move {
            let r = app
                .post(&format!("/v1/deployments/{id}/{path}"), &op, &body)
                .await;
            assert_eq!(
                r.status(),
                202,
                "{path}: {}",
                r.text().await.unwrap_or_default()
            );
            let v: Value = r.json().await.expect("json");
            v["version"].as_u64().expect("version")
        }
    };

    let v = step("node", json!({ "node_id": 11, "farm_id": 1 })).await;
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(
        (d["status"].as_str(), d["node_id"].as_i64()),
        (Some("placed"), Some(11))
    );

    let v = step("contract", json!({ "contract_id": 4242 })).await;
    assert_eq!(app.read(&alice(), &id, v).await["status"], "provisioning");

    // Not every workload is ok yet: refused, nothing stored.
    let r = app
        .post(
            &format!("/v1/deployments/{id}/running"),
            &op,
            &json!({ "workloads": [{ "name": "web1", "state": "init" }] }),
        )
        .await;
    expect_problem(r, 422).await;
    assert_eq!(app.event_count(&id).await, 3);

    let v = step(
        "running",
        json!({ "workloads": [{ "name": "web1", "state": "ok" }] }),
    )
    .await;
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(d["status"], "running");
    assert_eq!(d["workloads"][0]["state"], "ok");

    // The owner resizes.
    let r = app
        .post(
            &format!("/v1/deployments/{id}/resize"),
            &alice(),
            &json!({ "size": { "cpu": 4, "memory_mib": 8192, "rootfs_gb": 40 } }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let v = r.json::<Value>().await.expect("json")["version"]
        .as_u64()
        .expect("v");
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(d["spec"]["size"]["cpu"], 4);
    assert_eq!(d["status"], "running");

    let v = step("grace-period/start", json!({})).await;
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(d["status"], "suspended");
    assert!(d["grace_since"].is_string());
    let v = step("grace-period/end", json!({})).await;
    assert_eq!(app.read(&alice(), &id, v).await["status"], "running");

    // Out of funds is refused while not suspended.
    let r = app
        .post(
            &format!("/v1/deployments/{id}/delete"),
            &op,
            &json!({ "cause": "out_of_funds" }),
        )
        .await;
    expect_problem(r, 422).await;

    let r = app
        .post(
            &format!("/v1/deployments/{id}/cancel"),
            &alice(),
            &json!({ "reason": "done with it" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let v = r.json::<Value>().await.expect("json")["version"]
        .as_u64()
        .expect("v");
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(
        (d["status"].as_str(), d["cancel_reason"].as_str()),
        (Some("cancelled"), Some("done with it"))
    );

    let v = step("delete", json!({ "cause": "canceled_by_user" })).await;
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(d["status"], "deleted");
    assert_eq!(d["deletion_cause"], "canceled_by_user");

    let statuses: Vec<&str> = d["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        [
            "requested",
            "placed",
            "provisioning",
            "running",
            "running",
            "suspended",
            "running",
            "cancelled",
            "deleted"
        ]
    );
    assert_eq!(d["history"][0]["actor"], "alice");
    assert_eq!(d["history"][1]["actor_role"], "cloud-operator");
    assert_eq!(d["version"], 9);
}

#[tokio::test]
async fn lists_are_own_newest_first_filtered_and_paginated() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.request(&alice(), &vm_body(&format!("vm{i}"))).await);
    }
    let (k8s, kv) = app.request(&alice(), &k8s_body("cluster")).await;
    let (bobs, bv) = app.request(&bob(), &vm_body("bobvm")).await;
    app.read(&alice(), &k8s, kv).await;
    app.read(&bob(), &bobs, bv).await;
    for (id, v) in &ids {
        app.read(&alice(), id, *v).await;
    }

    // Page through alice's six, two at a time, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/deployments?limit=2&cursor={c}"),
            None => "/v1/deployments?limit=2".to_string(),
        };
        let page: Value = app.get(&path, &alice()).await.json().await.expect("page");
        for item in page["items"].as_array().expect("items") {
            assert_eq!(item["owner"], "alice");
            seen.push(item["id"].as_str().expect("id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut expected: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
    expected.push(k8s.clone());
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each exactly once");

    let page: Value = app
        .get("/v1/deployments?kind=kubernetes", &alice())
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["items"][0]["id"], k8s);

    let page: Value = app
        .get("/v1/deployments?status=running", &alice())
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));

    // An operator sees everyone's.
    let page: Value = app
        .get("/v1/deployments?limit=100", &operator())
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(7));

    for bad in [
        "?limit=0",
        "?limit=101",
        "?status=sleeping",
        "?kind=vps",
        "?cursor=nonsense",
        "?colour=red",
    ] {
        let r = app.get(&format!("/v1/deployments{bad}"), &alice()).await;
        expect_problem(r, 400).await;
    }
}

#[tokio::test]
async fn a_quote_prices_the_spec_with_the_grid_formula() {
    let app = spawn_app().await;
    let body = json!({ "spec": vm_body("x")["spec"], "certified": false });
    let r = app.post("/v1/quotes", &alice(), &body).await;
    assert_eq!(r.status(), 200);
    let q: Value = r.json().await.expect("json");
    // 2 vCPU / 4 GB = 1 CU; 70 GB SSD = 0.35 SU; 1 IPv4:
    // 0.01 + 0.00175 + 0.004 = 0.01575 USD/h; at 0.01 USD/TFT = 1.575 TFT/h
    assert_eq!(q["cu_milli"], 1000);
    assert_eq!(q["su_milli"], 350);
    assert_eq!(q["hourly_usd_units"], 157_500);
    assert_eq!(q["monthly_usd_units"], 157_500 * 720);
    assert_eq!(q["hourly_tft_units"], 15_750_000);
    assert_eq!(q["discount"], "none");

    let monthly = q["monthly_tft_units"].as_u64().expect("monthly");
    let rich = json!({ "spec": vm_body("x")["spec"], "balance_tft_units": monthly * 3 });
    let q: Value = app
        .post("/v1/quotes", &alice(), &rich)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(q["discount"], "bronze");
    assert_eq!(q["discounted_hourly_usd_units"], 110_250);

    let certified = json!({ "spec": vm_body("x")["spec"], "certified": true });
    let q: Value = app
        .post("/v1/quotes", &alice(), &certified)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(q["hourly_usd_units"], 186_875); // (0.01 + 0.00175) * 1.25 + 0.004
}

#[tokio::test]
async fn health_and_request_ids() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-request-id").is_some(),
        "a request id is assigned"
    );
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-123")
    );

    // The ids reach the events' metadata.
    let r = app
        .client
        .post(app.url("/v1/deployments"))
        .bearer_auth(alice())
        .header("x-request-id", "req-456")
        .header("x-correlation-id", "conv-789")
        .json(&vm_body("traced"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    let meta: Value =
        sqlx::query_scalar("SELECT metadata FROM events WHERE aggregate_type = 'deployment'")
            .fetch_one(&app.pool)
            .await
            .expect("metadata");
    assert_eq!(meta["request_id"], "req-456");
    assert_eq!(meta["causation_id"], "req-456");
    assert_eq!(meta["correlation_id"], "conv-789");
    assert_eq!(meta["actor_subject"], "alice");
    assert_eq!(meta["actor_role"], "cloud-user");
    assert!(meta["recorded_at"].is_string());

    // Outside the API's paths a GET is the console's (tests/it/console.rs);
    // an unknown API route is a problem 404.
    let r = app.get("/v1/no/such/route", &alice()).await;
    expect_problem(r, 404).await;
}

#[tokio::test]
async fn metrics_report_projection_lag_and_dead_letters() {
    let app = spawn_app_with(AppOptions {
        projections: false,
        ..Default::default()
    })
    .await;
    let scrape = || async {
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let text = scrape().await;
    assert!(
        text.contains("marketplace_projection_lag_events{projection=\"deployments\"} 0"),
        "{text}"
    );
    for i in 0..3 {
        app.request(&alice(), &vm_body(&format!("vm{i}"))).await;
    }
    // No runner: the three events wait, and the one that opened alice's
    // user on her first request.
    let text = scrape().await;
    assert!(
        text.contains("marketplace_projection_lag_events{projection=\"deployments\"} 4"),
        "{text}"
    );
    assert!(
        text.contains(
            "marketplace_projection_checkpoint_age_seconds{projection=\"deployments\"} -1"
        ),
        "{text}"
    );
    assert!(
        text.contains("marketplace_event_store_position 4"),
        "{text}"
    );
    marketplace_projections::tail::catch_up(
        &app.pool,
        &marketplace_projections::deployments::DeploymentProjection,
        100,
    )
    .await
    .expect("catch up");
    let text = scrape().await;
    assert!(
        text.contains("marketplace_projection_lag_events{projection=\"deployments\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("marketplace_projection_dead_letters{projection=\"deployments\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_projection_with_nothing_to_do_still_moves_its_checkpoint() {
    // The pricing runner handles no deployment events: it skips them in
    // memory and stores its position within a few seconds, so its lag
    // reads zero and a restart does not read the whole store again.
    let app = spawn_app().await;
    for i in 0..5 {
        app.request(&alice(), &vm_body(&format!("vm{i}"))).await;
    }
    let last: i64 = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(&app.pool)
        .await
        .expect("position");
    let mut stored = 0i64;
    for _ in 0..100 {
        stored = sqlx::query_scalar(
            "SELECT coalesce(max(last_position), 0) FROM projection_checkpoints WHERE projection = 'pricing_policy'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("checkpoint");
        if stored == last {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(stored, last, "the idle runner stored its position");
}
