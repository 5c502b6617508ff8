//! Deployment endpoints: users request, resize and cancel their own
//! deployments and read them back ([`detail`]) or follow their status
//! changes as they happen ([`events`]); operators drive the rest of the life
//! cycle by hand, as overrides of the provisioning process manager.

mod detail;
pub mod events;

pub use detail::GetParams;
pub use events::EventsParams;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use marketplace_domain::deployment::{Deployment, DeploymentCommand, NodeAssignment, Status};
use marketplace_projections::deployments::{self as views, Cursor, DeploymentRow, ListQuery};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AsOperator, AsUser, AsUserOrOperator};
use crate::command::{accept, fingerprint, owned_by, Target};
use crate::dto::*;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestContext};
use crate::AppState;
use marketplace_app::{ids, CommandError};

/// The deployment routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_deployment, list_deployments))
        .routes(routes!(detail::get_deployment))
        .routes(routes!(events::deployment_events))
        .routes(routes!(resize_deployment))
        .routes(routes!(cancel_deployment))
        .routes(routes!(assign_node))
        .routes(routes!(record_contract))
        .routes(routes!(mark_running))
        .routes(routes!(mark_failed))
        .routes(routes!(start_grace_period))
        .routes(routes!(end_grace_period))
        .routes(routes!(delete_deployment))
}

fn deployment(state: &AppState, id: Uuid) -> Target<'_, Deployment> {
    Target {
        store: &state.stores.deployments,
        id: id.to_string(),
        location: format!("/v1/deployments/{id}"),
        fresh: false,
    }
}

fn invalid(e: marketplace_domain::deployment::SpecError) -> CommandError {
    CommandError::Invalid {
        detail: e.reason,
        field: Some(e.field),
    }
}

