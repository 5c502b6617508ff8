//! Provider alliances: providers found one (with an approved provider
//! request), invite others, contribute nodes of their approved farms, share
//! by a rule under an SLA, and link the account their payouts go to;
//! operators see every alliance and its settlements.
//!
//! Only members and invitees see an alliance (anyone else, even another
//! provider, is told it does not exist); operators see all of them. Every
//! command takes `If-Match` (the alliance's version) and `Idempotency-Key`.
//! The chain farm is created by the alliance farm worker after founding;
//! nodes can be contributed once it exists (422 `farm-not-assigned`).

mod commands;
mod link;
mod reads;
mod statements;

use marketplace_domain::alliance::{
    Alliance, CreditsTo, Governance, SharingRule, Sla, SlaTier, SpecError,
};
use marketplace_domain::Actor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::command::Target;
use crate::AppState;
use marketplace_app::CommandError;

pub use commands::*;
pub use link::*;
pub use reads::*;
pub use statements::*;

/// The alliance routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(commands::found, reads::list))
        .routes(routes!(reads::get_alliance))
        .routes(routes!(commands::invite))
        .routes(routes!(commands::accept_invitation))
        .routes(routes!(commands::decline_invitation))
        .routes(routes!(commands::leave))
        .routes(routes!(commands::dissolve))
        .routes(routes!(commands::contribute_node))
        .routes(routes!(commands::withdraw_node))
        .routes(routes!(commands::change_rule))
        .routes(routes!(commands::change_sla))
        .routes(routes!(commands::vote))
        .routes(routes!(link::issue_payout_challenge))
        .routes(routes!(link::complete_payout_link))
        .routes(routes!(reads::settlements))
        .routes(routes!(statements::statement))
}

pub(crate) fn target<'a>(state: &'a AppState, id: &str) -> Target<'a, Alliance> {
    Target {
        store: &state.stores.alliances,
        id: id.to_string(),
        location: format!("/v1/alliances/{id}"),
        fresh: false,
    }
}

/// Whether `actor` may see the alliance: an operator, a member (present or
/// past) or an invitee.
pub(crate) fn visible(a: &Alliance, actor: &Actor) -> bool {
    a.state().is_some_and(|s| {
        actor.is_operator()
            || s.members.contains_key(&actor.subject)
            || s.invitations.contains(&actor.subject)
    })
}

/// Tenancy for commands: a stranger is told the alliance does not exist.
pub(crate) fn reach(a: &Alliance, actor: &Actor) -> Result<(), CommandError> {
    if visible(a, actor) {
        Ok(())
    } else {
        Err(CommandError::NotFound)
    }
}

pub(crate) fn invalid(e: SpecError) -> CommandError {
    CommandError::from_spec(&e)
}

fn credits_to_schema() -> utoipa::openapi::schema::Object {
    crate::contract::string_enum(["users", "members"])
}

/// Fixed shares: basis points per member, each 1 to 10,000.
fn shares_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let bps = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(10_000));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(
            utoipa::openapi::RefOr::T(bps.into()),
        )))
        .min_properties(Some(1))
        .build()
}

/// A sharing rule, by `kind`; only `fixed` lists shares. (The variants
/// without fields are empty structs: serde would let a unit variant of an
/// internally tagged enum ignore the fields it does not know.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleBody {
    /// Equal shares among the members.
    Equal {},
    /// Shares by contributed capacity.
    Capacity {},
    /// Shares by capacity weighted by each node's uptime.
    UptimeWeightedCapacity {},
    /// Fixed shares: basis points per member, summing to 10,000 (422
    /// `shares-must-sum-to-whole` otherwise, which no schema can say).
    Fixed {
        /// Basis points per member.
        #[schema(schema_with = shares_schema)]
        shares: BTreeMap<String, u16>,
    },
}

impl RuleBody {
    /// The domain's rule.
    pub fn rule(&self) -> Result<SharingRule, CommandError> {
        let rule = match self {
            RuleBody::Equal {} => SharingRule::Equal,
            RuleBody::Capacity {} => SharingRule::Capacity,
            RuleBody::UptimeWeightedCapacity {} => SharingRule::UptimeWeightedCapacity,
            RuleBody::Fixed { shares } => SharingRule::Fixed {
                shares: shares.clone(),
            },
        };
        rule.validate().map_err(invalid)?;
        Ok(rule)
    }

    /// The body of a domain rule.
    pub fn of(rule: &SharingRule) -> Self {
        match rule {
            SharingRule::Equal => RuleBody::Equal {},
            SharingRule::Capacity => RuleBody::Capacity {},
            SharingRule::UptimeWeightedCapacity => RuleBody::UptimeWeightedCapacity {},
            SharingRule::Fixed { shares } => RuleBody::Fixed {
                shares: shares.clone(),
            },
        }
    }
}

/// One SLA tier: below `below_bps` uptime, `credit_bps` of the node's income is credited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierBody {
    /// Uptime (basis points) under which the tier applies.
    #[schema(maximum = 10_000)]
    pub below_bps: u16,
    /// Credit, basis points of the node's period income.
    #[schema(maximum = 10_000)]
    pub credit_bps: u16,
}

/// A service level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaBody {
    /// Monthly uptime target per node (basis points, e.g. 9,800).
    #[schema(maximum = 10_000)]
    pub target_bps: u16,
    /// From the highest threshold down, none above the target, credits
    /// never falling (422 `sla-tiers-out-of-order` otherwise).
    #[serde(default)]
    pub tiers: Vec<TierBody>,
    /// `users` (the users billed on the node, pro rata) or `members` (the other members).
    #[schema(schema_with = credits_to_schema)]
    pub credits_to: String,
}

impl SlaBody {
    /// The domain's SLA.
    pub fn sla(&self) -> Result<Sla, CommandError> {
        let credits_to = match self.credits_to.as_str() {
            "users" => CreditsTo::Users,
            "members" => CreditsTo::Members,
            _ => return Err(CommandError::invalid("sla.credits_to", "users or members")),
        };
        Sla::new(
            self.target_bps,
            self.tiers
                .iter()
                .map(|t| SlaTier {
                    below_bps: t.below_bps,
                    credit_bps: t.credit_bps,
                })
                .collect(),
            credits_to,
        )
        .map_err(invalid)
    }

    /// The body of a domain SLA.
    pub fn of(sla: &Sla) -> Self {
        Self {
            target_bps: sla.target_bps,
            tiers: sla
                .tiers
                .iter()
                .map(|t| TierBody {
                    below_bps: t.below_bps,
                    credit_bps: t.credit_bps,
                })
                .collect(),
            credits_to: match sla.credits_to {
                CreditsTo::Users => "users",
                CreditsTo::Members => "members",
            }
            .to_string(),
        }
    }
}

pub(crate) fn governance(text: Option<&str>) -> Result<Governance, CommandError> {
    match text {
        None | Some("founder") => Ok(Governance::Founder),
        Some("capacity_majority") => Ok(Governance::CapacityMajority),
        Some(_) => Err(CommandError::invalid(
            "governance",
            "founder or capacity_majority",
        )),
    }
}
