//! Mail for `marketplace dev` without an SMTP server: each message is
//! written to the log (recipient, subject, Message-ID and the plain-text
//! body), so a verification code can be read there. Never in `serve`.

use async_trait::async_trait;
use marketplace_app::mail::{Mail, MailError, Mailer};

/// Logs every message instead of sending it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tracing::info!(
            to = %mail.to,
            subject = %mail.subject,
            message_id = %mail.message_id,
            "dev mail (not sent; SMTP_URL is unset):\n{}",
            mail.text
        );
        Ok(())
    }
}
