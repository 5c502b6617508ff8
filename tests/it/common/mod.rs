//! Shared test harness: a private PostgreSQL with a migrated template
//! database, a fresh database per test, the API on port 0, and a JWKS
//! endpoint served by the test itself with its own RS256 key.
//!
//! Two private servers at most per run: the one most tests share, and one
//! for the store-level suites (see [`serial`] and [`store_database`]).

pub mod kafka;
pub mod scratch;
pub mod smtp;
pub mod stripe;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::routing::get;
use axum::Json;
use marketplace_api::auth::{AuthConfig, Authenticator};
use marketplace_api::ApiSettings;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_dev::keys::SigningKey;
use marketplace_domain::TftPrice;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, MutexGuard, OnceCell};
use tokio_util::sync::CancellationToken;

pub const ISSUER: &str = "https://issuer.test/";
pub const AUDIENCE: &str = "marketplace-api";
pub const ROLES_CLAIM: &str = "https://marketplace.test/roles";
/// The Stripe webhook signing secret the test API is configured with.
pub const STRIPE_SECRET: &str = "whsec_test_marketplace";

struct Server {
    pg: EmbeddedPostgres,
}

/// The server most tests share.
static SERVER: OnceCell<Server> = OnceCell::const_new();
/// The store-level suites' server.
static STORE_SERVER: OnceCell<Server> = OnceCell::const_new();
static STORE_SUITES: Mutex<()> = Mutex::const_new(());
static KEY: OnceLock<SigningKey> = OnceLock::new();
static OTHER_KEY: OnceLock<SigningKey> = OnceLock::new();

/// The key the test JWKS publishes.
pub fn key() -> &'static SigningKey {
    KEY.get_or_init(|| SigningKey::generate().expect("rsa key"))
}

/// A key nobody publishes.
pub fn stranger_key() -> &'static SigningKey {
    OTHER_KEY.get_or_init(|| SigningKey::generate().expect("rsa key"))
}

async fn server() -> &'static Server {
    start_server(&SERVER, "pgdata").await
}

/// Starts the server in `cell` on first use, with its data in `data` under
/// this process's scratch directory (removed when the process ends).
async fn start_server(cell: &'static OnceCell<Server>, data: &'static str) -> &'static Server {
    cell.get_or_init(|| async move {
        let pg = EmbeddedPostgres::start(EmbeddedOptions {
            data_dir: scratch::dir().join(data),
            port: 0,
            durable: false,
            max_connections: 400,
        })
        .await
        .expect("start private PostgreSQL");
        pg.ensure_database("template_marketplace")
            .await
            .expect("template db");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&pg.url("template_marketplace"))
            .await
            .expect("connect template");
        marketplace::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate template");
        pool.close().await;
        Server { pg }
    })
    .await
}

/// A fresh, migrated database.
pub async fn fresh_database() -> (PgPool, String) {
    database_on(server().await).await
}

/// Runs the store-level suites' tests (`projection`, `supply_projections`)
/// one at a time, as they ran when each file was a binary of its own: a
/// transaction one of them holds open, or a runner's batch in flight, holds
/// back the runners of every database on the server, since a snapshot's
/// xmin is cluster-wide. A tokio mutex: a failed test does not poison the
/// others.
pub async fn serial() -> MutexGuard<'static, ()> {
    STORE_SUITES.lock().await
}

/// A fresh, migrated database on a server only the store-level suites use:
/// they hold transactions open on purpose and apply batches of thousands of
/// events, which on the shared server would hold back every other test's
/// runners, while those tests' API reads wait only a bounded time (5 s) for
/// their views.
pub async fn store_database() -> (PgPool, String) {
    database_on(start_server(&STORE_SERVER, "store-pgdata").await).await
}

async fn database_on(server: &Server) -> (PgPool, String) {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&server.pg.url("postgres"))
        .await
        .expect("admin connection");
    sqlx::query(&format!(
        "CREATE DATABASE {name} TEMPLATE template_marketplace"
    ))
    .execute(&admin)
    .await
    .expect("create test database");
    admin.close().await;
    let url = server.pg.url(&name);
    let pool = PgPoolOptions::new()
        .max_connections(40)
        .connect(&url)
        .await
        .expect("connect test database");
    (pool, url)
}

/// A running API (and projection runner) on its own database.
pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    pub database_url: String,
    pub client: reqwest::Client,
    pub cancel: CancellationToken,
    /// How often the API fetched the test JWKS.
    pub jwks_fetches: Arc<AtomicUsize>,
    /// localstripe and its wrapper, when started.
    pub stripe: Option<stripe::LocalStripe>,
    /// The app's Stripe client, when configured.
    pub payments: Option<marketplace_app::stripe::Gateway>,
    /// The SMTP server the app's mail goes to, when started.
    pub smtp: Option<smtp::SmtpServer>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Options of [`spawn_app_with`].
