//! [`CommandError`]: why a command was refused or could not run, typed so
//! that each caller maps it once: the API to a problem document, a worker
//! to "retry later" or "set aside". Every domain error maps here, variant by
//! variant, with no catch-all arm.

use cqrs_es::AggregateError;
use marketplace_domain::alliance::AllianceError;
use marketplace_domain::deployment::{DeploymentError, SpecError};
use marketplace_domain::node::NodeError;
use marketplace_domain::pricing::PricingPolicyError;
use marketplace_domain::provider::ProviderRequestError;
use marketplace_domain::user::UserError;
use marketplace_domain::wallet::WalletError;

use crate::stripe::PaymentsError;

/// Why a command did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The aggregate does not exist, or belongs to someone else (tenancy:
    /// a foreign id is indistinguishable from an unknown one).
    #[error("not found")]
    NotFound,
    /// The caller's role may not do this.
    #[error("forbidden")]
    Forbidden,
    /// The command itself is malformed or out of range.
    #[error("invalid: {detail}")]
    Invalid {
        /// What is wrong.
        detail: String,
        /// The field at fault, when one is.
        field: Option<String>,
    },
    /// A business rule refused it; `slug` names the rule.
    #[error("{slug}: {detail}")]
    Rule {
        /// The rule's stable name (`insufficient-balance`).
        slug: &'static str,
        /// What the rule says about this command.
        detail: String,
    },
    /// The aggregate is not at the version the caller expected, or another
    /// writer kept winning the race.
    #[error("version conflict: {0}")]
    VersionConflict(String),
    /// The command would create what already exists; `slug` names what
    /// (`already-exists`, `maintenance-exists`, `open-request-exists`).
    #[error("{slug}: {detail}")]
    Exists {
        /// The conflict's stable name.
        slug: &'static str,
        /// What exists.
        detail: String,
    },
    /// The Idempotency-Key was used before for a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// The command's Idempotency-Key was claimed by another request first
    /// (a retry, or a concurrent duplicate): nothing was written; the
    /// protocol then answers with what that request answered.
    #[error("idempotency key already taken")]
    IdempotencyKeyTaken,
    /// A request with this Idempotency-Key is still running.
    #[error("a request with this idempotency key is in progress")]
    IdempotencyInProgress,
    /// This marketplace is not configured for it (names the setting).
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    /// A dependency (the database, Stripe) could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Something that should not happen; the cause is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommandError {
    /// A spec error: `invalid-command` naming the field, or, for a rule
    /// across fields, that rule's problem.
    pub fn from_spec(e: &SpecError) -> Self {
        match e.rule {
            Some(slug) => CommandError::Rule {
                slug,
                detail: format!("{}: {}", e.field, e.reason),
            },
            None => CommandError::Invalid {
                detail: e.reason.clone(),
                field: Some(e.field.clone()),
            },
        }
    }

    /// Whether trying the same command again later may succeed; such an
    /// outcome is not kept as an Idempotency-Key's answer.
    pub fn is_transient(&self) -> bool {
        match self {
            CommandError::VersionConflict(_)
            | CommandError::IdempotencyInProgress
            | CommandError::IdempotencyKeyTaken
            | CommandError::NotConfigured(_)
            | CommandError::Unavailable(_)
            | CommandError::Internal(_) => true,
            CommandError::NotFound
            | CommandError::Forbidden
            | CommandError::Invalid { .. }
            | CommandError::Rule { .. }
            | CommandError::Exists { .. }
            | CommandError::IdempotencyKeyReused => false,
        }
    }

    /// A field-level validation failure.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        CommandError::Invalid {
            detail: detail.into(),
            field: Some(field.to_string()),
        }
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                CommandError::Unavailable(e.to_string())
            }
            other => CommandError::Internal(other.to_string()),
        }
    }
}

impl<E> From<AggregateError<E>> for CommandError
where
    E: std::error::Error,
    CommandError: From<E>,
{
    fn from(e: AggregateError<E>) -> Self {
        match e {
            AggregateError::UserError(e) => e.into(),
            AggregateError::AggregateConflict => {
                CommandError::VersionConflict("another command changed this resource first".into())
            }
            AggregateError::DatabaseConnectionError(e) => CommandError::Unavailable(e.to_string()),
            AggregateError::DeserializationError(e) => CommandError::Internal(e.to_string()),
            AggregateError::UnexpectedError(e) => CommandError::Internal(e.to_string()),
        }
    }
}

fn spec_invalid(e: &SpecError) -> CommandError {
    CommandError::from_spec(e)
}

fn unfieldable(e: &impl std::fmt::Display) -> CommandError {
    CommandError::Invalid {
        detail: e.to_string(),
        field: None,
    }
}

