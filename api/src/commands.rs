//! Running a command: load the aggregate, check the caller's expected
//! version and tenancy, decide, commit with metadata; all behind the
//! Idempotency-Key protocol. The same path serves every aggregate.

use std::collections::HashMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore};
use marketplace_domain::deployment::Deployment;
use marketplace_domain::node::Node;
use marketplace_domain::pricing::PricingPolicyAggregate;
use marketplace_domain::provider::ProviderRequest;
use marketplace_domain::wallet::Wallet;
use marketplace_domain::Actor;
use postgres_es::PostgresEventRepository;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::dto::CommandAccepted;
use crate::error::{problem_response, ApiError, Problem};
use crate::extract::RequestContext;
use crate::idempotency::{self, Claim};
use crate::AppState;

/// An aggregate's event store.
pub type Store<A> = PersistedEventStore<PostgresEventRepository, A>;

/// Keeps a snapshot every this many events, so loading stays short.
pub const SNAPSHOT_EVERY: usize = 20;

/// Builds an aggregate's store over a pool.
pub fn store<A: Aggregate>(pool: sqlx::PgPool) -> Store<A> {
    PersistedEventStore::new_snapshot_store(PostgresEventRepository::new(pool), SNAPSHOT_EVERY)
}

/// The event stores of every aggregate.
pub struct Stores {
    /// Deployments.
    pub deployments: Store<Deployment>,
    /// Provider requests (one per farm).
    pub providers: Store<ProviderRequest>,
    /// Grid nodes.
    pub nodes: Store<Node>,
    /// The pricing policy.
    pub pricing: Store<PricingPolicyAggregate>,
    /// Wallets (one per cloud user).
    pub wallets: Store<Wallet>,
}

impl Stores {
    /// Every store over one pool.
    pub fn new(pool: &sqlx::PgPool) -> Self {
        Self {
            deployments: store(pool.clone()),
            providers: store(pool.clone()),
            nodes: store(pool.clone()),
            pricing: store(pool.clone()),
            wallets: store(pool.clone()),
        }
    }
}

/// A pure decision, as each aggregate makes it.
pub trait Decide: Aggregate + 'static {
    /// The events a command causes, or why it is refused.
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

impl Decide for Deployment {
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        self.decide(command)
    }
}
impl Decide for ProviderRequest {
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        self.decide(command)
    }
}
impl Decide for Node {
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        self.decide(command)
    }
}
impl Decide for PricingPolicyAggregate {
    fn decide_command(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        self.decide(command)
    }
}

/// Which aggregate a command goes to, and where its resource lives.
pub struct Target<'a, A: Aggregate> {
    /// The aggregate's store.
    pub store: &'a Store<A>,
    /// The aggregate id.
    pub id: String,
    /// The resource's URL path, for `Location`.
    pub location: String,
}

/// Namespace of deployment ids derived from Idempotency-Keys.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d61_726b_6574_706c_6163_652d_6465_706c);

/// The id of a new deployment: derived from the Idempotency-Key when there
/// is one, so even a retry that found no record targets the same aggregate.
pub fn new_deployment_id(subject: &str, ctx: &RequestContext) -> Uuid {
    match &ctx.idempotency_key {
        Some(key) => Uuid::new_v5(&ID_NAMESPACE, format!("{subject}\n{key}").as_bytes()),
        None => Uuid::new_v4(),
    }
}

/// What every event records about its cause.
pub fn metadata(ctx: &RequestContext, actor: &Actor) -> HashMap<String, String> {
    let mut meta = HashMap::from([
        ("actor_subject".to_string(), actor.subject.clone()),
        ("actor_role".to_string(), actor.role.as_str().to_string()),
        ("correlation_id".to_string(), ctx.correlation_id.clone()),
        // An HTTP command is caused by its request.
        ("causation_id".to_string(), ctx.request_id.clone()),
        ("request_id".to_string(), ctx.request_id.clone()),
        ("recorded_at".to_string(), chrono::Utc::now().to_rfc3339()),
    ]);
    if let Some(key) = &ctx.idempotency_key {
        meta.insert("idempotency_key".to_string(), key.clone());
    }
    meta
}