pub struct AppOptions {
    pub projections: bool,
    pub body_limit: usize,
    /// Configure the Stripe webhook secret (payments on).
    pub payments: bool,
    /// Start localstripe with its wrapper, configure the Stripe client on
    /// it and run the Stripe inbox worker.
    pub stripe: bool,
    /// The ZOS nodes port the API asks for live figures (none: the catalog's).
    pub nodes: Option<Arc<dyn marketplace_app::zos::Nodes>>,
    /// Rate limits: on, but far above what any test sends, unless a test
    /// of the limiter sets its own.
    pub rate_limit: marketplace_api::rate_limit::RateLimitConfig,
    /// Who may read `/metrics` (default: anyone, as in dev mode).
    pub metrics: marketplace_api::metrics::MetricsAccess,
    /// Run the notification process manager and its webhook worker (with
    /// [`test_delivery_options`]) beside the projections.
    pub notifications: bool,
    /// Start an SMTP server (aiosmtpd) and send the app's mail there.
    pub smtp: bool,
    /// How long contact-email codes are valid (the app's default when unset).
    pub verification_ttl: Option<Duration>,
}

/// Rate limits no test that measures something else reaches.
pub fn generous_rate_limits() -> marketplace_api::rate_limit::RateLimitConfig {
    use marketplace_api::rate_limit::{Budget, RateLimitConfig};
    let high = Budget::new(1_000_000, 1_000_000);
    RateLimitConfig {
        commands: high,
        reads: high,
        anonymous: high,
        webhook: high,
        ..RateLimitConfig::default()
    }
}

/// Delivery options for tests: short leases, polls and backoff.
pub fn test_delivery_options() -> marketplace_workers::notify::DeliveryOptions {
    marketplace_workers::notify::DeliveryOptions {
        lease: Duration::from_secs(2),
        poll: Duration::from_millis(100),
        retry: marketplace_workers::notify::RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_millis(800),
            give_up_after: Duration::from_secs(60),
        },
        webhook_timeout: Duration::from_secs(5),
        timers_every: Duration::from_millis(200),
        ..Default::default()
    }
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            projections: true,
            body_limit: 16 * 1024,
            payments: true,
            stripe: false,
            nodes: None,
            rate_limit: generous_rate_limits(),
            metrics: marketplace_api::metrics::MetricsAccess::open(),
            notifications: true,
            smtp: false,
            verification_ttl: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// Serves `jwks` on port 0 and returns its URL and a count of fetches.
pub async fn serve_jwks(jwks: Value, cancel: CancellationToken) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind jwks");
    let addr = listener.local_addr().expect("addr");
    let doc = Arc::new(jwks);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let doc = doc.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Json(doc.as_ref().clone()) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
    });
    (format!("http://{addr}/.well-known/jwks.json"), hits)
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let (pool, database_url) = fresh_database().await;
    spawn_app_on(pool, database_url, options).await
}

/// The API (and, if asked, the projection runners) on a database of the caller's.
pub async fn spawn_app_on(pool: PgPool, database_url: String, options: AppOptions) -> TestApp {
    let cancel = CancellationToken::new();
    let jwks = serde_json::to_value(key().jwks()).expect("jwks json");
    let (jwks_url, jwks_fetches) = serve_jwks(jwks, cancel.clone()).await;
    let auth = Authenticator::new(AuthConfig {
        jwks_url,
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        roles_claim: ROLES_CLAIM.into(),
        leeway_secs: 5,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (local_stripe, payments) = if options.stripe {
        let ls =
            stripe::LocalStripe::start(format!("{base}/v1/webhooks/stripe"), STRIPE_SECRET).await;
        let payments: marketplace_app::stripe::Gateway = Arc::new(
            marketplace_app::stripe::Payments::new(&marketplace_app::stripe::StripeSettings {
                secret_key: stripe::SECRET_KEY.to_string().into(),
                api_base: Some(ls.base.clone()),
            })
            .expect("stripe client"),
        );
        let worker = marketplace_workers::stripe::StripeInboxWorker::new(
            pool.clone(),
            Some(payments.clone()),
            marketplace_workers::stripe::InboxOptions {
                poll: Duration::from_millis(200),
                retry_base: Duration::from_millis(100),
                retry_max: Duration::from_secs(1),
                max_attempts: 1_000,
            },
        );
        tokio::spawn(worker.run(cancel.clone()));
        (Some(ls), Some(payments))
    } else {
        (None, None)
    };
    let settings = ApiSettings {
        body_limit: options.body_limit,
        read_wait: Duration::from_secs(5),
        tft_price: TftPrice::from_usd_units(100_000).expect("price"),
        stripe_webhook_secret: options.payments.then(|| STRIPE_SECRET.to_string().into()),
        payments: payments.clone(),
        dev_jwks: None,
        rate_limit: options.rate_limit,
        metrics: options.metrics,
    };
    let mut state = marketplace::wiring::app_state(pool.clone(), auth, settings, &cancel)
        .with_loopback_webhooks();
    if let Some(nodes) = options.nodes {
        state = state.with_nodes(nodes);
    }
    if let Some(ttl) = options.verification_ttl {
        state = state.with_verification_ttl(ttl);
    }
    let smtp = if options.smtp {
        let server = smtp::SmtpServer::start().await;
        let mailer = marketplace_app::mail::SmtpMailer::from_config(
            &server.url().into(),
            "Marketplace <noreply@marketplace.test>",
        )
        .expect("mailer");
        state = state.with_mailer(Arc::new(mailer));
        Some(server)
    } else {
        None
    };
    if options.projections {
        marketplace::wiring::spawn_projections(pool.clone(), 100, cancel.clone());
        if options.notifications {
            marketplace::wiring::spawn_notifications(&pool, test_delivery_options(), None, &cancel);
        }
    }
    marketplace::wiring::spawn_api(listener, state, cancel.clone());
    TestApp {
        base,
        pool,
        database_url,
        client: reqwest::Client::new(),
        cancel,
        jwks_fetches,
        stripe: local_stripe,
        payments,
        smtp,
    }
}

/// Claims of a valid token for `sub` with `roles`.
pub fn claims(sub: &str, roles: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub,
        "iat": now, "nbf": now - 1, "exp": now + 600,
        ROLES_CLAIM: roles,
    })
}

