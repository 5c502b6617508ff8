//! What may be asked of the pricing policy.

use chrono::{DateTime, Utc};

use super::policy::PricingPolicy;
use crate::actor::Actor;

/// A command to the PricingPolicy aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum PricingPolicyCommand {
    /// An operator replaces the policy as a whole.
    SetPolicy {
        /// The new policy.
        policy: PricingPolicy,
        /// Who sets it.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
}
