//! Command semantics: optimistic concurrency, Idempotency-Key, and bad
//! input that answers a problem and stores nothing.

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn concurrent_conflicting_commands_one_wins_the_other_gets_409() {
    let app = spawn_app().await;
    for round in 0..5 {
        let id = running(&app).await;
        let before = app.event_count(&id).await;
        let send = |body: Value, token: String| {
            let req = app
                .client
                .post(app.url(&format!("/v1/deployments/{id}/resize")))
                .bearer_auth(token)
                .header("if-match", "\"4\"")
                .json(&body);
            async move { req.send().await.expect("send") }
        };
        let a = send(
            json!({ "size": { "cpu": 4, "memory_mib": 8192, "rootfs_gb": 40 } }),
            alice(),
        );
        let b = send(
            json!({ "size": { "cpu": 8, "memory_mib": 16384, "rootfs_gb": 80 } }),
            operator(),
        );
        let (a, b) = tokio::join!(a, b);
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [202, 409], "round {round}: exactly one wins");
        let loser = if a.status() == 409 { a } else { b };
        let problem = expect_problem(loser, 409).await;
        assert_eq!(problem["type"], "/problems/version-conflict");
        assert_eq!(app.event_count(&id).await, before + 1, "one event stored");
    }
}

#[tokio::test]
async fn a_stale_if_match_is_409_and_stores_nothing() {
    let app = spawn_app().await;
    let id = running(&app).await;
    let r = app
        .client
        .post(app.url(&format!("/v1/deployments/{id}/cancel")))
        .bearer_auth(alice())
        .header("if-match", "\"2\"")
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    expect_problem(r, 409).await;
    assert_eq!(app.event_count(&id).await, 4);
}

