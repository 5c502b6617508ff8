//! The HTTP API: a thin axum layer that authenticates, authorises by role
//! and ownership, turns requests into commands, and answers reads from the
//! read models.

pub mod alliances;
pub mod audit;
pub mod auth;
pub mod command;
pub mod console;
pub mod contract;
pub mod dead_letters;
pub mod deployments;
pub mod dto;
pub mod error;
pub mod extract;
pub mod health;
pub mod http_metrics;
pub mod metrics;
pub mod nodes;
pub mod notifications;
pub mod policy;
pub mod pricing;
pub mod providers;
pub mod quotes;
pub mod rate_limit;
pub mod tft_price;
pub mod users;
pub mod views_watch;
pub mod wallet;
pub mod webhook_endpoints;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::JwkSet;
use marketplace_domain::TftPrice;
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::http_metrics::HttpMetrics;
use crate::metrics::MetricsAccess;
use crate::rate_limit::{Limiter, RateLimitConfig};
use crate::views_watch::ViewWatcher;
use marketplace_app::Stores;

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a read with `min_version` may wait for its view.
    pub read_wait: Duration,
    /// The TFT price quotes convert at.
    pub tft_price: TftPrice,
    /// The Stripe webhook endpoint's signing secret; without it, payments are not configured.
    pub stripe_webhook_secret: Option<secrecy::SecretString>,
    /// The Stripe client; without it, top-ups and cards answer 503 not-configured.
    pub payments: Option<marketplace_app::stripe::Gateway>,
    /// Dev mode only: the JWKS to publish at `/dev/jwks.json`.
    pub dev_jwks: Option<JwkSet>,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Who may read `/metrics`, and on which listener.
    pub metrics: MetricsAccess,
}

/// How long a contact-email code is valid unless configured otherwise.
pub const DEFAULT_VERIFICATION_TTL: Duration = Duration::from_secs(15 * 60);

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// The event stores.
    pub stores: Arc<Stores>,
    /// Token verification.
    pub auth: Arc<Authenticator>,
    /// Settings.
    pub settings: Arc<ApiSettings>,
    /// Wakes reads waiting for their own writes.
    pub views: ViewWatcher,
    /// The ZOS nodes' RMB commands, for live figures (a deployment's node
    /// capacity); without it, reads fall back to the node catalog.
    pub nodes: Option<Arc<dyn marketplace_app::zos::Nodes>>,
    /// This replica's rate limiter (its buckets are shared in PostgreSQL).
    pub limiter: Arc<Limiter>,
    /// This replica's HTTP request counters and latency histograms.
    pub http_metrics: Arc<HttpMetrics>,
    /// Whether webhook endpoints may be plain `http` to a loopback
    /// address (dev mode and tests); otherwise `https` only.
    pub allow_loopback_webhooks: bool,
    /// The subjects whose users this process knows to be opened.
    pub users: Arc<users::KnownUsers>,
    /// Outgoing mail (contact-email codes); without it, sending a code
    /// answers 503 not-configured.
    pub mailer: Option<Arc<dyn marketplace_app::mail::Mailer>>,
    /// How long a contact-email code is valid.
    pub verification_ttl: Duration,
    /// What the web console reads before it signs anyone in.
    pub console: console::Shared,
    /// Dev mode only: mints tokens for the console's "sign in as" page.
    pub dev_tokens: Option<Arc<dyn console::DevTokens>>,
}

impl AppState {
    /// The state with no outside ports configured: reads that could ask a
    /// node answer from the views instead.
    pub fn new(
        pool: PgPool,
        stores: Arc<Stores>,
        auth: Arc<Authenticator>,
        settings: Arc<ApiSettings>,
        views: ViewWatcher,
    ) -> Self {
        let limiter = Arc::new(Limiter::new(pool.clone(), settings.rate_limit.clone()));
        Self {
            pool,
            stores,
            auth,
            settings,
            views,
            nodes: None,
            limiter,
            http_metrics: Arc::default(),
            allow_loopback_webhooks: false,
            users: Arc::new(users::KnownUsers::new()),
            mailer: None,
            verification_ttl: DEFAULT_VERIFICATION_TTL,
            console: Arc::default(),
            dev_tokens: None,
        }
    }

    /// How the web console signs users in and loads Stripe.js.
    pub fn with_console(mut self, config: console::ConsoleConfig) -> Self {
        self.console = Arc::new(config);
        self
    }

    /// Dev mode: lets `POST /dev/token` mint tokens with this key.
    pub fn with_dev_tokens(mut self, minter: Arc<dyn console::DevTokens>) -> Self {
        self.dev_tokens = Some(minter);
        self
    }

    /// Accepts `http` webhook endpoints on loopback addresses (dev mode
    /// and tests only).
    pub fn with_loopback_webhooks(mut self) -> Self {
        self.allow_loopback_webhooks = true;
        self
    }

