//! What happened to an alliance. Event payloads are versioned by
//! [`EVENT_VERSION`]; an old payload is upcast on read, never rewritten.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::settlement::{NodeFigures, Settlement};
use super::values::*;

/// The payload version every alliance event is written with today.
pub const EVENT_VERSION: &str = "1";

/// An event of the Alliance aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AllianceEvent {
    /// A provider founded the alliance and is its first member.
    AllianceFounded {
        /// The founder's subject.
        founder: MemberId,
        /// The name.
        name: AllianceName,
        /// The description.
        description: String,
        /// The sharing rule, from `period` on.
        rule: SharingRule,
        /// The SLA, from `period` on.
        sla: Sla,
        /// How it decides.
        governance: Governance,
        /// The month it was founded in: its first period.
        period: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// The alliance's chain farm, twin and account were created.
    FarmAssigned {
        /// The farm on TFChain.
        farm_id: u32,
        /// Its twin.
        twin_id: u32,
        /// The account the chain pays the farm's share to.
        account: ChainAccount,
        /// When.
        at: DateTime<Utc>,
    },
    /// A provider was invited.
    ProviderInvited {
        /// Who invited.
        by: MemberId,
        /// The invited provider.
        invitee: MemberId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The invited provider joined, a member from `period` on.
    InvitationAccepted {
        /// The new member.
        member: MemberId,
        /// The first period it is a member in.
        period: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// The invited provider declined.
    InvitationDeclined {
        /// The invitee.
        invitee: MemberId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member left; it is a member until `effective_from`.
    MemberLeft {
        /// The member.
        member: MemberId,
        /// The first period it is no longer a member in.
        effective_from: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// The founder dissolved the alliance; its last period is the one
    /// before `effective_from`.
    AllianceDissolved {
        /// The founder.
        by: MemberId,
        /// The first period the alliance no longer counts.
        effective_from: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member contributed a node, counted from `counted_from` on.
    NodeContributed {
        /// The contributor.
        member: MemberId,
        /// The grid node.
        node_id: u32,
        /// The member's farm it came from.
        farm_id: u32,
        /// Its capacity.
        capacity: Capacity,
        /// The first period it counts in.
        counted_from: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// A node was withdrawn (by its contributor, or as its contributor
    /// left); it counts until `effective_from`.
    NodeWithdrawn {
        /// The contributor.
        member: MemberId,
        /// The node.
        node_id: u32,
        /// The first period it no longer counts in.
        effective_from: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// The sharing rule changes from `effective_from` on.
    SharingRuleChanged {
        /// Who changed it.
        by: MemberId,
        /// The new rule.
        rule: SharingRule,
        /// The first period it applies to.
        effective_from: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// The SLA changes from `effective_from` on.
    SlaChanged {
        /// Who changed it.
        by: MemberId,
        /// The new SLA.
        sla: Sla,
        /// The first period it applies to.
        effective_from: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member put a rule or SLA change to the vote.
    ChangeProposed {
        /// The proposal's number, from 1.
        proposal: u32,
        /// The proposer.
        by: MemberId,
        /// The change.
        change: ProposedChange,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member voted on a proposal.
    VoteCast {
        /// The proposal.
        proposal: u32,
        /// The voter.
        voter: MemberId,
        /// Approve or reject.
        approve: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A proposal passed (the change event follows) or failed.
    ProposalDecided {
        /// The proposal.
        proposal: u32,
        /// Whether it passed.
        accepted: bool,
        /// The capacity that approved.
        approving: u128,
        /// The capacity that rejected.
        rejecting: u128,
        /// All current members' capacity then.
        total: u128,
        /// When.
        at: DateTime<Utc>,
    },
    /// A period was settled: what came in, the credits, every member's
    /// share and what is carried to the next period.
    AllianceSettled {
        /// The period.
        period: Period,
        /// The figures settled on, per counted node.
        nodes: Vec<NodeFigures>,
        /// The result.
        settlement: Settlement,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member's share of a settled period was sent on chain.
    PayoutSent {
        /// The settled period.
        period: Period,
        /// The member.
        member: MemberId,
        /// What was sent (base units).
        amount: u128,
        /// The account it went to.
        to: ChainAccount,
        /// The chain transfer.
        transfer: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member linked the account its payouts go to.
    PayoutAccountLinked {
        /// The member.
        member: MemberId,
        /// The account.
        account: ChainAccount,
        /// When.
        at: DateTime<Utc>,
    },
}

impl AllianceEvent {
    /// When the event happened, by the clock of whoever issued the command.
    pub fn at(&self) -> DateTime<Utc> {
        use AllianceEvent as E;
        match self {
            E::AllianceFounded { at, .. }
            | E::FarmAssigned { at, .. }
            | E::ProviderInvited { at, .. }
            | E::InvitationAccepted { at, .. }
            | E::InvitationDeclined { at, .. }
            | E::MemberLeft { at, .. }
            | E::AllianceDissolved { at, .. }
            | E::NodeContributed { at, .. }
            | E::NodeWithdrawn { at, .. }
            | E::SharingRuleChanged { at, .. }
            | E::SlaChanged { at, .. }
            | E::ChangeProposed { at, .. }
            | E::VoteCast { at, .. }
            | E::ProposalDecided { at, .. }
            | E::AllianceSettled { at, .. }
            | E::PayoutSent { at, .. }
            | E::PayoutAccountLinked { at, .. } => *at,
        }
    }
}

impl DomainEvent for AllianceEvent {
    fn event_type(&self) -> String {
        use AllianceEvent as E;
        match self {
            E::AllianceFounded { .. } => "AllianceFounded",
            E::FarmAssigned { .. } => "FarmAssigned",
            E::ProviderInvited { .. } => "ProviderInvited",
            E::InvitationAccepted { .. } => "InvitationAccepted",
            E::InvitationDeclined { .. } => "InvitationDeclined",
            E::MemberLeft { .. } => "MemberLeft",
            E::AllianceDissolved { .. } => "AllianceDissolved",
            E::NodeContributed { .. } => "NodeContributed",
            E::NodeWithdrawn { .. } => "NodeWithdrawn",
            E::SharingRuleChanged { .. } => "SharingRuleChanged",
            E::SlaChanged { .. } => "SlaChanged",
            E::ChangeProposed { .. } => "ChangeProposed",
            E::VoteCast { .. } => "VoteCast",
            E::ProposalDecided { .. } => "ProposalDecided",
            E::AllianceSettled { .. } => "AllianceSettled",
            E::PayoutSent { .. } => "PayoutSent",
            E::PayoutAccountLinked { .. } => "PayoutAccountLinked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
