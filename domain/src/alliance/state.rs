//! What an alliance remembers: its members and their stints, each node's
//! contributions, the rule and SLA per period, settlements and payouts;
//! and the questions decisions ask of it ("who counts in this period?").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::settlement::Settlement;
use super::values::*;

/// A span of periods `[from, until)`; `until` is `None` while open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stint {
    /// The first period.
    pub from: Period,
    /// The first period after it, once ended.
    pub until: Option<Period>,
}

impl Stint {
    pub(super) fn open(from: Period) -> Self {
        Self { from, until: None }
    }

    /// Whether the stint covers a period.
    pub fn covers(self, p: Period) -> bool {
        self.from <= p && self.until.is_none_or(|u| p < u)
    }
}

/// A member: when it was one, and where its payouts go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its memberships, oldest first; the last is open while it is a member.
    pub stints: Vec<Stint>,
    /// The account its payouts go to, once linked.
    pub payout_account: Option<ChainAccount>,
}

impl Member {
    /// Whether it is a member now (it has not left).
    pub fn is_current(&self) -> bool {
        self.stints.last().is_some_and(|s| s.until.is_none())
    }
    fn covers(&self, p: Period) -> bool {
        self.stints.iter().any(|s| s.covers(p))
    }
}

/// One contribution of a node: who, from which farm, with what capacity,
/// and the periods it counts in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The contributor.
    pub member: MemberId,
    /// The member's farm it came from.
    pub farm_id: u32,
    /// Its capacity.
    pub capacity: Capacity,
    /// The periods it counts in.
    pub stint: Stint,
}

/// A payout recorded for a member's share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// What was sent.
    pub amount: u128,
    /// Where.
    pub to: ChainAccount,
    /// The chain transfer.
    pub transfer: String,
}

/// A change put to the vote, and its votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposer.
    pub by: MemberId,
    /// The change.
    pub change: ProposedChange,
    /// Each voter's vote: approve or not.
    pub votes: BTreeMap<MemberId, bool>,
    /// Whether it passed, once decided.
    pub decided: Option<bool>,
}

/// Everything a decision about an alliance needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllianceState {
    /// The founder's subject.
    pub founder: MemberId,
    /// The name.
    pub name: AllianceName,
    /// The description.
    pub description: String,
    /// How it decides.
    pub governance: Governance,
    /// Its first period.
    pub founded_in: Period,
    /// Its chain farm, once created.
    pub farm: Option<AllianceFarm>,
    /// Members, present and past.
    pub members: BTreeMap<MemberId, Member>,
    /// Providers invited and not yet answered.
    pub invitations: BTreeSet<MemberId>,
    /// Every contribution of each node, oldest first.
    pub nodes: BTreeMap<u32, Vec<Contribution>>,
    /// Each sharing rule and the first period it applies to, oldest first.
    pub rules: Vec<(Period, SharingRule)>,
    /// Each SLA and the first period it applies to, oldest first.
    pub slas: Vec<(Period, Sla)>,
    /// Each settled period's settlement.
    pub settlements: BTreeMap<Period, Settlement>,
    /// Payouts recorded, per settled period and member.
    pub payouts: BTreeMap<Period, BTreeMap<MemberId, Payout>>,
    /// The first period the alliance no longer counts, once dissolved.
    pub dissolved_from: Option<Period>,
    /// Changes put to the vote, by number from 1.
    #[serde(default)]
    pub proposals: BTreeMap<u32, Proposal>,
}

impl AllianceState {
    /// The rule that applies to a period.
    pub fn rule_for(&self, p: Period) -> Option<&SharingRule> {
        self.rules
            .iter()
            .rev()
            .find(|(from, _)| *from <= p)
            .map(|(_, r)| r)
    }

    /// The SLA that applies to a period.
    pub fn sla_for(&self, p: Period) -> Option<&Sla> {
        self.slas
            .iter()
            .rev()
            .find(|(from, _)| *from <= p)
            .map(|(_, s)| s)
    }

    /// Whether the alliance still counts in a period.
    pub fn active_in(&self, p: Period) -> bool {
        p >= self.founded_in && self.dissolved_from.is_none_or(|d| p < d)
    }

    /// The members in a period.
    pub fn members_in(&self, p: Period) -> BTreeSet<MemberId> {
        if !self.active_in(p) {
            return BTreeSet::new();
        }
        self.members
            .iter()
            .filter(|(_, m)| m.covers(p))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The nodes counted in a period, with their contribution then.
    pub fn nodes_in(&self, p: Period) -> BTreeMap<u32, &Contribution> {
        if !self.active_in(p) {
            return BTreeMap::new();
        }
        self.nodes
            .iter()
            .filter_map(|(id, cs)| cs.iter().find(|c| c.stint.covers(p)).map(|c| (*id, c)))
            .collect()
    }

    /// The node's open contribution (not withdrawn), if any.
    pub fn open_contribution(&self, node_id: u32) -> Option<&Contribution> {
        self.nodes
            .get(&node_id)
            .and_then(|cs| cs.last())
            .filter(|c| c.stint.until.is_none())
    }

    /// The last period settled.
    pub fn last_settled(&self) -> Option<Period> {
        self.settlements.keys().next_back().copied()
    }

    /// The period to settle next.
    pub fn next_to_settle(&self) -> Period {
        self.last_settled().map_or(self.founded_in, Period::next)
    }

    /// Each current member's vote weight: the CU + SU of its nodes
    /// contributed and not withdrawn, or one each while none are.
    pub fn voting_weights(&self) -> BTreeMap<MemberId, u128> {
        let mut w: BTreeMap<MemberId, u128> = self
            .members
            .iter()
            .filter(|(_, m)| m.is_current())
            .map(|(id, _)| (id.clone(), 0))
            .collect();
        for cs in self.nodes.values() {
            if let Some(c) = cs.last().filter(|c| c.stint.until.is_none()) {
                if let Some(v) = w.get_mut(&c.member) {
                    *v += c.capacity.units();
                }
            }
        }
        if w.values().all(|&v| v == 0) {
            w.values_mut().for_each(|v| *v = 1);
        }
        w
    }

    pub(super) fn is_current_member(&self, subject: &str) -> bool {
        self.members.get(subject).is_some_and(Member::is_current)
    }
}