#[tokio::test]
async fn the_same_idempotency_key_twice_gives_one_event_and_the_same_answer() {
    let app = spawn_app().await;
    let send = || {
        app.client
            .post(app.url("/v1/deployments"))
            .bearer_auth(alice())
            .header("idempotency-key", "k-1")
            .json(&vm_body("web1"))
            .send()
    };
    let first = send().await.expect("first");
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.expect("json");
    let second = send().await.expect("second");
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.expect("json");
    assert_eq!(first, second);
    assert_eq!(app.total_events().await, 1);

    // Concurrent retries of a new key: still one event, and every answer that
    // is not "in progress" is the same.
    let answers = futures::future::join_all((0..8).map(|_| {
        app.client
            .post(app.url("/v1/deployments"))
            .bearer_auth(alice())
            .header("idempotency-key", "k-2")
            .json(&vm_body("web2"))
            .send()
    }))
    .await;
    let mut ids = std::collections::HashSet::new();
    for a in answers {
        let a = a.expect("send");
        match a.status().as_u16() {
            202 => {
                let v: Value = a.json().await.expect("json");
                ids.insert(v["id"].as_str().expect("id").to_string());
            }
            409 => {
                let p = expect_problem(a, 409).await;
                assert_eq!(p["type"], "/problems/idempotency-in-progress");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.total_events().await, 2);

    // Another user's identical key is theirs alone.
    let r = app
        .client
        .post(app.url("/v1/deployments"))
        .bearer_auth(bob())
        .header("idempotency-key", "k-1")
        .json(&vm_body("web1"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 202);
    assert_eq!(app.total_events().await, 3);

    // The same key with a different body is refused.
    let r = app
        .client
        .post(app.url("/v1/deployments"))
        .bearer_auth(alice())
        .header("idempotency-key", "k-1")
        .json(&vm_body("other"))
        .send()
        .await
        .expect("send");
    let p = expect_problem(r, 422).await;
    assert_eq!(p["type"], "/problems/idempotency-key-reused");
    assert_eq!(app.total_events().await, 3);
}

#[tokio::test]
async fn a_refused_keyed_command_replays_its_refusal() {
    let app = spawn_app().await;
    let id = running(&app).await;
    let send = || {
        app.client
            .post(app.url(&format!("/v1/deployments/{id}/resize")))
            .bearer_auth(alice())
            .header("idempotency-key", "same-size")
            .json(&json!({ "size": { "cpu": 2, "memory_mib": 4096, "rootfs_gb": 20 } }))
            .send()
    };
    let first = expect_problem(send().await.expect("send"), 422).await;
    assert_eq!(app.event_count(&id).await, 4);
    // The deployment grows (no key): the keyed request, run again now,
    // would be accepted, so only a replay answers it with the refusal.
    let r = app
        .post(
            &format!("/v1/deployments/{id}/resize"),
            &alice(),
            &json!({ "size": { "cpu": 4, "memory_mib": 4096, "rootfs_gb": 20 } }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let second = expect_problem(send().await.expect("send"), 422).await;
    assert_eq!(first, second);
    assert_eq!(app.event_count(&id).await, 5, "the retry stored nothing");
}

#[tokio::test]
async fn a_key_left_pending_by_a_crash_is_settled_from_the_store() {
    let app = spawn_app().await;
    // The command committed, then the process died before recording the answer:
    let r = app
        .client
        .post(app.url("/v1/deployments"))
        .bearer_auth(alice())
        .header("idempotency-key", "crash-1")
        .json(&vm_body("web1"))
        .send()
        .await
        .expect("send");
    let original: Value = r.json().await.expect("json");
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'pending', status_code = NULL, response_body = NULL,
                created_at = now() - interval '5 minutes' WHERE key = 'crash-1'",
    )
    .execute(&app.pool)
    .await
    .expect("simulate crash");

    let r = app
        .client
        .post(app.url("/v1/deployments"))
        .bearer_auth(alice())
        .header("idempotency-key", "crash-1")
        .json(&vm_body("web1"))
        .send()
        .await
        .expect("retry");
    assert_eq!(r.status(), 202);
    let replayed: Value = r.json().await.expect("json");
    assert_eq!(
        replayed, original,
        "the retry answers what the lost answer said"
    );
    assert_eq!(app.total_events().await, 1, "and runs nothing twice");
}

#[tokio::test]
async fn bad_input_answers_a_problem_and_stores_nothing() {
    let app = spawn_app_with(AppOptions {
        body_limit: 4096,
        ..Default::default()
    })
    .await;
    let raw = |body: String, content_type: &'static str| {
        app.client
            .post(app.url("/v1/deployments"))
            .bearer_auth(alice())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let r = raw("{\"name\": ".into(), "application/json")
        .await
        .expect("send");
    assert_eq!(
        expect_problem(r, 400).await["type"],
        "/problems/malformed-request"
    );

    let mut unknown = vm_body("web1");
    unknown["colour"] = json!("blue");
    let r = raw(unknown.to_string(), "application/json")
        .await
        .expect("send");
    expect_problem(r, 422).await;
    let mut nested_unknown = vm_body("web1");
    nested_unknown["spec"]["size"]["gpu"] = json!(1);
    let r = raw(nested_unknown.to_string(), "application/json")
        .await
        .expect("send");
    expect_problem(r, 422).await;

    let mut huge = vm_body("web1");
    huge["spec"]["ssh_key"] = json!("x".repeat(10_000));
    let r = raw(huge.to_string(), "application/json")
        .await
        .expect("send");
    expect_problem(r, 413).await;

    let r = raw(vm_body("web1").to_string(), "text/plain")
        .await
        .expect("send");
    expect_problem(r, 415).await;

    let cases = [
        ("spec.size.cpu", {
            let mut b = vm_body("web1");
            b["spec"]["size"]["cpu"] = json!(64);
            b
        }),
        ("spec.size.memory_mib", {
            let mut b = vm_body("web1");
            b["spec"]["size"]["memory_mib"] = json!(10);
            b
        }),
        ("spec.disks_gb", {
            let mut b = vm_body("web1");
            b["spec"]["disks_gb"] = json!([0]);
            b
        }),
        ("spec.image", {
            let mut b = vm_body("web1");
            b["spec"]["image"] = json!("http://x/y.flist");
            b
        }),
        ("spec.ssh_key", {
            let mut b = vm_body("web1");
            b["spec"]["ssh_key"] = json!("hello");
            b
        }),
        ("name", vm_body("Web 1")),
        ("placement.min_uptime_bps", {
            let mut b = vm_body("web1");
            b["placement"]["min_uptime_bps"] = json!(20_000);
            b
        }),
        ("spec.masters", {
            let mut b = k8s_body("c1");
            b["spec"]["masters"] = json!(2);
            b
        }),
    ];
    for (field, body) in cases {
        let r = app.post("/v1/deployments", &alice(), &body).await;
        let p = expect_problem(r, 422).await;
        assert_eq!(p["field"], field, "{body}");
    }
    // A negative number does not even fit the schema.
    let mut negative = vm_body("web1");
    negative["spec"]["size"]["cpu"] = json!(-1);
    expect_problem(app.post("/v1/deployments", &alice(), &negative).await, 422).await;

    assert_eq!(app.total_events().await, 0, "nothing was stored");
}
