//! The user's state, its decisions and how events change it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::commands::{UserCommand, UserPatch};
use super::events::UserEvent;
use super::values::*;

/// Wrong codes a sent code survives; the next guess needs a new code.
pub const CODE_ATTEMPTS: u8 = 5;
/// Codes that may be sent to a user in any hour.
pub const CODES_PER_HOUR: usize = 5;
/// Longest `name` claim kept, in characters.
const MAX_NAME: usize = 200;

/// A code sent and not yet used up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingVerification {
    /// The address it went to.
    pub email: EmailAddress,
    /// Its salt, hex.
    pub salt: String,
    /// Its salted hash.
    pub code_hash: String,
    /// Until when it is accepted.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes it still survives.
    pub attempts_left: u8,
}

/// Everything the user's decisions need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    /// The token subject (the aggregate id).
    pub user_id: String,
    /// The token's email claim.
    pub email: Option<String>,
    /// The token's name claim.
    pub name: Option<String>,
    /// The name shown for the user.
    pub display_name: Option<ProfileText>,
    /// The user's company.
    pub company: Option<ProfileText>,
    /// The user's country.
    pub country: Option<CountryCode>,
    /// Where the user wants mail.
    pub contact_email: Option<EmailAddress>,
    /// Whether a code sent to `contact_email` came back.
    pub contact_email_verified: bool,
    /// Channels per kind of notification, as set.
    pub notification_prefs: NotificationPrefs,
    /// The zone dates in messages are written in.
    pub time_zone: TimeZoneName,
    /// The placement a new deployment gets when its request names none.
    pub default_placement: Option<Placement>,
    /// The code last sent, until it is used up or superseded.
    pub pending: Option<PendingVerification>,
    /// When codes were sent within the hour before the latest one.
    pub codes_sent: Vec<DateTime<Utc>>,
    /// When the user was opened.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl UserState {
    /// Where a notification to this user goes: the contact email once
    /// verified, else the token's email.
    pub fn recipient(&self) -> Option<&str> {
        match &self.contact_email {
            Some(c) if self.contact_email_verified => Some(c.as_str()),
            _ => self.email.as_deref(),
        }
    }
}

/// The User aggregate of one subject: `None` until the first request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    state: Option<UserState>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    /// No such user (it opens on its first request).
    #[error("no such user")]
    NotFound,
    /// A field is malformed or out of range.
    #[error("invalid: {0}")]
    Invalid(#[from] SpecError),
    /// A code was asked for without a contact email to send it to.
    #[error("set a contact email first")]
    NoContactEmail,
    /// The contact email is verified already.
    #[error("the contact email is already verified")]
    AlreadyVerified,
    /// Too many codes were sent within the hour.
    #[error("at most {CODES_PER_HOUR} codes are sent in an hour; try again later")]
    TooManyCodes,
    /// A code came back but none is pending.
    #[error("no verification code is pending; ask for one first")]
    NoVerificationPending,
    /// The pending code expired.
    #[error("the code expired; ask for a new one")]
    CodeExpired,
    /// The pending code took too many wrong guesses.
    #[error("too many wrong codes; ask for a new one")]
    TooManyAttempts,
}

/// A claim as kept: trimmed, without control characters, `None` if blank
/// (or, for an email, longer than an address can be).
fn claim(value: Option<&str>, max: usize) -> Option<String> {
    let cleaned: String = value?.trim().chars().filter(|c| !c.is_control()).collect();
    if cleaned.is_empty() || cleaned.chars().count() > max {
        return None;
    }
    Some(cleaned)
}

impl User {
    /// The user, once opened.
    pub fn state(&self) -> Option<&UserState> {
        self.state.as_ref()
    }

