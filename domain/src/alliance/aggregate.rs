//! The alliance's decisions and how events change its state.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::commands::AllianceCommand;
use super::errors::AllianceError;
use super::events::AllianceEvent;
use super::governance;
use super::periods;
use super::state::*;
use super::values::*;
use crate::actor::{Actor, Role};

/// The Alliance aggregate: `None` until founded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alliance {
    state: Option<AllianceState>,
}

/// The period a command's time falls in.
fn period_of(at: DateTime<Utc>) -> Result<Period, AllianceError> {
    Ok(Period::of(at.timestamp())?)
}

fn provider(by: &Actor) -> Result<&str, AllianceError> {
    if by.role == Role::CloudProvider {
        Ok(&by.subject)
    } else {
        Err(AllianceError::NotPermitted)
    }
}

impl Alliance {
    /// The alliance, once founded.
    pub fn state(&self) -> Option<&AllianceState> {
        self.state.as_ref()
    }

    /// Decides what a command does: the events, or why not.
    pub fn decide(&self, command: AllianceCommand) -> Result<Vec<AllianceEvent>, AllianceError> {
        use AllianceCommand as C;
        use AllianceError as Error;
        use AllianceEvent as E;

        if let C::Found {
            by,
            provider_approved,
            name,
            description,
            rule,
            sla,
            governance,
            period,
            at,
        } = command
        {
            if self.state.is_some() {
                return Err(Error::AlreadyFounded);
            }
            let founder = provider(&by)?.to_string();
            if !provider_approved {
                return Err(Error::ProviderNotApproved);
            }
            check_description(&description)?;
            if !period.contains(at.timestamp()) {
                return Err(SpecError::new(
                    "period",
                    "must be the month the alliance is founded in",
                )
                .into());
            }
            check_rule(&rule, |m| m == founder)?;
            return Ok(vec![E::AllianceFounded {
                founder,
                name,
                description,
                rule,
                sla,
                governance,
                period,
                at,
            }]);
        }

        let Some(s) = &self.state else {
            return Err(Error::NotFound);
        };
        // Once dissolved, only the bookkeeping of periods it counted in.
        let open = || {
            if s.dissolved_from.is_some() {
                Err(Error::Dissolved)
            } else {
                Ok(())
            }
        };
        let founder_only = |by: &Actor| {
            if provider(by)? == s.founder {
                Ok(())
            } else {
                Err(Error::NotPermitted)
            }
        };
        let member_only = |by: &Actor| -> Result<MemberId, AllianceError> {
            let who = provider(by)?;
            if s.is_current_member(who) {
                Ok(who.to_string())
            } else {
                Err(Error::NotAMember(who.to_string()))
            }
        };

        match command {
            C::Found { .. } => Err(Error::AlreadyFounded),
            C::AssignFarm { farm, at } => {
                open()?;
                match &s.farm {
                    Some(f) if *f == farm => Ok(vec![]),
                    Some(f) => Err(Error::FarmConflict { farm_id: f.farm_id }),
                    None if farm.farm_id == 0 || farm.twin_id == 0 => {
                        Err(SpecError::new("farm", "farm and twin ids start at 1").into())
                    }
                    None => Ok(vec![E::FarmAssigned {
                        farm_id: farm.farm_id,
                        twin_id: farm.twin_id,
                        account: farm.account,
                        at,
                    }]),
                }
            }
            C::Invite { by, invitee, at } => {
                open()?;
                founder_only(&by)?;
                if invitee.trim().is_empty() {
                    return Err(SpecError::new("invitee", "must not be blank").into());
                }
                if s.is_current_member(&invitee) {
                    return Err(Error::AlreadyMember(invitee));
                }
                if s.invitations.contains(&invitee) {
                    return Err(Error::AlreadyInvited(invitee));
                }
                Ok(vec![E::ProviderInvited {
                    by: by.subject,
                    invitee,
                    at,
                }])
            }
            C::AcceptInvitation { by, at } => {
                open()?;
                let who = provider(&by)?.to_string();
                if !s.invitations.contains(&who) {
                    return Err(Error::NoInvitation(who));
                }
                let now = period_of(at)?;
                // A member who left and has not gone yet (its leave takes
                // effect next period) rejoins from next period on.
                let period = match s.members.get(&who).and_then(|m| m.stints.last()) {
                    Some(Stint { until: Some(u), .. }) if *u > now => *u,
                    _ => now,
                };
                Ok(vec![E::InvitationAccepted {
                    member: who,
                    period,
                    at,
                }])
            }
            C::DeclineInvitation { by, at } => {
                open()?;
                let who = provider(&by)?.to_string();
                if !s.invitations.contains(&who) {
                    return Err(Error::NoInvitation(who));
                }
                Ok(vec![E::InvitationDeclined { invitee: who, at }])
            }
            C::Leave { by, at } => {
                open()?;
                let who = member_only(&by)?;
                if who == s.founder {
                    return Err(Error::FounderCannotLeave);
                }
                let effective_from = period_of(at)?.next();
                let mut events = vec![E::MemberLeft {
                    member: who.clone(),
                    effective_from,
                    at,
                }];
                for (node_id, cs) in &s.nodes {
                    if cs
                        .last()
                        .is_some_and(|c| c.member == who && c.stint.until.is_none())
                    {
                        events.push(E::NodeWithdrawn {
                            member: who.clone(),
                            node_id: *node_id,
                            effective_from,
                            at,
                        });
                    }
                }
                Ok(events)
            }
            C::Dissolve { by, at } => {
                open()?;
                founder_only(&by)?;
                Ok(vec![E::AllianceDissolved {
                    by: by.subject,
                    effective_from: period_of(at)?.next(),
                    at,
                }])
            }
            C::ContributeNode {
                by,
                node_id,
                farm_id,
                capacity,
                at,
            } => {
                open()?;
                let who = member_only(&by)?;
                if s.farm.is_none() {
                    return Err(Error::FarmNotAssigned);
                }
                if node_id == 0 || farm_id == 0 {
                    return Err(SpecError::new("node_id", "node and farm ids start at 1").into());
                }
                let counted_from = period_of(at)?;
                // Withdrawn but still counting this period: not yet free.
                let busy = s
                    .nodes
                    .get(&node_id)
                    .and_then(|cs| cs.last())
                    .is_some_and(|c| c.stint.until.is_none_or(|u| u > counted_from));
                if busy {
                    return Err(Error::NodeAlreadyContributed(node_id));
                }
                Ok(vec![E::NodeContributed {
                    member: who,
                    node_id,
                    farm_id,
                    capacity,
                    counted_from,
                    at,
                }])
            }
            C::WithdrawNode { by, node_id, at } => {
                open()?;
                let who = provider(&by)?;
                let Some(c) = s.open_contribution(node_id) else {
                    return Err(Error::NodeNotContributed(node_id));
                };
                if c.member != who {
                    return Err(Error::NotPermitted);
                }
                Ok(vec![E::NodeWithdrawn {
                    member: c.member.clone(),
                    node_id,
                    effective_from: period_of(at)?.next(),
                    at,
                }])
            }
            C::ChangeSharingRule { by, rule, at } => {
                open()?;
                if s.governance == Governance::CapacityMajority {
                    let who = member_only(&by)?;
                    check_rule(&rule, |m| s.is_current_member(m))?;
                    return governance::propose(s, who, ProposedChange::SharingRule(rule), at);
                }
                founder_only(&by)?;
                check_rule(&rule, |m| s.is_current_member(m))?;
                Ok(vec![E::SharingRuleChanged {
                    by: by.subject,
                    rule,
                    effective_from: period_of(at)?.next(),
                    at,
                }])
            }
            C::ChangeSla { by, sla, at } => {
                open()?;
                if s.governance == Governance::CapacityMajority {
                    let who = member_only(&by)?;
                    return governance::propose(s, who, ProposedChange::Sla(sla), at);
                }
                founder_only(&by)?;
                Ok(vec![E::SlaChanged {
                    by: by.subject,
                    sla,
                    effective_from: period_of(at)?.next(),
                    at,
                }])
            }
            C::Vote {
                by,
                proposal,
                approve,
                at,
            } => {
                open()?;
                if s.governance != Governance::CapacityMajority {
                    return Err(Error::WrongGovernance);
                }
                let who = member_only(&by)?;
                governance::vote(s, who, proposal, approve, at)
            }
            C::Settle { period, nodes, now } => periods::settle_period(s, period, nodes, now),
            C::RecordPayout {
                period,
                member,
                amount,
                to,
                transfer,
                at,
            } => {
                let Some(settled) = s.settlements.get(&period) else {
                    return Err(Error::NotSettled(period));
                };
                if transfer.trim().is_empty() {
                    return Err(SpecError::new("transfer", "must not be blank").into());
                }
                let share = settled.shares.get(&member).copied().unwrap_or(0);
                let recorded = s.payouts.get(&period).and_then(|p| p.get(&member));
                match recorded {
                    Some(p) if p.amount == amount && p.to == to && p.transfer == transfer => {
                        return Ok(vec![])
                    }
                    Some(_) => return Err(Error::PayoutConflict),
                    None => {}
                }
                if share == 0 || amount != share {
                    return Err(Error::PayoutMismatch { share, amount });
                }
                Ok(vec![E::PayoutSent {
                    period,
                    member,
                    amount,
                    to,
                    transfer,
                    at,
                }])
            }
            C::LinkPayoutAccount { by, account, at } => {
                let who = provider(&by)?;
                let Some(m) = s.members.get(who) else {
                    return Err(Error::NotAMember(who.to_string()));
                };
                if m.payout_account.as_ref() == Some(&account) {
                    return Ok(vec![]);
                }
                Ok(vec![E::PayoutAccountLinked {
                    member: who.to_string(),
                    account,
                    at,
                }])
            }
        }
    }

