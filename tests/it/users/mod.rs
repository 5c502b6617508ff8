//! Users: the mail port against a real SMTP server; the user opened by its
//! first request, `/v1/me` with `If-Match`, validation, the default
//! placement, the operators' user list, and contact-email verification
//! with the code read from what the SMTP server received.

mod mail;
mod me;
mod verification;

use serde_json::{json, Value};

use crate::common::*;

/// A token for `sub` carrying `email` and `name` claims.
pub fn token_with_claims(sub: &str, roles: &[&str], email: &str, name: &str) -> String {
    let mut c = claims(sub, roles);
    c["email"] = json!(email);
    c["name"] = json!(name);
    key().sign(&c).expect("sign")
}

/// `GET /v1/me` once the view reached `min_version`: the body and its ETag.
pub async fn me(app: &TestApp, token: &str, min_version: i64) -> (Value, String) {
    let r = app
        .get(&format!("/v1/me?min_version={min_version}"), token)
        .await;
    assert_eq!(r.status(), 200, "GET /v1/me");
    let etag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (r.json().await.expect("json"), etag)
}

/// `PATCH /v1/me`, with `If-Match` when given.
pub async fn patch(
    app: &TestApp,
    token: &str,
    if_match: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .patch(app.url("/v1/me"))
        .bearer_auth(token)
        .json(body);
    if let Some(v) = if_match {
        request = request.header("if-match", v);
    }
    request.send().await.expect("request")
}

/// The number of a user's events, of one type or all.
pub async fn user_events(app: &TestApp, user: &str, event_type: Option<&str>) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'user' AND aggregate_id = $1
            AND ($2::text IS NULL OR event_type = $2)",
    )
    .bind(user)
    .bind(event_type)
    .fetch_one(&app.pool)
    .await
    .expect("count")
}
