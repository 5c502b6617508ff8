//! A user's notifications: the feed (`GET /v1/notifications`, with its
//! unread count), marking items read (one, or all), and the same items
//! live (`GET /v1/notifications/stream`, server-sent events). Items come
//! from the `notifications` table the notification process manager writes
//! (`marketplace_workers::notify`); email and outgoing webhooks carry the
//! same items under the same ids (docs/notifications.md).

use std::collections::VecDeque;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::Stream;
use marketplace_projections::notifications::{self as views, Notification};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AsRecipient;
use crate::deployments::events::{KEEP_ALIVE, POLL};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::views_watch::{ViewChanges, Wake};
use crate::AppState;

/// The most items a page holds.
pub const MAX_LIMIT: i64 = 200;

/// The notification routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(notification_stream))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

/// One notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationBody {
    /// Its id: the event that caused it, so it exists once.
    pub id: String,
    /// Its place in the feed; pass it as `after` for the next page.
    pub position: i64,
    /// `balance_low`, `auto_top_up_failed`, `grace_period_started`,
    /// `grace_period_ended`, `deleted_out_of_funds`, `deployment_running`,
    /// `deployment_failed`, `maintenance_announced`, `maintenance_soon`,
    /// `provider_request_answered`, `alliance_settlement_paid` or
    /// `subscription_payment_failed`.
    #[schema(example = "grace_period_started")]
    pub kind: String,
    /// The deployment it is about, if any.
    pub deployment_id: Option<Uuid>,
    /// Details: `threshold_hours` and `runway_hours` (balance low),
    /// `contract_id` and `deletion_at` (grace period started), …
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// When the user marked it read (absent: unread).
    pub read_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationBody {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            position: n.position,
            kind: n.kind,
            deployment_id: n.deployment_id,
            details: n.payload,
            at: n.at,
            read_at: n.read_at,
        }
    }
}

/// A page of notifications.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    /// Oldest first.
    pub items: Vec<NotificationBody>,
    /// The `after` for the next page, when this one was full.
    pub next_after: Option<i64>,
    /// How many of the caller's notifications are unread, all pages together.
    pub unread: i64,
}

/// Which notifications.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    /// Only those after this position (default: from the first).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

fn bounds(params: &FeedParams) -> Result<(i64, i64), ApiError> {
    let after = params.after.unwrap_or(0);
    let limit = params.limit.unwrap_or(50);
    if after < 0 {
        return Err(ApiError::BadRequest("after must not be negative".into()));
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    Ok((after, limit))
}

/// The caller's notifications, oldest first.
#[utoipa::path(
    get, path = "/v1/notifications", tag = "notifications",
    params(FeedParams),
    responses(
        (status = 200, body = NotificationPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn list_notifications(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
    ApiQuery(params): ApiQuery<FeedParams>,
) -> Result<Json<NotificationPage>, ApiError> {
    let (after, limit) = bounds(&params)?;
    let rows = views::list(&state.pool, &actor.subject, Some(after), limit).await?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|n| n.position))
        .flatten();
    let unread = views::unread(&state.pool, &actor.subject).await?;
    Ok(Json(NotificationPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_after,
        unread,
    }))
}

/// Marks one of the caller's notifications read (marking it again keeps
/// the first time). Answers the item.
#[utoipa::path(
    post, path = "/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = String, Path, description = "The notification's id")),
    responses(
        (status = 200, body = NotificationBody),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json",
            description = "No such notification in the caller's feed")
    ),
    security(("bearer" = []))
)]
pub async fn mark_read(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<NotificationBody>, ApiError> {
    match views::mark_read(&state.pool, &actor.subject, &id).await? {
        Some(n) => Ok(Json(n.into())),
        None => Err(ApiError::NotFound),
    }
}

/// Which items to mark read.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkAllRead {
    /// Only those up to this position (what the client has seen); all
    /// when absent.
    #[schema(minimum = 0)]
    pub up_to: Option<i64>,
}

/// How many were marked.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkedRead {
    /// Items newly marked read.
    pub marked: u64,
    /// Unread items left.
    pub unread: i64,
}

/// Marks the caller's unread notifications read, up to a position or all.
#[utoipa::path(
    post, path = "/v1/notifications/read", tag = "notifications",
    request_body = MarkAllRead,
    responses(
        (status = 200, body = MarkedRead),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn mark_all_read(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
    ApiJson(body): ApiJson<MarkAllRead>,
) -> Result<Json<MarkedRead>, ApiError> {
    if body.up_to.is_some_and(|p| p < 0) {
        return Err(ApiError::BadRequest("up_to must not be negative".into()));
    }
    let marked = views::mark_all_read(&state.pool, &actor.subject, body.up_to).await?;
    let unread = views::unread(&state.pool, &actor.subject).await?;
    Ok(Json(MarkedRead { marked, unread }))
}

/// The caller's notifications as server-sent events: those after `after`
/// (or `Last-Event-ID`), then each new one as it is recorded. Each event
/// has `id` = the position, `event` = the kind, `data` = a NotificationBody.
#[utoipa::path(
    get, path = "/v1/notifications/stream", tag = "notifications",
    params(
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this position"),
        FeedParams,
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = NotificationBody,
            description = "Server-sent events, each event's `data` a NotificationBody"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn notification_stream(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
    ApiQuery(params): ApiQuery<FeedParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (after, _) = bounds(&params)?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest("Last-Event-ID must be a position of this stream".into())
            })?,
        None => after,
    };
    let feed = Feed {
        pool: state.pool.clone(),
        changes: state.views.subscribe(),
        owner: actor.subject,
        after,
        pending: VecDeque::new(),
    };
    Ok(Sse::new(feed.into_stream())
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

struct Feed {
    pool: PgPool,
    changes: ViewChanges,
    owner: String,
    after: i64,
    pending: VecDeque<Notification>,
}

impl Feed {
    fn into_stream(self) -> impl Stream<Item = Result<Event, axum::Error>> {
        futures::stream::unfold(self, |mut feed| async move {
            let n = feed.next().await?;
            let event = Event::default()
                .id(n.position.to_string())
                .event(n.kind.clone())
                .json_data(NotificationBody::from(n));
            Some((event, feed))
        })
    }

    async fn next(&mut self) -> Option<Notification> {
        loop {
            if let Some(n) = self.pending.pop_front() {
                self.after = n.position;
                return Some(n);
            }
            match views::list(&self.pool, &self.owner, Some(self.after), 100).await {
                Ok(rows) if !rows.is_empty() => {
                    self.pending = rows.into();
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read notifications; ending the stream");
                    return None;
                }
            }
            if self.changes.next(POLL).await == Wake::Closed {
                return None;
            }
        }
    }
}
