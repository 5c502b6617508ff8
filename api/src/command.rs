//! Commands over HTTP: a request becomes a command on the bus
//! (`marketplace_app::bus`), keyed requests go through the one
//! Idempotency-Key protocol (`marketplace_app::idempotency`), and the answer
//! is a 202 with the aggregate's id and new version, or a problem.

use std::future::Future;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use marketplace_app::bus::group::KeyWrite;
use marketplace_app::idempotency::{self, Answer, Keyed, Outcome, Recovery};
use marketplace_app::{CommandError, EventMetadata, Exec, Store};
use marketplace_domain::deployment::Deployment;
use marketplace_domain::{Actor, EventSourced};

use crate::dto::CommandAccepted;
use crate::error::ApiError;
use crate::extract::RequestContext;
use crate::AppState;

pub use marketplace_app::idempotency::fingerprint;

/// Which aggregate a command goes to, and where its resource lives.
pub struct Target<'a, A: EventSourced> {
    /// The aggregate's store.
    pub store: &'a Store<A>,
    /// The aggregate id.
    pub id: String,
    /// The resource's URL path, for `Location`.
    pub location: String,
    /// The id was just minted at random: the aggregate cannot exist, so
    /// the command is decided without loading it ([`Exec::fresh`]).
    pub fresh: bool,
}

/// What the request's events record about their cause.
pub fn metadata(ctx: &RequestContext, actor: &Actor) -> EventMetadata {
    EventMetadata::for_request(
        actor,
        &ctx.request_id,
        &ctx.correlation_id,
        ctx.idempotency_key.as_deref(),
    )
}

/// The bus, set up for this request: its metadata and its `If-Match`.
pub fn exec<'a, A>(
    store: &'a Store<A>,
    id: impl Into<String>,
    ctx: &RequestContext,
    actor: &Actor,
) -> Exec<'a, A>
where
    A: EventSourced + Clone,
    A::Event: Clone,
    CommandError: From<A::Error>,
{
    Exec::new(store, id, metadata(ctx, actor)).expecting(ctx.expected_version)
}

/// Only the owner (or an operator) reaches an existing deployment; anyone
/// else is told it does not exist.
pub fn owned_by(aggregate: &Deployment, actor: &Actor) -> Result<(), CommandError> {
    match aggregate.state() {
        Some(s) if actor.is_operator() || s.owner == actor.subject => Ok(()),
        _ => Err(CommandError::NotFound),
    }
}

/// 202 with the aggregate's id and version, `Location` and `ETag`.
pub fn accepted(body: &CommandAccepted, location: &str) -> Response {
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

/// Runs `build`'s command on `target` under the Idempotency-Key protocol
/// and answers 202 with the aggregate's id and new version, or a problem.
/// `build` sees the current aggregate and may refuse (tenancy: 404).
pub async fn accept<A>(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    target: Target<'_, A>,
    fingerprint: Vec<u8>,
    build: impl Fn(&A) -> Result<A::Command, CommandError>,
) -> Response
where
    A: EventSourced + Clone,
    A::Event: Clone,
    CommandError: From<A::Error>,
{
    if let Some(key) = ctx.idempotency_key.as_deref() {
        // The key's claim and its answer commit in the events' own
        // transaction. A taken key (a retry, a concurrent duplicate), a
        // refusal or a command with nothing to append goes on to the
        // protocol below, which replays or records the answer.
        let (location, subject, hash) = (
            target.location.clone(),
            actor.subject.clone(),
            fingerprint.clone(),
        );
        let key = key.to_string();
        let fast = exec(target.store, target.id.clone(), ctx, actor)
            .claiming_key(move |id, version| {
                let answer = idempotency::accepted(id, version, &location);
                KeyWrite {
                    subject: subject.clone(),
                    key: key.clone(),
                    request_hash: hash.clone(),
                    status: answer.status as i16,
                    headers: serde_json::to_value(&answer.headers).unwrap_or_default(),
                    body: answer.body,
                }
            })
            .run(&build)
            .await;
        match fast {
            Ok(done) if !done.events.is_empty() => {
                let body = CommandAccepted {
                    id: done.id,
                    version: done.version,
                };
                return accepted(&body, &target.location);
            }
            Ok(_) | Err(CommandError::IdempotencyKeyTaken) => {}
            Err(e) if e.is_transient() => return ApiError::from(e).into_response(),
            Err(_) => {}
        }
    }
    let recovery = Recovery::Accepted {
        aggregate_type: A::TYPE,
        location: target.location.clone(),
    };
    let run = async {
        let mut bus = exec(target.store, target.id.clone(), ctx, actor);
        if target.fresh {
            bus = bus.fresh();
        }
        let done = bus.run(build).await?;
        let body = CommandAccepted {
            id: done.id,
            version: done.version,
        };
        Ok(accepted(&body, &target.location))
    };
    keyed(state, ctx, actor, &target.id, fingerprint, recovery, run).await
}

/// Runs a command handler under the Idempotency-Key protocol when the
/// request has a key: a retry with the same key and request replays the
/// first answer (status, headers and body, whatever it was); the same key
/// with another request is refused; a transient failure keeps nothing.
pub async fn keyed(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    aggregate_id: &str,
    fingerprint: Vec<u8>,
    recovery: Recovery,
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Response {
    let Some(key) = ctx.idempotency_key.as_deref() else {
        return handler.await.unwrap_or_else(IntoResponse::into_response);
    };
    let request = Keyed {
        subject: &actor.subject,
        key,
        fingerprint,
        aggregate_id,
        recovery,
    };
    let run = async {
        match handler.await {
            Ok(response) => Outcome::Final(answer_of(response).await),
            Err(e) if e.is_transient() => Outcome::Transient(answer_of(e.into_response()).await),
            Err(e) => Outcome::Final(answer_of(e.into_response()).await),
        }
    };
    match idempotency::run(&state.pool, request, run).await {
        Ok(answer) => response_of(answer),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The headers an answer keeps for its replays.
const KEPT_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    header::RETRY_AFTER,
];

async fn answer_of(response: Response) -> Answer {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    Answer {
        status: parts.status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_string(), value.to_string()))
            })
            .collect(),
        body: if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        },
    }
}

fn response_of(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let body = match &answer.body {
        serde_json::Value::Null => Body::empty(),
        json => Body::from(serde_json::to_vec(json).unwrap_or_default()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
