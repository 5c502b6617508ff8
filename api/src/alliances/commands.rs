//! The alliance's commands over HTTP: each a 202 with the alliance's id and
//! new version, or a problem document.

use axum::extract::State;
use axum::response::Response;
use chrono::{Datelike, Utc};
use marketplace_domain::alliance::{AllianceCommand, AllianceName, Capacity, Period};
use marketplace_domain::Actor;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{governance, invalid, reach, target, RuleBody, SlaBody};
use crate::auth::AsProvider;
use crate::command::{accept, fingerprint};
use crate::dto::{CommandAccepted, EmptyBody};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, RequestContext};
use crate::AppState;
use marketplace_app::CommandError;

/// `POST /v1/alliances`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FoundBody {
    /// 1 to 80 characters.
    #[schema(schema_with = name_schema)]
    pub name: String,
    /// What the alliance offers; at most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    /// How income is shared (fixed shares may list only the founder).
    pub rule: RuleBody,
    /// The service level.
    pub sla: SlaBody,
    /// `founder` (default) or `capacity_majority`.
    #[serde(default)]
    #[schema(schema_with = governance_schema)]
    pub governance: Option<String>,
}

fn name_schema() -> utoipa::openapi::schema::Object {
    crate::contract::trimmed_text(1, marketplace_domain::alliance::MAX_NAME)
}

fn governance_schema() -> utoipa::openapi::schema::Object {
    let mut schema = crate::contract::string_enum(["founder", "capacity_majority"]);
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::schema::Type::String,
        utoipa::openapi::schema::Type::Null,
    ]);
    schema
}

fn this_period() -> Result<Period, CommandError> {
    let now = Utc::now();
    Period::new(now.year() as u16, now.month() as u8).map_err(invalid)
}

/// Found an alliance (a provider with an approved provider request); the
/// marketplace then creates its chain twin and farm.
#[utoipa::path(
    post, path = "/v1/alliances", tag = "alliances",
    request_body = FoundBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem, description = "Invalid, or `provider-not-approved`, `shares-must-sum-to-whole`, `sla-tiers-out-of-order`, `not-a-member` (fixed shares may list only the founder)")
    ),
    security(("bearer" = []))
)]
pub async fn found(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiJson(body): ApiJson<FoundBody>,
) -> Response {
    let fingerprint = fingerprint(("POST /v1/alliances", &body));
    let id = Uuid::new_v4().to_string();
    let approved: Result<bool, sqlx::Error> = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM provider_requests WHERE provider = $1 AND status = 'approved')",
    )
    .bind(&actor.subject)
    .fetch_one(&state.pool)
    .await;
    let approved = match approved {
        Ok(a) => a,
        Err(e) => return axum::response::IntoResponse::into_response(ApiError::from(e)),
    };
    let by = actor.clone();
    accept(
        &state,
        &ctx,
        &actor,
        target(&state, &id),
        fingerprint,
        move |_| {
            Ok(AllianceCommand::Found {
                by: by.clone(),
                provider_approved: approved,
                name: AllianceName::new(&body.name).map_err(invalid)?,
                description: body.description.clone(),
                rule: body.rule.rule()?,
                sla: body.sla.sla()?,
                governance: governance(body.governance.as_deref())?,
                period: this_period()?,
                at: Utc::now(),
            })
        },
    )
    .await
}

/// `POST /v1/alliances/{id}/invitations`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// The invited provider's subject (not blank).
    #[schema(schema_with = invitee_schema)]
    pub provider: String,
}

fn invitee_schema() -> utoipa::openapi::schema::Object {
    let mut schema = crate::contract::not_blank(255);
    schema.max_length = None;
    schema
}

/// Invite a provider (the founder).
#[utoipa::path(
    post, path = "/v1/alliances/{id}/invitations", tag = "alliances",
    request_body = InviteBody,
    params(("id" = String, Path, description = "The alliance"),
           ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the alliance is at this version"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn invite(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<InviteBody>,
) -> Response {
    let fingerprint = fingerprint(("POST /v1/alliances/invitations", &id, &body));
    on_alliance(&state, &ctx, &actor, &id, fingerprint, move |_, by| {
        Ok(AllianceCommand::Invite {
            by: by.clone(),
            invitee: body.provider.clone(),
            at: Utc::now(),
        })
    })
    .await
}

