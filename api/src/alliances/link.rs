//! Linking a member's payout account, as wallets link theirs: a one-time
//! challenge (kept in `alliance_link_challenges`), answered by a signature
//! of its message with the account's key (sr25519 under Substrate's
//! `substrate` context, or ed25519). A wrong signature burns the challenge;
//! a verified one links the account (`LinkPayoutAccount`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use marketplace_app::bus::load;
use marketplace_app::idempotency::Recovery;
use marketplace_app::{tfchain, CommandError};
use marketplace_domain::alliance::{AllianceCommand, ChainAccount};
use marketplace_domain::wallet::KeyType;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{invalid, reach, target};
use crate::auth::AsProvider;
use crate::command::{accepted, exec, fingerprint, keyed};
use crate::dto::CommandAccepted;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, RequestContext};
use crate::AppState;

/// How long a payout-account challenge may be answered.
pub const PAYOUT_CHALLENGE_TTL: Duration = Duration::minutes(10);

/// Start linking a payout account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutChallengeRequest {
    /// The SS58 address payouts go to.
    pub account: String,
    /// `sr25519` or `ed25519`.
    #[schema(schema_with = key_type_schema)]
    pub key_type: String,
}

fn key_type_schema() -> utoipa::openapi::schema::Object {
    crate::contract::string_enum(["sr25519", "ed25519"])
}

/// A challenge to sign.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutChallengeBody {
    /// Answer at `/v1/alliances/{id}/payout-account/challenges/{challenge_id}/signature`.
    pub challenge_id: Uuid,
    /// The exact text to sign with the account's key.
    pub message: String,
    /// After this it cannot be answered.
    pub expires_at: DateTime<Utc>,
}

