//! The provider request's state, its decisions and how events change it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::commands::ProviderRequestCommand;
use super::events::ProviderRequestEvent;
use super::values::*;
use crate::actor::{Actor, Role};

/// Where a provider request is in its review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for an operator (open).
    Submitted,
    /// Waiting for the provider's answer (open).
    InformationRequested,
    /// Accepted: the provider sells through the marketplace (closed).
    Approved,
    /// Refused; the farm may apply again (closed).
    Rejected,
    /// Taken back by the provider; the farm may apply again (closed).
    Withdrawn,
}

impl Status {
    /// The status name as stored in views and filtered on.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::InformationRequested => "information_requested",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Withdrawn => "withdrawn",
        }
    }

    /// Every status, for validating filters.
    pub const ALL: [Status; 5] = [
        Status::Submitted,
        Status::InformationRequested,
        Status::Approved,
        Status::Rejected,
        Status::Withdrawn,
    ];

    /// Parses a status name.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the request is still under review.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Submitted | Status::InformationRequested)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a decision about a farm's request needs: the latest round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderRequestState {
    /// The subject of the provider who submitted the latest round.
    pub provider: String,
    /// The provider's company.
    pub company: CompanyName,
    /// Where to reach the provider.
    pub contact: ContactEmail,
    /// The farm (the aggregate id).
    pub farm_id: u32,
    /// The nodes offered.
    pub node_ids: NodeIds,
    /// Where the farm is.
    pub country: Country,
    /// The provider's note with the latest submission.
    pub message: Option<String>,
    /// 1 for the first submission, one more for each re-submission.
    pub round: u32,
    /// Where the latest round is in its review.
    pub status: Status,
    /// When the latest round was submitted.
    pub submitted_at: DateTime<Utc>,
    /// The latest rejection reason, from this round or an earlier one.
    pub last_reason: Option<String>,
    /// The latest question asked, from this round or an earlier one.
    pub last_question: Option<String>,
}