    /// Sends mail (contact-email codes) through this port.
    pub fn with_mailer(mut self, mailer: Arc<dyn marketplace_app::mail::Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Contact-email codes are valid this long.
    pub fn with_verification_ttl(mut self, ttl: Duration) -> Self {
        self.verification_ttl = ttl;
        self
    }

    /// Asks the nodes themselves (through this port) for live figures.
    pub fn with_nodes(mut self, nodes: Arc<dyn marketplace_app::zos::Nodes>) -> Self {
        self.nodes = Some(nodes);
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ThreeFold Grid cloud marketplace",
        description = "Commands answer 202 with the aggregate's new version; reads can wait for that version with `min_version`. Errors are RFC 9457 problem documents."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "deployments", description = "Cloud users' VMs and Kubernetes clusters"),
        (name = "operations", description = "Operator-driven life-cycle steps"),
        (name = "quotes", description = "Prices"),
        (name = "audit", description = "Operators' reads of the event store: an aggregate's history and its state at any version or time"),
        (name = "notifications", description = "A user's notifications: the feed, read state, outgoing webhook endpoints and their delivery log"),
        (name = "providers", description = "Providers' requests to sell through the marketplace"),
        (name = "alliances", description = "Provider alliances: pooled nodes, shared income, an SLA, monthly settlements"),
        (name = "pricing", description = "The operators' pricing policy"),
        (name = "nodes", description = "The node catalog, synced from the grid"),
        (name = "maintenance", description = "Providers' maintenance windows"),
        (name = "payments", description = "Stripe webhooks"),
        (name = "users", description = "Your profile and settings (`/v1/me`), contact-email verification, and the operators' user list"),
        (name = "wallet", description = "Users' wallets: balance, ledger, cards, top-ups, TFChain link"),
        (name = "health", description = "Liveness and readiness")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// 429 on every operation the rate limiter covers (all but the probes and
/// `/metrics`), described once as a shared response.
struct RateLimited;

impl utoipa::Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::{Content, Object, Ref, RefOr, ResponseBuilder, Type};
        let integer = |description: &str| {
            HeaderBuilder::new()
                .schema(Some(Object::with_type(Type::Integer)))
                .description(Some(description))
                .build()
        };
        let response = ResponseBuilder::new()
            .description("Rate limited: this caller's budget is spent (`/problems/rate-limited`)")
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .header(
                "Retry-After",
                integer("Seconds until a request of this budget is allowed again"),
            )
            .header("RateLimit-Limit", integer("The budget's burst"))
            .header("RateLimit-Remaining", integer("Requests left (0)"))
            .header(
                "RateLimit-Reset",
                integer("Seconds until a request is allowed again"),
            )
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .responses
            .insert("RateLimited".into(), RefOr::T(response));
        for (path, item) in openapi.paths.paths.iter_mut() {
            if ["/healthz", "/readyz", "/metrics"].contains(&path.as_str()) {
                continue;
            }
            for operation in contract::operations(item) {
                operation.responses.responses.insert(
                    "429".into(),
                    RefOr::Ref(Ref::from_response_name("RateLimited")),
                );
            }
        }
    }
}

/// The routes with their OpenAPI description.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(deployments::router())
        .merge(providers::router())
        .merge(alliances::router())
        .merge(pricing::router())
        .merge(nodes::router())
        .merge(dead_letters::router())
        .merge(wallet::router())
        .merge(notifications::router())
        .merge(webhook_endpoints::router())
        .merge(audit::router())
        .merge(users::router())
        .routes(routes!(webhooks::stripe_webhook))
        .routes(routes!(quotes::create_quote))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
}

/// The modifiers that need every operation: they run after the routes
/// are merged in.
fn finish(doc: &mut utoipa::openapi::OpenApi) {
    utoipa::Modify::modify(&RateLimited, doc);
    utoipa::Modify::modify(&contract::Contract, doc);
}

/// The OpenAPI document the API serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().into_openapi();
    finish(&mut doc);
    doc
}

async fn dev_jwks(State(state): State<AppState>) -> Result<Json<JwkSet>, ApiError> {
    state
        .settings
        .dev_jwks
        .clone()
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// `/metrics` alone, for its own listen address (`METRICS_ADDR`).
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .layer(axum::Extension(metrics::MetricsListener))
        .with_state(state)
}

/// The application with its layers: request ids, tracing spans, body
/// limit, HTTP metrics and rate limiting (inside routing, so both see the
/// matched route template).
pub fn app(state: AppState) -> Router {
    let (router, mut doc) = routes().split_for_parts();
    // After the routes are merged in, so that it sees every operation.
    finish(&mut doc);
    let doc = Arc::new(doc);
    let request_id = HeaderName::from_static(extract::REQUEST_ID);
    router
        .route(
            "/v1/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()) }),
        )
        .route("/dev/jwks.json", get(dev_jwks))
        .route("/dev/token", axum::routing::post(console::dev_token))
        .route("/console/config.json", get(console::config))
        .fallback(console::fallback)
        .layer(from_fn_with_state(state.clone(), rate_limit::limit))
        .layer(from_fn_with_state(state.clone(), http_metrics::record))
        .layer(DefaultBodyLimit::max(state.settings.body_limit))
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let request_id = req
                    .headers()
                    .get(extract::REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let correlation_id = req
                    .headers()
                    .get(extract::CORRELATION_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(request_id);
                tracing::info_span!(
                    "http",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id,
                    correlation_id,
                    subject = tracing::field::Empty,
                )
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
