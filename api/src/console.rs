//! The web console: the SPA built into `web/dist`, served at `/`, and what
//! it needs to start: `GET /console/config.json` (how to sign in, where
//! Stripe.js comes from) and, in dev mode only, `POST /dev/token` (mint a
//! token for a subject and role, for the "sign in as" page).
//!
//! Any other GET outside the API's own paths answers the file it names
//! or, for the SPA's client-side routes, `index.html`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::AppState;

/// The built console. In a debug build the files are read from disk at
/// request time (a rebuilt console shows without recompiling); a release
/// build carries them.
#[derive(RustEmbed)]
#[folder = "../web/dist"]
struct Assets;

/// What the console reads before it signs anyone in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// How users sign in.
    pub auth: ConsoleAuth,
    /// Where Stripe.js comes from; `None` when payments are not configured.
    pub stripe: Option<StripeJs>,
}

/// How the console signs users in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ConsoleAuth {
    /// Dev mode: the "sign in as" page mints tokens at `POST /dev/token`.
    Dev,
    /// Authorization Code with PKCE against the configured issuer.
    Oidc {
        /// The issuer (its discovery document is under it).
        issuer: String,
        /// The console's client id at the issuer.
        client_id: String,
        /// The API's audience, asked for in the authorization request.
        audience: String,
        /// The claim that carries the roles.
        roles_claim: String,
    },
    /// `serve` without `OIDC_CLIENT_ID`: the console cannot sign anyone in.
    Unconfigured,
}

/// Stripe.js as Stripe requires it to be loaded: from its own URL.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StripeJs {
    /// The publishable key (`pk_…`).
    pub publishable_key: String,
    /// `https://js.stripe.com/v3/`, or a Stripe-compatible test server's copy.
    pub js_url: String,
}

impl StripeJs {
    /// The real Stripe.js, or, with `STRIPE_API_BASE` set, the test
    /// server's own (localstripe serves one at `/js.stripe.com/v3/`).
    pub fn new(publishable_key: String, api_base: Option<&str>) -> Self {
        let js_url = match api_base {
            Some(base) => format!("{}/js.stripe.com/v3/", base.trim_end_matches('/')),
            None => "https://js.stripe.com/v3/".to_string(),
        };
        Self {
            publishable_key,
            js_url,
        }
    }
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            auth: ConsoleAuth::Unconfigured,
            stripe: None,
        }
    }
}

/// Mints dev tokens (dev mode's signing key; never present in `serve`).
pub trait DevTokens: Send + Sync {
    /// A token for `sub` with `roles`, valid for `ttl_secs`.
    fn mint(&self, sub: &str, roles: &[&str], ttl_secs: i64) -> anyhow::Result<String>;
}

/// `POST /dev/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevTokenRequest {
    sub: String,
    roles: Vec<String>,
}

/// A minted dev token.
#[derive(Debug, Serialize)]
pub struct DevTokenResponse {
    token: String,
    expires_in: i64,
}

const DEV_TOKEN_TTL_SECS: i64 = 3600;
const ROLES: [&str; 3] = ["cloud-user", "cloud-provider", "cloud-operator"];

pub(crate) async fn config(State(state): State<AppState>) -> Response {
    let mut res = Json(state.console.as_ref().clone()).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub(crate) async fn dev_token(
    State(state): State<AppState>,
    body: Result<Json<DevTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DevTokenResponse>, ApiError> {
    let minter = state.dev_tokens.clone().ok_or(ApiError::NotFound)?;
    let Json(req) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let sub = req.sub.trim();
    if sub.is_empty() || sub.len() > 128 || sub.chars().any(char::is_control) {
        return Err(ApiError::Invalid {
            detail: "sub must be 1 to 128 printable characters".into(),
            field: Some("sub".into()),
        });
    }
    if req.roles.is_empty() || req.roles.iter().any(|r| !ROLES.contains(&r.as_str())) {
        return Err(ApiError::Invalid {
            detail: format!("roles must be one or more of {}", ROLES.join(", ")),
            field: Some("roles".into()),
        });
    }
    let roles: Vec<&str> = req.roles.iter().map(String::as_str).collect();
    let token = minter
        .mint(sub, &roles, DEV_TOKEN_TTL_SECS)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(DevTokenResponse {
        token,
        expires_in: DEV_TOKEN_TTL_SECS,
    }))
}

/// Paths that belong to the API: unknown ones there answer a problem 404,
/// never the console.
fn is_api_path(path: &str) -> bool {
    ["/v1", "/dev", "/console", "/metrics", "/healthz", "/readyz"]
        .iter()
        .filter_map(|p| path.strip_prefix(p))
        .any(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The router's fallback: console files and routes for GET and HEAD
/// outside the API's paths, a problem 404 otherwise.
pub(crate) async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if !(method == Method::GET || method == Method::HEAD) || is_api_path(path) {
        return ApiError::NotFound.into_response();
    }
    let file = path.trim_start_matches('/');
    if let Some(found) = (!file.is_empty()).then(|| Assets::get(file)).flatten() {
        // Vite names what it builds under assets/ by content hash.
        let cache = if file.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return asset(found, cache);
    }
    // A file-like path that is missing is a 404, not the SPA.
    let last = file.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return ApiError::NotFound.into_response();
    }
    match Assets::get("index.html") {
        Some(index) => asset(index, "no-cache"),
        None => ApiError::NotFound.into_response(),
    }
}

fn asset(file: rust_embed::EmbeddedFile, cache: &'static str) -> Response {
    let mime = file.metadata.mimetype().to_string();
    let mut res = Response::new(Body::from(file.data.into_owned()));
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    *res.status_mut() = StatusCode::OK;
    res
}

/// The console's state on [`AppState`].
pub(crate) type Shared = Arc<ConsoleConfig>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_never_fall_back_to_the_console() {
        for p in ["/v1", "/v1/nothing", "/dev/x", "/metrics", "/console/x"] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/", "/deployments/abc", "/v1x", "/wallet"] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[test]
    fn stripe_js_comes_from_the_test_server_when_one_is_configured() {
        let js = StripeJs::new("pk_test_x".into(), Some("http://127.0.0.1:8420/"));
        assert_eq!(js.js_url, "http://127.0.0.1:8420/js.stripe.com/v3/");
        let js = StripeJs::new("pk_live_x".into(), None);
        assert_eq!(js.js_url, "https://js.stripe.com/v3/");
    }
}
