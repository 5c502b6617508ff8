//! Notifications delivered: domain events reach the feed and a real
//! webhook receiver (an axum server here that verifies each signature)
//! once per id; a failing receiver is retried with backoff; a worker that
//! dies between sending and recording sends again under the same id;
//! preferences switch channels off; read state; redeliver.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use hmac::{Hmac, Mac};
use marketplace_app::metadata::EventMetadata;
use marketplace_app::{Exec, Stores};
use marketplace_domain::deployment::{
    DeletionCause, DeploymentCommand, NodeAssignment, WorkloadState, WorkloadStatus,
};
use marketplace_domain::wallet::{
    AutoTopUpConfig, SavedCard, StripeId, SubscriptionStatus, WalletCommand,
};
use marketplace_domain::{TftAmount, TftPrice};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::*;
use crate::nodes_api::{approve_farm, snapshot, sync_nodes};

/// One request the receiver accepted.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    kind: String,
}

/// A webhook receiver: verifies `Webhook-Signature` against the secret
/// (set once the endpoint is registered), answers 500 to the first
/// `fail_first` requests, records the rest.
#[derive(Clone)]
struct Receiver {
    url: String,
    secret: Arc<Mutex<String>>,
    fail_first: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    bad_signatures: Arc<AtomicUsize>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let fresh = t
        .parse::<i64>()
        .is_ok_and(|t| (Utc::now().timestamp() - t).abs() < 300);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    fresh && mac.verify_slice(&expected).is_ok()
}

impl Receiver {
    async fn start(cancel: CancellationToken) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let r = Receiver {
            url,
            secret: Arc::default(),
            fail_first: Arc::default(),
            calls: Arc::default(),
            bad_signatures: Arc::default(),
            hits: Arc::default(),
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let r = state.clone();
                async move {
                    r.calls.fetch_add(1, Ordering::SeqCst);
                    let secret = r.secret.lock().expect("secret").clone();
                    let sig = headers
                        .get("webhook-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if !verify(&secret, sig, &body) {
                        r.bad_signatures.fetch_add(1, Ordering::SeqCst);
                        return StatusCode::BAD_REQUEST;
                    }
                    if r.fail_first
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let v: Value = serde_json::from_slice(&body).expect("json body");
                    let id = v["id"].as_str().expect("id").to_string();
                    assert_eq!(
                        headers.get("webhook-id").and_then(|h| h.to_str().ok()),
                        Some(id.as_str()),
                        "the header and the body carry one id"
                    );
                    r.hits.lock().expect("hits").push(Hit {
                        id,
                        kind: v["type"].as_str().expect("type").to_string(),
                    });
                    StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await;
        });
        r
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    /// Accepted requests per notification id.
    fn per_id(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for h in self.hits() {
            *m.entry(h.id).or_insert(0) += 1;
        }
        m
    }
}

