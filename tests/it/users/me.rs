//! `/v1/me` and the operators' user list.

use std::time::Duration;

use serde_json::{json, Value};

use super::{me, patch, token_with_claims, user_events};
use crate::common::*;
use crate::openapi::{assert_fits, response_schema};

#[tokio::test]
async fn sixteen_concurrent_first_requests_open_the_user_once() {
    let app = spawn_app().await;
    let carol = token_with_claims("carol", &["cloud-user"], "carol@example.com", "Carol Jones");
    let answers = futures::future::join_all((0..16).map(|i| {
        let (app, carol) = (&app, &carol);
        async move {
            // Any authenticated request opens the user, not only /v1/me.
            let path = if i % 2 == 0 {
                "/v1/me"
            } else {
                "/v1/deployments"
            };
            app.get(path, carol).await.status().as_u16()
        }
    }))
    .await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    assert_eq!(user_events(&app, "carol", Some("UserRegistered")).await, 1);
    assert_eq!(
        user_events(&app, "carol", None).await,
        1,
        "and nothing else"
    );
    let (body, etag) = me(&app, &carol, 1).await;
    assert_eq!(body["user_id"], "carol");
    assert_eq!(body["email"], "carol@example.com");
    assert_eq!(body["name"], "Carol Jones");
    assert_eq!(body["notification_email"], "carol@example.com");
    assert_eq!(body["time_zone"], "UTC");
    assert_eq!(body["version"], 1);
    assert_eq!(etag, "\"1\"");
    // Later requests cost no command.
    for _ in 0..3 {
        assert_eq!(app.get("/v1/me", &carol).await.status(), 200);
    }
    assert_eq!(user_events(&app, "carol", None).await, 1);
    // A token with a new email is recorded once.
    let moved = token_with_claims("carol", &["cloud-user"], "carol@new.example", "Carol Jones");
    assert_eq!(app.get("/v1/me", &moved).await.status(), 200);
    assert_eq!(
        user_events(&app, "carol", Some("TokenClaimsChanged")).await,
        1
    );
    let (body, _) = me(&app, &moved, 2).await;
    assert_eq!(body["email"], "carol@new.example");

    let doc: Value = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    assert_fits(&doc, response_schema(&doc, "/v1/me", "get", 200), &body);
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let alice = alice();
    let (_, etag) = me(&app, &alice, 1).await;
    assert_eq!(etag, "\"1\"");
    let r = patch(
        &app,
        &alice,
        Some(&etag),
        &json!({ "display_name": "Alice A." }),
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let accepted: Value = r.json().await.expect("json");
    assert_eq!(accepted, json!({ "id": "alice", "version": 2 }));
    // Someone who read version 1 changes the company: refused.
    let r = patch(&app, &alice, Some("\"1\""), &json!({ "company": "Acme" })).await;
    let problem = expect_problem(r, 409).await;
    assert_eq!(problem["type"], "/problems/version-conflict");
    let (body, etag) = me(&app, &alice, 2).await;
    assert_eq!(etag, "\"2\"");
    assert_eq!(body["display_name"], "Alice A.");
    assert_eq!(body["company"], Value::Null, "the stale change did nothing");
    assert_eq!(user_events(&app, "alice", None).await, 2);
    // Without If-Match the change applies to the current version, as every
    // other command of the API does.
    let r = patch(
        &app,
        &alice,
        None,
        &json!({ "company": "Acme", "country": "be" }),
    )
    .await;
    assert_eq!(r.status(), 202);
    let (body, _) = me(&app, &alice, 3).await;
    assert_eq!(
        (body["company"].as_str(), body["country"].as_str()),
        (Some("Acme"), Some("BE"))
    );
    // null clears; a patch that changes nothing keeps the version.
    let r = patch(&app, &alice, Some("\"3\""), &json!({ "company": null })).await;
    assert_eq!(r.json::<Value>().await.expect("json")["version"], 4);
    let r = patch(
        &app,
        &alice,
        Some("\"4\""),
        &json!({ "company": null, "time_zone": "UTC" }),
    )
    .await;
    assert_eq!(r.json::<Value>().await.expect("json")["version"], 4);
    let (body, _) = me(&app, &alice, 4).await;
    assert_eq!(body["company"], Value::Null);
    assert_eq!(body["display_name"], "Alice A.");
}

#[tokio::test]
async fn invalid_profile_and_settings_are_problems_that_change_nothing() {
    let app = spawn_app().await;
    let alice = alice();
    let (before, _) = me(&app, &alice, 1).await;
    for (body, field) in [
        (json!({ "country": "Belgium" }), Some("country")),
        (json!({ "country": "XX" }), Some("country")),
        (
            json!({ "time_zone": "Mars/Olympus_Mons" }),
            Some("time_zone"),
        ),
        (json!({ "time_zone": "GMT+25" }), Some("time_zone")),
        (
            json!({ "notification_prefs": { "balance_high": { "email": false } } }),
            Some("notification_prefs.balance_high"),
        ),
        (
            json!({ "notification_prefs": { "balance_low": { "sms": false } } }),
            Some("notification_prefs.balance_low.sms"),
        ),
        (
            json!({ "notification_prefs": { "balance_low": { "email": "off" } } }),
            Some("notification_prefs.balance_low.email"),
        ),
        (json!({ "display_name": "   " }), Some("display_name")),
        (
            json!({ "contact_email": "not-an-address" }),
            Some("contact_email"),
        ),
        (
            json!({ "default_placement": { "min_uptime_bps": 20000 } }),
            Some("default_placement.min_uptime_bps"),
        ),
        // A valid field does not carry an invalid one through.
        (
            json!({ "company": "Acme", "time_zone": "Nowhere/City" }),
            Some("time_zone"),
        ),
        (json!({ "nickname": "al" }), None),
        (json!({ "time_zone": 3 }), None),
    ] {
        let r = patch(&app, &alice, None, &body).await;
        let problem = expect_problem(r, 422).await;
        assert_eq!(problem["type"], "/problems/invalid-command", "{body}");
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}");
        }
    }
    assert_eq!(
        user_events(&app, "alice", None).await,
        1,
        "nothing was recorded"
    );
    let (after, _) = me(&app, &alice, 1).await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn preferences_and_time_zone_are_kept_as_the_notifications_read_them() {
    let app = spawn_app().await;
    let alice = alice();
    me(&app, &alice, 1).await;
    let r = patch(
        &app,
        &alice,
        None,
        &json!({
            "notification_prefs": {
                "balance_low": { "email": false },
                "maintenance_soon": { "feed": false, "webhook": false }
            },
            "time_zone": "Europe/Brussels"
        }),
    )
    .await;
    assert_eq!(r.status(), 202);
    let (body, _) = me(&app, &alice, 2).await;
    assert_eq!(body["time_zone"], "Europe/Brussels");
    let prefs = &body["notification_prefs"];
    assert_eq!(
        prefs.as_object().map(|o| o.len()),
        Some(12),
        "every kind listed"
    );
    assert_eq!(
        prefs["balance_low"],
        json!({ "feed": true, "email": false, "webhook": true })
    );
    assert_eq!(
        prefs["maintenance_soon"],
        json!({ "feed": false, "email": true, "webhook": false })
    );
    assert_eq!(
        prefs["subscription_payment_failed"],
        json!({ "feed": true, "email": true, "webhook": true })
    );
    // A later change lays over the earlier one; null is back to on.
    let r = patch(
        &app,
        &alice,
        Some("\"2\""),
        &json!({ "notification_prefs": { "balance_low": { "email": null, "webhook": false } } }),
    )
    .await;
    assert_eq!(r.status(), 202);
    me(&app, &alice, 3).await;
    // The view's column holds only what was set, the shape the
    // notification process manager reads.
    let (prefs, tz): (Value, String) =
        sqlx::query_as("SELECT notification_prefs, time_zone FROM users WHERE user_id = 'alice'")
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert_eq!(
        prefs,
        json!({
            "balance_low": { "webhook": false },
            "maintenance_soon": { "feed": false, "webhook": false }
        })
    );
    assert_eq!(tz, "Europe/Brussels");
}

