//! Why an alliance command is refused.

use super::settlement::SettlementError;
use super::values::*;

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AllianceError {
    /// A command other than founding for an alliance never founded.
    #[error("no such alliance")]
    NotFound,
    /// Founding an alliance that exists.
    #[error("this alliance is already founded")]
    AlreadyFounded,
    /// Only providers whose request is approved found alliances.
    #[error("the founder's provider request is not approved")]
    ProviderNotApproved,
    /// The actor may not do this (wrong role, not the founder, not the invitee).
    #[error("not permitted")]
    NotPermitted,
    /// The alliance is dissolved.
    #[error("the alliance is dissolved")]
    Dissolved,
    /// The command needs a current member.
    #[error("{0} is not a member")]
    NotAMember(MemberId),
    /// Inviting a current member.
    #[error("{0} is already a member")]
    AlreadyMember(MemberId),
    /// Inviting twice.
    #[error("{0} is already invited")]
    AlreadyInvited(MemberId),
    /// Answering an invitation that was not made.
    #[error("no invitation for {0}")]
    NoInvitation(MemberId),
    /// The founder dissolves instead of leaving.
    #[error("the founder cannot leave; dissolve the alliance instead")]
    FounderCannotLeave,
    /// Nodes move into the alliance's farm, which must exist first.
    #[error("the alliance has no chain farm yet")]
    FarmNotAssigned,
    /// A different farm than the one recorded.
    #[error("the alliance's farm is already {farm_id}")]
    FarmConflict {
        /// The farm recorded.
        farm_id: u32,
    },
    /// The node is already contributed (and not withdrawn).
    #[error("node {0} is already contributed")]
    NodeAlreadyContributed(u32),
    /// The node is not contributed, or already withdrawn.
    #[error("node {0} is not contributed")]
    NodeNotContributed(u32),
    /// Fixed shares name someone who is not a current member.
    #[error("fixed shares name {0}, who is not a member")]
    UnknownFixedMember(MemberId),
    /// Settling a period that is not over.
    #[error("period {0} is not over")]
    PeriodNotOver(Period),
    /// Settling a period twice.
    #[error("period {0} is already settled")]
    AlreadySettled(Period),
    /// Periods are settled in order, from the founding one on.
    #[error("period {expected} must be settled first")]
    OutOfOrder {
        /// The period to settle next.
        expected: Period,
    },
    /// A period after the alliance was dissolved.
    #[error("the alliance does not count in period {0}")]
    NotActive(Period),
    /// Settlement figures for a node not counted in the period.
    #[error("node {0} is not counted in the period")]
    NodeNotCounted(u32),
    /// A counted node without figures.
    #[error("node {0} is counted in the period but has no figures")]
    MissingNode(u32),
    /// Settlement amounts past `u64` base units, which events cannot hold.
    #[error("amounts above 18446744073709551615 base units")]
    AmountTooLarge,
    /// The settlement could not be computed.
    #[error("settlement: {0}")]
    Settlement(#[from] SettlementError),
    /// A payout for a period not settled.
    #[error("period {0} is not settled")]
    NotSettled(Period),
    /// A payout of another amount than the member's share.
    #[error("the share is {share}, not {amount}")]
    PayoutMismatch {
        /// The member's share.
        share: u128,
        /// The amount recorded.
        amount: u128,
    },
    /// A second, different payout for the same share.
    #[error("a different payout is already recorded for this share")]
    PayoutConflict,
    /// Voting on a proposal never made.
    #[error("no proposal {0}")]
    NoSuchProposal(u32),
    /// Voting on a proposal already decided.
    #[error("proposal {0} is decided")]
    ProposalClosed(u32),
    /// Voting twice.
    #[error("already voted on proposal {0}")]
    AlreadyVoted(u32),
    /// The command belongs to the other governance.
    #[error("not how this alliance decides")]
    WrongGovernance,
    /// A field is out of range or blank.
    #[error("invalid: {0}")]
    Invalid(#[from] SpecError),
}
