//! Contact-email verification end to end: the code travels by real SMTP
//! (aiosmtpd), is read from what the server received, and only the right
//! one, in time and within its attempts, verifies the address.

use std::time::Duration;

use serde_json::{json, Value};

use super::{me, patch, user_events};
use crate::common::smtp::ReceivedMail;
use crate::common::*;

async fn mail_app(ttl: Option<Duration>) -> TestApp {
    spawn_app_with(AppOptions {
        smtp: true,
        verification_ttl: ttl,
        ..AppOptions::default()
    })
    .await
}

/// The first run of exactly six digits in a text.
fn code_in(text: &str) -> String {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5))
        .find(|&i| {
            bytes[i..i + 6].iter().all(u8::is_ascii_digit)
                && (i == 0 || !bytes[i - 1].is_ascii_digit())
                && bytes.get(i + 6).is_none_or(|b| !b.is_ascii_digit())
        })
        .map(|i| text[i..i + 6].to_string())
        .unwrap_or_else(|| panic!("no code in {text:?}"))
}

async fn send_code(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/me/contact-email/verification"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn verify(app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    app.post(
        "/v1/me/contact-email/verify",
        token,
        &json!({ "code": code }),
    )
    .await
}

/// Sends a code and returns it with the mail it came in, the `n`-th to `to`.
async fn code_sent(app: &TestApp, token: &str, to: &str, n: usize) -> (String, ReceivedMail) {
    let r = send_code(app, token).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let smtp = app.smtp.as_ref().expect("smtp");
    let mails = smtp.wait_for_count_to(to, n, Duration::from_secs(10)).await;
    let mail = mails[n - 1].clone();
    (code_in(mail.text()), mail)
}

fn wrong(code: &str) -> String {
    format!(
        "{:06}",
        (code.parse::<u32>().expect("digits") + 1) % 1_000_000
    )
}

#[tokio::test]
async fn the_code_sent_by_email_verifies_the_contact_email() {
    let app = mail_app(None).await;
    let alice = alice();
    // No contact email yet: nothing to send a code to.
    let problem = expect_problem(send_code(&app, &alice).await, 422).await;
    assert_eq!(problem["type"], "/problems/no-contact-email");
    let r = patch(
        &app,
        &alice,
        None,
        &json!({ "contact_email": "alice@work.example" }),
    )
    .await;
    assert_eq!(r.status(), 202);

    let r = send_code(&app, &alice).await;
    assert_eq!(r.status(), 202);
    let sent: Value = r.json().await.expect("json");
    assert_eq!(sent["sent_to"], "alice@work.example");
    assert_eq!(sent["attempts"], 5);
    let smtp = app.smtp.as_ref().expect("smtp");
    let mail = smtp
        .wait_for(Duration::from_secs(10), |m| m.is_to("alice@work.example"))
        .await;
    let code = code_in(mail.text());
    assert!(mail.subject.contains(&code), "{}", mail.subject);
    assert!(
        mail.html.as_deref().is_some_and(|h| h.contains(&code)),
        "an HTML part with the code"
    );
    assert!(
        mail.message_id.starts_with("<contact-verification-"),
        "{}",
        mail.message_id
    );
    assert!(
        mail.message_id.ends_with("@marketplace.test>"),
        "{}",
        mail.message_id
    );
    assert!(mail.from.contains("noreply@marketplace.test"));
    // The code itself is nowhere in the event store, only its salted hash.
    let leaked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'")
            .bind(&code)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(leaked, 0);

    // A wrong code is refused and costs an attempt.
    let problem = expect_problem(verify(&app, &alice, &wrong(&code)).await, 422).await;
    assert_eq!(problem["type"], "/problems/wrong-verification-code");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("4 attempts left")),
        "{problem}"
    );
    let problem = expect_problem(verify(&app, &alice, "12345").await, 422).await;
    assert_eq!(
        problem["field"], "code",
        "not six digits: refused, no attempt spent"
    );
    let (body, _) = me(&app, &alice, 4).await;
    assert_eq!(body["contact_email_verified"], false);
    assert_eq!(
        body["notification_email"],
        Value::Null,
        "alice's token has no email"
    );

    // The right one verifies.
    let r = verify(&app, &alice, &code).await;
    assert_eq!(r.status(), 202);
    let version = r.json::<Value>().await.expect("json")["version"]
        .as_i64()
        .expect("version");
    let (body, _) = me(&app, &alice, version).await;
    assert_eq!(body["contact_email"], "alice@work.example");
    assert_eq!(body["contact_email_verified"], true);
    assert_eq!(body["notification_email"], "alice@work.example");
    let verified: bool =
        sqlx::query_scalar("SELECT contact_email_verified FROM users WHERE user_id = 'alice'")
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert!(verified);
    // Used: neither it nor another code does anything now.
    let problem = expect_problem(verify(&app, &alice, &code).await, 422).await;
    assert_eq!(problem["type"], "/problems/already-verified");
    let problem = expect_problem(send_code(&app, &alice).await, 422).await;
    assert_eq!(problem["type"], "/problems/already-verified");
    assert_eq!(smtp.messages().len(), 1, "one mail sent");

    // A new address needs verifying again.
    let r = patch(
        &app,
        &alice,
        None,
        &json!({ "contact_email": "alice@home.example" }),
    )
    .await;
    let version = r.json::<Value>().await.expect("json")["version"]
        .as_i64()
        .expect("version");
    let (body, _) = me(&app, &alice, version).await;
    assert_eq!(body["contact_email"], "alice@home.example");
    assert_eq!(body["contact_email_verified"], false);
    let problem = expect_problem(verify(&app, &alice, &code).await, 422).await;
    assert_eq!(problem["type"], "/problems/no-verification-pending");
    let (new_code, _) = code_sent(&app, &alice, "alice@home.example", 1).await;
    assert_eq!(verify(&app, &alice, &new_code).await.status(), 202);
}