impl From<DeploymentError> for CommandError {
    fn from(e: DeploymentError) -> Self {
        match &e {
            DeploymentError::AlreadyExists => CommandError::Exists {
                slug: "already-exists",
                detail: e.to_string(),
            },
            // Tenancy: another user's deployment answers as if it did not exist.
            DeploymentError::NotFound | DeploymentError::NotPermitted => CommandError::NotFound,
            DeploymentError::InvalidSpec(spec) => spec_invalid(spec),
            DeploymentError::InvalidTransition { .. }
            | DeploymentError::WorkloadNotReady { .. }
            | DeploymentError::WorkloadsMismatch { .. }
            | DeploymentError::MissingReason
            | DeploymentError::ResizeUnchanged
            | DeploymentError::DiskShrink { .. }
            | DeploymentError::NotACluster
            | DeploymentError::GracePeriodNotElapsed { .. }
            | DeploymentError::CauseNotAllowed { .. }
            | DeploymentError::InvalidContractId
            | DeploymentError::NoStandby
            | DeploymentError::NodeTaken { .. }
            | DeploymentError::StandbySameFarm { .. }
            | DeploymentError::TextTooLong { .. } => unfieldable(&e),
        }
    }
}

impl From<ProviderRequestError> for CommandError {
    fn from(e: ProviderRequestError) -> Self {
        match &e {
            ProviderRequestError::NotFound => CommandError::NotFound,
            // Another provider's request answers as if it did not exist.
            ProviderRequestError::NotPermitted => CommandError::NotFound,
            ProviderRequestError::OpenRequestExists => CommandError::Exists {
                slug: "open-request-exists",
                detail: e.to_string(),
            },
            ProviderRequestError::AlreadyApproved => CommandError::Exists {
                slug: "already-approved",
                detail: e.to_string(),
            },
            ProviderRequestError::Invalid(spec) => spec_invalid(spec),
            ProviderRequestError::FarmMismatch { .. }
            | ProviderRequestError::InvalidTransition { .. } => unfieldable(&e),
        }
    }
}

impl From<NodeError> for CommandError {
    fn from(e: NodeError) -> Self {
        match &e {
            // A node of another provider's farm answers as if it did not exist.
            NodeError::NotFound | NodeError::NotPermitted | NodeError::MaintenanceNotFound => {
                CommandError::NotFound
            }
            NodeError::MaintenanceExists => CommandError::Exists {
                slug: "maintenance-exists",
                detail: e.to_string(),
            },
            NodeError::Invalid(spec) => spec_invalid(spec),
            NodeError::NodeMismatch { .. }
            | NodeError::MaintenanceInThePast
            | NodeError::MaintenanceEndsBeforeStart
            | NodeError::MaintenanceTooLong { .. }
            | NodeError::MaintenanceOverlap { .. }
            | NodeError::MaintenanceStarted => unfieldable(&e),
        }
    }
}

impl From<PricingPolicyError> for CommandError {
    fn from(e: PricingPolicyError) -> Self {
        match &e {
            PricingPolicyError::NotPermitted => CommandError::Forbidden,
            PricingPolicyError::InvalidPolicy(spec) => spec_invalid(spec),
            PricingPolicyError::PolicyUnchanged => unfieldable(&e),
        }
    }
}

impl From<marketplace_domain::tft_price::TftPriceError> for CommandError {
    fn from(e: marketplace_domain::tft_price::TftPriceError) -> Self {
        CommandError::Invalid {
            detail: e.to_string(),
            field: Some("price_musd".into()),
        }
    }
}

impl From<WalletError> for CommandError {
    fn from(e: WalletError) -> Self {
        let rule = |slug: &'static str, e: &WalletError| CommandError::Rule {
            slug,
            detail: e.to_string(),
        };
        let exists = |slug: &'static str, e: &WalletError| CommandError::Exists {
            slug,
            detail: e.to_string(),
        };
        match &e {
            WalletError::NotOpened => CommandError::NotFound,
            WalletError::AlreadyOpened => exists("already-exists", &e),
            WalletError::Invalid(spec) => spec_invalid(spec),
            WalletError::DuplicateChallenge => exists("duplicate-challenge", &e),
            WalletError::DuplicateTopUp => exists("duplicate-top-up", &e),
            WalletError::ChallengeNotFound => CommandError::NotFound,
            WalletError::ChallengeExpired { .. } => rule("challenge-expired", &e),
            WalletError::ChallengeUsed => rule("challenge-used", &e),
            WalletError::SignatureInvalid => rule("signature-invalid", &e),
            WalletError::UnknownPaymentIntent(_) | WalletError::UnknownCharge(_) => {
                rule("unknown-payment", &e)
            }
            WalletError::UnknownPaymentMethod(_) => CommandError::NotFound,
            // Retried by the Stripe worker: an invoice may arrive before
            // its subscription is recorded.
            WalletError::UnknownSubscription(_) => rule("unknown-subscription", &e),
            WalletError::AlreadySubscribed(_) => exists("already-subscribed", &e),
            WalletError::SubscriptionEnded(_) => rule("subscription-ended", &e),
            WalletError::AmountMismatch { .. } => rule("amount-mismatch", &e),
            WalletError::RefundExceedsPayment { .. } => rule("refund-exceeds-payment", &e),
            WalletError::InsufficientBalance { .. } => rule("insufficient-balance", &e),
            WalletError::IdConflict { .. } | WalletError::CustomerConflict(_) => {
                rule("id-conflict", &e)
            }
            WalletError::AutoTopUpNotConfigured => rule("auto-top-up-not-configured", &e),
            WalletError::AutoTopUpNotNeeded { .. } => rule("auto-top-up-not-needed", &e),
            WalletError::AutoTopUpPending => rule("auto-top-up-pending", &e),
            WalletError::MonthlyCapReached { .. } => rule("monthly-cap-reached", &e),
            WalletError::ChainAccountConflict { .. } => rule("chain-account-conflict", &e),
            WalletError::UnknownTopUp(_)
            | WalletError::TopUpNotCredited(_)
            | WalletError::ChainTransferNotStarted(_) => rule("chain-transfer-refused", &e),
        }
    }
}

