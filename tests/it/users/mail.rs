//! The SMTP adapter against aiosmtpd: what arrives is what was sent, with
//! the Message-ID the sender chose, and a server that is down is a
//! transient failure.

use std::time::Duration;

use marketplace_app::mail::{Mail, MailError, Mailer, SmtpMailer};
use secrecy::SecretString;

use crate::common::smtp::SmtpServer;

fn mail(to: &str, id: &str) -> Mail {
    Mail {
        to: to.into(),
        subject: "Your code: 123456 — café".into(),
        text: "Your verification code is 123456.\nIt expires in 15 minutes.".into(),
        html: Some("<p>Your verification code is <b>123456</b>.</p>".into()),
        message_id: id.into(),
    }
}

#[tokio::test]
async fn smtp_mailer_delivers_text_html_and_message_id() {
    let server = SmtpServer::start().await;
    let mailer = SmtpMailer::from_config(
        &SecretString::from(server.url()),
        "Marketplace <noreply@marketplace.test>",
    )
    .expect("mailer");
    mailer
        .send(&mail("alice@example.com", "verify-alice-3"))
        .await
        .expect("sent");
    let got = server
        .wait_for(Duration::from_secs(10), |m| m.is_to("alice@example.com"))
        .await;
    assert_eq!(got.subject, "Your code: 123456 — café");
    assert_eq!(got.message_id, "<verify-alice-3@marketplace.test>");
    assert!(
        got.from.contains("noreply@marketplace.test"),
        "{}",
        got.from
    );
    assert_eq!(
        got.mail_from, "noreply@marketplace.test",
        "the envelope sender"
    );
    assert!(got.to.contains("alice@example.com"), "{}", got.to);
    assert!(
        got.headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("multipart/alternative")),
        "{}",
        got.raw
    );
    assert_eq!(
        got.text(),
        "Your verification code is 123456.\nIt expires in 15 minutes."
    );
    assert_eq!(
        got.html.as_deref(),
        Some("<p>Your verification code is <b>123456</b>.</p>")
    );
    // A plain-text-only message is a single part.
    let mut plain = mail("bob@example.com", "n-1");
    plain.html = None;
    mailer.send(&plain).await.expect("sent");
    let got = server
        .wait_for(Duration::from_secs(10), |m| m.is_to("bob@example.com"))
        .await;
    assert_eq!(got.html, None);
    assert!(got.text().starts_with("Your verification code"));
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test]
async fn a_server_that_is_down_is_a_transient_failure_and_a_bad_address_permanent() {
    let mut server = SmtpServer::start().await;
    let url = SecretString::from(server.url());
    server.stop().await;
    let mailer = SmtpMailer::from_config(&url, "noreply@marketplace.test").expect("mailer");
    let e = mailer
        .send(&mail("alice@example.com", "n-2"))
        .await
        .expect_err("nobody listens");
    assert!(e.is_transient(), "{e}");
    let e = mailer
        .send(&mail("not an address", "n-3"))
        .await
        .expect_err("bad recipient");
    assert!(matches!(e, MailError::Permanent(_)), "{e}");
}
