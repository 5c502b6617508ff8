//! Rate limiting: one middleware, configured where the router is built,
//! that sorts each request into a budget and a key and answers 429 with a
//! problem document and `Retry-After` once that key's budget is spent.
//!
//! - `commands` (POST, PATCH, PUT, DELETE) and `reads` (everything else),
//!   keyed by the verified token's subject;
//! - `anonymous`: requests without a valid token (the OpenAPI document, or
//!   a bad token on its way to a 401), keyed by the client address;
//! - `webhook`: the Stripe webhook intake, keyed by the client address.
//!
//! The probes and `/metrics` are never limited. The buckets live in
//! PostgreSQL so the limit holds across every replica; [`lease`] keeps a
//! few tokens locally so that a busy key does not cost a database round
//! trip per request (the bound that gives is in docs/rate_limits.md).

pub mod lease;

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

pub use lease::{Decision, Limiter};

/// A budget: a sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests a minute, sustained.
    pub per_minute: u32,
    /// Requests allowed at once from a full bucket.
    pub burst: u32,
}

impl Budget {
    /// A budget of `per_minute` with bursts of `burst` (both at least 1).
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }

    /// Microseconds between two tokens.
    pub fn interval_us(&self) -> i64 {
        (60_000_000 / i64::from(self.per_minute.max(1))).max(1)
    }
}

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    /// POST, PATCH, PUT and DELETE with a valid token, per subject.
    Commands,
    /// Other methods with a valid token, per subject.
    Reads,
    /// No valid token, per client address.
    Anonymous,
    /// The Stripe webhook intake, per client address.
    Webhook,
}

impl BudgetKind {
    /// Every budget, in the order metrics list them.
    pub const ALL: [BudgetKind; 4] = [
        BudgetKind::Commands,
        BudgetKind::Reads,
        BudgetKind::Anonymous,
        BudgetKind::Webhook,
    ];

    /// The name in the database, in metrics and in docs.
    pub fn name(self) -> &'static str {
        match self {
            BudgetKind::Commands => "commands",
            BudgetKind::Reads => "reads",
            BudgetKind::Anonymous => "anonymous",
            BudgetKind::Webhook => "webhook",
        }
    }

    fn index(self) -> usize {
        match self {
            BudgetKind::Commands => 0,
            BudgetKind::Reads => 1,
            BudgetKind::Anonymous => 2,
            BudgetKind::Webhook => 3,
        }
    }
}

/// An address or network whose `X-Forwarded-For` is believed: `10.0.0.7`
/// or `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    addr: IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    /// Whether `ip` is this proxy (or in this network).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("expected an IP address or a network like 10.0.0.0/8, got {text:?}");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| wrong())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(wrong)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

/// How requests are limited.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Off: every request passes and nothing is counted.
    pub enabled: bool,
    /// Commands per subject.
    pub commands: Budget,
    /// Reads per subject.
    pub reads: Budget,
    /// Requests without a valid token, per client address.
    pub anonymous: Budget,
    /// Stripe webhook deliveries, per client address.
    pub webhook: Budget,
    /// Most tokens a replica leases at once for one key (1: every request
    /// asks the database).
    pub lease_max: u32,
    /// How long leased tokens may be spent; unspent ones are dropped.
    pub lease_ttl: Duration,
    /// Peers whose `X-Forwarded-For` names the client (its first address).
    pub trusted_proxies: Vec<TrustedProxy>,
}

impl Default for RateLimitConfig {
    /// The defaults of `serve` and `dev`: generous for a person at an SPA
    /// or a script, tight enough to stop a flood.
    fn default() -> Self {
        Self {
            enabled: true,
            commands: Budget::new(600, 300),
            reads: Budget::new(1_200, 600),
            anonymous: Budget::new(300, 150),
            webhook: Budget::new(300, 150),
            lease_max: 32,
            lease_ttl: Duration::from_secs(1),
            trusted_proxies: Vec::new(),
        }
    }
}

impl RateLimitConfig {
    /// No limiting at all (benches that measure something else).
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The budget of `kind`.
    pub fn budget(&self, kind: BudgetKind) -> Budget {
        match kind {
            BudgetKind::Commands => self.commands,
            BudgetKind::Reads => self.reads,
            BudgetKind::Anonymous => self.anonymous,
            BudgetKind::Webhook => self.webhook,
        }
    }
}

/// Routes never limited: load balancers' probes and the scraper.
const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// The Stripe webhook intake's route.
const WEBHOOK: &str = "/v1/webhooks/stripe";

/// The client's address: the peer's, or the first of `X-Forwarded-For`
/// when the peer is a trusted proxy.
pub fn client_address(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[TrustedProxy],
) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !trusted.iter().any(|p| p.contains(peer)) {
        return Some(peer);
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse::<IpAddr>().ok());
    Some(forwarded.unwrap_or(peer))
}

fn is_command(method: &Method) -> bool {
    [Method::POST, Method::PATCH, Method::PUT, Method::DELETE].contains(method)
}