    /// Changes the state by one event. Never fails: events are facts.
    pub fn apply_event(&mut self, event: &AllianceEvent) {
        use AllianceEvent as E;
        if let E::AllianceFounded {
            founder,
            name,
            description,
            rule,
            sla,
            governance,
            period,
            ..
        } = event
        {
            self.state = Some(AllianceState {
                founder: founder.clone(),
                name: name.clone(),
                description: description.clone(),
                governance: *governance,
                founded_in: *period,
                farm: None,
                members: BTreeMap::from([(
                    founder.clone(),
                    Member {
                        stints: vec![Stint::open(*period)],
                        payout_account: None,
                    },
                )]),
                invitations: BTreeSet::new(),
                nodes: BTreeMap::new(),
                rules: vec![(*period, rule.clone())],
                slas: vec![(*period, sla.clone())],
                settlements: BTreeMap::new(),
                payouts: BTreeMap::new(),
                dissolved_from: None,
                proposals: BTreeMap::new(),
            });
            return;
        }
        let Some(s) = &mut self.state else {
            return;
        };
        match event {
            E::AllianceFounded { .. } => {}
            E::FarmAssigned {
                farm_id,
                twin_id,
                account,
                ..
            } => {
                s.farm = Some(AllianceFarm {
                    farm_id: *farm_id,
                    twin_id: *twin_id,
                    account: account.clone(),
                });
            }
            E::ProviderInvited { invitee, .. } => {
                s.invitations.insert(invitee.clone());
            }
            E::InvitationAccepted { member, period, .. } => {
                s.invitations.remove(member);
                let m = s.members.entry(member.clone()).or_insert(Member {
                    stints: vec![],
                    payout_account: None,
                });
                m.stints.push(Stint::open(*period));
            }
            E::InvitationDeclined { invitee, .. } => {
                s.invitations.remove(invitee);
            }
            E::MemberLeft {
                member,
                effective_from,
                ..
            } => {
                if let Some(stint) = s.members.get_mut(member).and_then(|m| m.stints.last_mut()) {
                    stint.until = Some(*effective_from);
                }
            }
            E::AllianceDissolved { effective_from, .. } => {
                s.dissolved_from = Some(*effective_from);
                s.invitations.clear();
            }
            E::NodeContributed {
                member,
                node_id,
                farm_id,
                capacity,
                counted_from,
                ..
            } => {
                s.nodes.entry(*node_id).or_default().push(Contribution {
                    member: member.clone(),
                    farm_id: *farm_id,
                    capacity: *capacity,
                    stint: Stint::open(*counted_from),
                });
            }
            E::NodeWithdrawn {
                node_id,
                effective_from,
                ..
            } => {
                if let Some(c) = s.nodes.get_mut(node_id).and_then(|cs| cs.last_mut()) {
                    c.stint.until = Some(*effective_from);
                }
            }
            E::SharingRuleChanged {
                rule,
                effective_from,
                ..
            } => s.rules.push((*effective_from, rule.clone())),
            E::SlaChanged {
                sla,
                effective_from,
                ..
            } => s.slas.push((*effective_from, sla.clone())),
            E::ChangeProposed {
                proposal,
                by,
                change,
                ..
            } => {
                s.proposals.insert(
                    *proposal,
                    Proposal {
                        by: by.clone(),
                        change: change.clone(),
                        votes: BTreeMap::new(),
                        decided: None,
                    },
                );
            }
            E::VoteCast {
                proposal,
                voter,
                approve,
                ..
            } => {
                if let Some(p) = s.proposals.get_mut(proposal) {
                    p.votes.insert(voter.clone(), *approve);
                }
            }
            E::ProposalDecided {
                proposal, accepted, ..
            } => {
                if let Some(p) = s.proposals.get_mut(proposal) {
                    p.decided = Some(*accepted);
                }
            }
            E::AllianceSettled {
                period, settlement, ..
            } => {
                s.settlements.insert(*period, settlement.clone());
            }
            E::PayoutSent {
                period,
                member,
                amount,
                to,
                transfer,
                ..
            } => {
                s.payouts.entry(*period).or_default().insert(
                    member.clone(),
                    Payout {
                        amount: *amount,
                        to: to.clone(),
                        transfer: transfer.clone(),
                    },
                );
            }
            E::PayoutAccountLinked {
                member, account, ..
            } => {
                if let Some(m) = s.members.get_mut(member) {
                    m.payout_account = Some(account.clone());
                }
            }
        }
    }
}

/// Checks a rule, and that fixed shares name only members.
fn check_rule(rule: &SharingRule, is_member: impl Fn(&str) -> bool) -> Result<(), AllianceError> {
    rule.validate()?;
    if let SharingRule::Fixed { shares } = rule {
        if let Some(m) = shares.keys().find(|m| !is_member(m)) {
            return Err(AllianceError::UnknownFixedMember(m.clone()));
        }
    }
    Ok(())
}

crate::event_sourced!(
    Alliance,
    "alliance",
    AllianceCommand,
    AllianceEvent,
    AllianceError
);