/// Loads, authorises, decides and commits. `build` sees the current
/// aggregate and returns the command, or refuses (tenancy: 404).
async fn execute<A>(
    target: &Target<'_, A>,
    ctx: &RequestContext,
    actor: &Actor,
    build: impl FnOnce(&A) -> Result<A::Command, ApiError>,
) -> Result<CommandAccepted, ApiError>
where
    A: Decide,
    ApiError: From<A::Error> + From<AggregateError<A::Error>>,
{
    let context = target.store.load_aggregate(&target.id).await?;
    let command = build(&context.aggregate)?;
    if let Some(expected) = ctx.expected_version {
        if context.current_sequence as u64 != expected {
            return Err(ApiError::Conflict(format!(
                "expected version {expected}, the resource is at {}",
                context.current_sequence
            )));
        }
    }
    let events = context.aggregate.decide_command(command)?;
    let version = (context.current_sequence + events.len()) as u64;
    target
        .store
        .commit(events, context, metadata(ctx, actor))
        .await?;
    tracing::info!(aggregate = A::TYPE, id = %target.id, version, "command accepted");
    Ok(CommandAccepted {
        id: target.id.clone(),
        version,
    })
}

/// Only the owner (or an operator) reaches an existing deployment; anyone
/// else is told it does not exist.
pub fn owned_by(aggregate: &Deployment, actor: &Actor) -> Result<(), ApiError> {
    match aggregate.state() {
        Some(s) if actor.is_operator() || s.owner == actor.subject => Ok(()),
        _ => Err(ApiError::NotFound),
    }
}

fn accepted(body: &CommandAccepted, location: &str) -> Response {
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", body.version)) {
        headers.insert(header::ETAG, v);
    }
    response
}

fn replay(status: u16, body: serde_json::Value, location: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if status.is_success() {
        match serde_json::from_value::<CommandAccepted>(body) {
            Ok(accepted_body) => accepted(&accepted_body, location),
            Err(e) => ApiError::Internal(format!("stored answer unreadable: {e}")).into_response(),
        }
    } else {
        match serde_json::from_value::<Problem>(body) {
            Ok(problem) => problem_response(status, &problem),
            Err(e) => ApiError::Internal(format!("stored answer unreadable: {e}")).into_response(),
        }
    }
}

/// A digest of what makes two requests "the same" for an Idempotency-Key:
/// the command and its body.
pub fn fingerprint(request: impl serde::Serialize) -> Vec<u8> {
    Sha256::digest(serde_json::to_vec(&request).unwrap_or_default()).to_vec()
}

/// Runs a command under the Idempotency-Key protocol and answers 202 with
/// the aggregate's id and new version, or a problem.
pub async fn accept<A>(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    target: Target<'_, A>,
    fingerprint: Vec<u8>,
    build: impl FnOnce(&A) -> Result<A::Command, ApiError>,
) -> Response
where
    A: Decide,
    ApiError: From<A::Error> + From<AggregateError<A::Error>>,
{
    let Some(key) = ctx.idempotency_key.as_deref() else {
        return match execute(&target, ctx, actor, build).await {
            Ok(body) => accepted(&body, &target.location),
            Err(e) => e.into_response(),
        };
    };
    let hash = fingerprint;
    let subject = actor.subject.as_str();
    match idempotency::claim(&state.pool, subject, key, &hash, A::TYPE, &target.id).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Claim::Mismatch) => ApiError::IdempotencyKeyReused.into_response(),
        Ok(Claim::InProgress) => ApiError::IdempotencyInProgress.into_response(),
        Ok(Claim::Replay { status, body }) => replay(status, body, &target.location),
        Ok(Claim::Fresh) => {
            let outcome = execute(&target, ctx, actor, build).await;
            let stored = match &outcome {
                Ok(body) => Some((202, serde_json::to_value(body).unwrap_or_default())),
                Err(e) if !e.is_transient() => {
                    let (status, problem) = e.problem();
                    Some((
                        status.as_u16(),
                        serde_json::to_value(problem).unwrap_or_default(),
                    ))
                }
                Err(_) => None,
            };
            let kept = match stored {
                Some((status, body)) => {
                    idempotency::finish(&state.pool, subject, key, status, &body).await
                }
                None => idempotency::abandon(&state.pool, subject, key).await,
            };
            if let Err(e) = kept {
                // The command's outcome stands; a retry settles the record from the store.
                tracing::warn!(error = %e, "could not record the idempotency answer");
            }
            match outcome {
                Ok(body) => accepted(&body, &target.location),
                Err(e) => e.into_response(),
            }
        }
    }
}
