//! What may be asked of a provider request. Each command carries everything
//! its decision needs, "now" included.

use chrono::{DateTime, Utc};

use super::values::*;
use crate::actor::Actor;

/// A command to the ProviderRequest aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderRequestCommand {
    /// A farmer applies to sell the farm's nodes (again, after a rejection
    /// or a withdrawal).
    Submit {
        /// The applying provider's subject.
        provider: String,
        /// The provider's company.
        company: CompanyName,
        /// Where to reach the provider.
        contact: ContactEmail,
        /// The farm, which is also the aggregate id; ids start at 1.
        farm_id: u32,
        /// The nodes offered.
        node_ids: NodeIds,
        /// Where the farm is.
        country: Country,
        /// A note to the reviewer, optional, at most 2,000 characters.
        message: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator accepts the request.
    Approve {
        /// The operator.
        by: Actor,
        /// A note, optional, at most 2,000 characters.
        note: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator refuses the request.
    Reject {
        /// The operator.
        by: Actor,
        /// Why; not blank, at most 2,000 characters.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator asks the provider for more information.
    RequestInformation {
        /// The operator.
        by: Actor,
        /// What is asked; not blank, at most 2,000 characters.
        question: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider answers the operator's question.
    Answer {
        /// The provider.
        by: Actor,
        /// The answer; not blank, at most 2,000 characters.
        answer: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider takes back an open request.
    Withdraw {
        /// The provider.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
}

impl ProviderRequestCommand {
    /// The command's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderRequestCommand::Submit { .. } => "submit",
            ProviderRequestCommand::Approve { .. } => "approve",
            ProviderRequestCommand::Reject { .. } => "reject",
            ProviderRequestCommand::RequestInformation { .. } => "request_information",
            ProviderRequestCommand::Answer { .. } => "answer",
            ProviderRequestCommand::Withdraw { .. } => "withdraw",
        }
    }
}
