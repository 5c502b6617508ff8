//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::AppState;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers: the service can take traffic.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = crate::error::Problem))
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Ok(Json(Health { status: "ok" })),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!("database: {e}"))),
        Err(_) => Err(ApiError::Unavailable(
            "database: no answer within 2 s".into(),
        )),
    }
}