#[tokio::test]
async fn a_deployment_request_without_placement_gets_the_users_default() {
    let app = spawn_app().await;
    let alice = alice();
    let mut body = vm_body("nodefault");
    body.as_object_mut().expect("object").remove("placement");
    // No default yet: anywhere.
    let (id, _) = app.request(&alice, &body).await;
    let d = app.read(&alice, &id, 1).await;
    assert_eq!(d["placement"]["country"], Value::Null);
    assert_eq!(d["placement"]["min_uptime_bps"], 0);

    let default = json!({ "country": "Belgium", "certified_only": true, "min_uptime_bps": 9800 });
    let r = patch(&app, &alice, None, &json!({ "default_placement": default })).await;
    assert_eq!(r.status(), 202);
    let (me_body, _) = me(&app, &alice, 2).await;
    assert_eq!(me_body["default_placement"]["country"], "Belgium");
    // Applied at once, whatever the view.
    body["name"] = json!("withdefault");
    let (id, _) = app.request(&alice, &body).await;
    let d = app.read(&alice, &id, 1).await;
    assert_eq!(d["placement"]["country"], "Belgium");
    assert_eq!(d["placement"]["certified_only"], true);
    assert_eq!(d["placement"]["min_uptime_bps"], 9800);
    // A request that names its placement keeps it.
    let (id, _) = app.request(&alice, &vm_body("explicit")).await;
    let d = app.read(&alice, &id, 1).await;
    assert_eq!(d["placement"]["certified_only"], false);
    assert_eq!(d["placement"]["min_uptime_bps"], 9500);
    // Bob's requests do not get alice's default.
    let mut bobs = vm_body("bobs");
    bobs.as_object_mut().expect("object").remove("placement");
    let (id, _) = app.request(&bob(), &bobs).await;
    let d = app.read(&bob(), &id, 1).await;
    assert_eq!(d["placement"]["country"], Value::Null);
    // Removing the default: anywhere again.
    let r = patch(&app, &alice, None, &json!({ "default_placement": null })).await;
    assert_eq!(r.status(), 202);
    body["name"] = json!("removed");
    let (id, _) = app.request(&alice, &body).await;
    let d = app.read(&alice, &id, 1).await;
    assert_eq!(d["placement"]["country"], Value::Null);
}