/// Ask for a new deployment.
#[utoipa::path(
    post, path = "/v1/deployments", tag = "deployments",
    request_body = RequestDeploymentBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key replay the first answer"),
        ("X-Correlation-Id" = Option<String>, Header, description = "Ties this command's events to a conversation"),
    ),
    responses(
        (status = 202, body = CommandAccepted, description = "Accepted; read it back with min_version"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn request_deployment(
    State(state): State<AppState>,
    AsUser(actor): AsUser,
    ctx: RequestContext,
    ApiJson(body): ApiJson<RequestDeploymentBody>,
) -> Response {
    let id = ids::deployment(&actor.subject, ctx.idempotency_key.as_deref());
    let fingerprint = fingerprint(("POST /v1/deployments", &body));
    let owner = actor.subject.clone();
    let mut parsed = body.into_domain();
    // A request that names no placement gets the user's default.
    if let Ok((_, _, placement @ None)) = &mut parsed {
        match crate::users::default_placement(&state, &actor.subject).await {
            Ok(default) => *placement = Some(default),
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    // Without a key the id is random: nothing can be stored under it yet.
    let target = Target {
        fresh: ctx.idempotency_key.is_none(),
        ..deployment(&state, id)
    };
    accept(&state, &ctx, &actor, target, fingerprint, move |_| {
        let (name, spec, placement) = parsed.clone().map_err(invalid)?;
        Ok(DeploymentCommand::Request {
            owner: owner.clone(),
            name,
            spec,
            placement: placement.unwrap_or_default(),
            at: Utc::now(),
        })
    })
    .await
}

/// List filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only deployments in this status.
    #[param(schema_with = crate::contract::deployment_status)]
    pub status: Option<String>,
    /// Only `vm` or `kubernetes`.
    #[param(schema_with = crate::contract::deployment_kind)]
    pub kind: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// List deployments, newest first: a user's own, or everyone's for an operator.
#[utoipa::path(
    get, path = "/v1/deployments", tag = "deployments",
    params(ListParams),
    responses(
        (status = 200, body = DeploymentPage),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn list_deployments(
    State(state): State<AppState>,
    AsUserOrOperator(actor): AsUserOrOperator,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DeploymentPage>, ApiError> {
    let bad = |what: &str| ApiError::BadRequest(what.to_string());
    let status = params
        .status
        .as_deref()
        .map(|s| Status::parse(s).ok_or_else(|| bad("unknown status")))
        .transpose()?;
    let kind = match params.kind.as_deref() {
        None => None,
        Some(k @ ("vm" | "kubernetes")) => Some(k.to_string()),
        Some(_) => return Err(bad("kind is vm or kubernetes")),
    };
    let after = params
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c).ok_or_else(|| bad("invalid cursor")))
        .transpose()?;
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(bad("limit is 1 to 100"));
    }
    let query = ListQuery {
        owner: (!actor.is_operator()).then(|| actor.subject.clone()),
        status,
        kind,
        after,
        limit,
    };
    let (rows, next) = views::list(&state.pool, &query).await?;
    Ok(Json(DeploymentPage {
        items: rows.into_iter().map(summary).collect(),
        next_cursor: next.map(|c| c.encode()),
    }))
}

fn summary(row: DeploymentRow) -> DeploymentSummary {
    DeploymentSummary {
        id: row.id,
        owner: row.owner,
        name: row.name,
        kind: row.kind,
        status: row.status,
        node_id: row.node_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
    }
}

/// Resize a running deployment (its owner or an operator).
#[utoipa::path(
    post, path = "/v1/deployments/{id}/resize", tag = "deployments",
    request_body = ResizeBody,
    params(
        ("id" = Uuid, Path, description = "Deployment id"),
        ("If-Match" = Option<String>, Header, description = "The version you read; 409 if it moved"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key replay the first answer"),
    ),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn resize_deployment(
    State(state): State<AppState>,
    AsUserOrOperator(actor): AsUserOrOperator,
    ctx: RequestContext,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ResizeBody>,
) -> Response {
    let fingerprint = fingerprint((format!("POST /v1/deployments/{id}/resize"), &body));
    let by = actor.clone();
    let parsed = body.into_domain();
    accept(
        &state,
        &ctx,
        &actor,
        deployment(&state, id),
        fingerprint,
        move |d| {
            owned_by(d, &by)?;
            let resize = parsed.clone().map_err(invalid)?;
            Ok(DeploymentCommand::Resize {
                by: by.clone(),
                resize,
                at: Utc::now(),
            })
        },
    )
    .await
}

/// Cancel a deployment (its owner or an operator).
#[utoipa::path(
    post, path = "/v1/deployments/{id}/cancel", tag = "deployments",
    request_body = CancelBody,
    params(
        ("id" = Uuid, Path, description = "Deployment id"),
        ("If-Match" = Option<String>, Header, description = "The version you read; 409 if it moved"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key replay the first answer"),
    ),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn cancel_deployment(
    State(state): State<AppState>,
    AsUserOrOperator(actor): AsUserOrOperator,
    ctx: RequestContext,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CancelBody>,
) -> Response {
    let fingerprint = fingerprint((format!("POST /v1/deployments/{id}/cancel"), &body));
    let by = actor.clone();
    accept(
        &state,
        &ctx,
        &actor,
        deployment(&state, id),
        fingerprint,
        move |d| {
            owned_by(d, &by)?;
            Ok(DeploymentCommand::Cancel {
                by: by.clone(),
                reason: body.reason.clone(),
                at: Utc::now(),
            })
        },
    )
    .await
}

/// An operator-driven life-cycle step: authorised before the body is read,
/// routed through the same command path as every other command.
macro_rules! operator_step {
    ($(#[$doc:meta])* $fn_name:ident, $path:literal, $body:ty, |$b:ident| $command:expr) => {
        $(#[$doc])*
        #[utoipa::path(
            post, path = $path, tag = "operations", request_body = $body,
            params(("id" = Uuid, Path, description = "Deployment id")),
            responses(
                (status = 202, body = CommandAccepted), (status = 400, body = Problem),
                (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
                (status = 409, body = Problem), (status = 422, body = Problem)
            ),
            security(("bearer" = []))
        )]
        pub async fn $fn_name(
            State(state): State<AppState>,
            AsOperator(actor): AsOperator,
            ctx: RequestContext,
            ApiPath(id): ApiPath<Uuid>,
            ApiJson(body): ApiJson<$body>,
        ) -> Response {
            let fingerprint = fingerprint((concat!("POST ", $path), id, &body));
            let by = actor.clone();
            let $b = body;
            let command: DeploymentCommand = $command;
            accept(&state, &ctx, &actor, deployment(&state, id), fingerprint, move |d| {
                owned_by(d, &by)?;
                Ok(command.clone())
            })
            .await
        }
    };
}

/// The placement reason an operator's manual assignment records, so the
/// deployment's history shows the override for what it is.
const MANUAL_PLACEMENT: &str = "assigned by an operator (manual override of placement)";

operator_step!(
    /// Record the node placement chose (operator; a manual override).
    assign_node, "/v1/deployments/{id}/node", AssignNodeBody,
    |b| DeploymentCommand::AssignNode {
        node: NodeAssignment { node_id: b.node_id, farm_id: b.farm_id },
        reason: Some(MANUAL_PLACEMENT.to_string()),
        at: Utc::now(),
    }
);
operator_step!(
    /// Record the node contract created on chain (operator).
    record_contract, "/v1/deployments/{id}/contract", ContractBody,
    |b| DeploymentCommand::RecordContractCreated {
        contract_id: b.contract_id,
        rent_contract_id: b.rent_contract_id,
        at: Utc::now(),
    }
);
operator_step!(
    /// Record that every workload is up (operator).
    mark_running, "/v1/deployments/{id}/running", WorkloadsBody,
    |b| DeploymentCommand::MarkRunning {
        workloads: b.workloads.into_iter().map(Into::into).collect(),
        at: Utc::now(),
    }
);
operator_step!(
    /// Record that the deployment failed (operator).
    mark_failed, "/v1/deployments/{id}/failed", FailedBody,
    |b| DeploymentCommand::MarkFailed {
        workloads: b.workloads.into_iter().map(Into::into).collect(),
        reason: b.reason,
        at: Utc::now(),
    }
);
operator_step!(
    /// Start the grace period: the balance could not pay (operator).
    start_grace_period, "/v1/deployments/{id}/grace-period/start", EmptyBody,
    |_b| DeploymentCommand::StartGracePeriod { contract_id: None, at: Utc::now() }
);
operator_step!(
    /// End the grace period: a top-up paid (operator).
    end_grace_period, "/v1/deployments/{id}/grace-period/end", EmptyBody,
    |_b| DeploymentCommand::EndGracePeriod { contract_id: None, at: Utc::now() }
);
operator_step!(
    /// Record that the contract is gone (operator).
    delete_deployment, "/v1/deployments/{id}/delete", DeleteBody,
    |b| DeploymentCommand::Delete { cause: b.cause, at: Utc::now() }
);
