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
pub(crate) async fn indexed(app: &TestApp) {
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
        "/v1/audit/events?actor=x&cursor=garbage",
        "/v1/audit/events?aggregate_type=spaceship",
        "/v1/audit/events?actor=x&limit=0",
    ] {
        let (status, _) = get(&app, bad).await;
        assert_eq!(status, 400, "{bad}");
    }
    // No filter browses every event by commit time; an empty time range
    // matches nothing.
    let (status, all) = get(&app, "/v1/audit/events?limit=500").await;
    assert_eq!(status, 200, "{all:#}");
    let listed = all["items"].as_array().expect("items");
    assert!(
        listed
            .iter()
            .any(|e| e["metadata"]["correlation_id"] == conversation.as_str()),
        "{all:#}"
    );
    let (status, empty) = get(
        &app,
        "/v1/audit/events?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(empty["items"], serde_json::json!([]));
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

async fn verify(app: &TestApp) -> Value {
    let (status, found) = get(app, "/v1/audit/verify").await;
    assert_eq!(status, 200, "{found:#}");
    found
}

/// Two deployments, requested and cancelled, indexed and checkpointed.
async fn two_audited_deployments(app: &TestApp) -> Vec<String> {
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
    indexed(app).await;
    let c = marketplace_app::audit::integrity::checkpoint(&app.pool)
        .await
        .expect("checkpoint")
        .expect("events to cover");
    assert!(c.events >= 4 && c.total == c.events, "{c:?}");
    assert!(verify(app).await["broken"].is_null());
    ids
}

/// An edit whose forger also recomputed the aggregate's hash chain passes
/// the chain check; the audit index's copy of the committed hash names the
/// event, and with the index doctored too, the checkpoint still fails.
#[tokio::test]
async fn a_rewritten_chain_is_caught_by_the_index_and_then_by_the_checkpoint() {
    let app = spawn_app().await;
    let ids = two_audited_deployments(&app).await;
    let rehash = |sequence: i64| {
        sqlx::query(
            "UPDATE events e SET hash = event_hash(
                 (SELECT p.hash FROM events p WHERE p.aggregate_type = e.aggregate_type
                     AND p.aggregate_id = e.aggregate_id AND p.sequence = e.sequence - 1), e)
              WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = $2",
        )
        .bind(ids[0].clone())
        .bind(sequence)
    };
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload, '{DeploymentRequested,name}', '\"forged\"')
          WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(&ids[0])
    .execute(&app.pool)
    .await
    .expect("forge");
    rehash(1).execute(&app.pool).await.expect("rehash 1");
    rehash(2).execute(&app.pool).await.expect("rehash 2");
    let found = verify(&app).await;
    let broken = &found["broken"];
    assert_eq!(broken["aggregate_id"], ids[0].as_str(), "{found:#}");
    assert_eq!(
        (broken["sequence"].as_i64(), broken["reason"].as_str()),
        (Some(1), Some("rehashed"))
    );

    // The metric says so.
    let metrics = app
        .get("/metrics", &operator())
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("marketplace_audit_verify_broken 1"),
        "{metrics}"
    );

    // The index doctored as well: the checkpoint over commit order fails.
    sqlx::query(
        "UPDATE audit_events a SET hash = e.hash FROM events e
          WHERE a.aggregate_type = e.aggregate_type AND a.aggregate_id = e.aggregate_id
            AND a.sequence = e.sequence",
    )
    .execute(&app.pool)
    .await
    .expect("doctor the index");
    let found = verify(&app).await;
    let broken = &found["broken"];
    assert_eq!(broken["checkpoint"], 1, "{found:#}");
    assert!(
        broken["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("checkpoint")),
        "{found:#}"
    );
    let (_, checkpoints) = get(&app, "/v1/audit/checkpoints").await;
    assert_eq!(checkpoints["items"][0]["id"], 1);
    assert_eq!(
        checkpoints["items"][0]["hash"].as_str().map(str::len),
        Some(64)
    );
}

/// An aggregate's last event removed leaves its chain whole; the index
/// still names it.
#[tokio::test]
async fn an_aggregates_last_event_removed_is_found_by_name() {
    let app = spawn_app().await;
    let ids = two_audited_deployments(&app).await;
    sqlx::query("DELETE FROM events WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 2")
        .bind(&ids[1])
        .execute(&app.pool)
        .await
        .expect("delete");
    let found = verify(&app).await;
    let broken = &found["broken"];
    assert_eq!(broken["aggregate_id"], ids[1].as_str(), "{found:#}");
    assert_eq!(
        (broken["sequence"].as_i64(), broken["reason"].as_str()),
        (Some(2), Some("removed"))
    );
    // With its index row gone too, the checkpoint that covered it fails.
    sqlx::query("DELETE FROM audit_events WHERE aggregate_id = $1 AND sequence = 2")
        .bind(&ids[1])
        .execute(&app.pool)
        .await
        .expect("delete");
    let found = verify(&app).await;
    assert_eq!(found["broken"]["checkpoint"], 1, "{found:#}");
}

