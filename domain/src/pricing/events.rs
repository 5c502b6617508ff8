//! What happened to the pricing policy. Event payloads are versioned by
//! [`EVENT_VERSION`]; an old payload is upcast on read, never rewritten.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::policy::PricingPolicy;
use crate::actor::Actor;

/// The payload version every pricing policy event is written with today.
pub const EVENT_VERSION: &str = "1";

/// An event of the PricingPolicy aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PricingPolicyEvent {
    /// An operator changed the policy.
    PricingPolicyChanged {
        /// The policy from now on.
        policy: PricingPolicy,
        /// The policy it replaced, for audits.
        previous: PricingPolicy,
        /// Who changed it.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
}

impl PricingPolicyEvent {
    /// When the event happened, by the clock of whoever issued the command.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            PricingPolicyEvent::PricingPolicyChanged { at, .. } => *at,
        }
    }
}

impl DomainEvent for PricingPolicyEvent {
    fn event_type(&self) -> String {
        match self {
            PricingPolicyEvent::PricingPolicyChanged { .. } => "PricingPolicyChanged",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
