//! Outgoing webhooks: the endpoints a user registers to receive their
//! notifications (`/v1/webhook-endpoints`), each delivery's log and the
//! redeliver action. The secret that signs deliveries is answered once, on
//! creation. Deliveries are made by `marketplace_workers::notify`.
//!
//! An endpoint must be `https`; plain `http` to a loopback address is
//! accepted only where the state allows it (dev mode and the tests).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AsRecipient;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// The most endpoints one user may register.
pub const MAX_ENDPOINTS: i64 = 10;

/// The webhook endpoint routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(delete_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// An endpoint to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where to POST notifications: `https://…`.
    #[schema(
        example = "https://example.com/hooks/marketplace",
        pattern = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$",
        max_length = 2048
    )]
    pub url: String,
}

/// A registered endpoint.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Endpoint {
    /// Its id.
    pub id: Uuid,
    /// Where notifications go.
    pub url: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// A newly registered endpoint, with its signing secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Verifies `Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
    pub secret: String,
}

/// The caller's endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub items: Vec<Endpoint>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        detail: detail.into(),
        field: Some("url".into()),
    }
}

/// Checks an endpoint URL: absolute, `https` (or, where allowed, `http`
/// to a loopback host), no credentials in it.
pub fn check_url(raw: &str, allow_loopback_http: bool) -> Result<reqwest::Url, ApiError> {
    if raw.len() > 2048 {
        return Err(invalid("url is longer than 2048 characters"));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| invalid(format!("url is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("url must not carry credentials"));
    }
    let Some(host) = url.host_str() else {
        return Err(invalid("url has no host"));
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_loopback_http && loopback => Ok(url),
        "http" if allow_loopback_http => Err(invalid(
            "url must be https (plain http only to a loopback address in dev)",
        )),
        _ => Err(invalid("url must be https")),
    }
}

/// Registers an endpoint for the caller's notifications. Its secret is in
/// this answer only.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints", tag = "notifications",
    request_body = NewEndpoint,
    responses(
        (status = 201, body = CreatedEndpoint),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json",
            description = "Not an https URL, or too many endpoints")
    ),
    security(("bearer" = []))
)]
pub async fn create_endpoint(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    let url = check_url(&body.url, state.allow_loopback_webhooks)?;
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_endpoints WHERE owner = $1 AND deleted_at IS NULL",
    )
    .bind(&actor.subject)
    .fetch_one(&state.pool)
    .await?;
    if count >= MAX_ENDPOINTS {
        return Err(ApiError::Invalid {
            detail: format!("at most {MAX_ENDPOINTS} endpoints"),
            field: None,
        });
    }
    let mut raw = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret = format!("whsec_{}", hex::encode(raw));
    let endpoint: Endpoint = sqlx::query_as(
        "INSERT INTO webhook_endpoints (id, owner, url, secret, created_at)
         VALUES ($1, $2, $3, $4, now()) RETURNING id, url, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(&actor.subject)
    .bind(url.as_str())
    .bind(&secret)
    .fetch_one(&state.pool)
    .await?;
    tracing::info!(endpoint = %endpoint.id, "webhook endpoint registered");
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint { endpoint, secret }),
    ))
}

/// The caller's endpoints (without their secrets).
#[utoipa::path(
    get, path = "/v1/webhook-endpoints", tag = "notifications",
    responses(
        (status = 200, body = EndpointList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn list_endpoints(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
) -> Result<Json<EndpointList>, ApiError> {
    let items = sqlx::query_as(
        "SELECT id, url, created_at FROM webhook_endpoints
          WHERE owner = $1 AND deleted_at IS NULL ORDER BY created_at, id",
    )
    .bind(&actor.subject)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(EndpointList { items }))
}

/// Deletes one of the caller's endpoints: nothing more is sent to it
/// (deliveries still pending are dropped), its log stays readable.
#[utoipa::path(
    delete, path = "/v1/webhook-endpoints/{id}", tag = "notifications",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let n = sqlx::query(
        "UPDATE webhook_endpoints SET deleted_at = now()
          WHERE id = $1 AND owner = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(&actor.subject)
    .execute(&state.pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: i32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// What the endpoint answered, if it answered.
    pub status_code: Option<i32>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i32,
}

/// A notification's delivery to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    /// The delivery's id: the notification's id, which is also the
    /// webhook's `id` and `Webhook-Id`.
    pub id: String,
    /// The notification's kind.
    pub kind: String,
    /// `pending` (to be sent, or retried), `sent` or `failed` (retries ran
    /// out, or the endpoint was deleted).
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The next attempt, when pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub sent_at: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Each attempt recorded, oldest first.
    pub log: Vec<Attempt>,
}

/// An endpoint's deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first, at most 100.
    pub items: Vec<Delivery>,
}