/// The text a member signs.
pub fn payout_message(
    alliance: &str,
    member: &str,
    account: &str,
    challenge: Uuid,
    nonce: &str,
) -> String {
    format!(
        "Link TFChain account {account} as the payout account of {member} in ThreeFold \
         marketplace alliance {alliance}\nchallenge: {challenge}\nnonce: {nonce}"
    )
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

/// Issue a challenge to prove control of the account a member's payouts go to.
#[utoipa::path(
    post, path = "/v1/alliances/{id}/payout-account/challenges", tag = "alliances",
    request_body = PayoutChallengeRequest,
    params(("id" = String, Path, description = "The alliance")),
    responses(
        (status = 201, body = PayoutChallengeBody), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn issue_payout_challenge(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PayoutChallengeRequest>,
) -> Result<Response, ApiError> {
    let kind = key_type(&body.key_type)?;
    tfchain::ss58_public_key(&body.account).map_err(|e| ApiError::Invalid {
        detail: format!("account: {e}"),
        field: Some("account".into()),
    })?;
    ChainAccount::new(&body.account).map_err(|e| ApiError::from(invalid(e)))?;
    let (alliance, _) = load(&state.stores.alliances, &id).await?;
    reach(&alliance, &actor)?;
    if !alliance
        .state()
        .is_some_and(|s| s.members.contains_key(&actor.subject))
    {
        return Err(CommandError::Rule {
            slug: "not-a-member",
            detail: format!("{} is not a member", actor.subject),
        }
        .into());
    }
    let challenge_id = Uuid::new_v4();
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut nonce);
    let nonce = hex::encode(nonce);
    let now = Utc::now();
    let expires_at = now + PAYOUT_CHALLENGE_TTL;
    sqlx::query(
        "INSERT INTO alliance_link_challenges
            (challenge_id, alliance_id, member, account, key_type, nonce, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(challenge_id)
    .bind(&id)
    .bind(&actor.subject)
    .bind(&body.account)
    .bind(match kind {
        KeyType::Sr25519 => "sr25519",
        KeyType::Ed25519 => "ed25519",
    })
    .bind(&nonce)
    .bind(expires_at)
    .bind(now)
    .execute(&state.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(PayoutChallengeBody {
            challenge_id,
            message: payout_message(&id, &actor.subject, &body.account, challenge_id, &nonce),
            expires_at,
        }),
    )
        .into_response())
}

/// A challenge as answered: account, key type, nonce, expiry, and when it
/// was used before this answer.
type ChallengeRow = (String, String, String, DateTime<Utc>, Option<DateTime<Utc>>);

/// A signature of a challenge's message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutSignatureRequest {
    /// 64 bytes, hex (with or without `0x`).
    pub signature: String,
}

/// Answer a challenge: a verified signature links the account (202); a
/// wrong one burns the challenge (422 `signature-invalid`); a used or
/// expired one cannot be answered (422 `challenge-used`, `challenge-expired`).
#[utoipa::path(
    post, path = "/v1/alliances/{id}/payout-account/challenges/{challenge_id}/signature", tag = "alliances",
    request_body = PayoutSignatureRequest,
    params(("id" = String, Path, description = "The alliance"), ("challenge_id" = Uuid, Path, description = "The challenge"),
           ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the alliance is at this version"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted, description = "Linked"), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn complete_payout_link(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath((id, challenge_id)): ApiPath<(String, Uuid)>,
    ApiJson(body): ApiJson<PayoutSignatureRequest>,
) -> Response {
    let fingerprint = fingerprint((
        "POST /v1/alliances/payout-account/signature",
        &id,
        challenge_id,
        &body,
    ));
    let run = async {
        // Burns the challenge whatever the outcome: one answer per challenge.
        let used: Option<ChallengeRow> = sqlx::query_as(
            "WITH c AS (SELECT * FROM alliance_link_challenges
                             WHERE challenge_id = $1 AND alliance_id = $2 AND member = $3
                             FOR UPDATE)
                 UPDATE alliance_link_challenges l SET used_at = coalesce(l.used_at, now())
                   FROM c WHERE l.challenge_id = c.challenge_id
                 RETURNING c.account, c.key_type, c.nonce, c.expires_at, c.used_at",
        )
        .bind(challenge_id)
        .bind(&id)
        .bind(&actor.subject)
        .fetch_optional(&state.pool)
        .await?;
        let Some((account, kind, nonce, expires_at, was_used)) = used else {
            return Err(ApiError::NotFound);
        };
        if was_used.is_some() {
            return Err(CommandError::Rule {
                slug: "challenge-used",
                detail: "this challenge was answered already".into(),
            }
            .into());
        }
        if Utc::now() >= expires_at {
            return Err(CommandError::Rule {
                slug: "challenge-expired",
                detail: format!("the challenge expired at {expires_at}"),
            }
            .into());
        }
        let message = payout_message(&id, &actor.subject, &account, challenge_id, &nonce);
        let kind = key_type(&kind)?;
        let verified = match (
            tfchain::parse_signature(&body.signature),
            tfchain::ss58_public_key(&account),
        ) {
            (Some(sig), Ok(key)) => tfchain::verify(kind, &key, &message, &sig),
            _ => false,
        };
        if !verified {
            return Err(CommandError::Rule {
                slug: "signature-invalid",
                detail: "the signature does not verify under the account's key".into(),
            }
            .into());
        }
        let account = ChainAccount::new(&account).map_err(|e| ApiError::from(invalid(e)))?;
        let by = actor.clone();
        let done = exec(&state.stores.alliances, id.clone(), &ctx, &actor)
            .run(|a| {
                reach(a, &by)?;
                Ok(AllianceCommand::LinkPayoutAccount {
                    by: by.clone(),
                    account: account.clone(),
                    at: Utc::now(),
                })
            })
            .await?;
        Ok(accepted(
            &CommandAccepted {
                id: done.id,
                version: done.version,
            },
            &target(&state, &id).location,
        ))
    };
    keyed(
        &state,
        &ctx,
        &actor,
        &id,
        fingerprint,
        Recovery::Accepted {
            aggregate_type: "alliance",
            location: format!("/v1/alliances/{id}"),
        },
        run,
    )
    .await
}
