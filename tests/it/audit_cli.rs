//! The audit CLI against a real store: state, diff, correlate, verify and
//! history print what the endpoints answer; an export of 100,000 events
//! streams in the memory an export of 10,000 takes; `replay --until`
//! builds a view as it stood at a past time beside the live one.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{alice, spawn_app, spawn_app_with, vm_body, AppOptions, TestApp};

/// The CLI with these arguments, on the test's database.
fn marketplace(app: &TestApp, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_marketplace"));
    c.env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .args(args)
        .arg("--database-url")
        .arg(&app.database_url);
    c
}

/// Runs the CLI: (exit code, stdout, stderr).
fn run(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let out = marketplace(app, args).output().expect("run marketplace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn the_audit_commands_print_what_the_endpoints_answer() {
    let app = spawn_app().await;
    let conversation = format!("cli-{}", uuid::Uuid::new_v4());
    let r = app
        .client
        .post(app.url("/v1/deployments"))
        .bearer_auth(alice())
        .header("x-correlation-id", &conversation)
        .json(&vm_body("cli"))
        .send()
        .await
        .expect("send");
    let id = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = app
        .post(
            &format!("/v1/deployments/{id}/cancel"),
            &alice(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    crate::audit_search::indexed(&app).await;

    let (code, out, err) = run(
        &app,
        &["audit", "state", "deployment", &id, "--version", "1"],
    );
    assert_eq!(code, 0, "{err}");
    let state = &lines(&out)[0];
    assert_eq!(state["version"], 1);
    assert_eq!(state["state"]["state"]["status"], "requested", "{state:#}");
    let (_, out, _) = run(
        &app,
        &["audit", "state", "deployment", &id, "--at", &between],
    );
    assert_eq!(
        lines(&out)[0]["version"],
        1,
        "the state between the two events"
    );
    let (code, _, err) = run(
        &app,
        &[
            "audit",
            "state",
            "deployment",
            &id,
            "--at",
            "2001-01-01T00:00:00Z",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("had no event by then"), "{err}");

    let (code, out, err) = run(&app, &["audit", "diff", "deployment", &id, "1", "2"]);
    assert_eq!(code, 0, "{err}");
    let diff = &lines(&out)[0];
    assert!(
        diff["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["path"] == "/state/status"),
        "{diff:#}"
    );
    assert_eq!(diff["events"][0]["event_type"], "DeploymentCancelled");

    let (code, out, err) = run(&app, &["audit", "correlate", &conversation]);
    assert_eq!(code, 0, "{err}");
    let tree = lines(&out);
    assert!(
        tree.iter()
            .all(|e| e["event"]["aggregate_id"] == id.as_str()),
        "{out}"
    );
    assert_eq!(tree[0]["event"]["event_type"], "DeploymentRequested");

    let (code, out, _) = run(&app, &["audit", "history", "deployment", &id]);
    assert_eq!(code, 0);
    assert_eq!(lines(&out).len(), 2);

    let (code, out, err) = run(&app, &["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(lines(&out)[0]["broken"].is_null());
    sqlx::query(
        "UPDATE events SET metadata = jsonb_set(metadata, '{actor_subject}', '\"mallory\"')
          WHERE aggregate_type = 'deployment' AND aggregate_id = $1 AND sequence = 2",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .expect("tamper");
    let (code, out, err) = run(&app, &["audit", "verify"]);
    assert_eq!(code, 1, "a broken history fails the command");
    assert_eq!(lines(&out)[0]["broken"]["sequence"], 2);
    assert!(
        err.contains(&format!("deployment {id} sequence 2: edited")),
        "{err}"
    );

    // Every CLI read of an aggregate is in the access log too.
    let logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_access_log WHERE actor_subject LIKE 'cli:%' AND aggregate_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert!(logged >= 4, "{logged}");
}

/// Stores `n` copies of a real request's event (ten per aggregate) in one
/// transaction, and indexes them as the audit index would.
async fn bulk(app: &TestApp, model: &str, from: i64, n: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'deployment', 'bulk-' || (i / 10), i % 10 + 1, m.event_type, m.event_version, m.payload, m.metadata
           FROM generate_series($2::bigint, $2::bigint + $3 - 1) AS i,
                (SELECT * FROM events WHERE aggregate_id = $1 AND sequence = 1) m",
    )
    .bind(model)
    .bind(from)
    .bind(n)
    .execute(&app.pool)
    .await
    .expect("bulk insert");
    sqlx::query(
        "INSERT INTO audit_events (position, txid, aggregate_type, aggregate_id, sequence, event_type,
                                   actor_subject, recorded_at, hash)
         SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type,
                metadata->>'actor_subject', recorded_at, hash
           FROM events WHERE aggregate_id LIKE 'bulk-%'
         ON CONFLICT DO NOTHING",
    )
    .execute(&app.pool)
    .await
    .expect("index");
}

/// Runs an export to a file: (lines written, peak resident KiB).
fn export(app: &TestApp, from: &str, to: &str) -> (usize, i64) {
    let path = std::env::temp_dir().join(format!("export-{}.jsonl", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).expect("file");
    let child = marketplace(app, &["audit", "export", "--from", from, "--to", to])
        .stdout(Stdio::from(file))
        .spawn()
        .expect("spawn");
    // wait4 answers the child's own peak memory, not the test process's.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "export failed"
    );
    let text = std::fs::read_to_string(&path).expect("read");
    let _ = std::fs::remove_file(&path);
    let mut n = 0;
    for line in text.lines() {
        let e: Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(e["payload"]["DeploymentRequested"]["name"], "model");
        n += 1;
    }
    (n, usage.ru_maxrss)
}

#[tokio::test]
async fn an_export_of_100000_events_streams_in_the_memory_of_10000() {
    let app = spawn_app_with(AppOptions {
        projections: false,
        ..AppOptions::default()
    })
    .await;
    let (model, _) = app.request(&alice(), &vm_body("model")).await;
    let t0 = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    bulk(&app, &model, 0, 10_000).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t1 = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    bulk(&app, &model, 10_000, 90_000).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t2 = chrono::Utc::now().to_rfc3339();

    let (small, small_kib) = export(&app, &t0, &t1);
    let (large, large_kib) = export(&app, &t0, &t2);
    assert_eq!((small, large), (10_000, 100_000));
    assert!(
        large_kib <= small_kib + small_kib / 4,
        "10x the events took {large_kib} KiB against {small_kib} KiB"
    );
}

#[tokio::test]
async fn replay_until_builds_a_view_as_it_stood_then_beside_the_live_one() {
    let app = spawn_app().await;
    let (id, _) = app.request(&alice(), &vm_body("then")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let then = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = app
        .post(
            &format!("/v1/deployments/{id}/cancel"),
            &alice(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let live = app.read(&alice(), &id, 2).await;
    assert_eq!(live["status"], "cancelled");

    let (code, out, err) = run(
        &app,
        &[
            "replay",
            "deployments",
            "--until",
            &then,
            "--into",
            "audit_then",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "audit_then");
    let status: String =
        sqlx::query_scalar("SELECT status FROM audit_then.deployment_views WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .expect("the view as of then");
    assert_eq!(status, "requested");
    // The live view is untouched.
    assert_eq!(app.read(&alice(), &id, 2).await["status"], "cancelled");
    // A schema that is not a scratch one is refused.
    let (code, _, err) = run(
        &app,
        &[
            "replay",
            "deployments",
            "--until",
            &then,
            "--into",
            "public",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("schema \"public\""), "{err}");
}