#[tokio::test]
async fn an_expired_code_and_a_code_guessed_too_often_are_refused() {
    let app = mail_app(Some(Duration::from_secs(2))).await;
    let bob = bob();
    patch(
        &app,
        &bob,
        None,
        &json!({ "contact_email": "bob@work.example" }),
    )
    .await;
    let (code, _) = code_sent(&app, &bob, "bob@work.example", 1).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let problem = expect_problem(verify(&app, &bob, &code).await, 422).await;
    assert_eq!(problem["type"], "/problems/verification-code-expired");

    // A new code survives five wrong guesses; then even the right one is refused.
    let (code, mail) = code_sent(&app, &bob, "bob@work.example", 2).await;
    assert!(mail.text().contains(&code));
    for left in (0..5).rev() {
        let problem = expect_problem(verify(&app, &bob, &wrong(&code)).await, 422).await;
        assert_eq!(problem["type"], "/problems/wrong-verification-code");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("{left} attempts left"))),
            "{problem}"
        );
    }
    let problem = expect_problem(verify(&app, &bob, &code).await, 422).await;
    assert_eq!(problem["type"], "/problems/too-many-verification-attempts");
    assert_eq!(
        user_events(&app, "bob", Some("ContactEmailVerified")).await,
        0
    );
    assert_eq!(
        user_events(&app, "bob", Some("ContactEmailVerificationFailed")).await,
        5
    );
    // A third code works (the hourly limit is five).
    let (code, _) = code_sent(&app, &bob, "bob@work.example", 3).await;
    assert_eq!(verify(&app, &bob, &code).await.status(), 202);
}

#[tokio::test]
async fn a_retried_request_sends_no_second_code_and_no_mailer_is_a_503() {
    let app = mail_app(None).await;
    let alice = alice();
    patch(
        &app,
        &alice,
        None,
        &json!({ "contact_email": "alice@work.example" }),
    )
    .await;
    let send = || {
        app.client
            .post(app.url("/v1/me/contact-email/verification"))
            .bearer_auth(&alice)
            .header("idempotency-key", "code-1")
            .send()
    };
    let first: Value = send().await.expect("send").json().await.expect("json");
    let again: Value = send().await.expect("send").json().await.expect("json");
    assert_eq!(first, again, "the first answer replayed");
    let smtp = app.smtp.as_ref().expect("smtp");
    smtp.wait_for_count_to("alice@work.example", 1, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "one code, one mail");
    assert_eq!(
        user_events(&app, "alice", Some("ContactEmailVerificationStarted")).await,
        1
    );

    let plain = spawn_app().await;
    patch(
        &plain,
        &alice,
        None,
        &json!({ "contact_email": "alice@work.example" }),
    )
    .await;
    let problem = expect_problem(send_code(&plain, &alice).await, 503).await;
    assert_eq!(problem["type"], "/problems/not-configured");
    assert_eq!(
        user_events(&plain, "alice", Some("ContactEmailVerificationStarted")).await,
        0,
        "no code is decided that cannot be sent"
    );
}
