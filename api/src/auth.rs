//! Bearer-token authentication, Auth0-compatible: RS256 tokens verified
//! against the keys of a JWKS URL (cached, refreshed when an unknown `kid`
//! appears), issuer and audience checked, roles read from a configurable claim.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use marketplace_domain::{Actor, Role};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};
use tracing::{info, warn};

use crate::error::ApiError;
use crate::AppState;

/// The issuer of `marketplace dev`'s own tokens. Production mode (`serve`)
/// refuses to be configured with it, so a dev token is never accepted there.
pub const DEV_ISSUER: &str = "https://marketplace.dev.local/";
/// The audience dev tokens carry.
pub const DEV_AUDIENCE: &str = "marketplace-dev";
/// The claim dev tokens carry their roles in.
pub const DEV_ROLES_CLAIM: &str = "roles";

/// Where tokens come from and what they must say.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The issuer's JWKS document.
    pub jwks_url: String,
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud` (one of).
    pub audience: String,
    /// The claim holding the roles: an array of strings or a space-separated string.
    pub roles_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// A refresh of the JWKS caused by an unknown `kid` happens at most this often,
/// so tokens with random key ids cannot make us hammer the issuer.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Verifies tokens and caches the issuer's keys.
pub struct Authenticator {
    config: AuthConfig,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    last_refresh: Mutex<Option<Instant>>,
    /// Tokens already verified, by digest, until they expire: an SPA sends
    /// the same token on every request, and RS256 verification is the
    /// costliest step of a request.
    verified: std::sync::Mutex<HashMap<[u8; 32], (Principal, i64)>>,
}

/// At most this many verified tokens are remembered; past it the cache
/// drops expired entries, and if that is not enough, starts over.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub subject: String,
    /// The marketplace roles it carries.
    pub roles: Vec<Role>,
    /// The token's `email` claim, when it has one (the user's profile
    /// starts from it).
    pub email: Option<String>,
    /// The token's `name` claim, when it has one.
    pub name: Option<String>,
}

impl Principal {
    /// Whether the principal may act as an operator.
    pub fn is_operator(&self) -> bool {
        self.roles.contains(&Role::CloudOperator)
    }

    /// The actor for a command on the principal's own user (profile and
    /// settings): any marketplace role will do, the strongest first; 403
    /// for a token without one.
    pub fn as_self(&self) -> Result<Actor, ApiError> {
        self.act_as(&[Role::CloudOperator, Role::CloudProvider, Role::CloudUser])
    }

    /// The actor for a command that needs one of `allowed` roles; the first
    /// allowed role the principal has wins (operator listed first where it
    /// should take precedence). 403 without any.
    pub fn act_as(&self, allowed: &[Role]) -> Result<Actor, ApiError> {
        allowed
            .iter()
            .find(|r| self.roles.contains(r))
            .map(|role| Actor::new(self.subject.clone(), *role))
            .ok_or(ApiError::Forbidden)
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(flatten)]
    rest: HashMap<String, Value>,
}

impl Authenticator {
    /// An authenticator that fetches keys from the configured JWKS URL.
    pub fn new(config: AuthConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            keys: RwLock::new(HashMap::new()),
            last_refresh: Mutex::new(None),
            verified: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Puts keys in the cache up front (dev mode knows its own key).
    pub async fn preload(&self, jwks: &JwkSet) {
        let keys = decoding_keys(jwks);
        self.keys.write().await.extend(keys);
    }

    /// Verifies a token and returns its principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Ok(cache) = self.verified.lock() {
            if let Some((principal, exp)) = cache.get(&digest) {
                if now <= *exp + self.config.leeway_secs as i64 {
                    return Ok(principal.clone());
                }
            }
        }
        let (principal, exp) = self.verify_fully(token).await?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE_MAX {
                let leeway = self.config.leeway_secs as i64;
                cache.retain(|_, (_, exp)| now <= *exp + leeway);
                if cache.len() >= VERIFIED_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(digest, (principal.clone(), exp));
        }
        Ok(principal)
    }

    /// Checks signature, key, issuer, audience and times.
    async fn verify_fully(&self, token: &str) -> Result<(Principal, i64), ApiError> {
        let unauthorized = |why: &str| ApiError::Unauthorized(why.to_string());
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed token"))?;
        if header.alg != Algorithm::RS256 {
            return Err(unauthorized("only RS256 tokens are accepted"));
        }
        let kid = header
            .kid
            .ok_or_else(|| unauthorized("token has no key id"))?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            let why = match e.kind() {
                K::ExpiredSignature => "token expired",
                K::ImmatureSignature => "token not yet valid",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidAudience => "wrong audience",
                K::InvalidSignature => "bad signature",
                K::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "invalid token",
            };
            unauthorized(why)
        })?;
        let roles = match data.claims.rest.get(&self.config.roles_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Role::parse)
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().filter_map(Role::parse).collect(),
            _ => Vec::new(),
        };
        if data.claims.sub.is_empty() {
            return Err(unauthorized("empty subject"));
        }
        let claim = |name: &str| {
            data.claims
                .rest
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (email, name) = (claim("email"), claim("name"));
        Ok((
            Principal {
                subject: data.claims.sub,
                roles,
                email,
                name,
            },
            data.claims.exp,
        ))
    }

    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, ApiError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        self.refresh().await;
        self.keys
            .read()
            .await
            .get(kid)
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("unknown signing key".into()))
    }

    /// Fetches the JWKS again, unless that was done very recently.
    async fn refresh(&self) {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_REFRESH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let fetched = async {
            self.http
                .get(&self.config.jwks_url)
                .send()
                .await?
                .error_for_status()?
                .json::<JwkSet>()
                .await
        }
        .await;
        match fetched {
            Ok(set) => {
                let keys = decoding_keys(&set);
                info!(url = %self.config.jwks_url, keys = keys.len(), "JWKS refreshed");
                *self.keys.write().await = keys;
            }
            Err(e) => warn!(url = %self.config.jwks_url, error = %e, "JWKS refresh failed"),
        }
    }
}

fn decoding_keys(set: &JwkSet) -> HashMap<String, Arc<DecodingKey>> {
    set.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Arc::new(key)))
        })
        .collect()
}

/// The authenticated caller; answers 401 when the token is missing or bad.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The rate limiter verified this request's token already.
        let principal = match parts.extensions.get::<Principal>() {
            Some(principal) => principal.clone(),
            None => {
                let header = parts
                    .headers
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
                let token = header
                    .strip_prefix("Bearer ")
                    .or_else(|| header.strip_prefix("bearer "))
                    .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
                state.auth.verify(token.trim()).await?
            }
        };
        tracing::Span::current().record("subject", principal.subject.as_str());
        // A subject's first request (or first with changed claims) in this
        // process opens its user; after that the cache answers at no cost.
        // A failure here fails no request: the next one tries again, and
        // `/v1/me` insists.
        if !state.users.is_known(&principal) {
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            // Its own conversation: opening a user is no part of what the
            // request was about (an audit of the caller's correlation id
            // lists what the request did, not this).
            let request_id = header(crate::extract::REQUEST_ID);
            if let Err(e) = state
                .users
                .ensure(&state.stores, &principal, &request_id, &request_id)
                .await
            {
                tracing::warn!(subject = %principal.subject, error = %e, "could not open the user");
            }
        }
        Ok(AuthUser(principal))
    }
}

/// Extractors that authenticate and check the role before anything else
/// (a body is not even read for a caller without the role: 401, then 403).
macro_rules! acting_as {
    ($(#[$doc:meta])* $name:ident: [$($role:expr),+]) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Actor);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
                Ok(Self(principal.act_as(&[$($role),+])?))
            }
        }
    };
}

acting_as!(
    /// A cloud user acting for themselves.
    AsUser: [Role::CloudUser]
);
acting_as!(
    /// An operator (acting across tenants) or else a cloud user (acting on their own).
    AsUserOrOperator: [Role::CloudOperator, Role::CloudUser]
);
acting_as!(
    /// Someone notifications are for: a cloud user, or a provider (whose
    /// requests are answered and whose alliance pays out), on their own.
    AsRecipient: [Role::CloudUser, Role::CloudProvider]
);
acting_as!(
    /// An operator.
    AsOperator: [Role::CloudOperator]
);
acting_as!(
    /// A cloud provider (a farmer).
    AsProvider: [Role::CloudProvider]
);
acting_as!(
    /// An operator (across tenants) or else a provider (on their own farms).
    AsProviderOrOperator: [Role::CloudOperator, Role::CloudProvider]
);

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_dev::keys::SigningKey;
    use serde_json::json;

    async fn authenticator(key: &SigningKey) -> Authenticator {
        let auth = Authenticator::new(AuthConfig {
            jwks_url: "http://127.0.0.1:1/unused".into(),
            issuer: "https://issuer.test/".into(),
            audience: "api".into(),
            roles_claim: "roles".into(),
            leeway_secs: 0,
        });
        auth.preload(&key.jwks()).await;
        auth
    }

    fn token(key: &SigningKey, exp_in: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        key.sign(&json!({
            "iss": "https://issuer.test/", "aud": "api", "sub": "alice",
            "exp": now + exp_in, "roles": ["cloud-user"]
        }))
        .expect("sign")
    }

    #[tokio::test]
    async fn a_cached_token_still_expires() {
        let key = SigningKey::generate().expect("key");
        let auth = authenticator(&key).await;
        let t = token(&key, 1);
        assert_eq!(auth.verify(&t).await.expect("valid").subject, "alice");
        assert!(auth.verify(&t).await.is_ok(), "served from the cache");
        tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
        assert!(
            auth.verify(&t).await.is_err(),
            "the cache never outlives exp"
        );
    }

    #[tokio::test]
    async fn only_verified_tokens_are_cached() {
        let key = SigningKey::generate().expect("key");
        let auth = authenticator(&key).await;
        let good = token(&key, 600);
        auth.verify(&good).await.expect("valid");
        // The same claims under another key: a different token, verified on its own.
        let stranger = SigningKey::generate().expect("key");
        assert!(auth.verify(&token(&stranger, 600)).await.is_err());
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"iss":"https://issuer.test/","aud":"api","sub":"mallory","exp":9999999999,"roles":["cloud-operator"]}"#,
        );
        parts[1] = &forged_payload;
        assert!(auth.verify(&parts.join(".")).await.is_err());
    }
}
