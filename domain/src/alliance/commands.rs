//! What may be asked of an alliance. Each command carries everything its
//! decision needs from outside, "now" included: the app's checks (the
//! founder's approval, who owns a node's farm, a node's capacity), the
//! chain's figures (income, bills, uptime) and the time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::values::*;
use crate::actor::Actor;

/// One counted node's figures for a settlement, as the app read them from
/// the chain; the aggregate adds who contributed it and its capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIncome {
    /// The grid node.
    pub node_id: u32,
    /// What the chain paid the alliance's farm for it in the period
    /// (TFT base units).
    pub income: u128,
    /// Its uptime in the period (basis points), by
    /// [`measure_uptime_bps`](super::measure_uptime_bps).
    pub uptime_bps: u16,
    /// What each user (subject) was billed on it in the period.
    pub billed: BTreeMap<UserId, u128>,
}

/// A command to the Alliance aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum AllianceCommand {
    /// A provider founds an alliance and becomes its first member.
    Found {
        /// The founding provider (a `cloud-provider`).
        by: Actor,
        /// Whether the founder's provider request is approved (the app's check).
        provider_approved: bool,
        /// The name.
        name: AllianceName,
        /// What the alliance offers; at most 2,000 characters.
        description: String,
        /// How income is shared. Fixed shares may list only the founder.
        rule: SharingRule,
        /// The service level.
        sla: Sla,
        /// How it decides.
        governance: Governance,
        /// The month it is founded in, which must hold `at`.
        period: Period,
        /// When.
        at: DateTime<Utc>,
    },
    /// The app created the alliance's chain farm, twin and account.
    AssignFarm {
        /// What it created.
        farm: AllianceFarm,
        /// When.
        at: DateTime<Utc>,
    },
    /// The founder invites a provider.
    Invite {
        /// The founder.
        by: Actor,
        /// The invited provider's subject.
        invitee: MemberId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The invited provider joins.
    AcceptInvitation {
        /// The invitee.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// The invited provider declines.
    DeclineInvitation {
        /// The invitee.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member (not the founder) leaves at the end of the current period,
    /// withdrawing its nodes then.
    Leave {
        /// The member.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// The founder dissolves the alliance at the end of the current period.
    Dissolve {
        /// The founder.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member contributes a node of its own farm.
    ContributeNode {
        /// The member.
        by: Actor,
        /// The grid node.
        node_id: u32,
        /// The member's farm that owns the node (the app's check).
        farm_id: u32,
        /// The node's capacity.
        capacity: Capacity,
        /// When.
        at: DateTime<Utc>,
    },
    /// The contributor withdraws a node at the end of the current period.
    WithdrawNode {
        /// The contributing member.
        by: Actor,
        /// The node.
        node_id: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The founder changes the sharing rule from the next period on; under
    /// capacity-majority governance, a member proposes it.
    ChangeSharingRule {
        /// The founder.
        by: Actor,
        /// The new rule; fixed shares list current members only.
        rule: SharingRule,
        /// When.
        at: DateTime<Utc>,
    },
    /// The founder changes the SLA from the next period on; under
    /// capacity-majority governance, a member proposes it.
    ChangeSla {
        /// The founder.
        by: Actor,
        /// The new SLA.
        sla: Sla,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member votes on a proposal (capacity-majority governance).
    Vote {
        /// The member.
        by: Actor,
        /// The proposal.
        proposal: u32,
        /// Approve or reject.
        approve: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// Settles a period that is over: one entry per node counted in it.
    Settle {
        /// The period.
        period: Period,
        /// Every counted node's figures, each once.
        nodes: Vec<NodeIncome>,
        /// Now.
        now: DateTime<Utc>,
    },
    /// The payout worker sent a member's share of a settled period.
    RecordPayout {
        /// The settled period.
        period: Period,
        /// The member paid.
        member: MemberId,
        /// What was sent: the member's whole share (base units).
        amount: u128,
        /// The account it was sent to.
        to: ChainAccount,
        /// The chain transfer (block and event, or transaction hash); not blank.
        transfer: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member links the account its payouts go to (the app checked its
    /// signed challenge).
    LinkPayoutAccount {
        /// The member (present or past).
        by: Actor,
        /// The account.
        account: ChainAccount,
        /// When.
        at: DateTime<Utc>,
    },
}

impl AllianceCommand {
    /// The command's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            AllianceCommand::Found { .. } => "found",
            AllianceCommand::AssignFarm { .. } => "assign_farm",
            AllianceCommand::Invite { .. } => "invite",
            AllianceCommand::AcceptInvitation { .. } => "accept_invitation",
            AllianceCommand::DeclineInvitation { .. } => "decline_invitation",
            AllianceCommand::Leave { .. } => "leave",
            AllianceCommand::Dissolve { .. } => "dissolve",
            AllianceCommand::ContributeNode { .. } => "contribute_node",
            AllianceCommand::WithdrawNode { .. } => "withdraw_node",
            AllianceCommand::ChangeSharingRule { .. } => "change_sharing_rule",
            AllianceCommand::ChangeSla { .. } => "change_sla",
            AllianceCommand::Vote { .. } => "vote",
            AllianceCommand::Settle { .. } => "settle",
            AllianceCommand::RecordPayout { .. } => "record_payout",
            AllianceCommand::LinkPayoutAccount { .. } => "link_payout_account",
        }
    }
}
