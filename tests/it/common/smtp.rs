//! A real SMTP server for tests: aiosmtpd (PyPI) on 127.0.0.1, installed on
//! first use into a venv under `$HOME/.cache/marketplace-smtp` when `.ci/run`
//! has not put it there, one server per test on a free port (killed when
//! the [`SmtpServer`] drops, or when this process dies), with its `Mailbox`
//! handler writing every message it accepts into a Maildir the test reads.
//!
//! [`SmtpServer::wait_for`] waits until a message arrives and parses it:
//! envelope recipients, `To`, `Subject`, `Message-ID`, and the plain-text
//! and HTML parts with their transfer encodings undone.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// The aiosmtpd release the tests are pinned to.
pub const AIOSMTPD_VERSION: &str = "1.4.6";

/// The venv's `python`, with aiosmtpd installed in it.
pub fn python_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
        let venv = PathBuf::from(home).join(".cache/marketplace-smtp");
        let bin = venv.join("bin/python");
        let installed = venv.join("bin/aiosmtpd");
        if installed.exists() {
            return bin;
        }
        // Install once; a lock directory keeps concurrent test binaries from
        // installing over each other.
        let lock = venv.with_extension("lock");
        let _ = std::fs::create_dir_all(venv.parent().expect("cache dir"));
        let started = Instant::now();
        while std::fs::create_dir(&lock).is_err() {
            if installed.exists() {
                return bin;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "waited 10 minutes for another aiosmtpd install ({})",
                lock.display()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let install = format!(
            "python3 -m venv '{v}' && '{v}/bin/pip' install --quiet 'aiosmtpd=={AIOSMTPD_VERSION}'",
            v = venv.display()
        );
        let status = std::process::Command::new("sh").args(["-c", &install]).status();
        let _ = std::fs::remove_dir(&lock);
        assert!(
            status.is_ok_and(|s| s.success()) && installed.exists(),
            "could not install aiosmtpd {AIOSMTPD_VERSION} into {} (needs python3 with venv and PyPI)",
            venv.display()
        );
        bin
    })
    .clone()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One aiosmtpd server and its Maildir.
pub struct SmtpServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    maildir: PathBuf,
    child: Option<Child>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

