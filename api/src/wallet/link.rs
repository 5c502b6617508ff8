//! Linking a TFChain account: a one-time challenge, answered by a signature
//! of its message with the account's key (sr25519 under Substrate's
//! `substrate` context, or ed25519), checked here before the wallet records
//! the outcome.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use marketplace_app::idempotency::Recovery;
use marketplace_app::{ids, tfchain, CommandError};
use marketplace_domain::wallet::{KeyType, LinkNonce, TfchainAccount, WalletCommand, WalletEvent};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{accepted, accepted_on_wallet, own_wallet};
use crate::auth::AsUser;
use crate::command::{fingerprint, keyed};
use crate::dto::CommandAccepted;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, RequestContext};
use crate::AppState;

/// How long a link challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::minutes(10);

/// Start linking an account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkChallengeRequest {
    /// The SS58 address.
    pub account: String,
    /// `sr25519` (Substrate's default) or `ed25519`.
    #[schema(schema_with = key_type_schema)]
    pub key_type: String,
}

/// A challenge to sign.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkChallengeBody {
    /// Answer at `/v1/wallet/link-challenges/{challenge_id}/signature`.
    pub challenge_id: Uuid,
    /// The exact text to sign with the account's key (raw or wrapped in `<Bytes>…</Bytes>`).
    pub message: String,
    /// After this it cannot be answered.
    pub expires_at: DateTime<Utc>,
    /// The wallet's version.
    pub version: u64,
}

fn key_type_schema() -> utoipa::openapi::schema::Object {
    crate::contract::string_enum(["sr25519", "ed25519"])
}

fn key_type(text: &str) -> Result<KeyType, ApiError> {
    match text {
        "sr25519" => Ok(KeyType::Sr25519),
        "ed25519" => Ok(KeyType::Ed25519),
        _ => Err(ApiError::Invalid {
            detail: "key_type is sr25519 or ed25519".into(),
            field: Some("key_type".into()),
        }),
    }
}

/// A random hex string of `bytes` bytes.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Issue a one-time challenge to prove control of a TFChain account.
#[utoipa::path(
    post, path = "/v1/wallet/link-challenges", tag = "wallet",
    request_body = LinkChallengeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key targets the same challenge"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 201, body = LinkChallengeBody),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn issue_link_challenge(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiJson(body): ApiJson<LinkChallengeRequest>,
) -> Response {
    let fingerprint = fingerprint(("POST /v1/wallet/link-challenges", &body));
    // The challenge's id derives from the key: a retry finds its challenge
    // and answers it again, so the request can simply run again.
    let issue = async {
        let key_type = key_type(&body.key_type)?;
        tfchain::ss58_public_key(&body.account).map_err(|e| ApiError::Invalid {
            detail: format!("account: {e}"),
            field: Some("account".into()),
        })?;
        let account = TfchainAccount::new(&body.account).map_err(|e| ApiError::Invalid {
            detail: e.reason,
            field: Some(e.field),
        })?;
        let challenge_id =
            ids::wallet_entity("link", &actor.subject, ctx.idempotency_key.as_deref());
        let now = Utc::now();
        let nonce = LinkNonce::new(&random_hex(16))
            .map_err(|e| ApiError::Internal(format!("nonce: {}", e.reason)))?;
        let done = own_wallet(&state, &ctx, &actor)
            .run_unless_done(|w| {
                if w.state().and_then(|s| s.challenge(challenge_id)).is_some() {
                    // A retry with the same Idempotency-Key: the challenge stands.
                    return Ok(None);
                }
                Ok(Some(WalletCommand::IssueLinkChallenge {
                    challenge_id,
                    nonce: nonce.clone(),
                    account: account.clone(),
                    key_type,
                    expires_at: now + CHALLENGE_TTL,
                    at: now,
                }))
            })
            .await?;
        let c = done
            .aggregate
            .state()
            .and_then(|s| s.challenge(challenge_id))
            .ok_or_else(|| ApiError::Internal("challenge not recorded".into()))?;
        Ok::<_, ApiError>(
            (
                StatusCode::CREATED,
                Json(LinkChallengeBody {
                    challenge_id,
                    message: c.message(&actor.subject),
                    expires_at: c.expires_at,
                    version: done.version,
                }),
            )
                .into_response(),
        )
    };
    keyed(
        &state,
        &ctx,
        &actor,
        &actor.subject,
        fingerprint,
        Recovery::Rerun,
        issue,
    )
    .await
}

/// A signature of a challenge's message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureRequest {
    /// 64 bytes, hex (with or without `0x`).
    pub signature: String,
}

/// Answer a challenge: the signature is verified against the challenge's
/// account (sr25519 under Substrate's `substrate` context, or ed25519);
/// a wrong signature burns the challenge (422 `signature-invalid`), and a
/// used challenge cannot be answered again (422 `challenge-used`).
#[utoipa::path(
    post, path = "/v1/wallet/link-challenges/{challenge_id}/signature", tag = "wallet",
    request_body = SignatureRequest,
    params(("challenge_id" = Uuid, Path, description = "The challenge"), ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer"), ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the wallet is at this version")),
    responses(
        (status = 202, body = CommandAccepted, description = "Linked"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn complete_link(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiPath(challenge_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SignatureRequest>,
) -> Response {
    let fingerprint = fingerprint((
        "POST /v1/wallet/link-challenges/signature",
        challenge_id,
        &body,
    ));
    let complete = async {
        let signature = tfchain::parse_signature(&body.signature);
        let owner = actor.subject.clone();
        let done = own_wallet(&state, &ctx, &actor)
            .run(|w| {
                let c = w
                    .state()
                    .and_then(|s| s.challenge(challenge_id))
                    .ok_or(CommandError::NotFound)?;
                let verified = match (signature, tfchain::ss58_public_key(c.account.as_str())) {
                    (Some(sig), Ok(key)) => {
                        tfchain::verify(c.key_type, &key, &c.message(&owner), &sig)
                    }
                    _ => false,
                };
                Ok(WalletCommand::CompleteLink {
                    challenge_id,
                    signature_verified: verified,
                    at: Utc::now(),
                })
            })
            .await?;
        if let Some(refusal) = done.events.iter().find_map(WalletEvent::refusal) {
            return Err(ApiError::from(CommandError::from(refusal)));
        }
        Ok(accepted(&actor.subject, done.version))
    };
    let recovery = accepted_on_wallet(&actor.subject);
    keyed(
        &state,
        &ctx,
        &actor,
        &actor.subject,
        fingerprint,
        recovery,
        complete,
    )
    .await
}