macro_rules! member_step {
    ($(#[$doc:meta])* $fn_name:ident, $path:literal, $variant:ident) => {
        $(#[$doc])*
        #[utoipa::path(
            post, path = $path, tag = "alliances", request_body = EmptyBody,
            params(("id" = String, Path, description = "The alliance"),
                   ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the alliance is at this version"),
                   ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
            responses(
                (status = 202, body = CommandAccepted), (status = 400, body = Problem),
                (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
                (status = 409, body = Problem), (status = 422, body = Problem)
            ),
            security(("bearer" = []))
        )]
        pub async fn $fn_name(
            State(state): State<AppState>,
            AsProvider(actor): AsProvider,
            ctx: RequestContext,
            ApiPath(id): ApiPath<String>,
            ApiJson(body): ApiJson<EmptyBody>,
        ) -> Response {
            let fingerprint = fingerprint((concat!("POST ", $path), &id, &body));
            on_alliance(&state, &ctx, &actor, &id, fingerprint, move |_, by| {
                Ok(AllianceCommand::$variant { by: by.clone(), at: Utc::now() })
            })
            .await
        }
    };
}

/// Runs `build`'s command on alliance `id` for `actor` through the one
/// accepting path, once `actor` may reach the alliance (anyone else: 404).
async fn on_alliance(
    state: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: &str,
    fingerprint: Vec<u8>,
    build: impl Fn(&marketplace_domain::alliance::Alliance, &Actor) -> Result<AllianceCommand, CommandError>
        + Sync,
) -> Response {
    let by = actor.clone();
    accept(
        state,
        ctx,
        actor,
        target(state, id),
        fingerprint,
        move |a| {
            reach(a, &by)?;
            build(a, &by)
        },
    )
    .await
}

member_step!(
    /// Accept an invitation (the invitee): a member from this period on.
    accept_invitation, "/v1/alliances/{id}/invitation/accept", AcceptInvitation
);
member_step!(
    /// Decline an invitation (the invitee).
    decline_invitation, "/v1/alliances/{id}/invitation/decline", DeclineInvitation
);
member_step!(
    /// Leave (a member, not the founder) at the end of this period, with its nodes.
    leave, "/v1/alliances/{id}/leave", Leave
);
member_step!(
    /// Dissolve the alliance at the end of this period (the founder).
    dissolve, "/v1/alliances/{id}/dissolve", Dissolve
);

/// `POST /v1/alliances/{id}/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContributeBody {
    /// The grid node: in one of the member's approved farms (or listed in
    /// one's request and already moved into the alliance's farm), in no
    /// other alliance.
    pub node_id: u32,
}

/// What the catalog and the provider requests say of a node and its contributor.
struct NodeCheck {
    /// The node's farm in the catalog.
    farm_id: u32,
    /// The member's approved farm the node comes from, if it is the member's.
    member_farm: Option<u32>,
    /// Its whole capacity, whole CU and SU.
    capacity: Result<Capacity, CommandError>,
    /// Another alliance it counts in.
    elsewhere: Option<String>,
}

async fn check_node(
    state: &AppState,
    alliance: &str,
    member: &str,
    node_id: u32,
) -> Result<NodeCheck, ApiError> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT farm_id, cu_milli, su_milli FROM node_catalog WHERE node_id = $1")
            .bind(i64::from(node_id))
            .fetch_optional(&state.pool)
            .await?;
    let Some((farm_id, cu_milli, su_milli)) = row else {
        return Err(ApiError::Rule {
            slug: "unknown-node",
            detail: format!("node {node_id} is not in the catalog"),
        });
    };
    let member_farm: Option<i64> = sqlx::query_scalar(
        "SELECT farm_id FROM provider_requests
          WHERE provider = $1 AND status = 'approved' AND (farm_id = $2 OR $3 = ANY(node_ids))
          ORDER BY (farm_id = $2) DESC LIMIT 1",
    )
    .bind(member)
    .bind(farm_id)
    .bind(i64::from(node_id))
    .fetch_optional(&state.pool)
    .await?;
    let elsewhere = marketplace_projections::alliances::alliance_of_node(&state.pool, node_id)
        .await?
        .filter(|a| a != alliance);
    Ok(NodeCheck {
        farm_id: u32::try_from(farm_id).unwrap_or(0),
        member_farm: member_farm.and_then(|f| u32::try_from(f).ok()),
        capacity: Capacity::new(
            (cu_milli.max(0) / 1000) as u64,
            (su_milli.max(0) / 1000) as u64,
        )
        .map_err(invalid),
        elsewhere,
    })
}