impl From<AllianceError> for CommandError {
    fn from(e: AllianceError) -> Self {
        let rule = |slug: &'static str, e: &AllianceError| CommandError::Rule {
            slug,
            detail: e.to_string(),
        };
        let exists = |slug: &'static str, e: &AllianceError| CommandError::Exists {
            slug,
            detail: e.to_string(),
        };
        match &e {
            // Tenancy: a stranger to the alliance is told it does not exist.
            AllianceError::NotFound => CommandError::NotFound,
            AllianceError::AlreadyFounded => exists("already-exists", &e),
            AllianceError::ProviderNotApproved => rule("provider-not-approved", &e),
            AllianceError::NotPermitted => CommandError::Forbidden,
            AllianceError::Dissolved => rule("alliance-dissolved", &e),
            AllianceError::NotAMember(_) => rule("not-a-member", &e),
            AllianceError::AlreadyMember(_) => exists("already-member", &e),
            AllianceError::AlreadyInvited(_) => exists("already-invited", &e),
            AllianceError::NoInvitation(_) => rule("no-invitation", &e),
            AllianceError::FounderCannotLeave => rule("founder-cannot-leave", &e),
            AllianceError::FarmNotAssigned => rule("farm-not-assigned", &e),
            AllianceError::FarmConflict { .. } => rule("farm-conflict", &e),
            AllianceError::NodeAlreadyContributed(_) => exists("node-already-contributed", &e),
            AllianceError::NodeNotContributed(_) => rule("node-not-contributed", &e),
            AllianceError::UnknownFixedMember(_) => CommandError::Invalid {
                detail: e.to_string(),
                field: Some("rule.shares".into()),
            },
            AllianceError::PeriodNotOver(_) => rule("period-not-over", &e),
            AllianceError::AlreadySettled(_) => exists("already-settled", &e),
            AllianceError::OutOfOrder { .. } => rule("period-out-of-order", &e),
            AllianceError::NotActive(_) => rule("alliance-not-active", &e),
            AllianceError::NodeNotCounted(_) => rule("node-not-counted", &e),
            AllianceError::MissingNode(_) => rule("node-figures-missing", &e),
            AllianceError::AmountTooLarge => rule("amount-too-large", &e),
            AllianceError::Settlement(_) => rule("settlement-refused", &e),
            AllianceError::NotSettled(_) => rule("period-not-settled", &e),
            AllianceError::PayoutMismatch { .. } => rule("payout-mismatch", &e),
            AllianceError::PayoutConflict => rule("payout-conflict", &e),
            AllianceError::NoSuchProposal(_) => CommandError::NotFound,
            AllianceError::ProposalClosed(_) => rule("proposal-closed", &e),
            AllianceError::AlreadyVoted(_) => exists("already-voted", &e),
            AllianceError::WrongGovernance => rule("wrong-governance", &e),
            AllianceError::Invalid(spec) => spec_invalid(spec),
        }
    }
}

impl From<PaymentsError> for CommandError {
    fn from(e: PaymentsError) -> Self {
        match e {
            PaymentsError::Refused { code, message, .. } => CommandError::Rule {
                slug: "payment-refused",
                detail: format!("Stripe: {code}: {message}"),
            },
            PaymentsError::Unavailable(why) => CommandError::Unavailable(format!("Stripe: {why}")),
        }
    }
}

impl From<UserError> for CommandError {
    fn from(e: UserError) -> Self {
        let rule = |slug: &'static str| CommandError::Rule {
            slug,
            detail: e.to_string(),
        };
        match &e {
            UserError::NotFound => CommandError::NotFound,
            UserError::Invalid(spec) => spec_invalid(spec),
            UserError::NoContactEmail => rule("no-contact-email"),
            UserError::AlreadyVerified => rule("already-verified"),
            UserError::TooManyCodes => rule("too-many-verification-codes"),
            UserError::NoVerificationPending => rule("no-verification-pending"),
            UserError::CodeExpired => rule("verification-code-expired"),
            UserError::TooManyAttempts => rule("too-many-verification-attempts"),
        }
    }
}