async fn own_endpoint(state: &AppState, owner: &str, id: Uuid) -> Result<(), ApiError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $1 AND owner = $2)",
    )
    .bind(id)
    .bind(owner)
    .fetch_one(&state.pool)
    .await?;
    if exists {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

type DeliveryRow = (
    String,
    String,
    String,
    i32,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
);

/// The delivery log of one of the caller's endpoints.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "notifications",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 200, body = DeliveryList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DeliveryList>, ApiError> {
    own_endpoint(&state, &actor.subject, id).await?;
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT o.notification_id, n.kind, o.status, o.attempts, o.due_at, o.sent_at, o.last_error
           FROM notification_outbox o JOIN notifications n ON n.id = o.notification_id
          WHERE o.channel = $1 AND o.owner = $2
          ORDER BY o.created_at DESC, o.notification_id LIMIT 100",
    )
    .bind(format!("webhook:{id}"))
    .bind(&actor.subject)
    .fetch_all(&state.pool)
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let attempts: Vec<(String, i32, DateTime<Utc>, Option<i32>, Option<String>, i32)> =
        sqlx::query_as(
            "SELECT notification_id, attempt, at, status_code, error, duration_ms
               FROM webhook_attempts WHERE endpoint_id = $1 AND notification_id = ANY($2)
              ORDER BY id",
        )
        .bind(id)
        .bind(&ids)
        .fetch_all(&state.pool)
        .await?;
    let items = rows
        .into_iter()
        .map(
            |(nid, kind, status, attempts_made, due_at, sent_at, last_error)| {
                let log = attempts
                    .iter()
                    .filter(|a| a.0 == nid)
                    .map(|a| Attempt {
                        attempt: a.1,
                        at: a.2,
                        status_code: a.3,
                        error: a.4.clone(),
                        duration_ms: a.5,
                    })
                    .collect();
                Delivery {
                    next_attempt_at: (status == "pending").then_some(due_at),
                    id: nid,
                    kind,
                    status,
                    attempts: attempts_made,
                    sent_at,
                    last_error,
                    log,
                }
            },
        )
        .collect();
    Ok(Json(DeliveryList { items }))
}

/// The delivery made due again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    /// The delivery (the notification's id).
    pub id: String,
    /// `pending`: it goes out again shortly, under the same id.
    pub status: String,
}

/// Sends a delivery again (after a failure, or to replay one the receiver
/// lost), under the same id, with a fresh day of retries.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver", tag = "notifications",
    params(
        ("id" = Uuid, Path, description = "The endpoint"),
        ("delivery_id" = String, Path, description = "The delivery: the notification's id")
    ),
    responses(
        (status = 202, body = Redelivery),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json",
            description = "No such delivery, or its endpoint was deleted")
    ),
    security(("bearer" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    AsRecipient(actor): AsRecipient,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, String)>,
) -> Result<(StatusCode, Json<Redelivery>), ApiError> {
    let n = sqlx::query(
        "UPDATE notification_outbox o SET status = 'pending', due_at = now(), retry_since = now(),
                last_error = NULL
          WHERE o.notification_id = $1 AND o.channel = $2 AND o.owner = $3
            AND EXISTS (SELECT 1 FROM webhook_endpoints e
                         WHERE e.id = $4 AND e.owner = $3 AND e.deleted_at IS NULL)",
    )
    .bind(&delivery_id)
    .bind(format!("webhook:{id}"))
    .bind(&actor.subject)
    .bind(id)
    .execute(&state.pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(ApiError::NotFound);
    }
    sqlx::query("SELECT pg_notify('notification_outbox', '')")
        .execute(&state.pool)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Redelivery {
            id: delivery_id,
            status: "pending".into(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_always_http_only_to_loopback_where_allowed() {
        assert!(check_url("https://example.com/h", false).is_ok());
        assert!(check_url("http://example.com/h", false).is_err());
        assert!(check_url("http://127.0.0.1:9/h", false).is_err());
        assert!(check_url("http://127.0.0.1:9/h", true).is_ok());
        assert!(check_url("http://localhost/h", true).is_ok());
        assert!(check_url("http://example.com/h", true).is_err());
        assert!(check_url("https://u:p@example.com/h", false).is_err());
        assert!(check_url("ftp://example.com", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }
}