/// Contribute a node (a member); it counts from this period on. Move it
/// into the alliance's farm on the chain so that the chain pays its bills'
/// farmer share to the alliance.
#[utoipa::path(
    post, path = "/v1/alliances/{id}/nodes", tag = "alliances",
    request_body = ContributeBody,
    params(("id" = String, Path, description = "The alliance"),
           ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the alliance is at this version"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`node-already-contributed`, or a version conflict"),
        (status = 422, body = Problem, description = "`unknown-node`, `node-not-yours`, `node-in-another-alliance`, `farm-not-assigned`, `node-without-capacity`, ...")
    ),
    security(("bearer" = []))
)]
pub async fn contribute_node(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ContributeBody>,
) -> Response {
    let fingerprint = fingerprint(("POST /v1/alliances/nodes", &id, &body));
    let check = match check_node(&state, &id, &actor.subject, body.node_id).await {
        Ok(c) => c,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let node_id = body.node_id;
    on_alliance(&state, &ctx, &actor, &id, fingerprint, move |a, by| {
        let alliance_farm = a.state().and_then(|s| s.farm.as_ref()).map(|f| f.farm_id);
        let member_farm = match check.member_farm {
            Some(f) if f == check.farm_id || Some(check.farm_id) == alliance_farm => f,
            _ => {
                return Err(CommandError::Rule {
                    slug: "node-not-yours",
                    detail: format!(
                        "node {node_id} is in farm {}, not one of your approved farms",
                        check.farm_id
                    ),
                })
            }
        };
        if let Some(other) = &check.elsewhere {
            return Err(CommandError::Rule {
                slug: "node-in-another-alliance",
                detail: format!("node {node_id} counts in alliance {other}"),
            });
        }
        let capacity = match &check.capacity {
            Ok(c) => *c,
            Err(e) => {
                return Err(CommandError::Rule {
                    slug: "node-without-capacity",
                    detail: e.to_string(),
                })
            }
        };
        Ok(AllianceCommand::ContributeNode {
            by: by.clone(),
            node_id,
            farm_id: member_farm,
            capacity,
            at: Utc::now(),
        })
    })
    .await
}

/// Withdraw a node (its contributor): it counts until this period's end.
#[utoipa::path(
    post, path = "/v1/alliances/{id}/nodes/{node_id}/withdraw", tag = "alliances",
    request_body = EmptyBody,
    params(("id" = String, Path, description = "The alliance"), ("node_id" = u32, Path, description = "The node"),
           ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the alliance is at this version"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn withdraw_node(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath((id, node_id)): ApiPath<(String, u32)>,
    ApiJson(body): ApiJson<EmptyBody>,
) -> Response {
    let fingerprint = fingerprint(("POST /v1/alliances/nodes/withdraw", &id, node_id, &body));
    on_alliance(&state, &ctx, &actor, &id, fingerprint, move |_, by| {
        Ok(AllianceCommand::WithdrawNode {
            by: by.clone(),
            node_id,
            at: Utc::now(),
        })
    })
    .await
}

/// Change the sharing rule from the next period on (the founder; under
/// capacity-majority governance, a member's proposal put to the vote).
#[utoipa::path(
    put, path = "/v1/alliances/{id}/rule", tag = "alliances",
    request_body = RuleBody,
    params(("id" = String, Path, description = "The alliance"),
           ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the alliance is at this version"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem, description = "Invalid, `shares-must-sum-to-whole`, `not-a-member` (a share for someone not a member), ...")
    ),
    security(("bearer" = []))
)]
pub async fn change_rule(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RuleBody>,
) -> Response {
    let fingerprint = fingerprint(("PUT /v1/alliances/rule", &id, &body));
    on_alliance(&state, &ctx, &actor, &id, fingerprint, move |_, by| {
        Ok(AllianceCommand::ChangeSharingRule {
            by: by.clone(),
            rule: body.rule()?,
            at: Utc::now(),
        })
    })
    .await
}

/// Change the SLA from the next period on (as the rule is changed).
#[utoipa::path(
    put, path = "/v1/alliances/{id}/sla", tag = "alliances",
    request_body = SlaBody,
    params(("id" = String, Path, description = "The alliance"),
           ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the alliance is at this version"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem, description = "Invalid, `sla-tiers-out-of-order`, ...")
    ),
    security(("bearer" = []))
)]
pub async fn change_sla(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SlaBody>,
) -> Response {
    let fingerprint = fingerprint(("PUT /v1/alliances/sla", &id, &body));
    on_alliance(&state, &ctx, &actor, &id, fingerprint, move |_, by| {
        Ok(AllianceCommand::ChangeSla {
            by: by.clone(),
            sla: body.sla()?,
            at: Utc::now(),
        })
    })
    .await
}

/// A vote on a proposal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    /// Approve or reject.
    pub approve: bool,
}

/// Vote on a proposed change (a member, under capacity-majority governance).
#[utoipa::path(
    post, path = "/v1/alliances/{id}/proposals/{proposal}/votes", tag = "alliances",
    request_body = VoteBody,
    params(("id" = String, Path, description = "The alliance"), ("proposal" = u32, Path, description = "The proposal's number"),
           ("If-Match" = Option<String>, Header, description = "Refuse (409) unless the alliance is at this version"),
           ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key replays the first answer")),
    responses(
        (status = 202, body = CommandAccepted), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub async fn vote(
    State(state): State<AppState>,
    AsProvider(actor): AsProvider,
    ctx: RequestContext,
    ApiPath((id, proposal)): ApiPath<(String, u32)>,
    ApiJson(body): ApiJson<VoteBody>,
) -> Response {
    let fingerprint = fingerprint(("POST /v1/alliances/votes", &id, proposal, &body));
    on_alliance(&state, &ctx, &actor, &id, fingerprint, move |_, by| {
        Ok(AllianceCommand::Vote {
            by: by.clone(),
            proposal,
            approve: body.approve,
            at: Utc::now(),
        })
    })
    .await
}