/// Registers `receiver` as `token`'s endpoint; answers its id.
async fn register(app: &TestApp, token: &str, receiver: &Receiver) -> String {
    let r = app
        .post(
            "/v1/webhook-endpoints",
            token,
            &json!({ "url": receiver.url }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    let secret = v["secret"].as_str().expect("secret shown once");
    assert!(secret.starts_with("whsec_"));
    *receiver.secret.lock().expect("secret") = secret.to_string();
    // Never again: not in the list.
    let list: Value = app
        .get("/v1/webhook-endpoints", token)
        .await
        .json()
        .await
        .expect("json");
    assert!(list["items"][0].get("secret").is_none(), "{list}");
    v["id"].as_str().expect("id").to_string()
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn feed(app: &TestApp, token: &str) -> Value {
    let r = app.get("/v1/notifications", token).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn feed_until(app: &TestApp, token: &str, n: usize) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let f = feed(app, token).await;
        if f["items"].as_array().map_or(0, Vec::len) >= n {
            return f;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "feed has fewer than {n}: {f:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn meta() -> EventMetadata {
    EventMetadata::for_worker("test", "notifications")
}

/// Alice's deployment failed.
async fn failed_deployment(app: &TestApp, name: &str) -> String {
    let (id, _) = app.request(&alice(), &vm_body(name)).await;
    let stores = Stores::new(&app.pool);
    Exec::new(&stores.deployments, id.clone(), meta())
        .run(|_| {
            Ok(DeploymentCommand::MarkFailed {
                workloads: vec![],
                reason: "no node had room".into(),
                at: Utc::now(),
            })
        })
        .await
        .expect("fail");
    id
}

/// Alice's deployment placed on node 11 (farm 5).
async fn placed_deployment(app: &TestApp, name: &str) -> String {
    let (id, _) = app.request(&alice(), &vm_body(name)).await;
    let stores = Stores::new(&app.pool);
    Exec::new(&stores.deployments, id.clone(), meta())
        .run(|_| {
            Ok(DeploymentCommand::AssignNode {
                node: NodeAssignment {
                    node_id: 11,
                    farm_id: 5,
                },
                reason: None,
                at: Utc::now(),
            })
        })
        .await
        .expect("assign");
    id
}

/// Alice's runway falls below 24 hours.
async fn runway_low(app: &TestApp) {
    let stores = Stores::new(&app.pool);
    Exec::new(&stores.wallets, "alice", meta())
        .opening(|| WalletCommand::Open {
            owner: "alice".into(),
            at: Utc::now(),
        })
        .run(|_| {
            Ok(WalletCommand::ObserveRunway {
                runway_hours: Some(10),
                thresholds_hours: vec![24],
                at: Utc::now(),
            })
        })
        .await
        .expect("runway");
}

/// Farmer plans maintenance on node 11 starting in `hours`.
async fn maintenance(app: &TestApp, hours: i64) {
    let start = Utc::now() + chrono::Duration::hours(hours);
    let r = app
        .post(
            "/v1/nodes/11/maintenance",
            &token("farmer", &["cloud-provider"]),
            &json!({ "window_id": uuid::Uuid::new_v4(), "starts_at": start,
                     "ends_at": start + chrono::Duration::hours(2), "reason": "disk swap" }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test]
async fn each_kind_reaches_the_feed_and_a_signed_webhook_once_per_id() {
    let app = spawn_app().await;
    let receiver = Receiver::start(app.cancel.clone()).await;
    register(&app, &alice(), &receiver).await;
    sync_nodes(&app, vec![snapshot(11, 5, 8, false)]).await;
    approve_farm(&app, "farmer", 5).await;

    failed_deployment(&app, "f1").await;
    placed_deployment(&app, "p1").await;
    runway_low(&app).await;
    // Within 24 hours: announced, and its reminder is due at once.
    maintenance(&app, 3).await;

    let f = feed_until(&app, &alice(), 4).await;
    let kinds: Vec<&str> = f["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["kind"].as_str().expect("kind"))
        .collect();
    for kind in [
        "deployment_failed",
        "balance_low",
        "maintenance_announced",
        "maintenance_soon",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let ids: Vec<String> = f["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect();
    until("every feed item delivered by webhook", || {
        receiver.per_id().len() == ids.len()
    })
    .await;
    // Nothing more arrives: each once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_id = receiver.per_id();
    assert_eq!(per_id.keys().cloned().collect::<Vec<_>>(), {
        let mut s = ids.clone();
        s.sort();
        s
    });
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    assert!(receiver.hits().iter().any(|h| h.kind == "maintenance_soon"));

    // The farmer's own feed: the request answered (no webhook of theirs).
    let farmer = feed_until(&app, &token("farmer", &["cloud-provider"]), 1).await;
    assert_eq!(farmer["items"][0]["kind"], "provider_request_answered");
    assert_eq!(farmer["items"][0]["details"]["answer"], "approved");

    // Read state: all unread, one marked, then the rest.
    assert_eq!(f["unread"], json!(ids.len()));
    let r = app
        .post(
            &format!("/v1/notifications/{}/read", ids[0]),
            &alice(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let item: Value = r.json().await.expect("json");
    assert!(item["read_at"].is_string());
    assert_eq!(feed(&app, &alice()).await["unread"], json!(ids.len() - 1));
    // Another user cannot mark it.
    expect_problem(
        app.post(
            &format!("/v1/notifications/{}/read", ids[1]),
            &bob(),
            &json!({}),
        )
        .await,
        404,
    )
    .await;
    let r = app
        .post("/v1/notifications/read", &alice(), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let marked: Value = r.json().await.expect("json");
    assert_eq!(marked["marked"], json!(ids.len() - 1));
    assert_eq!(marked["unread"], 0);
    expect_problem(
        app.post("/v1/notifications/read", &alice(), &json!({ "up_to": -1 }))
            .await,
        400,
    )
    .await;

    // The outbox counts reach /metrics.
    let metrics = app
        .get("/metrics", &alice())
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!(
            "marketplace_notifications_outbox{{channel=\"webhook\",state=\"sent\"}} {}",
            ids.len()
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_it_on_the_fourth_try_and_a_redeliver_sends_it_again_under_its_id(
) {
    let app = spawn_app().await;
    let receiver = Receiver::start(app.cancel.clone()).await;
    receiver.fail_first.store(3, Ordering::SeqCst);
    let endpoint = register(&app, &alice(), &receiver).await;
    failed_deployment(&app, "f1").await;
    until("delivered after three failures", || {
        receiver.hits().len() == 1
    })
    .await;
    assert_eq!(receiver.calls.load(Ordering::SeqCst), 4);
    let id = receiver.hits()[0].id.clone();

    let log: Value = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            &alice(),
        )
        .await
        .json()
        .await
        .expect("json");
    let d = &log["items"][0];
    assert_eq!(d["id"], json!(id));
    assert_eq!(d["status"], "sent");
    assert_eq!(d["attempts"], 4);
    let codes: Vec<Value> = d["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(500), json!(500), json!(200)]);

    // Redeliver: once more, the same id.
    let r = app
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries/{id}/redeliver"),
            &alice(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    until("redelivered", || receiver.hits().len() == 2).await;
    assert_eq!(receiver.hits()[1].id, id);
    // Not someone else's.
    expect_problem(
        app.post(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries/{id}/redeliver"),
            &bob(),
            &json!({}),
        )
        .await,
        404,
    )
    .await;
    expect_problem(
        app.get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            &bob(),
        )
        .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn a_worker_dying_between_sending_and_recording_sends_again_under_the_same_id() {
    let app = spawn_app_with(AppOptions {
        notifications: false,
        ..AppOptions::default()
    })
    .await;
    let receiver = Receiver::start(app.cancel.clone()).await;
    let endpoint = register(&app, &alice(), &receiver).await;
    // The first worker dies right after its first send.
    let dies = Arc::new(AtomicBool::new(true));
    let first = marketplace_workers::notify::spawn(
        app.pool.clone(),
        marketplace_workers::notify::DeliveryOptions {
            die_after_send: Some(dies.clone()),
            batch: 1,
            ..test_delivery_options()
        },
        None,
        app.cancel.child_token(),
    );
    failed_deployment(&app, "f1").await;
    until("the first worker sent", || receiver.hits().len() == 1).await;
    for task in first.into_iter().skip(2) {
        // The webhook worker stops at the fault point.
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the dying worker stopped")
            .expect("joined");
    }
    let (status, attempting): (String, bool) =
        sqlx::query_as("SELECT status, attempting_since IS NOT NULL FROM notification_outbox")
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert_eq!(
        (status.as_str(), attempting),
        ("pending", true),
        "the send was never recorded"
    );
    // Another worker takes the lapsed lease over and sends it again.
    marketplace_workers::notify::spawn(
        app.pool.clone(),
        test_delivery_options(),
        None,
        app.cancel.child_token(),
    );
    until("sent again", || receiver.hits().len() == 2).await;
    let hits = receiver.hits();
    assert_eq!(hits[0].id, hits[1].id, "the receiver sees one id twice");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log: Value = app
            .get(
                &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
                &alice(),
            )
            .await
            .json()
            .await
            .expect("json");
        if log["items"][0]["status"] == "sent" {
            assert_eq!(log["items"].as_array().map(Vec::len), Some(1));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{log:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.hits().len(), 2, "and not a third time");
}

#[tokio::test]
async fn preferences_switch_a_channel_off_per_kind() {
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO users (user_id, email, notification_prefs, version, created_at, updated_at)
         VALUES ('alice', 'alice@example.com',
                 '{\"deployment_failed\": {\"webhook\": false, \"feed\": false}}', 1, now(), now())",
    )
    .execute(&app.pool)
    .await
    .expect("prefs");
    let receiver = Receiver::start(app.cancel.clone()).await;
    register(&app, &alice(), &receiver).await;
    failed_deployment(&app, "quiet").await;
    runway_low(&app).await;
    until("balance_low delivered", || {
        receiver.hits().iter().any(|h| h.kind == "balance_low")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver
            .hits()
            .iter()
            .all(|h| h.kind != "deployment_failed"),
        "webhooks off for deployment_failed"
    );
    let f = feed_until(&app, &alice(), 1).await;
    let kinds: Vec<&str> = f["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, vec!["balance_low"], "feed off for deployment_failed");
    assert_eq!(f["unread"], 1);
}

#[tokio::test]
async fn webhook_endpoints_must_be_https_and_belong_to_their_user() {
    let app = spawn_app().await;
    for url in [
        "http://example.com/h",
        "ftp://example.com/h",
        "nope",
        "https://u:p@example.com/",
    ] {
        let p = expect_problem(
            app.post("/v1/webhook-endpoints", &alice(), &json!({ "url": url }))
                .await,
            422,
        )
        .await;
        assert_eq!(p["type"], "/problems/invalid-command", "{url}");
    }
    expect_problem(
        app.post(
            "/v1/webhook-endpoints",
            &alice(),
            &json!({ "uri": "https://x.example" }),
        )
        .await,
        422,
    )
    .await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(n, 0, "refused requests changed nothing");
    let r = app
        .post(
            "/v1/webhook-endpoints",
            &alice(),
            &json!({ "url": "https://hooks.example/marketplace" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/v1/webhook-endpoints/{id}");
    let delete = |t: String| {
        let (client, url) = (app.client.clone(), app.url(&path));
        async move {
            client
                .delete(url)
                .bearer_auth(t)
                .send()
                .await
                .expect("delete")
        }
    };
    expect_problem(delete(bob()).await, 404).await;
    assert_eq!(delete(alice()).await.status(), 204);
    expect_problem(delete(alice()).await, 404).await;
}

/// A user with an email address and a time zone.
async fn profile(app: &TestApp, user: &str, email: &str, tz: &str) {
    sqlx::query(
        "INSERT INTO users (user_id, email, time_zone, version, created_at, updated_at)
         VALUES ($1, $2, $3, 1, now(), now())",
    )
    .bind(user)
    .bind(email)
    .bind(tz)
    .execute(&app.pool)
    .await
    .expect("profile");
}

#[tokio::test]
async fn notifications_reach_a_real_smtp_server_once_and_a_failing_email_channel_holds_up_no_webhook(
) {
    let mut smtp = crate::common::smtp::SmtpServer::start().await;
    let app = spawn_app_with(AppOptions {
        notifications: false,
        ..AppOptions::default()
    })
    .await;
    let mailer: Arc<dyn marketplace_app::mail::Mailer> = Arc::new(
        marketplace_app::mail::SmtpMailer::from_config(
            &smtp.url().into(),
            "Marketplace <notifications@marketplace.example>",
        )
        .expect("mailer"),
    );
    marketplace_workers::notify::spawn(
        app.pool.clone(),
        test_delivery_options(),
        Some(mailer),
        app.cancel.child_token(),
    );
    profile(&app, "alice", "alice@example.com", "Europe/Brussels").await;
    let receiver = Receiver::start(app.cancel.clone()).await;
    register(&app, &alice(), &receiver).await;

    failed_deployment(&app, "f1").await;
    runway_low(&app).await;
    let mails = smtp
        .wait_for_count_to("alice@example.com", 2, Duration::from_secs(30))
        .await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(subjects.contains(&"Deployment failed"), "{subjects:?}");
    assert!(
        subjects.contains(&"Your balance is running low"),
        "{subjects:?}"
    );
    let failed = mails
        .iter()
        .find(|m| m.subject == "Deployment failed")
        .expect("failed mail");
    assert!(
        failed.text().contains("no node had room"),
        "{}",
        failed.text()
    );
    // Dates in her zone.
    assert!(
        failed.text().contains("CET") || failed.text().contains("CEST"),
        "{}",
        failed.text()
    );
    assert!(failed.html.as_deref().is_some_and(|h| h.contains("<p>")));
    let ids: Vec<String> = feed(&app, &alice()).await["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect();
    for m in &mails {
        assert!(
            ids.iter().any(|id| m
                .message_id
                .contains(&marketplace_workers::notify::message_id(id))),
            "{} names a notification",
            m.message_id
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages_to("alice@example.com").len(), 2, "each once");

    // The mail server goes away: email retries, webhooks go on.
    smtp.stop().await;
    failed_deployment(&app, "f2").await;
    until("the webhook delivered with email down", || {
        receiver.hits().len() == 3
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, attempts, error): (String, i32, Option<String>) = sqlx::query_as(
            "SELECT o.status, o.attempts, o.last_error FROM notification_outbox o
               JOIN notifications n ON n.id = o.notification_id
              WHERE o.channel = 'email' AND n.kind = 'deployment_failed'
              ORDER BY n.position DESC LIMIT 1",
        )
        .fetch_one(&app.pool)
        .await
        .expect("email row");
        if attempts >= 1 && error.is_some() {
            assert_eq!(status, "pending", "retried, not given up");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Commits `command` on deployment `id` through the bus.
async fn on_deployment(app: &TestApp, id: &str, command: DeploymentCommand) {
    let stores = Stores::new(&app.pool);
    let what = command.name();
    Exec::new(&stores.deployments, id, meta())
        .run(|_| Ok(command.clone()))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
}

/// Commits `command` on Alice's wallet (opened if need be) through the bus.
async fn on_wallet(app: &TestApp, command: WalletCommand) {
    let stores = Stores::new(&app.pool);
    let what = command.name();
    Exec::new(&stores.wallets, "alice", meta())
        .opening(|| WalletCommand::Open {
            owner: "alice".into(),
            at: Utc::now(),
        })
        .run(|_| Ok(command.clone()))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
}

/// Alice's deployment placed, its contract created and running.
async fn running_deployment(app: &TestApp, name: &str, contract_id: u64) -> String {
    let id = placed_deployment(app, name).await;
    on_deployment(
        app,
        &id,
        DeploymentCommand::RecordContractCreated {
            contract_id,
            rent_contract_id: None,
            at: Utc::now(),
        },
    )
    .await;
    on_deployment(
        app,
        &id,
        DeploymentCommand::MarkRunning {
            workloads: vec![WorkloadStatus::new(name, WorkloadState::Ok, None)],
            at: Utc::now(),
        },
    )
    .await;
    id
}

/// The smallest alliance: `farmer` founds it forty days ago on farm 5,
/// contributes node 11, settles the founding month and is paid its share.
async fn alliance_paid(app: &TestApp) -> String {
    use marketplace_domain::alliance::{
        AllianceCommand, AllianceFarm, AllianceName, Capacity, ChainAccount, Governance,
        NodeIncome, Period, SharingRule, Sla,
    };
    let stores = Stores::new(&app.pool);
    let id = uuid::Uuid::new_v4().to_string();
    let past = Utc::now() - chrono::Duration::days(40);
    let period = Period::of(past.timestamp()).expect("period");
    let farmer = marketplace_domain::Actor::new("farmer", marketplace_domain::Role::CloudProvider);
    let account =
        ChainAccount::new("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY").expect("account");
    let commands = vec![
        AllianceCommand::Found {
            by: farmer.clone(),
            provider_approved: true,
            name: AllianceName::new("Ghent Alliance").expect("name"),
            description: "one farm in Ghent".into(),
            rule: SharingRule::Capacity,
            sla: Sla::none(),
            governance: Governance::Founder,
            period,
            at: past,
        },
        AllianceCommand::AssignFarm {
            farm: AllianceFarm {
                farm_id: 5,
                twin_id: 50,
                account: account.clone(),
            },
            at: past,
        },
        AllianceCommand::ContributeNode {
            by: farmer.clone(),
            node_id: 11,
            farm_id: 5,
            capacity: Capacity::new(30, 0).expect("capacity"),
            at: past,
        },
        AllianceCommand::Settle {
            period,
            nodes: vec![NodeIncome {
                node_id: 11,
                income: 1_000,
                uptime_bps: 10_000,
                billed: BTreeMap::new(),
            }],
            now: Utc::now(),
        },
    ];
    for command in commands {
        Exec::new(&stores.alliances, id.clone(), meta())
            .run(|_| Ok(command.clone()))
            .await
            .unwrap_or_else(|e| panic!("{command:?}: {e:?}"));
    }
    Exec::new(&stores.alliances, id.clone(), meta())
        .run(|a| {
            let share = a
                .state()
                .and_then(|s| s.settlements.get(&period))
                .and_then(|s| s.shares.get("farmer").copied())
                .expect("the farmer's share");
            Ok(AllianceCommand::RecordPayout {
                period,
                member: "farmer".into(),
                amount: share,
                to: account.clone(),
                transfer: "0xfeed".into(),
                at: Utc::now(),
            })
        })
        .await
        .expect("payout");
    id
}

#[tokio::test]
async fn the_other_kinds_reach_the_feed_a_signed_webhook_and_a_real_smtp_server_once_each() {
    let smtp = crate::common::smtp::SmtpServer::start().await;
    let app = spawn_app_with(AppOptions {
        notifications: false,
        ..AppOptions::default()
    })
    .await;
    let mailer: Arc<dyn marketplace_app::mail::Mailer> = Arc::new(
        marketplace_app::mail::SmtpMailer::from_config(
            &smtp.url().into(),
            "Marketplace <notifications@marketplace.example>",
        )
        .expect("mailer"),
    );
    marketplace_workers::notify::spawn(
        app.pool.clone(),
        test_delivery_options(),
        Some(mailer),
        app.cancel.child_token(),
    );
    profile(&app, "alice", "alice@example.com", "Europe/Brussels").await;
    let receiver = Receiver::start(app.cancel.clone()).await;
    register(&app, &alice(), &receiver).await;
    profile(&app, "farmer", "farmer@example.com", "Europe/Brussels").await;
    let farmer_receiver = Receiver::start(app.cancel.clone()).await;
    let farmer = token("farmer", &["cloud-provider"]);
    register(&app, &farmer, &farmer_receiver).await;
    let now = Utc::now();

    // Running, paused for funds, resumed.
    let resumed = running_deployment(&app, "g1", 101).await;
    on_deployment(
        &app,
        &resumed,
        DeploymentCommand::StartGracePeriod {
            contract_id: Some(101),
            at: now,
        },
    )
    .await;
    on_deployment(
        &app,
        &resumed,
        DeploymentCommand::EndGracePeriod {
            contract_id: Some(101),
            at: Utc::now(),
        },
    )
    .await;
    // Running, paused for funds fifteen days ago, deleted for want of them.
    let gone = running_deployment(&app, "g2", 102).await;
    on_deployment(
        &app,
        &gone,
        DeploymentCommand::StartGracePeriod {
            contract_id: Some(102),
            at: now - chrono::Duration::days(15),
        },
    )
    .await;
    on_deployment(
        &app,
        &gone,
        DeploymentCommand::Delete {
            cause: DeletionCause::OutOfFunds,
            at: Utc::now(),
        },
    )
    .await;

    // An automatic top-up on her saved card, declined.
    let stripe = |id: &str| StripeId::new("id", id).expect("stripe id");
    on_wallet(
        &app,
        WalletCommand::SavePaymentMethod {
            card: SavedCard {
                payment_method_id: stripe("pm_card"),
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 12,
                exp_year: 2030,
            },
            at: Utc::now(),
        },
    )
    .await;
    on_wallet(
        &app,
        WalletCommand::ConfigureAutoTopUp {
            config: AutoTopUpConfig::new(
                TftAmount::from_base_units(100 * 10_000_000),
                1_000,
                2_500,
                stripe("pm_card"),
            )
            .expect("rule"),
            at: Utc::now(),
        },
    )
    .await;
    on_wallet(
        &app,
        WalletCommand::CreateAutoTopUp {
            top_up_id: uuid::Uuid::new_v4(),
            payment_intent_id: stripe("pi_auto_1"),
            tft_price: TftPrice::from_usd_units(100_000).expect("price"),
            quote_expires_at: Utc::now() + chrono::Duration::minutes(15),
            at: Utc::now(),
        },
    )
    .await;
    on_wallet(
        &app,
        WalletCommand::RecordPaymentFailed {
            payment_intent_id: stripe("pi_auto_1"),
            code: "card_declined".into(),
            message: "Your card was declined.".into(),
            at: Utc::now(),
        },
    )
    .await;
    // A subscription on the same card whose renewal is declined.
    on_wallet(
        &app,
        WalletCommand::StartSubscription {
            subscription_id: stripe("sub_1"),
            price_id: stripe("price_2500"),
            usd_cents: 2_500,
            payment_method_id: stripe("pm_card"),
            status: SubscriptionStatus::Active,
            current_period_end: Some(now + chrono::Duration::days(30)),
            at: Utc::now(),
        },
    )
    .await;
    on_wallet(
        &app,
        WalletCommand::RecordSubscriptionPaymentFailed {
            subscription_id: stripe("sub_1"),
            invoice_id: stripe("in_1"),
            attempt: 1,
            code: "card_declined".into(),
            message: "Your card was declined.".into(),
            next_attempt_at: Some(now + chrono::Duration::days(3)),
            at: Utc::now(),
        },
    )
    .await;

    // Two deployments ran and were paused; one resumed, one was deleted.
    let expected: BTreeMap<&str, usize> = [
        ("deployment_running", 2),
        ("grace_period_started", 2),
        ("grace_period_ended", 1),
        ("deleted_out_of_funds", 1),
        ("auto_top_up_failed", 1),
        ("subscription_payment_failed", 1),
    ]
    .into_iter()
    .collect();
    let total: usize = expected.values().sum();
    let f = feed_until(&app, &alice(), total).await;
    let items = f["items"].as_array().expect("items");
    let mut in_feed: BTreeMap<&str, usize> = BTreeMap::new();
    for n in items {
        *in_feed
            .entry(n["kind"].as_str().expect("kind"))
            .or_insert(0) += 1;
    }
    assert_eq!(in_feed, expected, "{f:#}");
    let ids: Vec<String> = items
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect();

    // The webhook: each id once, each signature valid.
    until("every feed item delivered by webhook", || {
        receiver.per_id().len() == ids.len()
    })
    .await;
    // Email: one message per notification.
    let mails = smtp
        .wait_for_count_to("alice@example.com", total, Duration::from_secs(30))
        .await;
    // Nothing more arrives: each once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_id = receiver.per_id();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(per_id.keys().cloned().collect::<Vec<_>>(), sorted);
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    let mut by_hook: BTreeMap<String, usize> = BTreeMap::new();
    for h in receiver.hits() {
        *by_hook.entry(h.kind).or_insert(0) += 1;
    }
    assert_eq!(
        by_hook,
        expected
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<BTreeMap<_, _>>()
    );

    let mails_now = smtp.messages_to("alice@example.com");
    assert_eq!(mails_now.len(), total, "each once");
    let mut per_message: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mails {
        *per_message.entry(m.message_id.clone()).or_insert(0) += 1;
    }
    assert_eq!(per_message.len(), total, "one Message-ID each");
    for id in &ids {
        let mid = marketplace_workers::notify::message_id(id);
        assert_eq!(
            mails_now
                .iter()
                .filter(|m| m.message_id.contains(&mid))
                .count(),
            1,
            "one mail for {id}"
        );
    }

    // The farmer's alliance settlement paid: their feed, webhook and mail.
    let alliance = alliance_paid(&app).await;
    let f = feed_until(&app, &farmer, 1).await;
    let items = f["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{f:#}");
    assert_eq!(items[0]["kind"], "alliance_settlement_paid");
    assert_eq!(items[0]["details"]["alliance_id"], json!(alliance));
    let id = items[0]["id"].as_str().expect("id").to_string();
    until("the payout delivered by webhook", || {
        farmer_receiver.per_id().len() == 1
    })
    .await;
    let mails = smtp
        .wait_for_count_to("farmer@example.com", 1, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        farmer_receiver.per_id(),
        BTreeMap::from([(id.clone(), 1)]),
        "once"
    );
    assert_eq!(farmer_receiver.bad_signatures.load(Ordering::SeqCst), 0);
    assert_eq!(farmer_receiver.hits()[0].kind, "alliance_settlement_paid");
    assert_eq!(smtp.messages_to("farmer@example.com").len(), 1, "once");
    assert!(mails[0]
        .message_id
        .contains(&marketplace_workers::notify::message_id(&id)));
    // Alice got nothing more.
    assert_eq!(receiver.per_id().len(), total);
    assert_eq!(smtp.messages_to("alice@example.com").len(), total);
}