/// The operators' list once it holds `n` users.
async fn users_page(app: &TestApp, query: &str, n: usize) -> Value {
    let started = std::time::Instant::now();
    loop {
        let r = app.get(&format!("/v1/users{query}"), &operator()).await;
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.expect("json");
        if page["items"].as_array().map(Vec::len) == Some(n) {
            return page;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{page:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn operators_list_and_read_users_and_nobody_else_reads_another() {
    let app = spawn_app().await;
    let dave = token_with_claims("dave", &["cloud-user"], "Dave@Example.com", "Dave");
    for t in [alice(), bob(), dave.clone()] {
        assert_eq!(app.get("/v1/me", &t).await.status(), 200);
    }
    // alice, bob, dave and the operator itself, oldest first.
    let all = users_page(&app, "?limit=100", 4).await;
    let ids: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["user_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 4);
    for id in ["alice", "bob", "dave", "ops"] {
        assert!(ids.contains(&id), "{ids:?}");
    }
    let first = users_page(&app, "?limit=3", 3).await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = users_page(&app, &format!("?limit=3&cursor={cursor}"), 1).await;
    assert_eq!(second["next_cursor"], Value::Null);
    let paged: Vec<&str> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .chain(second["items"].as_array().expect("items"))
        .filter_map(|u| u["user_id"].as_str())
        .collect();
    assert_eq!(paged, ids, "pages follow the list's order");
    let found = users_page(&app, "?email=dave%40example.com", 1).await;
    assert_eq!(found["items"][0]["user_id"], "dave");
    assert_eq!(found["items"][0]["email"], "Dave@Example.com");
    expect_problem(app.get("/v1/users?cursor=garbage", &operator()).await, 400).await;
    expect_problem(app.get("/v1/users?limit=0", &operator()).await, 400).await;

    let r = app.get("/v1/users/dave", &operator()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["name"], "Dave");
    expect_problem(app.get("/v1/users/nobody", &operator()).await, 404).await;
    // A user reads neither the list nor another's profile.
    expect_problem(app.get("/v1/users", &alice()).await, 403).await;
    expect_problem(app.get("/v1/users/bob", &alice()).await, 403).await;
    expect_problem(app.get("/v1/users/alice", &alice()).await, 403).await;
    let provider = token("farmer", &["cloud-provider"]);
    expect_problem(app.get("/v1/users/bob", &provider).await, 403).await;
    // /v1/me is always one's own.
    let (mine, _) = me(&app, &bob(), 1).await;
    assert_eq!(mine["user_id"], "bob");
    expect_problem(app.get("/v1/me", "not-a-token").await, 401).await;
}
