//! The mail port: one message out, by SMTP in production (`SmtpMailer`,
//! on lettre's async tokio transport), and whatever a test or `marketplace
//! dev` puts behind the same trait.
//!
//! A message carries its own `message_id`, decided by whoever caused it
//! (the notification and channel, the verification code's event), so a
//! message sent again after a crash carries the same `Message-ID` header
//! and a reader or a mail server can recognise it as the same message.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{header, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// One email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body (always sent).
    pub text: String,
    /// An HTML alternative of the same content, if there is one.
    pub html: Option<String>,
    /// This message's unique id, the same on every attempt to send it (e.g.
    /// `notification-<uuid>-email`). Sent as the `Message-ID` header:
    /// `<{message_id}@{domain of MAIL_FROM}>`, or `<{message_id}>` when it
    /// already holds an `@`.
    pub message_id: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Sending it again will fail the same way: a malformed address or
    /// message, a recipient the server refuses for good (5xx). Set it aside.
    #[error("mail refused for good: {0}")]
    Permanent(String),
    /// Try again later: the server is unreachable, timed out, or answered a
    /// temporary failure (4xx).
    #[error("mail not sent, for now: {0}")]
    Transient(String),
}

impl MailError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient(_))
    }
}

/// Sends one email.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `mail`; `Ok` once the server accepted it for delivery.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// How to reach the SMTP server, from `SMTP_URL`:
/// `smtp://host:port` (plain, for a relay on a trusted network or a test
/// server), `smtp://user:pass@host:587?tls=required` (STARTTLS, required),
/// `smtps://user:pass@host:465` (TLS from the first byte). A path names the
/// EHLO host (`smtp://host/mail.example.com`).
#[derive(Clone)]
pub struct SmtpSettings {
    /// TLS mode.
    pub security: SmtpSecurity,
    /// The server's host name (also the name its certificate is checked against).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// The user to authenticate as, if any.
    pub user: Option<String>,
    /// Its password; `Debug` prints it redacted.
    pub password: Option<SecretString>,
    /// The name sent in EHLO, if not the default.
    pub hello_name: Option<String>,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS at all (`smtp://` without `tls=`).
    Plain,
    /// Upgrade with STARTTLS, and refuse a server that cannot (`?tls=required`).
    StartTls,
    /// TLS from the start (`smtps://`).
    Tls,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

/// `SMTP_URL` or `MAIL_FROM` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailConfigError(String);

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl SmtpSettings {
    /// Reads an `SMTP_URL`. The password never appears in an error.
    pub fn parse(raw: &SecretString) -> Result<SmtpSettings, MailConfigError> {
        let url = url::Url::parse(raw.expose_secret())
            .map_err(|e| MailConfigError(format!("SMTP_URL is not a URL: {e}")))?;
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (SmtpSecurity::Plain, 25),
            ("smtp", Some("required")) => (SmtpSecurity::StartTls, 587),
            ("smtps", None) => (SmtpSecurity::Tls, 465),
            (scheme, tls) => {
                return Err(MailConfigError(format!(
                    "SMTP_URL: scheme `{scheme}` with tls={tls:?} is not one of smtp://, smtp://…?tls=required, smtps://"
                )))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| MailConfigError("SMTP_URL names no host".into()))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let user = Some(percent_decode(url.username())).filter(|u| !u.is_empty());
        let password = url
            .password()
            .map(|p| SecretString::from(percent_decode(p)));
        if password.is_some() && security == SmtpSecurity::Plain && !is_loopback(&host) {
            return Err(MailConfigError(
                "SMTP_URL: a password over plain smtp:// to another host would travel unencrypted; use smtps:// or ?tls=required".into(),
            ));
        }
        let hello_name = Some(url.path().trim_matches('/').to_string()).filter(|p| !p.is_empty());
        Ok(SmtpSettings {
            security,
            port: url.port().unwrap_or(default_port),
            host,
            user,
            password,
            hello_name,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The real adapter: SMTP through lettre, TLS by rustls.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer for `settings`, sending as `from` (`MAIL_FROM`, an address
    /// or `Name <address>`). Connects lazily, on the first message.
    pub fn new(settings: &SmtpSettings, from: &str) -> Result<SmtpMailer, MailConfigError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailConfigError(format!("MAIL_FROM `{from}`: {e}")))?;
        let domain = from.email.domain().to_string();
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .timeout(Some(Duration::from_secs(30)));
        let tls = || {
            TlsParameters::new(settings.host.clone())
                .map_err(|e| MailConfigError(format!("SMTP TLS for {}: {e}", settings.host)))
        };
        builder = match settings.security {
            SmtpSecurity::Plain => builder,
            SmtpSecurity::StartTls => builder.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => builder.tls(Tls::Wrapper(tls()?)),
        };
        if let Some(user) = &settings.user {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_string())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        if let Some(name) = &settings.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// Reads `SMTP_URL` and `MAIL_FROM` and builds the mailer.
    pub fn from_config(
        smtp_url: &SecretString,
        mail_from: &str,
    ) -> Result<SmtpMailer, MailConfigError> {
        SmtpMailer::new(&SmtpSettings::parse(smtp_url)?, mail_from)
    }

    /// The `Message-ID` header's value for a message id.
    pub fn message_id_header(&self, message_id: &str) -> String {
        message_id_header(message_id, &self.domain)
    }

    fn build(&self, mail: &Mail) -> Result<Message, MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError::Permanent(format!("recipient `{}`: {e}", mail.to)))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(self.message_id_header(&mail.message_id)))
            .date_now();
        let text = SinglePart::builder()
            .header(header::ContentType::TEXT_PLAIN)
            .body(mail.text.clone());
        let built = match &mail.html {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(text).singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => builder.singlepart(text),
        };
        built.map_err(|e| MailError::Permanent(format!("message: {e}")))
    }
}

/// `<id@domain>`, or `<id>` when the id already names its domain.
pub fn message_id_header(message_id: &str, domain: &str) -> String {
    let id = message_id.trim_matches(|c| c == '<' || c == '>');
    if id.contains('@') {
        format!("<{id}>")
    } else {
        format!("<{id}@{domain}>")
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    #[tracing::instrument(name = "mail.send", skip_all, fields(message_id = %mail.message_id))]
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = self.build(mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
            Err(e) => Err(MailError::Transient(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SmtpSettings, MailConfigError> {
        SmtpSettings::parse(&SecretString::from(url.to_string()))
    }

    #[test]
    fn urls_name_their_security_and_default_port() {
        let plain = parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((plain.security, plain.port), (SmtpSecurity::Plain, 2525));
        let tls = parse("smtps://mailer:p%40ss@smtp.example.com").unwrap();
        assert_eq!((tls.security, tls.port), (SmtpSecurity::Tls, 465));
        assert_eq!(tls.user.as_deref(), Some("mailer"));
        assert_eq!(tls.password.unwrap().expose_secret(), "p@ss");
        let start = parse("smtp://u:p@smtp.example.com?tls=required").unwrap();
        assert_eq!((start.security, start.port), (SmtpSecurity::StartTls, 587));
    }

    #[test]
    fn bad_urls_are_refused_without_their_password() {
        let e = parse("http://u:hunter2@example.com")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("smtp://u:hunter2@smtp.example.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unencrypted") && !e.contains("hunter2"), "{e}");
        let shown = format!("{:?}", parse("smtps://u:hunter2@h").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn message_ids_get_the_sender_domain() {
        assert_eq!(
            message_id_header("n-1-email", "example.com"),
            "<n-1-email@example.com>"
        );
        assert_eq!(message_id_header("<a@b>", "example.com"), "<a@b>");
    }
}