/// Two events or more of every aggregate type the marketplace stores, as
/// their own commands write them; answers the deployment's id.
pub(crate) async fn seed_every_aggregate(app: &TestApp) -> String {
    use marketplace_app::Exec;
    use marketplace_domain::tft_price::{TftPriceCommand, TftPriceFeed};
    // deployment: requested, cancelled.
    let (deployment, _) = app.request(&alice(), &vm_body("every")).await;
    app.post(
        &format!("/v1/deployments/{deployment}/cancel"),
        &alice(),
        &json!({}),
    )
    .await;
    // node: synced twice (the second changes its used capacity).
    let mut node = snapshot(11, 5, 8, false);
    sync_nodes(app, vec![node.clone()]).await;
    node.used.cru = 6;
    sync_nodes(app, vec![node]).await;
    // provider_request: submitted, approved.
    approve_farm(app, "farmer", 5).await;
    // pricing_policy: changed twice by an operator.
    for cu in [200_000, 300_000] {
        let mut policy: Value = app
            .get("/v1/pricing", &alice())
            .await
            .json()
            .await
            .expect("json");
        policy = policy["policy"].clone();
        policy["cu_per_hour"] = json!(cu);
        let r = app.put("/v1/pricing", &operator(), &policy).await;
        assert!(
            r.status().is_success(),
            "{}",
            r.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // wallet: opened with a link challenge.
    let account = marketplace_app::tfchain::ss58_address(
        &schnorrkel::Keypair::generate().public.to_bytes(),
        42,
    );
    let r = app
        .post(
            "/v1/wallet/link-challenges",
            &alice(),
            &json!({ "account": account, "key_type": "sr25519" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    // tft_price: two observations, as the chain follower records them.
    let stores = marketplace_app::Stores::new(&app.pool);
    for (block, price) in [(10, 12), (20, 15)] {
        Exec::<TftPriceFeed>::new(
            &stores.tft_price,
            "tfchain",
            marketplace_app::metadata::EventMetadata::for_worker("test-chain", "block"),
        )
        .run(|_| {
            Ok(TftPriceCommand::Observe {
                price_musd: price,
                event: marketplace_domain::chain::ChainEventRef {
                    block_number: block,
                    event_index: 0,
                },
                stored_at: Utc::now(),
                at: Utc::now(),
            })
        })
        .await
        .expect("observe");
    }
    deployment
}

/// History and state at each version for every aggregate type the
/// marketplace stores, folded by each one's own rules.
#[tokio::test]
async fn every_aggregate_type_has_a_history_and_a_state_at_each_version() {
    let app = spawn_app().await;
    let deployment = seed_every_aggregate(&app).await;
    let aggregates = [
        ("deployment", deployment.as_str()),
        ("node", "11"),
        ("provider_request", "5"),
        ("pricing_policy", "current"),
        ("wallet", "alice"),
        ("tft_price", "tfchain"),
        ("user", "alice"),
    ];
    for (kind, id) in aggregates {
        let base = format!("/v1/audit/aggregates/{kind}/{id}");
        let (status, history) = get(&app, &format!("{base}/events")).await;
        assert_eq!(status, 200, "{kind}: {history:#}");
        let events = history["items"].as_array().expect("items").len() as i64;
        assert!(events >= 1, "{kind}");
        let mut states = Vec::new();
        for version in 1..=events.min(2) {
            let (status, state) = get(&app, &format!("{base}/state?version={version}")).await;
            assert_eq!(status, 200, "{kind} v{version}: {state:#}");
            assert_eq!(state["version"], version, "{kind}");
            assert!(state["state"].is_object(), "{kind}: {state:#}");
            states.push(state["state"].clone());
        }
        if let [first, second] = &states[..] {
            assert_ne!(first, second, "{kind}: version 2 changed something");
            let (status, diff) = get(&app, &format!("{base}/diff?from=1&to=2")).await;
            assert_eq!(status, 200, "{kind}");
            assert!(
                !diff["changes"].as_array().expect("changes").is_empty(),
                "{kind}"
            );
        }
    }
}
