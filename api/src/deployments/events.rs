//! A deployment's status changes as server-sent events, so an SPA follows
//! provisioning without polling: first the history so far, then each change
//! as the projection commits it, until a terminal status has been sent.
//!
//! The stream reads `deployment_history`, the same rows the detail shows,
//! and never the store: what it sends is what a read would answer. It wakes
//! on the projections' `views` notifications ([`ViewWatcher::subscribe`]),
//! and looks again at least every [`POLL`] in case one was lost while the
//! listener reconnected. Each event's `id` is its sequence, so a client that
//! reconnects with `Last-Event-ID` (browsers' `EventSource` does) resumes
//! where it left off; one that has already seen the end is answered 204,
//! which tells `EventSource` to stop reconnecting.
//!
//! [`ViewWatcher::subscribe`]: crate::views_watch::ViewWatcher::subscribe

use std::collections::VecDeque;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use marketplace_domain::deployment::Status;
use marketplace_projections::deployments::{self as views, HistoryRow};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::AsUserOrOperator;
use crate::dto::DeploymentChange;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::views_watch::{ViewChanges, Wake};
use crate::AppState;

/// The longest a stream waits without looking at the history again.
pub const POLL: Duration = Duration::from_secs(1);
/// How often an idle stream sends a comment, so proxies keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// History rows read per query.
const PAGE: i64 = 100;

/// Where the stream starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Send only changes after this sequence (default 0: the whole history).
    /// A `Last-Event-ID` header takes precedence: it is where a reconnecting
    /// client left off.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// Follow a deployment's status changes (its owner or an operator).
///
/// A `text/event-stream` of its history so far, then each change as it is
/// recorded. Each event has `id` = the sequence, `event` = the event type
/// (`NodeAssigned`, `DeploymentRunning`, …) and `data` = a `DeploymentChange`.
/// Comments keep an idle stream open. The stream ends once a terminal status
/// (`failed`, `deleted`) has been sent.
#[utoipa::path(
    get, path = "/v1/deployments/{id}/events", tag = "deployments",
    params(
        ("id" = Uuid, Path, description = "Deployment id"),
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this sequence (the last event's id)"),
        EventsParams,
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = DeploymentChange,
            description = "Server-sent events, each event's `data` a DeploymentChange"),
        (status = 204, description = "Nothing more will come: a terminal status was already sent"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn deployment_events(
    State(state): State<AppState>,
    AsUserOrOperator(actor): AsUserOrOperator,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<EventsParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = resume_after(&headers, params.after)?;
    // Tenancy before the stream starts: once it has, the status is 200.
    let row = views::get(&state.pool, id)
        .await?
        .filter(|row| actor.is_operator() || row.owner == actor.subject)
        .ok_or(ApiError::NotFound)?;
    if is_terminal(&row.status) && row.version <= after {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let follow = Follow {
        pool: state.pool.clone(),
        changes: state.views.subscribe(),
        id,
        after,
        pending: VecDeque::new(),
        ended: false,
    };
    Ok(Sse::new(follow.into_stream())
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The sequence to resume after: `Last-Event-ID`, else `?after=`, else 0.
fn resume_after(headers: &HeaderMap, after: Option<i64>) -> Result<i64, ApiError> {
    let bad = |what: &str| ApiError::BadRequest(what.to_string());
    if after.is_some_and(|a| a < 0) {
        return Err(bad("after must not be negative"));
    }
    let last = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .map(str::trim)
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| bad("Last-Event-ID must be an event id (a sequence) of this stream"))
        })
        .transpose()?;
    match last.or(after).unwrap_or(0) {
        n if n < 0 => Err(bad("after must not be negative")),
        n => Ok(n),
    }
}

/// No change follows this status on its own (a failed deployment is only
/// deleted, later, by a new command; a client that resumes sees that).
fn is_terminal(status: &str) -> bool {
    Status::parse(status).is_some_and(|s| matches!(s, Status::Failed | Status::Deleted))
}

/// One stream's position in a deployment's history.
struct Follow {
    pool: PgPool,
    changes: ViewChanges,
    id: Uuid,
    /// The last sequence sent (or resumed after).
    after: i64,
    /// Rows read and not yet sent.
    pending: VecDeque<HistoryRow>,
    /// The last row sent had a terminal status.
    ended: bool,
}

impl Follow {
    fn into_stream(self) -> impl Stream<Item = Result<Event, axum::Error>> {
        futures::stream::unfold(self, |mut follow| async move {
            let row = follow.next_row().await?;
            Some((sse_event(row), follow))
        })
    }

    /// The next history row to send, waiting for one; `None` ends the
    /// stream: after a terminal status, on shutdown, or when the history
    /// cannot be read (the client resumes with `Last-Event-ID`).
    async fn next_row(&mut self) -> Option<HistoryRow> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                self.after = row.sequence;
                self.ended = is_terminal(&row.status);
                return Some(row);
            }
            match views::history_after(&self.pool, self.id, self.after, PAGE).await {
                Ok(rows) if !rows.is_empty() => {
                    self.pending = rows.into();
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(deployment = %self.id, error = %e,
                        "cannot read the deployment's history; ending its event stream");
                    return None;
                }
            }
            if self.ended {
                return None;
            }
            if self.changes.next(POLL).await == Wake::Closed {
                return None;
            }
        }
    }
}

/// A history row as an SSE event: `id` the sequence, `event` the event type.
fn sse_event(row: HistoryRow) -> Result<Event, axum::Error> {
    // `Event` refuses line breaks in an id or event name; ours are numbers
    // and Rust identifiers, but a stored type is data, not code.
    let name: String = row
        .event_type
        .chars()
        .filter(|c| !matches!(c, '\n' | '\r'))
        .collect();
    Event::default()
        .id(row.sequence.to_string())
        .event(name)
        .json_data(DeploymentChange {
            sequence: row.sequence,
            event: row.event_type,
            status: row.status,
            at: row.at,
            detail: row.detail,
        })
}
