//! Authentication and authorisation: only RS256 tokens from the configured
//! issuer's JWKS get in; roles gate endpoints; tenants see only their own.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

async fn status_of(app: &TestApp, token: &str) -> u16 {
    app.get("/v1/deployments", token).await.status().as_u16()
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401() {
    let app = spawn_app().await;
    assert_eq!(status_of(&app, &alice()).await, 200, "a good token works");

    let with = |patch: Value| {
        let mut c = claims("alice", &["cloud-user"]);
        for (k, v) in patch.as_object().expect("object") {
            c[k] = v.clone();
        }
        key().sign(&c).expect("sign")
    };
    let now = chrono::Utc::now().timestamp();
    let cases = [
        ("wrong issuer", with(json!({ "iss": "https://evil.test/" }))),
        ("wrong audience", with(json!({ "aud": "another-api" }))),
        ("expired", with(json!({ "exp": now - 600 }))),
        ("not yet valid", with(json!({ "nbf": now + 600 }))),
        (
            "unknown kid",
            stranger_key()
                .sign(&claims("alice", &["cloud-user"]))
                .expect("sign"),
        ),
        ("garbage", "not.a.token".to_string()),
    ];
    for (what, token) in cases {
        let r = app.get("/v1/deployments", &token).await;
        assert_eq!(r.status(), 401, "{what}");
        expect_problem(r, 401).await;
    }

    // alg none: a header saying so, the payload, and no signature.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("alice", &["cloud-operator"]).to_string());
    assert_eq!(
        status_of(&app, &format!("{header}.{payload}.")).await,
        401,
        "alg none"
    );

    // HS256 "signed" with the RSA public key as the HMAC secret.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(key().kid().to_string());
    let pem = key().public_pem().expect("pem");
    let forged = jsonwebtoken::encode(
        &h,
        &claims("alice", &["cloud-operator"]),
        &EncodingKey::from_secret(pem.as_bytes()),
    )
    .expect("hs256");
    assert_eq!(
        status_of(&app, &forged).await,
        401,
        "HS256 with the public key"
    );

    // A payload changed after signing.
    let good = alice();
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims("alice", &["cloud-operator"]).to_string());
    assert_eq!(
        status_of(&app, &parts.join(".")).await,
        401,
        "tampered payload"
    );

    // No token at all, or not a bearer one.
    let r = app
        .client
        .get(app.url("/v1/deployments"))
        .send()
        .await
        .expect("get");
    expect_problem(r, 401).await;
    let r = app
        .client
        .get(app.url("/v1/deployments"))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn keys_are_fetched_once_and_unknown_kids_cannot_hammer_the_issuer() {
    // The authenticator starts with an empty cache: the first token fetches
    // the JWKS, later ones hit the cache.
    let app = spawn_app().await;
    for _ in 0..3 {
        assert_eq!(status_of(&app, &alice()).await, 200);
    }
    assert_eq!(
        app.jwks_fetches.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // An unknown kid may refresh the set, but not on every request.
    let stranger = stranger_key()
        .sign(&claims("alice", &["cloud-user"]))
        .expect("sign");
    for _ in 0..5 {
        assert_eq!(status_of(&app, &stranger).await, 401);
    }
    assert!(app.jwks_fetches.load(std::sync::atomic::Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn roles_gate_endpoints_with_403() {
    let app = spawn_app().await;
    let provider = token("farmer", &["cloud-provider"]);
    let nobody = token("nobody", &[]);
    for t in [&provider, &nobody] {
        let r = app.post("/v1/deployments", t, &vm_body("web1")).await;
        expect_problem(r, 403).await;
        let r = app.get("/v1/deployments", t).await;
        expect_problem(r, 403).await;
    }
    // An operator does not request deployments for itself.
    let r = app
        .post("/v1/deployments", &operator(), &vm_body("web1"))
        .await;
    expect_problem(r, 403).await;

    // Users cannot drive operator steps.
    let (id, _) = app.request(&alice(), &vm_body("web1")).await;
    let r = app
        .post(
            &format!("/v1/deployments/{id}/node"),
            &alice(),
            &json!({ "node_id": 1, "farm_id": 1 }),
        )
        .await;
    expect_problem(r, 403).await;
    // The role is checked before the body is read.
    let r = app
        .post(
            &format!("/v1/deployments/{id}/node"),
            &alice(),
            &json!({ "nonsense": true }),
        )
        .await;
    expect_problem(r, 403).await;
    let r = app
        .post("/v1/deployments", &provider, &json!({ "nonsense": true }))
        .await;
    expect_problem(r, 403).await;
    assert_eq!(app.event_count(&id).await, 1);
    assert_eq!(
        app.total_events().await,
        1,
        "refused commands store nothing"
    );
}

#[tokio::test]
async fn another_users_deployment_is_not_found() {
    let app = spawn_app().await;
    let (id, v) = app.request(&alice(), &vm_body("web1")).await;
    app.read(&alice(), &id, v).await;

    let r = app.get(&format!("/v1/deployments/{id}"), &bob()).await;
    expect_problem(r, 404).await;
    // Even when bob asks to wait for a version, a foreign id answers at once.
    let r = app
        .get(&format!("/v1/deployments/{id}?min_version=1"), &bob())
        .await;
    expect_problem(r, 404).await;
    let r = app
        .post(&format!("/v1/deployments/{id}/cancel"), &bob(), &json!({}))
        .await;
    expect_problem(r, 404).await;
    let r = app
        .post(
            &format!("/v1/deployments/{id}/resize"),
            &bob(),
            &json!({ "size": { "cpu": 4, "memory_mib": 8192, "rootfs_gb": 40 } }),
        )
        .await;
    expect_problem(r, 404).await;
    // A stale If-Match must not tell bob it exists (a 409 would): tenancy is
    // checked before the version. Nor for an id nobody has.
    for target in [id.clone(), uuid::Uuid::new_v4().to_string()] {
        let r = app
            .client
            .post(app.url(&format!("/v1/deployments/{target}/cancel")))
            .bearer_auth(bob())
            .header("if-match", "\"7\"")
            .json(&json!({}))
            .send()
            .await
            .expect("send");
        expect_problem(r, 404).await;
    }
    assert_eq!(app.event_count(&id).await, 1, "bob changed nothing");

    let page: Value = app
        .get("/v1/deployments", &bob())
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));

    // Unknown and malformed ids are 404 too.
    let r = app
        .get(
            &format!("/v1/deployments/{}", uuid::Uuid::new_v4()),
            &alice(),
        )
        .await;
    expect_problem(r, 404).await;
    let r = app.get("/v1/deployments/not-a-uuid", &alice()).await;
    expect_problem(r, 404).await;

    // The operator sees it.
    assert_eq!(
        app.get(&format!("/v1/deployments/{id}"), &operator())
            .await
            .status(),
        200
    );
}