impl SmtpServer {
    /// Starts a server and waits until it greets.
    pub async fn start() -> SmtpServer {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let python = python_bin();
        let port = free_port();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let maildir = super::scratch::dir().join(format!("smtp-{port}-{n}"));
        let _ = std::fs::remove_dir_all(&maildir);
        let mut command = Command::new(&python);
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // Also killed if this process dies without dropping it.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("start aiosmtpd");
        let server = SmtpServer {
            port,
            maildir,
            child: Some(child),
        };
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                let mut greeting = [0u8; 3];
                let read =
                    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut greeting))
                        .await;
                if matches!(read, Ok(Ok(_))) && &greeting == b"220" {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "aiosmtpd did not start on 127.0.0.1:{port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// `SMTP_URL` for the app: plain SMTP on loopback.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server (a test of mail that cannot be sent); messages
    /// already received stay readable.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut files: Vec<(u64, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| {
                let path = entry.path();
                (arrival(&path), path)
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read(&path).ok())
            .map(|raw| ReceivedMail::parse(&raw))
            .collect()
    }

    /// Messages received so far to `address` (an envelope recipient).
    pub fn messages_to(&self, address: &str) -> Vec<ReceivedMail> {
        self.messages()
            .into_iter()
            .filter(|m| m.is_to(address))
            .collect()
    }

    /// Waits (at most `timeout`) for the first message that satisfies
    /// `matches`, and returns it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        matches: impl Fn(&ReceivedMail) -> bool,
    ) -> ReceivedMail {
        let started = Instant::now();
        loop {
            if let Some(mail) = self.messages().into_iter().find(|m| matches(m)) {
                return mail;
            }
            assert!(
                started.elapsed() < timeout,
                "no matching mail within {timeout:?}; received: {:#?}",
                self.messages()
                    .iter()
                    .map(|m| (&m.rcpt_to, &m.subject))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most `timeout`) for the `n`-th message to `address`
    /// (counting from 1) and returns all of them so far.
    pub async fn wait_for_count_to(
        &self,
        address: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<ReceivedMail> {
        let started = Instant::now();
        loop {
            let got = self.messages_to(address);
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < timeout,
                "{} of {n} mails to {address} within {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The arrival order of a Maildir file: Python's `mailbox.Maildir` names
/// files `<secs>.M<micros>P<pid>Q<counter>.<host>`; the per-process counter
/// orders one server's deliveries.
fn arrival(path: &Path) -> u64 {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.split('Q')
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .and_then(|q| q.parse().ok())
        .unwrap_or(u64::MAX)
}

/// One message as it arrived, parsed.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// Envelope recipients (`RCPT TO`), as the server recorded them.
    pub rcpt_to: Vec<String>,
    /// Envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// The `Subject` header, encoded words decoded.
    pub subject: String,
    /// The `Message-ID` header, with its angle brackets.
    pub message_id: String,
    /// The `text/plain` part (or the whole body of a plain message), decoded.
    pub text: Option<String>,
    /// The `text/html` part, decoded.
    pub html: Option<String>,
    /// Every top-level header, names lower-cased, values unfolded.
    pub headers: Vec<(String, String)>,
    /// The message as stored.
    pub raw: String,
}

impl ReceivedMail {
    /// Parses a stored message.
    pub fn parse(raw: &[u8]) -> ReceivedMail {
        let raw = String::from_utf8_lossy(raw).replace("\r\n", "\n");
        let (headers, body) = split_headers(&raw);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut text = None;
        let mut html = None;
        collect_parts(&headers, body, &mut text, &mut html);
        ReceivedMail {
            rcpt_to: header("x-rcptto")
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            mail_from: header("x-mailfrom"),
            from: decode_words(&header("from")),
            to: decode_words(&header("to")),
            subject: decode_words(&header("subject")),
            message_id: header("message-id"),
            text,
            html,
            headers: headers.clone(),
            raw: raw.clone(),
        }
    }

    /// Whether `address` is one of the envelope recipients (case-insensitive).
    pub fn is_to(&self, address: &str) -> bool {
        self.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(address))
    }

    /// The plain-text part, or an empty string.
    pub fn text(&self) -> &str {
        self.text.as_deref().unwrap_or_default()
    }
}

/// Headers (lower-cased names, unfolded values) and the body after the blank line.
fn split_headers(part: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match part.find("\n\n") {
        Some(i) => (&part[..i], &part[i + 2..]),
        None => (part, ""),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    (headers, body)
}

/// A header's parameter (`boundary`, `charset`), unquoted.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn collect_parts(
    headers: &[(String, String)],
    body: &str,
    text: &mut Option<String>,
    html: &mut Option<String>,
) {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let content_type = get("content-type");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("text/plain")
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let Some(boundary) = parameter(content_type, "boundary") else {
            return;
        };
        let delimiter = format!("--{boundary}");
        for chunk in body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.strip_prefix('\n').unwrap_or(chunk);
            let (part_headers, part_body) = split_headers(chunk);
            collect_parts(&part_headers, part_body, text, html);
        }
        return;
    }
    let decoded = decode_body(get("content-transfer-encoding"), body);
    match mime.as_str() {
        "text/plain" | "" if text.is_none() => *text = Some(decoded),
        "text/html" if html.is_none() => *html = Some(decoded),
        _ => {}
    }
}

fn decode_body(encoding: &str, body: &str) -> String {
    let bytes = match encoding.trim().to_ascii_lowercase().as_str() {
        "base64" => {
            use base64::Engine;
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_default()
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_string()
}

fn quoted_printable(body: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split('\n') {
        let (line, soft) = match line.strip_suffix('=') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
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
        if !soft {
            out.push(b'\n');
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let Some(word) = rest[start + 2..]
            .split_once("?=")
            .map(|(w, _)| w)
            .filter(|w| w.matches('?').count() == 2)
        else {
            break;
        };
        // Whitespace between two encoded words is not part of the text.
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let mut fields = word.splitn(3, '?');
        let (_charset, enc, data) = (
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
        );
        let bytes = if enc.eq_ignore_ascii_case("b") {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default()
        } else {
            let mut q = quoted_printable(&data.replace('_', " "));
            q.pop(); // the line end quoted_printable adds
            q
        };
        out.push_str(&String::from_utf8_lossy(&bytes));
        rest = &rest[start + 2 + word.len() + 2..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alternative_parts_and_encoded_words() {
        let raw = "From: a@example.com\nTo: b@example.com\nSubject: =?utf-8?b?Q2Fmw6k=?= ok\n\
            Message-ID: <m1@example.com>\nX-RcptTo: b@example.com\n\
            Content-Type: multipart/alternative;\n boundary=\"XX\"\n\n\
            --XX\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
            Code =3D 123456=\n!\n--XX\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
            PHA+MTIzNDU2PC9wPg==\n--XX--\n";
        let m = ReceivedMail::parse(raw.as_bytes());
        assert_eq!(m.subject, "Café ok");
        assert_eq!(m.message_id, "<m1@example.com>");
        assert_eq!(m.text.as_deref(), Some("Code = 123456!"));
        assert_eq!(m.html.as_deref(), Some("<p>123456</p>"));
        assert!(m.is_to("B@example.com"));
    }
}
