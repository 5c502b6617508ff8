//! Capacity-majority governance: a member proposes a rule or SLA change,
//! members vote, and the change takes effect from the period after the
//! vote that carries it (see [`Governance::CapacityMajority`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::errors::AllianceError;
use super::events::AllianceEvent;
use super::state::AllianceState;
use super::values::*;

/// The events of a proposal: it is made, the proposer approves it, and it
/// may pass at once (a proposer holding a majority).
pub(super) fn propose(
    s: &AllianceState,
    by: MemberId,
    change: ProposedChange,
    at: DateTime<Utc>,
) -> Result<Vec<AllianceEvent>, AllianceError> {
    let proposal = u32::try_from(s.proposals.len())
        .map_err(|_| SpecError::new("proposal", "too many proposals"))?
        + 1;
    let mut events = vec![AllianceEvent::ChangeProposed {
        proposal,
        by: by.clone(),
        change: change.clone(),
        at,
    }];
    events.extend(count(
        s,
        proposal,
        &by,
        &change,
        &BTreeMap::new(),
        by.clone(),
        true,
        at,
    )?);
    Ok(events)
}

/// The events of a member's vote on an open proposal.
pub(super) fn vote(
    s: &AllianceState,
    voter: MemberId,
    proposal: u32,
    approve: bool,
    at: DateTime<Utc>,
) -> Result<Vec<AllianceEvent>, AllianceError> {
    let Some(p) = s.proposals.get(&proposal) else {
        return Err(AllianceError::NoSuchProposal(proposal));
    };
    if p.decided.is_some() {
        return Err(AllianceError::ProposalClosed(proposal));
    }
    if p.votes.contains_key(&voter) {
        return Err(AllianceError::AlreadyVoted(proposal));
    }
    count(s, proposal, &p.by, &p.change, &p.votes, voter, approve, at)
}

/// The vote, then the decision if it settles the proposal.
#[allow(clippy::too_many_arguments)]
fn count(
    s: &AllianceState,
    proposal: u32,
    proposer: &MemberId,
    change: &ProposedChange,
    votes: &BTreeMap<MemberId, bool>,
    voter: MemberId,
    approve: bool,
    at: DateTime<Utc>,
) -> Result<Vec<AllianceEvent>, AllianceError> {
    let mut votes = votes.clone();
    votes.insert(voter.clone(), approve);
    let weights = s.voting_weights();
    let total: u128 = weights.values().sum();
    let weigh = |side: bool| -> u128 {
        votes
            .iter()
            .filter(|(_, &v)| v == side)
            .map(|(m, _)| weights.get(m).copied().unwrap_or(0))
            .sum()
    };
    let (approving, rejecting) = (weigh(true), weigh(false));
    let mut events = vec![AllianceEvent::VoteCast {
        proposal,
        voter,
        approve,
        at,
    }];
    let accepted = if 2 * approving > total {
        Some(true)
    } else if 2 * rejecting >= total {
        Some(false)
    } else {
        None
    };
    let Some(accepted) = accepted else {
        return Ok(events);
    };
    events.push(AllianceEvent::ProposalDecided {
        proposal,
        accepted,
        approving,
        rejecting,
        total,
        at,
    });
    if accepted {
        let effective_from = Period::of(at.timestamp())?.next();
        events.push(match change.clone() {
            ProposedChange::SharingRule(rule) => AllianceEvent::SharingRuleChanged {
                by: proposer.clone(),
                rule,
                effective_from,
                at,
            },
            ProposedChange::Sla(sla) => AllianceEvent::SlaChanged {
                by: proposer.clone(),
                sla,
                effective_from,
                at,
            },
        });
    }
    Ok(events)
}
