//! What happened to a provider request. Event payloads are versioned by
//! [`EVENT_VERSION`]; an old payload is upcast on read, never rewritten.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::values::*;
use crate::actor::Actor;

/// The payload version every provider request event is written with today.
pub const EVENT_VERSION: &str = "1";

/// An event of the ProviderRequest aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProviderRequestEvent {
    /// A provider applied (a first time, or again as a new round).
    ProviderRequestSubmitted {
        /// The applying provider's subject.
        provider: String,
        /// The provider's company.
        company: CompanyName,
        /// Where to reach the provider.
        contact: ContactEmail,
        /// The farm.
        farm_id: u32,
        /// The nodes offered.
        node_ids: NodeIds,
        /// Where the farm is.
        country: Country,
        /// A note to the reviewer.
        message: Option<String>,
        /// 1 for the first submission, one more for each re-submission.
        round: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator approved the request.
    ProviderRequestApproved {
        /// The operator.
        by: Actor,
        /// The operator's note.
        note: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator rejected the request.
    ProviderRequestRejected {
        /// The operator.
        by: Actor,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator asked the provider for more information.
    InformationRequested {
        /// The operator.
        by: Actor,
        /// What was asked.
        question: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider answered; the request is back with the reviewers.
    InformationProvided {
        /// The provider.
        by: Actor,
        /// The answer.
        answer: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider withdrew the request.
    ProviderRequestWithdrawn {
        /// The provider.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
}

impl ProviderRequestEvent {
    /// When the event happened, by the clock of whoever issued the command.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            ProviderRequestEvent::ProviderRequestSubmitted { at, .. }
            | ProviderRequestEvent::ProviderRequestApproved { at, .. }
            | ProviderRequestEvent::ProviderRequestRejected { at, .. }
            | ProviderRequestEvent::InformationRequested { at, .. }
            | ProviderRequestEvent::InformationProvided { at, .. }
            | ProviderRequestEvent::ProviderRequestWithdrawn { at, .. } => *at,
        }
    }
}

impl DomainEvent for ProviderRequestEvent {
    fn event_type(&self) -> String {
        match self {
            ProviderRequestEvent::ProviderRequestSubmitted { .. } => "ProviderRequestSubmitted",
            ProviderRequestEvent::ProviderRequestApproved { .. } => "ProviderRequestApproved",
            ProviderRequestEvent::ProviderRequestRejected { .. } => "ProviderRequestRejected",
            ProviderRequestEvent::InformationRequested { .. } => "InformationRequested",
            ProviderRequestEvent::InformationProvided { .. } => "InformationProvided",
            ProviderRequestEvent::ProviderRequestWithdrawn { .. } => "ProviderRequestWithdrawn",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
