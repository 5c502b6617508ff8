//! Group commit keeps every invariant of the command path: optimistic
//! concurrency per aggregate (64 writers, one `If-Match` version each
//! round: exactly one wins), a conflicting append failing alone inside its
//! batch, and a SIGKILL of the API while batches are in flight leaving
//! every answered command durable and every other one wholly there or
//! wholly absent.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use marketplace_app::bus::group::{self, Append, Row};
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_with_if_match_one_wins_each_version() {
    let app = spawn_app().await;
    let policy: Value = app
        .get("/v1/pricing", &alice())
        .await
        .json()
        .await
        .expect("json");
    let policy = policy["policy"].clone();
    for version in 0..4u64 {
        let answers = futures::future::join_all((0..64).map(|i| {
            let mut body = policy.clone();
            body["cu_per_hour"] = json!(200_000 + version * 1_000 + i);
            app.client
                .put(app.url("/v1/pricing"))
                .bearer_auth(operator())
                .header("if-match", format!("\"{version}\""))
                .json(&body)
                .send()
        }))
        .await;
        let statuses: Vec<u16> = answers
            .into_iter()
            .map(|r| r.expect("send").status().as_u16())
            .collect();
        let won = statuses.iter().filter(|s| **s == 202).count();
        let lost = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((won, lost), (1, 63), "version {version}: {statuses:?}");
    }
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'pricing_policy'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(stored, 4, "one event per version");
}

fn row(sequence: i64, name: &str) -> Row {
    Row {
        sequence,
        event_type: "Noted".into(),
        event_version: "1".into(),
        payload: json!({ "Noted": { "name": name } }),
        metadata: json!({ "actor_subject": "test" }),
    }
}

fn append(id: &str, rows: Vec<Row>) -> Append {
    Append {
        aggregate_type: "group_test",
        aggregate_id: id.into(),
        rows,
        snapshot: None,
        key: None,
    }
}

/// One transaction, five appends: a stale one (its first sequence is
/// taken), two for one aggregate decided from the same version, two clean.
/// The stale one and the second of the pair fail alone; the others commit
/// whole, and no row of a loser stays.
#[tokio::test]
async fn in_a_batch_a_conflicting_append_fails_alone() {
    let app = spawn_app_with(AppOptions {
        projections: false,
        ..AppOptions::default()
    })
    .await;
    group::write_batch(&app.pool, &[append("stale", vec![row(1, "first")])])
        .await
        .expect("seed");
    let batch = vec![
        append("clean-a", vec![row(1, "a1"), row(2, "a2")]),
        append("stale", vec![row(1, "again"), row(2, "later")]),
        append("pair", vec![row(1, "winner")]),
        append("pair", vec![row(1, "loser"), row(2, "loser2")]),
        append("clean-b", vec![row(1, "b1")]),
    ];
    let lost = group::write_batch(&app.pool, &batch).await.expect("batch");
    assert_eq!(
        lost.keys().copied().collect::<HashSet<_>>(),
        HashSet::from([1, 3])
    );
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, payload->'Noted'->>'name' FROM events
          WHERE aggregate_type = 'group_test' ORDER BY aggregate_id, sequence",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    let expected = [
        ("clean-a", 1, "a1"),
        ("clean-a", 2, "a2"),
        ("clean-b", 1, "b1"),
        ("pair", 1, "winner"),
        ("stale", 1, "first"),
    ];
    let rows: Vec<(&str, i64, &str)> = rows
        .iter()
        .map(|(id, s, n)| (id.as_str(), *s, n.as_str()))
        .collect();
    assert_eq!(rows, expected);
    // The hash chains of what was written in one statement check out.
    let found = marketplace_app::audit::verify(&app.pool)
        .await
        .expect("verify");
    assert!(found.broken.is_none(), "{found:?}");
}

/// A batch the database refuses for what one append carries (a NUL
/// character, which `jsonb` cannot hold) is tried again append by append:
/// that one fails, and its batch-mates commit.
#[tokio::test]
async fn in_a_batch_an_append_the_database_refuses_fails_alone() {
    let app = spawn_app_with(AppOptions {
        projections: false,
        ..AppOptions::default()
    })
    .await;
    let batch = vec![
        append("before", vec![row(1, "fine")]),
        append("poisoned", vec![row(1, "nul \u{0} inside")]),
        append("after", vec![row(1, "fine too"), row(2, "and this")]),
    ];
    let answers = group::commit(&app.pool, &batch).await;
    assert!(answers[0].is_ok(), "{answers:?}");
    assert!(
        matches!(answers[1], Err(group::AppendError::Database(_))),
        "{answers:?}"
    );
    assert!(answers[2].is_ok(), "{answers:?}");
    let ids: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, sequence FROM events
          WHERE aggregate_type = 'group_test' ORDER BY aggregate_id, sequence",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    let ids: Vec<(&str, i64)> = ids.iter().map(|(i, s)| (i.as_str(), *s)).collect();
    assert_eq!(ids, [("after", 1), ("after", 2), ("before", 1)]);
}

