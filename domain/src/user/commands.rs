//! What may be asked of a user. Each command carries everything its
//! decision needs, "now" included; the verification code's salt and hash
//! are drawn and computed by the caller.

use chrono::{DateTime, Utc};

use super::values::*;

/// A change to the profile and settings: each field is `None` to leave it
/// as it is; for the clearable ones, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    /// The name shown for the user.
    pub display_name: Option<Option<ProfileText>>,
    /// The user's company.
    pub company: Option<Option<ProfileText>>,
    /// The user's country.
    pub country: Option<Option<CountryCode>>,
    /// Where the user wants mail; a new address needs verifying.
    pub contact_email: Option<Option<EmailAddress>>,
    /// Channels turned on or off per kind of notification.
    pub notification_prefs: Option<PrefsPatch>,
    /// The zone dates in messages are written in.
    pub time_zone: Option<TimeZoneName>,
    /// The placement a new deployment gets when its request names none.
    pub default_placement: Option<Option<Placement>>,
}

/// A command to the User aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// A token for this subject was seen: open the user from its claims,
    /// or record claims that changed since. Nothing happens for claims
    /// already recorded, so any number of first requests open it once.
    Register {
        /// The token's `sub` (the aggregate id).
        user_id: String,
        /// The token's `email` claim, when present.
        email: Option<String>,
        /// The token's `name` claim, when present.
        name: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user changes the profile or settings (`PATCH /v1/me`).
    Update {
        /// What changes.
        patch: UserPatch,
        /// When.
        at: DateTime<Utc>,
    },
    /// A code was drawn to send to the contact email: remember its salted
    /// hash until it expires.
    StartContactEmailVerification {
        /// Random salt, hex.
        salt: String,
        /// [`code_hash`] of the salt and the code.
        code_hash: String,
        /// Until when the code is accepted.
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user sends the code back.
    VerifyContactEmail {
        /// What the user typed.
        code: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl UserCommand {
    /// The command's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            UserCommand::Register { .. } => "register",
            UserCommand::Update { .. } => "update",
            UserCommand::StartContactEmailVerification { .. } => "start_verification",
            UserCommand::VerifyContactEmail { .. } => "verify",
        }
    }
}