    /// Decides what a command does: the events, or why not.
    pub fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        use UserCommand as C;
        use UserEvent as E;
        if let C::Register {
            user_id,
            email,
            name,
            at,
        } = command
        {
            let email = claim(email.as_deref(), MAX_EMAIL);
            let name = claim(name.as_deref(), MAX_NAME);
            let Some(s) = &self.state else {
                return Ok(vec![E::UserRegistered {
                    user_id,
                    email,
                    name,
                    at,
                }]);
            };
            // A claim a token leaves out keeps what an earlier one said.
            let email = email.or_else(|| s.email.clone());
            let name = name.or_else(|| s.name.clone());
            if email == s.email && name == s.name {
                return Ok(vec![]);
            }
            return Ok(vec![E::TokenClaimsChanged { email, name, at }]);
        }
        let s = self.state.as_ref().ok_or(UserError::NotFound)?;
        match command {
            C::Register { .. } => Ok(vec![]),
            C::Update { patch, at } => Ok(Self::update(s, patch, at)),
            C::StartContactEmailVerification {
                salt,
                code_hash,
                expires_at,
                at,
            } => {
                let email = s.contact_email.clone().ok_or(UserError::NoContactEmail)?;
                if s.contact_email_verified {
                    return Err(UserError::AlreadyVerified);
                }
                let hour_ago = at - Duration::hours(1);
                if s.codes_sent.iter().filter(|t| **t > hour_ago).count() >= CODES_PER_HOUR {
                    return Err(UserError::TooManyCodes);
                }
                if salt.is_empty() || code_hash.is_empty() {
                    return Err(SpecError::new("code", "a code needs a salt and a hash").into());
                }
                if expires_at <= at {
                    return Err(SpecError::new("expires_at", "a code must expire later").into());
                }
                Ok(vec![E::ContactEmailVerificationStarted {
                    email,
                    salt,
                    code_hash,
                    expires_at,
                    at,
                }])
            }
            C::VerifyContactEmail { code, at } => {
                check_code(&code)?;
                let Some(p) = &s.pending else {
                    return Err(if s.contact_email_verified {
                        UserError::AlreadyVerified
                    } else {
                        UserError::NoVerificationPending
                    });
                };
                if at >= p.expires_at {
                    return Err(UserError::CodeExpired);
                }
                if p.attempts_left == 0 {
                    return Err(UserError::TooManyAttempts);
                }
                if same_hash(&code_hash(&p.salt, &code), &p.code_hash) {
                    Ok(vec![E::ContactEmailVerified {
                        email: p.email.clone(),
                        at,
                    }])
                } else {
                    Ok(vec![E::ContactEmailVerificationFailed {
                        attempts_left: p.attempts_left - 1,
                        at,
                    }])
                }
            }
        }
    }

    /// The events of a profile and settings change: one per part that
    /// changes, none for a patch that changes nothing.
    fn update(s: &UserState, patch: UserPatch, at: DateTime<Utc>) -> Vec<UserEvent> {
        let mut events = Vec::new();
        let display_name = patch.display_name.unwrap_or_else(|| s.display_name.clone());
        let company = patch.company.unwrap_or_else(|| s.company.clone());
        let country = patch.country.unwrap_or_else(|| s.country.clone());
        if (&display_name, &company, &country) != (&s.display_name, &s.company, &s.country) {
            events.push(UserEvent::ProfileUpdated {
                display_name,
                company,
                country,
                at,
            });
        }
        if let Some(contact_email) = patch.contact_email {
            let same = match (&contact_email, &s.contact_email) {
                (Some(new), Some(old)) => new.same_as(old),
                (None, None) => true,
                _ => false,
            };
            if !same {
                events.push(UserEvent::ContactEmailChanged { contact_email, at });
            }
        }
        let notification_prefs = match &patch.notification_prefs {
            Some(p) => s.notification_prefs.patched(p),
            None => s.notification_prefs.clone(),
        };
        let time_zone = patch.time_zone.unwrap_or_else(|| s.time_zone.clone());
        let default_placement = patch
            .default_placement
            .unwrap_or_else(|| s.default_placement.clone());
        if (&notification_prefs, &time_zone, &default_placement)
            != (&s.notification_prefs, &s.time_zone, &s.default_placement)
        {
            events.push(UserEvent::SettingsUpdated {
                notification_prefs,
                time_zone,
                default_placement,
                at,
            });
        }
        events
    }

    /// Changes the state by one event. Never fails: events are facts.
    pub fn apply_event(&mut self, event: &UserEvent) {
        use UserEvent as E;
        if let E::UserRegistered {
            user_id,
            email,
            name,
            at,
        } = event
        {
            self.state = Some(UserState {
                user_id: user_id.clone(),
                email: email.clone(),
                name: name.clone(),
                display_name: None,
                company: None,
                country: None,
                contact_email: None,
                contact_email_verified: false,
                notification_prefs: NotificationPrefs::default(),
                time_zone: TimeZoneName::utc(),
                default_placement: None,
                pending: None,
                codes_sent: Vec::new(),
                created_at: *at,
                updated_at: *at,
            });
            return;
        }
        let Some(s) = &mut self.state else {
            return;
        };
        s.updated_at = event.at();
        match event {
            E::UserRegistered { .. } => {}
            E::TokenClaimsChanged { email, name, .. } => {
                s.email = email.clone();
                s.name = name.clone();
            }
            E::ProfileUpdated {
                display_name,
                company,
                country,
                ..
            } => {
                s.display_name = display_name.clone();
                s.company = company.clone();
                s.country = country.clone();
            }
            E::ContactEmailChanged { contact_email, .. } => {
                s.contact_email = contact_email.clone();
                s.contact_email_verified = false;
                s.pending = None;
            }
            E::SettingsUpdated {
                notification_prefs,
                time_zone,
                default_placement,
                ..
            } => {
                s.notification_prefs = notification_prefs.clone();
                s.time_zone = time_zone.clone();
                s.default_placement = default_placement.clone();
            }
            E::ContactEmailVerificationStarted {
                email,
                salt,
                code_hash,
                expires_at,
                at,
            } => {
                s.pending = Some(PendingVerification {
                    email: email.clone(),
                    salt: salt.clone(),
                    code_hash: code_hash.clone(),
                    expires_at: *expires_at,
                    attempts_left: CODE_ATTEMPTS,
                });
                let hour_ago = *at - Duration::hours(1);
                s.codes_sent.retain(|t| *t > hour_ago);
                s.codes_sent.push(*at);
            }
            E::ContactEmailVerificationFailed { attempts_left, .. } => {
                if let Some(p) = &mut s.pending {
                    p.attempts_left = *attempts_left;
                }
            }
            E::ContactEmailVerified { email, .. } => {
                s.contact_email = Some(email.clone());
                s.contact_email_verified = true;
                s.pending = None;
            }
        }
    }
}

crate::event_sourced!(User, "user", UserCommand, UserEvent, UserError);
