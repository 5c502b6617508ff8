//! The one write path: a command that loses a race without `If-Match` is
//! decided again; a keyed command whose answer was lost replays its own
//! answer; conflicts of existence have their own problem types; and
//! `marketplace project --only` runs only what it names.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// Makes a keyed command's record look as a crash between its commit and
/// its answer leaves it: pending, unanswered, and old enough to be stale.
async fn lose_the_answer(app: &TestApp, key: &str) {
    let changed = sqlx::query(
        "UPDATE idempotency_keys
            SET state = 'pending', status_code = NULL, response_headers = NULL,
                response_body = NULL, created_at = now() - interval '5 minutes'
          WHERE key = $1",
    )
    .bind(key)
    .execute(&app.pool)
    .await
    .expect("update")
    .rows_affected();
    assert_eq!(changed, 1);
}

#[tokio::test]
async fn concurrent_commands_without_if_match_are_decided_again_and_all_land() {
    let app = spawn_app().await;
    let id = running(&app).await;
    let before = app.event_count(&id).await;
    // Five resizes at once, each valid whatever order they land in. Each
    // round of a race has a winner, so none loses more than four times:
    // within the bus's retries.
    let answers = futures::future::join_all((2..7).map(|cpu| {
        app.client
            .post(app.url(&format!("/v1/deployments/{id}/resize")))
            .bearer_auth(alice())
            .json(&json!({ "size": { "cpu": cpu, "memory_mib": 8192, "rootfs_gb": 40 } }))
            .send()
    }))
    .await;
    for a in answers {
        let a = a.expect("send");
        assert_eq!(a.status(), 202, "{}", a.text().await.unwrap_or_default());
    }
    assert_eq!(
        app.event_count(&id).await,
        before + 5,
        "every resize stored"
    );
}

#[tokio::test]
async fn a_keyed_wallet_command_whose_answer_was_lost_replays_its_own_201() {
    use marketplace_app::tfchain::ss58_address;
    let app = spawn_app().await;
    let account = ss58_address(&schnorrkel::Keypair::generate().public.to_bytes(), 42);
    let send = || {
        app.client
            .post(app.url("/v1/wallet/link-challenges"))
            .bearer_auth(alice())
            .header("idempotency-key", "link-1")
            .json(&json!({ "account": account, "key_type": "sr25519" }))
            .send()
    };
    let first = send().await.expect("send");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let events = app.total_events().await;

    lose_the_answer(&app, "link-1").await;
    let retry = send().await.expect("send");
    assert_eq!(
        retry.status(),
        201,
        "the retry is answered as the first was"
    );
    let retry: Value = retry.json().await.expect("json");
    assert_eq!(retry["challenge_id"], first["challenge_id"]);
    assert_eq!(retry["message"], first["message"]);
    assert_eq!(app.total_events().await, events, "no second challenge");

    // And that answer is now kept: a further retry replays it.
    let again: Value = send().await.expect("send").json().await.expect("json");
    assert_eq!(again, retry);
}

#[tokio::test]
async fn a_keyed_top_up_whose_answer_was_lost_replays_its_201_with_the_client_secret() {
    let app = spawn_app_with(AppOptions {
        stripe: true,
        ..AppOptions::default()
    })
    .await;
    let send = || {
        app.client
            .post(app.url("/v1/wallet/top-ups"))
            .bearer_auth(alice())
            .header("idempotency-key", "top-up-lost")
            .json(&json!({ "usd_cents": 2500 }))
            .send()
    };
    let first = send().await.expect("send");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    assert!(first["client_secret"].is_string());
    let events = app.total_events().await;

    lose_the_answer(&app, "top-up-lost").await;
    let retry = send().await.expect("send");
    assert_eq!(
        retry.status(),
        201,
        "the retry is answered as the first was"
    );
    let retry: Value = retry.json().await.expect("json");
    for field in [
        "top_up_id",
        "payment_intent_id",
        "client_secret",
        "tft_units",
    ] {
        assert_eq!(retry[field], first[field], "{field}");
    }
    assert_eq!(app.total_events().await, events, "no second top-up");
}

#[tokio::test]
async fn a_keyed_deployment_whose_answer_was_lost_replays_its_202() {
    let app = spawn_app().await;
    let send = || {
        app.client
            .post(app.url("/v1/deployments"))
            .bearer_auth(alice())
            .header("idempotency-key", "dep-1")
            .json(&vm_body("web1"))
            .send()
    };
    let first = send().await.expect("send");
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let first: Value = first.json().await.expect("json");
    lose_the_answer(&app, "dep-1").await;
    let retry = send().await.expect("send");
    assert_eq!(retry.status(), 202);
    assert_eq!(
        retry.headers()["location"].to_str().expect("location"),
        location
    );
    assert_eq!(retry.json::<Value>().await.expect("json"), first);
    assert_eq!(app.total_events().await, 1);
}

#[tokio::test]
async fn a_stale_if_match_on_a_link_challenge_is_a_conflict_with_or_without_a_key() {
    use marketplace_app::tfchain::ss58_address;
    let app = spawn_app().await;
    let account = ss58_address(&schnorrkel::Keypair::generate().public.to_bytes(), 42);
    for key in [None, Some("stale-1")] {
        let mut req = app
            .client
            .post(app.url("/v1/wallet/link-challenges"))
            .bearer_auth(alice())
            .header("if-match", "\"99\"")
            .json(&json!({ "account": account, "key_type": "sr25519" }));
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let p = expect_problem(req.send().await.expect("send"), 409).await;
        assert_eq!(p["type"], "/problems/version-conflict", "key {key:?}");
    }
    assert_eq!(app.total_events().await, 0);
}

#[tokio::test]
async fn creating_what_exists_has_its_own_problem_type() {
    let app = spawn_app().await;
    let send = || {
        app.client
            .post(app.url("/v1/deployments"))
            .bearer_auth(alice())
            .header("idempotency-key", "exists-1")
            .json(&vm_body("web1"))
            .send()
    };
    assert_eq!(send().await.expect("send").status(), 202);
    // The key's record is gone (say, expired): the same key derives the same
    // deployment id, which exists.
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&app.pool)
        .await
        .expect("delete");
    let p = expect_problem(send().await.expect("send"), 409).await;
    assert_eq!(p["type"], "/problems/already-exists");
    assert_eq!(app.total_events().await, 1);
}

async fn checkpoints(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT projection FROM projection_checkpoints WHERE last_position > 0 ORDER BY projection",
    )
    .fetch_all(pool)
    .await
    .expect("checkpoints")
}

#[tokio::test]
async fn project_only_runs_only_the_projections_it_names() {
    let app = spawn_app_with(AppOptions {
        projections: false,
        ..AppOptions::default()
    })
    .await;
    app.request(&alice(), &vm_body("web1")).await;
    let project = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_marketplace"));
        c.args(["project", "--only", "provider_requests"])
            .env("DATABASE_URL", &app.database_url)
            .env_remove("PROJECTIONS")
            .env_remove("PROJECTION_SOURCE");
        c
    };

    // Once: catches up the named projection only.
    let out = project().arg("--once").output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        checkpoints(&app.pool)
            .await
            .iter()
            .all(|p| p == "provider_requests"),
        "only provider_requests moved: {:?}",
        checkpoints(&app.pool).await
    );

    // Live: the other runners never start.
    let mut child = project().spawn().expect("spawn");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let moved = checkpoints(&app.pool).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !moved.contains(&"deployments".to_string()),
        "the deployments runner ran: {moved:?}"
    );
}