/// The middleware: classifies, asks the limiter, and answers 429 or passes
/// the request on (with the verified principal in its extensions, so the
/// handler's extractor does not verify the token again).
pub async fn limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let limiter = state.limiter.clone();
    if !limiter.config().enabled {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    if route.as_deref().is_some_and(|r| EXEMPT.contains(&r)) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let address = client_address(peer, request.headers(), &limiter.config().trusted_proxies)
        .map_or_else(|| "ip:unknown".to_string(), |ip| format!("ip:{ip}"));
    let (kind, key) = if route.as_deref() == Some(WEBHOOK) {
        (BudgetKind::Webhook, address)
    } else {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string());
        let principal = match token {
            Some(t) => state.auth.verify(&t).await.ok(),
            None => None,
        };
        match principal {
            Some(principal) => {
                let kind = if is_command(request.method()) {
                    BudgetKind::Commands
                } else {
                    BudgetKind::Reads
                };
                let key = format!("sub:{}", principal.subject);
                request.extensions_mut().insert(principal);
                (kind, key)
            }
            None => (BudgetKind::Anonymous, address),
        }
    };
    let decision = limiter.check(kind, &key).await;
    if !decision.allowed {
        tracing::debug!(budget = kind.name(), key = %key, retry_after_ms = decision.retry_after.as_millis() as u64, "rate limited");
        let mut response = ApiError::RateLimited {
            retry_after_secs: decision.retry_after_secs(),
            budget: kind.name(),
        }
        .into_response();
        decision.write_headers(response.headers_mut());
        return response;
    }
    let mut response = next.run(request).await;
    decision.write_headers(response.headers_mut());
    response
}

impl Decision {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_micros().div_ceil(1_000_000).max(1) as u64
    }

    /// The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
    /// headers (IETF httpapi draft); remaining is this replica's view.
    fn write_headers(&self, headers: &mut HeaderMap) {
        let reset = if self.allowed {
            self.reset.as_secs()
        } else {
            self.retry_after_secs()
        };
        for (name, value) in [
            ("ratelimit-limit", u64::from(self.limit)),
            ("ratelimit-remaining", u64::from(self.remaining)),
            ("ratelimit-reset", reset),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
    }
}

/// Counters per budget, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    allowed: [std::sync::atomic::AtomicU64; 4],
    limited: [std::sync::atomic::AtomicU64; 4],
    leases: [std::sync::atomic::AtomicU64; 4],
    errors: std::sync::atomic::AtomicU64,
}

impl Counters {
    fn count(&self, kind: BudgetKind, allowed: bool) {
        let which = if allowed {
            &self.allowed
        } else {
            &self.limited
        };
        which[kind.index()].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let _ = writeln!(out, "# HELP marketplace_rate_limit_requests_total Requests this replica's rate limiter let through (allowed) or answered 429 (limited), by budget.");
        let _ = writeln!(out, "# TYPE marketplace_rate_limit_requests_total counter");
        for kind in BudgetKind::ALL {
            let i = kind.index();
            for (outcome, n) in [
                ("allowed", self.allowed[i].load(Relaxed)),
                ("limited", self.limited[i].load(Relaxed)),
            ] {
                let _ = writeln!(
                    out,
                    "marketplace_rate_limit_requests_total{{budget=\"{}\",outcome=\"{outcome}\"}} {n}",
                    kind.name()
                );
            }
        }
        let _ = writeln!(out, "# HELP marketplace_rate_limit_leases_total Round trips to the shared buckets in PostgreSQL, by budget (the rest were served from local leases).");
        let _ = writeln!(out, "# TYPE marketplace_rate_limit_leases_total counter");
        for kind in BudgetKind::ALL {
            let _ = writeln!(
                out,
                "marketplace_rate_limit_leases_total{{budget=\"{}\"}} {}",
                kind.name(),
                self.leases[kind.index()].load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP marketplace_rate_limit_errors_total Leases that failed (the database unreachable); those requests were let through.");
        let _ = writeln!(out, "# TYPE marketplace_rate_limit_errors_total counter");
        let _ = writeln!(
            out,
            "marketplace_rate_limit_errors_total {}",
            self.errors.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_parse_and_match() {
        let net: TrustedProxy = "10.0.0.0/8".parse().expect("net");
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:10.0.0.1".parse().expect("mapped")));
        let one: TrustedProxy = "192.168.1.5".parse().expect("ip");
        assert!(one.contains("192.168.1.5".parse().expect("ip")));
        assert!(!one.contains("192.168.1.6".parse().expect("ip")));
        let all: TrustedProxy = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("proxy".parse::<TrustedProxy>().is_err());
    }

    #[test]
    fn forwarded_for_only_from_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.2"),
        );
        let peer: SocketAddr = "10.0.0.2:4000".parse().expect("peer");
        let proxies = ["10.0.0.0/8".parse().expect("net")];
        assert_eq!(
            client_address(Some(peer), &headers, &proxies),
            Some("203.0.113.9".parse().expect("ip"))
        );
        assert_eq!(
            client_address(Some(peer), &headers, &[]),
            Some(peer.ip()),
            "an untrusted peer's header is ignored"
        );
    }
}
