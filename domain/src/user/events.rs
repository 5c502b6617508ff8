//! What happened to a user. Event payloads are versioned by
//! [`EVENT_VERSION`]; an old payload is upcast on read, never rewritten.
//! Each event carries the new values in full, so a view sets columns
//! without folding.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::values::*;

/// The payload version every user event is written with today.
pub const EVENT_VERSION: &str = "1";

/// An event of the User aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// The user's first authenticated request opened the user.
    UserRegistered {
        /// The token's `sub`.
        user_id: String,
        /// The token's `email` claim, if it had one.
        email: Option<String>,
        /// The token's `name` claim, if it had one.
        name: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A later token carried another email or name: the new values.
    TokenClaimsChanged {
        /// The email the user is known by now.
        email: Option<String>,
        /// The name the user is known by now.
        name: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The profile changed: all of it, as it is now.
    ProfileUpdated {
        /// The name shown for the user.
        display_name: Option<ProfileText>,
        /// The user's company.
        company: Option<ProfileText>,
        /// The user's country.
        country: Option<CountryCode>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The contact email changed (or was removed); it is unverified, and a
    /// code sent to the previous one no longer counts.
    ContactEmailChanged {
        /// The new address.
        contact_email: Option<EmailAddress>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The settings changed: all of them, as they are now.
    SettingsUpdated {
        /// Channels per kind of notification, as set.
        notification_prefs: NotificationPrefs,
        /// The zone dates in messages are written in.
        time_zone: TimeZoneName,
        /// The placement a new deployment gets when its request names none.
        default_placement: Option<Placement>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A code was sent to the contact email; this replaces any earlier one.
    ContactEmailVerificationStarted {
        /// The address the code went to.
        email: EmailAddress,
        /// The salt, hex.
        salt: String,
        /// The code's salted hash ([`code_hash`]).
        code_hash: String,
        /// Until when it is accepted.
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A wrong code was sent back.
    ContactEmailVerificationFailed {
        /// Attempts the pending code still has.
        attempts_left: u8,
        /// When.
        at: DateTime<Utc>,
    },
    /// The right code came back: the contact email is proved.
    ContactEmailVerified {
        /// The address proved.
        email: EmailAddress,
        /// When.
        at: DateTime<Utc>,
    },
}

impl UserEvent {
    /// When the event happened, by the clock of whoever issued the command.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            UserEvent::UserRegistered { at, .. }
            | UserEvent::TokenClaimsChanged { at, .. }
            | UserEvent::ProfileUpdated { at, .. }
            | UserEvent::ContactEmailChanged { at, .. }
            | UserEvent::SettingsUpdated { at, .. }
            | UserEvent::ContactEmailVerificationStarted { at, .. }
            | UserEvent::ContactEmailVerificationFailed { at, .. }
            | UserEvent::ContactEmailVerified { at, .. } => *at,
        }
    }
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::TokenClaimsChanged { .. } => "TokenClaimsChanged",
            UserEvent::ProfileUpdated { .. } => "ProfileUpdated",
            UserEvent::ContactEmailChanged { .. } => "ContactEmailChanged",
            UserEvent::SettingsUpdated { .. } => "SettingsUpdated",
            UserEvent::ContactEmailVerificationStarted { .. } => "ContactEmailVerificationStarted",
            UserEvent::ContactEmailVerificationFailed { .. } => "ContactEmailVerificationFailed",
            UserEvent::ContactEmailVerified { .. } => "ContactEmailVerified",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