/// `marketplace serve` SIGKILLed while 16 clients open wallets (each an
/// append of two events): every answered wallet has both events, and no
/// wallet has one without the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_api_leaves_every_answered_command_durable_and_none_half_written() {
    let (pool, database_url) = fresh_database().await;
    marketplace::MIGRATOR.run(&pool).await.expect("migrate");
    let cancel = tokio_util::sync::CancellationToken::new();
    let jwks = serde_json::to_value(key().jwks()).expect("jwks");
    let (jwks_url, _) = serve_jwks(jwks, cancel.clone()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut api = tokio::process::Command::new(env!("CARGO_BIN_EXE_marketplace"));
    api.arg("serve")
        .env("DATABASE_URL", &database_url)
        .env("MARKETPLACE_LISTEN", format!("127.0.0.1:{port}"))
        .env("JWT_JWKS_URL", &jwks_url)
        .env("JWT_ISSUER", ISSUER)
        .env("JWT_AUDIENCE", AUDIENCE)
        .env("JWT_ROLES_CLAIM", ROLES_CLAIM)
        .env("RUST_LOG", "warn")
        .env_remove("TFCHAIN_URL")
        .env_remove("MARKETPLACE_CHAIN_SEED")
        .env_remove("STRIPE_SECRET_KEY")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let mut child = api.spawn().expect("spawn serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (http, base, answered) = (http.clone(), base.clone(), answered.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let user = format!("u{c}x{i}");
                    let account = marketplace_app::tfchain::ss58_address(
                        &schnorrkel::Keypair::generate().public.to_bytes(),
                        42,
                    );
                    let sent = http
                        .post(format!("{base}/v1/wallet/link-challenges"))
                        .bearer_auth(token(&user, &["cloud-user"]))
                        .json(&json!({ "account": account, "key_type": "sr25519" }))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => answered.lock().expect("lock").push(user),
                        Ok(r) => panic!("{user}: {}", r.status()),
                        Err(_) => return, // the API is gone
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("reaped");
    for c in clients {
        c.await.expect("client");
    }
    let answered = answered.lock().expect("lock").clone();
    assert!(
        answered.len() > 16,
        "the API answered commands before it died: {}",
        answered.len()
    );

    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, count(*) FROM events WHERE aggregate_type = 'wallet' GROUP BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("wallets");
    let events_of: std::collections::HashMap<String, i64> = counts.into_iter().collect();
    for user in &answered {
        assert_eq!(
            events_of.get(user),
            Some(&2),
            "{user} was answered: both events are durable"
        );
    }
    let half: Vec<_> = events_of.iter().filter(|(_, n)| **n != 2).collect();
    assert!(half.is_empty(), "wallets half written: {half:?}");
    let found = marketplace_app::audit::verify(&pool).await.expect("verify");
    assert!(found.broken.is_none(), "{found:?}");
    cancel.cancel();
}

/// A keyed command's key is claimed, with its answer, by the very
/// transaction that appends its events; a retry appends nothing more and
/// gets the same answer.
#[tokio::test]
async fn a_keyed_commands_key_and_events_commit_in_one_transaction() {
    let app = spawn_app().await;
    let send = || {
        app.client
            .post(app.url("/v1/deployments"))
            .bearer_auth(alice())
            .header("idempotency-key", "one-tx")
            .json(&vm_body("keyed"))
            .send()
    };
    let first = send().await.expect("send");
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.expect("json");
    let id = first["id"].as_str().expect("id").to_string();
    let (same, state): (bool, String) = sqlx::query_as(
        "SELECT e.txid % 4294967296 = k.xmin::text::bigint, k.state
           FROM idempotency_keys k
           JOIN events e ON e.aggregate_type = 'deployment' AND e.aggregate_id = k.aggregate_id
          WHERE k.subject = 'alice' AND k.key = 'one-tx'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("key and events");
    assert!(same, "the key's row was written by the events' transaction");
    assert_eq!(state, "done");
    let events = app.total_events().await;
    let again = send().await.expect("send");
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, first);
    assert_eq!(
        app.total_events().await,
        events,
        "the retry appended nothing"
    );
    assert_eq!(app.event_count(&id).await, 1);
}

/// A command told its aggregate is new skips the load; were the aggregate
/// to exist after all, its append loses on the store's key, the next try
/// loads it, and the domain decides against the real state.
#[tokio::test]
async fn a_fresh_command_on_an_aggregate_that_exists_is_decided_against_it() {
    use marketplace_app::{EventMetadata, Exec, Stores};
    use marketplace_domain::deployment::{Deployment, DeploymentCommand};
    let app = spawn_app().await;
    let (id, _) = app.request(&alice(), &vm_body("exists")).await;
    let stores = Stores::new(&app.pool);
    let request: Value = vm_body("again");
    let spec: marketplace_api::dto::RequestDeploymentBody =
        serde_json::from_value(request).expect("body");
    let (name, spec, placement) = spec.into_domain().expect("valid");
    let placement = placement.unwrap_or_default();
    let outcome = Exec::<Deployment>::new(
        &stores.deployments,
        id.clone(),
        EventMetadata::for_worker("test", "fresh"),
    )
    .fresh()
    .run(|_| {
        Ok(DeploymentCommand::Request {
            owner: "alice".into(),
            name: name.clone(),
            spec: spec.clone(),
            placement: placement.clone(),
            at: chrono::Utc::now(),
        })
    })
    .await;
    let Err(refusal) = outcome else {
        panic!("a second request on an existing deployment is refused");
    };
    assert!(refusal.to_string().contains("already exists"), "{refusal}");
    assert_eq!(app.event_count(&id).await, 1, "nothing appended");
}