/// A valid token.
pub fn token(sub: &str, roles: &[&str]) -> String {
    key().sign(&claims(sub, roles)).expect("sign")
}

pub fn alice() -> String {
    token("alice", &["cloud-user"])
}
pub fn bob() -> String {
    token("bob", &["cloud-user"])
}
pub fn operator() -> String {
    token("ops", &["cloud-operator"])
}

pub fn vm_body(name: &str) -> Value {
    json!({
        "name": name,
        "spec": {
            "kind": "vm",
            "size": { "cpu": 2, "memory_mib": 4096, "rootfs_gb": 20 },
            "disks_gb": [50],
            "public_ipv4": true,
            "image": "https://hub.grid.tf/tf-official-apps/base:latest.flist",
            "ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqtest alice@laptop"
        },
        "placement": { "country": "Belgium", "certified_only": false, "min_uptime_bps": 9500 }
    })
}

pub fn k8s_body(name: &str) -> Value {
    json!({
        "name": name,
        "spec": {
            "kind": "kubernetes",
            "masters": 1, "workers": 2,
            "master_size": { "cpu": 2, "memory_mib": 4096, "rootfs_gb": 20 },
            "worker_size": { "cpu": 2, "memory_mib": 4096, "rootfs_gb": 20 },
            "image": "https://hub.grid.tf/tf-official-apps/k3s:latest.flist",
            "ssh_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqtest alice@laptop"
        }
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Requests a deployment as `token`'s user and returns (id, version).
    pub async fn request(&self, token: &str, body: &Value) -> (String, u64) {
        let r = self.post("/v1/deployments", token, body).await;
        assert_eq!(
            r.status(),
            202,
            "request refused: {}",
            r.text().await.unwrap_or_default()
        );
        let v: Value = r.json().await.expect("json");
        (
            v["id"].as_str().expect("id").to_string(),
            v["version"].as_u64().expect("version"),
        )
    }

    /// Reads a deployment once its view reached `version`.
    pub async fn read(&self, token: &str, id: &str, version: u64) -> Value {
        let r = self
            .get(
                &format!("/v1/deployments/{id}?min_version={version}"),
                token,
            )
            .await;
        assert_eq!(
            r.status(),
            200,
            "read failed: {}",
            r.text().await.unwrap_or_default()
        );
        r.json().await.expect("json")
    }

    /// Number of events stored for an aggregate.
    pub async fn event_count(&self, id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Events stored, leaving out users' own (a user is opened by its
    /// first authenticated request, whatever that request does).
    pub async fn total_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type <> 'user'")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// Asserts an answer is a problem document with this status; returns it.
pub async fn expect_problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "application/problem+json");
    let body: Value = r.json().await.expect("problem json");
    assert_eq!(body["status"].as_u64(), Some(status as u64));
    assert!(body["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("/problems/")));
    body
}

/// A projection's tables, every row as JSON, in a total order (by the row's
/// text), so two dumps are equal exactly when the tables hold the same rows.
pub async fn dump_views<P: marketplace_projections::Projection>(
    pool: &PgPool,
    projection: &P,
) -> Vec<Value> {
    let mut tables = Vec::new();
    for table in projection.tables() {
        let rows: Value = sqlx::query_scalar(&format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t::text), '[]') FROM {table} t"
        ))
        .fetch_one(pool)
        .await
        .expect("dump");
        tables.push(json!({ "table": table, "rows": rows }));
    }
    tables
}

/// A deployment of alice's, placed, contracted and running (version 4).
pub async fn running(app: &TestApp) -> String {
    let (id, _) = app.request(&alice(), &vm_body("web1")).await;
    let op = operator();
    for (path, body) in [
        ("node", json!({ "node_id": 11, "farm_id": 1 })),
        ("contract", json!({ "contract_id": 7 })),
        (
            "running",
            json!({ "workloads": [{ "name": "web1", "state": "ok" }] }),
        ),
    ] {
        let r = app
            .post(&format!("/v1/deployments/{id}/{path}"), &op, &body)
            .await;
        assert_eq!(r.status(), 202);
    }
    id
}
