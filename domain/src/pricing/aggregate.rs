//! The pricing policy's state, its decisions and how events change it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::commands::PricingPolicyCommand;
use super::events::PricingPolicyEvent;
use super::policy::PricingPolicy;
use crate::actor::Role;
use crate::deployment::SpecError;

/// The PricingPolicy aggregate: the current policy and how many times it
/// changed. Its default is the grid's default policy at version 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PricingPolicyAggregate {
    policy: PricingPolicy,
    version: u64,
    changed_at: Option<DateTime<Utc>>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PricingPolicyError {
    /// Only operators set prices.
    #[error("only an operator may change the pricing policy")]
    NotPermitted,
    /// The policy breaks a limit of [`PricingPolicy::validate`].
    #[error("invalid pricing policy: {0}")]
    InvalidPolicy(#[from] SpecError),
    /// The policy equals the current one.
    #[error("the pricing policy is unchanged")]
    PolicyUnchanged,
}

impl PricingPolicyAggregate {
    /// The policy in force.
    pub fn policy(&self) -> &PricingPolicy {
        &self.policy
    }

    /// How many times the policy changed (0 while it is the grid default).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When the policy last changed, if ever.
    pub fn changed_at(&self) -> Option<DateTime<Utc>> {
        self.changed_at
    }

    /// Decides what a command does: the events, or why not.
    pub fn decide(
        &self,
        command: PricingPolicyCommand,
    ) -> Result<Vec<PricingPolicyEvent>, PricingPolicyError> {
        match command {
            PricingPolicyCommand::SetPolicy { policy, by, at } => {
                if by.role != Role::CloudOperator {
                    return Err(PricingPolicyError::NotPermitted);
                }
                policy.validate()?;
                if policy == self.policy {
                    return Err(PricingPolicyError::PolicyUnchanged);
                }
                Ok(vec![PricingPolicyEvent::PricingPolicyChanged {
                    policy,
                    previous: self.policy.clone(),
                    by,
                    at,
                }])
            }
        }
    }

    /// Changes the state by one event. Never fails: events are facts.
    pub fn apply_event(&mut self, event: &PricingPolicyEvent) {
        match event {
            PricingPolicyEvent::PricingPolicyChanged { policy, at, .. } => {
                self.policy = policy.clone();
                self.version += 1;
                self.changed_at = Some(*at);
            }
        }
    }
}

crate::event_sourced!(
    PricingPolicyAggregate,
    "pricing_policy",
    PricingPolicyCommand,
    PricingPolicyEvent,
    PricingPolicyError
);
