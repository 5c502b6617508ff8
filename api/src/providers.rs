//! Provider requests: a cloud provider applies to sell a farm's capacity;
//! operators approve, reject or ask for more; the provider answers or
//! withdraws. One request per farm at a time (the aggregate is the farm's).

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use marketplace_domain::provider::{
    CompanyName, ContactEmail, Country, NodeIds, ProviderRequest, ProviderRequestCommand, Status,
};
use marketplace_domain::Actor;
use marketplace_projections::providers::{self as views, ProviderListQuery, ProviderRequestRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AsOperator, AsProvider, AsProviderOrOperator};
use crate::command::{accept, fingerprint, Target};
use crate::dto::{CommandAccepted, EmptyBody};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestContext};
use crate::views_watch::read_visible;
use crate::AppState;
use marketplace_app::CommandError;

/// The provider-request routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit, list))
        .routes(routes!(get_request))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(request_information))
        .routes(routes!(answer))
        .routes(routes!(withdraw))
}

fn target(state: &AppState, farm_id: u32) -> Target<'_, ProviderRequest> {
    Target {
        store: &state.stores.providers,
        id: farm_id.to_string(),
        location: format!("/v1/provider-requests/{farm_id}"),
        fresh: false,
    }
}

fn invalid(e: marketplace_domain::deployment::SpecError) -> CommandError {
    CommandError::Invalid {
        detail: e.reason,
        field: Some(e.field),
    }
}

/// `POST /v1/provider-requests`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The provider's company: 2 to 100 characters once trimmed.
    #[schema(schema_with = company_schema)]
    pub company: String,
    /// A contact e-mail address.
    #[schema(schema_with = crate::contract::email)]
    pub contact_email: String,
    /// The grid farm to sell.
    #[schema(minimum = 1)]
    pub farm_id: u32,
    /// The farm's nodes to sell (1 to 500, each positive, no duplicates).
    #[schema(schema_with = node_ids_schema)]
    pub node_ids: Vec<u32>,
    /// The farm's country, a name or code as the grid writes it.
    #[schema(schema_with = crate::contract::country_name)]
    pub country: String,
    /// Anything the reviewers should know; at most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub message: Option<String>,
}

fn company_schema() -> utoipa::openapi::schema::Object {
    crate::contract::trimmed_text(2, 100)
}

fn node_ids_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(u32::MAX)),
        )
        .min_items(Some(1))
        .max_items(Some(500))
        .unique_items(true)
        .build()
}

/// Apply to sell a farm's capacity (provider).
#[utoipa::path(
    post, path = "/v1/provider-requests", tag = "providers",
    request_body = SubmitBody,
    responses(
        (status = 202, body = CommandAccepted),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "The farm already has an open or approved request"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiJson(body): ApiJson<SubmitBody>,
) -> Response {
    let fingerprint = fingerprint(("POST /v1/provider-requests", &body));
    let provider = actor.subject.clone();
    let farm_id = body.farm_id;
    accept(
        &state,
        &ctx,
        &actor,
        target(&state, farm_id),
        fingerprint,
        move |_| {
            if farm_id == 0 {
                return Err(CommandError::Invalid {
                    detail: "farm ids start at 1".into(),
                    field: Some("farm_id".into()),
                });
            }
            Ok(ProviderRequestCommand::Submit {
                provider: provider.clone(),
                company: CompanyName::new(&body.company).map_err(invalid)?,
                contact: ContactEmail::new(&body.contact_email).map_err(|mut e| {
                    e.field = "contact_email".into();
                    invalid(e)
                })?,
                farm_id,
                node_ids: NodeIds::new(body.node_ids.clone()).map_err(invalid)?,
                country: Country::new(&body.country).map_err(invalid)?,
                message: body.message.clone(),
                at: Utc::now(),
            })
        },
    )
    .await
}

/// An operator's note on approval.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Optional note; at most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// A rejection's reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why (shown to the provider): not blank, at most 2,000 characters.
    #[schema(schema_with = required_text)]
    pub reason: String,
}

/// A question for the provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionBody {
    /// What the reviewers need to know: not blank, at most 2,000 characters.
    #[schema(schema_with = required_text)]
    pub question: String,
}

/// The provider's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// The answer: not blank, at most 2,000 characters.
    #[schema(schema_with = required_text)]
    pub answer: String,
}

/// A free text the reviewers or the provider must write.
fn required_text() -> utoipa::openapi::schema::Object {
    crate::contract::not_blank(marketplace_domain::provider::MAX_FREE_TEXT)
}