/// The ProviderRequest aggregate of one farm: `None` until first submitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderRequest {
    state: Option<ProviderRequestState>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderRequestError {
    /// A command other than a submission for a farm that never applied.
    #[error("no such provider request")]
    NotFound,
    /// The farm already has a request under review.
    #[error("this farm already has an open request")]
    OpenRequestExists,
    /// The farm's request was approved; there is nothing to apply for.
    #[error("this farm's request is already approved")]
    AlreadyApproved,
    /// A submission names another farm than the aggregate's.
    #[error("this request is for farm {expected}, not farm {got}")]
    FarmMismatch {
        /// The farm of the request.
        expected: u32,
        /// The farm the command named.
        got: u32,
    },
    /// Reviews are for operators; answers and withdrawals for the request's provider.
    #[error("not permitted")]
    NotPermitted,
    /// The command is not allowed in the request's current status.
    #[error("cannot {command} a request that is {status}")]
    InvalidTransition {
        /// The refused command.
        command: &'static str,
        /// The status it met.
        status: Status,
    },
    /// A field is out of range or blank.
    #[error("invalid request: {0}")]
    Invalid(#[from] SpecError),
}

impl ProviderRequest {
    /// The latest round, if the farm ever applied.
    pub fn state(&self) -> Option<&ProviderRequestState> {
        self.state.as_ref()
    }

    /// Decides what a command does: the events, or why not.
    pub fn decide(
        &self,
        command: ProviderRequestCommand,
    ) -> Result<Vec<ProviderRequestEvent>, ProviderRequestError> {
        use ProviderRequestCommand as C;
        use ProviderRequestError as Error;
        use ProviderRequestEvent as E;

        let name = command.name();
        if let C::Submit {
            provider,
            company,
            contact,
            farm_id,
            node_ids,
            country,
            message,
            at,
        } = command
        {
            let round = match &self.state {
                None => 1,
                Some(s) => match s.status {
                    Status::Submitted | Status::InformationRequested => {
                        return Err(Error::OpenRequestExists)
                    }
                    Status::Approved => return Err(Error::AlreadyApproved),
                    Status::Rejected | Status::Withdrawn if s.farm_id != farm_id => {
                        return Err(Error::FarmMismatch {
                            expected: s.farm_id,
                            got: farm_id,
                        })
                    }
                    Status::Rejected | Status::Withdrawn => s.round.saturating_add(1),
                },
            };
            if farm_id == 0 {
                return Err(SpecError::new("farm_id", "farm ids start at 1").into());
            }
            if let Some(m) = &message {
                check_free_text("message", m, false)?;
            }
            return Ok(vec![E::ProviderRequestSubmitted {
                provider,
                company,
                contact,
                farm_id,
                node_ids,
                country,
                message,
                round,
                at,
            }]);
        }

        let Some(s) = &self.state else {
            return Err(Error::NotFound);
        };
        let refuse = || Error::InvalidTransition {
            command: name,
            status: s.status,
        };
        let operator_only = |by: &Actor| {
            if by.role == Role::CloudOperator {
                Ok(())
            } else {
                Err(Error::NotPermitted)
            }
        };
        let provider_only = |by: &Actor| {
            if by.role == Role::CloudProvider && by.subject == s.provider {
                Ok(())
            } else {
                Err(Error::NotPermitted)
            }
        };

        match command {
            // Decided above, before the state was needed.
            C::Submit { .. } => Err(refuse()),
            C::Approve { by, note, at } => {
                operator_only(&by)?;
                if !s.status.is_open() {
                    return Err(refuse());
                }
                if let Some(n) = &note {
                    check_free_text("note", n, false)?;
                }
                Ok(vec![E::ProviderRequestApproved { by, note, at }])
            }
            C::Reject { by, reason, at } => {
                operator_only(&by)?;
                if !s.status.is_open() {
                    return Err(refuse());
                }
                check_free_text("reason", &reason, true)?;
                Ok(vec![E::ProviderRequestRejected { by, reason, at }])
            }
            C::RequestInformation { by, question, at } => {
                operator_only(&by)?;
                if s.status != Status::Submitted {
                    return Err(refuse());
                }
                check_free_text("question", &question, true)?;
                Ok(vec![E::InformationRequested { by, question, at }])
            }
            C::Answer { by, answer, at } => {
                provider_only(&by)?;
                if s.status != Status::InformationRequested {
                    return Err(refuse());
                }
                check_free_text("answer", &answer, true)?;
                Ok(vec![E::InformationProvided { by, answer, at }])
            }
            C::Withdraw { by, at } => {
                provider_only(&by)?;
                if !s.status.is_open() {
                    return Err(refuse());
                }
                Ok(vec![E::ProviderRequestWithdrawn { by, at }])
            }
        }
    }

    /// Changes the state by one event. Never fails: events are facts.
    pub fn apply_event(&mut self, event: &ProviderRequestEvent) {
        use ProviderRequestEvent as E;
        if let E::ProviderRequestSubmitted {
            provider,
            company,
            contact,
            farm_id,
            node_ids,
            country,
            message,
            round,
            at,
        } = event
        {
            let (last_reason, last_question) = match self.state.take() {
                Some(previous) => (previous.last_reason, previous.last_question),
                None => (None, None),
            };
            self.state = Some(ProviderRequestState {
                provider: provider.clone(),
                company: company.clone(),
                contact: contact.clone(),
                farm_id: *farm_id,
                node_ids: node_ids.clone(),
                country: country.clone(),
                message: message.clone(),
                round: *round,
                status: Status::Submitted,
                submitted_at: *at,
                last_reason,
                last_question,
            });
            return;
        }
        let Some(s) = &mut self.state else {
            return;
        };
        match event {
            E::ProviderRequestSubmitted { .. } => {}
            E::ProviderRequestApproved { .. } => s.status = Status::Approved,
            E::ProviderRequestRejected { reason, .. } => {
                s.last_reason = Some(reason.clone());
                s.status = Status::Rejected;
            }
            E::InformationRequested { question, .. } => {
                s.last_question = Some(question.clone());
                s.status = Status::InformationRequested;
            }
            E::InformationProvided { .. } => s.status = Status::Submitted,
            E::ProviderRequestWithdrawn { .. } => s.status = Status::Withdrawn,
        }
    }
}

crate::event_sourced!(
    ProviderRequest,
    "provider_request",
    ProviderRequestCommand,
    ProviderRequestEvent,
    ProviderRequestError
);