macro_rules! review_step {
    ($(#[$doc:meta])* $fn_name:ident, $path:literal, $extractor:ident, $body:ty, |$actor:ident, $b:ident| $command:expr) => {
        $(#[$doc])*
        #[utoipa::path(
            post, path = $path, tag = "providers", request_body = $body,
            params(("farm_id" = u32, Path, description = "The farm the request is for")),
            responses(
                (status = 202, body = CommandAccepted), (status = 400, body = Problem),
                (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
                (status = 409, body = Problem), (status = 422, body = Problem)
            ),
            security(("bearer" = []))
        )]
        pub async fn $fn_name(
            State(state): State<AppState>,
            $extractor(actor): $extractor,
            ctx: RequestContext,
            ApiPath(farm_id): ApiPath<u32>,
            ApiJson(body): ApiJson<$body>,
        ) -> Response {
            let fingerprint = fingerprint((concat!("POST ", $path), farm_id, &body));
            let $actor: Actor = actor.clone();
            let $b = body;
            let command = $command;
            accept(&state, &ctx, &actor, target(&state, farm_id), fingerprint, move |_| Ok(command.clone())).await
        }
    };
}

review_step!(
    /// Approve a request (operator): its provider now owns the farm on the marketplace.
    approve, "/v1/provider-requests/{farm_id}/approve", AsOperator, ApproveBody,
    |by, b| ProviderRequestCommand::Approve { by, note: b.note, at: Utc::now() }
);
review_step!(
    /// Reject a request with a reason (operator).
    reject, "/v1/provider-requests/{farm_id}/reject", AsOperator, RejectBody,
    |by, b| ProviderRequestCommand::Reject { by, reason: b.reason, at: Utc::now() }
);
review_step!(
    /// Ask the provider for more information (operator).
    request_information, "/v1/provider-requests/{farm_id}/request-information", AsOperator, QuestionBody,
    |by, b| ProviderRequestCommand::RequestInformation { by, question: b.question, at: Utc::now() }
);
review_step!(
    /// Answer the reviewers' question (the request's provider).
    answer, "/v1/provider-requests/{farm_id}/answer", AsProvider, AnswerBody,
    |by, b| ProviderRequestCommand::Answer { by, answer: b.answer, at: Utc::now() }
);
review_step!(
    /// Withdraw an open request (the request's provider).
    withdraw, "/v1/provider-requests/{farm_id}/withdraw", AsProvider, EmptyBody,
    |by, _b| ProviderRequestCommand::Withdraw { by, at: Utc::now() }
);

/// A provider request as reviewers and its provider see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderRequestBody {
    /// The farm.
    pub farm_id: i64,
    /// The provider's subject.
    pub provider: String,
    /// Company.
    pub company: String,
    /// Contact e-mail.
    pub contact_email: String,
    /// Nodes offered.
    pub node_ids: Vec<i64>,
    /// Country.
    pub country: String,
    /// The provider's message.
    pub message: Option<String>,
    /// `submitted`, `information_requested`, `approved`, `rejected` or `withdrawn`.
    pub status: String,
    /// 1 for the first submission, one more per re-submission.
    pub round: i32,
    /// The last rejection's reason.
    pub last_reason: Option<String>,
    /// The last question asked.
    pub last_question: Option<String>,
    /// The last answer given.
    pub last_answer: Option<String>,
    /// When this round was submitted.
    pub submitted_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Version of the view.
    pub version: i64,
}

impl From<ProviderRequestRow> for ProviderRequestBody {
    fn from(r: ProviderRequestRow) -> Self {
        Self {
            farm_id: r.farm_id,
            provider: r.provider,
            company: r.company,
            contact_email: r.contact,
            node_ids: r.node_ids,
            country: r.country,
            message: r.message,
            status: r.status,
            round: r.round,
            last_reason: r.last_reason,
            last_question: r.last_question,
            last_answer: r.last_answer,
            submitted_at: r.submitted_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// A page of requests, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderRequestPage {
    /// The page.
    pub items: Vec<ProviderRequestBody>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// List filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only requests in this status.
    #[param(schema_with = crate::contract::provider_request_status)]
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The operator's review queue (every request, oldest first), or a provider's own requests.
#[utoipa::path(
    get, path = "/v1/provider-requests", tag = "providers", operation_id = "list_provider_requests",
    params(ListParams),
    responses((status = 200, body = ProviderRequestPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    AsProviderOrOperator(actor): AsProviderOrOperator,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ProviderRequestPage>, ApiError> {
    let bad = |what: &str| ApiError::BadRequest(what.to_string());
    let status = params
        .status
        .as_deref()
        .map(|s| Status::parse(s).ok_or_else(|| bad("unknown status")))
        .transpose()?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| views::Cursor::decode(c).ok_or_else(|| bad("invalid cursor")))
        .transpose()?;
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(bad("limit is 1 to 100"));
    }
    let query = ProviderListQuery {
        provider: (!actor.is_operator()).then(|| actor.subject.clone()),
        status,
        after,
        limit,
    };
    let (rows, next) = views::list(&state.pool, &query).await?;
    Ok(Json(ProviderRequestPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// Read-your-writes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Wait (bounded) until the view has reached this version.
    pub min_version: Option<i64>,
}

/// One request: its provider's, or any for an operator.
#[utoipa::path(
    get, path = "/v1/provider-requests/{farm_id}", tag = "providers",
    params(("farm_id" = u32, Path, description = "The farm"), GetParams),
    responses(
        (status = 200, body = ProviderRequestBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn get_request(
    State(state): State<AppState>,
    AsProviderOrOperator(actor): AsProviderOrOperator,
    ApiPath(farm_id): ApiPath<u32>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> Result<Json<ProviderRequestBody>, ApiError> {
    let pool = &state.pool;
    let row = read_visible(
        &state.views,
        state.settings.read_wait,
        params.min_version.unwrap_or(0),
        || views::get(pool, farm_id),
        |row: &ProviderRequestRow| actor.is_operator() || row.provider == actor.subject,
        |row| row.version,
    )
    .await?;
    Ok(Json(row.into()))
}
