//! Value objects of a user's profile and settings. Constructors validate;
//! deserialisation does not validate again: events are facts and must load
//! even if a rule later changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use crate::deployment::{Placement, SpecError};

/// Longest e-mail address (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// An e-mail address. Only its shape is checked: one `@`, a local part,
/// and a domain with a dot; whether it receives mail is what the
/// verification code finds out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Validates an address for `field`; surrounding whitespace is dropped.
    pub fn new(field: &str, email: &str) -> Result<Self, SpecError> {
        let email = email.trim();
        let shape_ok = match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && domain.split('.').all(|label| !label.is_empty())
            }
            None => false,
        };
        if !shape_ok
            || email.len() > MAX_EMAIL
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(SpecError::new(
                field,
                "must be an e-mail address of at most 254 characters",
            ));
        }
        Ok(Self(email.to_string()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same mailbox, whatever the case of its letters.
    pub fn same_as(&self, other: &EmailAddress) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

/// A short free text of the profile (display name, company): 1 to 100
/// characters once trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileText(String);

impl ProfileText {
    /// Validates the text for `field`.
    pub fn new(field: &str, text: &str) -> Result<Self, SpecError> {
        let text = text.trim();
        if !(1..=100).contains(&text.chars().count()) || text.chars().any(char::is_control) {
            return Err(SpecError::new(
                field,
                "must be 1 to 100 characters, not blank, without control characters",
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every ISO 3166-1 alpha-2 code assigned to a country or territory.
pub const ISO_3166_ALPHA_2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// A country as an ISO 3166-1 alpha-2 code, upper case (`BE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CountryCode(String);

impl CountryCode {
    /// Validates a code, in either case.
    pub fn new(code: &str) -> Result<Self, SpecError> {
        let upper = code.trim().to_ascii_uppercase();
        if ISO_3166_ALPHA_2.binary_search(&upper.as_str()).is_err() {
            return Err(SpecError::new(
                "country",
                format!("{code:?} is not an ISO 3166-1 alpha-2 country code (such as BE or US)"),
            ));
        }
        Ok(Self(upper))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name (`Europe/Brussels`, `UTC`), as the tz database
/// spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Validates a name against the tz database.
    pub fn new(name: &str) -> Result<Self, SpecError> {
        match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => Ok(Self(tz.name().to_string())),
            Err(_) => Err(SpecError::new(
                "time_zone",
                format!("{name:?} is not an IANA time zone name (such as Europe/Brussels or UTC)"),
            )),
        }
    }

    /// Every name [`TimeZoneName::new`] takes, as the tz database spells it.
    pub fn all() -> impl Iterator<Item = &'static str> {
        chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
    }

    /// The zone messages are dated in when the user chose none.
    pub fn utc() -> Self {
        Self("UTC".to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The zone, for converting times.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0.parse().unwrap_or(chrono_tz::Tz::UTC)
    }
}

impl Default for TimeZoneName {
    fn default() -> Self {
        Self::utc()
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The wallet's runway fell below a threshold.
    BalanceLow,
    /// An automatic top-up's charge failed.
    AutoTopUpFailed,
    /// A deployment's contract entered its grace period.
    GracePeriodStarted,
    /// A deployment's grace period ended (it was topped up in time).
    GracePeriodEnded,
    /// A deployment was deleted because its grace period ran out.
    DeletedOutOfFunds,
    /// A deployment is running.
    DeploymentRunning,
    /// A deployment failed.
    DeploymentFailed,
    /// Maintenance was scheduled on a node the user runs on.
    MaintenanceAnnounced,
    /// That maintenance starts within 24 hours.
    MaintenanceSoon,
    /// An operator answered a provider's request.
    ProviderRequestAnswered,
    /// An alliance's monthly settlement was paid.
    AllianceSettlementPaid,
    /// A recurring top-up's subscription payment failed.
    SubscriptionPaymentFailed,
}

impl NotificationKind {
    /// Every kind.
    pub const ALL: [NotificationKind; 12] = [
        NotificationKind::BalanceLow,
        NotificationKind::AutoTopUpFailed,
        NotificationKind::GracePeriodStarted,
        NotificationKind::GracePeriodEnded,
        NotificationKind::DeletedOutOfFunds,
        NotificationKind::DeploymentRunning,
        NotificationKind::DeploymentFailed,
        NotificationKind::MaintenanceAnnounced,
        NotificationKind::MaintenanceSoon,
        NotificationKind::ProviderRequestAnswered,
        NotificationKind::AllianceSettlementPaid,
        NotificationKind::SubscriptionPaymentFailed,
    ];

    /// The kind's name, as in the preferences' JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::BalanceLow => "balance_low",
            NotificationKind::AutoTopUpFailed => "auto_top_up_failed",
            NotificationKind::GracePeriodStarted => "grace_period_started",
            NotificationKind::GracePeriodEnded => "grace_period_ended",
            NotificationKind::DeletedOutOfFunds => "deleted_out_of_funds",
            NotificationKind::DeploymentRunning => "deployment_running",
            NotificationKind::DeploymentFailed => "deployment_failed",
            NotificationKind::MaintenanceAnnounced => "maintenance_announced",
            NotificationKind::MaintenanceSoon => "maintenance_soon",
            NotificationKind::ProviderRequestAnswered => "provider_request_answered",
            NotificationKind::AllianceSettlementPaid => "alliance_settlement_paid",
            NotificationKind::SubscriptionPaymentFailed => "subscription_payment_failed",
        }
    }

    /// Parses a kind's name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The in-app feed (and its live stream).
    Feed,
    /// An email to the user's address.
    Email,
    /// The user's registered webhooks.
    Webhook,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::Feed, Channel::Email, Channel::Webhook];

    /// The channel's name, as in the preferences' JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Feed => "feed",
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }

    /// Parses a channel's name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// One kind's channels as the user set them; an unset channel is on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPrefs {
    /// The in-app feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<bool>,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<bool>,
    /// Webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<bool>,
}

impl ChannelPrefs {
    fn slot(&mut self, channel: Channel) -> &mut Option<bool> {
        match channel {
            Channel::Feed => &mut self.feed,
            Channel::Email => &mut self.email,
            Channel::Webhook => &mut self.webhook,
        }
    }

    fn get(&self, channel: Channel) -> Option<bool> {
        match channel {
            Channel::Feed => self.feed,
            Channel::Email => self.email,
            Channel::Webhook => self.webhook,
        }
    }

    fn is_empty(&self) -> bool {
        self.feed.is_none() && self.email.is_none() && self.webhook.is_none()
    }
}

/// Which channels each kind of notification goes to:
/// `{"<kind>": {"feed": bool, "email": bool, "webhook": bool}}`, only what
/// the user set; a missing kind or channel is on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotificationPrefs(BTreeMap<NotificationKind, ChannelPrefs>);

impl NotificationPrefs {
    /// Whether a notification of `kind` goes to `channel`.
    pub fn enabled(&self, kind: NotificationKind, channel: Channel) -> bool {
        self.0
            .get(&kind)
            .and_then(|c| c.get(channel))
            .unwrap_or(true)
    }

    /// These preferences with a patch's settings laid over them.
    pub fn patched(&self, patch: &PrefsPatch) -> NotificationPrefs {
        let mut out = self.clone();
        for &(kind, channel, value) in &patch.0 {
            let prefs = out.0.entry(kind).or_default();
            *prefs.slot(channel) = value;
            if prefs.is_empty() {
                out.0.remove(&kind);
            }
        }
        out
    }
}

/// A change to the notification preferences, read from
/// `{"<kind>": {"<channel>": true | false | null}}`: each channel named is
/// turned on or off, or back to its default (`null`, on); the rest stay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefsPatch(Vec<(NotificationKind, Channel, Option<bool>)>);

impl PrefsPatch {
    /// Reads a patch, naming the first unknown kind, channel or non-boolean
    /// value as the field at fault (`notification_prefs.balance_low.sms`).
    pub fn parse(value: &Value) -> Result<Self, SpecError> {
        let field = "notification_prefs";
        let kinds = value.as_object().ok_or_else(|| {
            SpecError::new(
                field,
                "must be an object of kinds, each an object of channels",
            )
        })?;
        let mut out = Vec::new();
        for (kind_name, channels) in kinds {
            let at = format!("{field}.{kind_name}");
            let kind = NotificationKind::parse(kind_name).ok_or_else(|| {
                SpecError::new(
                    &at,
                    format!(
                        "unknown notification kind; known: {}",
                        NotificationKind::ALL
                            .map(NotificationKind::as_str)
                            .join(", ")
                    ),
                )
            })?;
            let channels = channels.as_object().ok_or_else(|| {
                SpecError::new(&at, "must be an object of channels (feed, email, webhook)")
            })?;
            for (channel_name, setting) in channels {
                let at = format!("{at}.{channel_name}");
                let channel = Channel::parse(channel_name).ok_or_else(|| {
                    SpecError::new(&at, "unknown channel; known: feed, email, webhook")
                })?;
                let setting = match setting {
                    Value::Bool(b) => Some(*b),
                    Value::Null => None,
                    _ => return Err(SpecError::new(&at, "must be true, false or null")),
                };
                out.push((kind, channel, setting));
            }
        }
        Ok(Self(out))
    }
}

/// How many digits a verification code has.
pub const CODE_DIGITS: usize = 6;

/// A code's salted hash, as the verification event keeps it: the hex
/// SHA-256 of the salt, a colon and the code. The code itself is never stored.
pub fn code_hash(salt: &str, code: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(b":");
    hasher.update(code.as_bytes());
    hex_lower(&hasher.finalize())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two hashes are equal, comparing every byte whatever the first
/// difference (no early exit to time).
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks a code's shape: exactly [`CODE_DIGITS`] ASCII digits.
pub fn check_code(code: &str) -> Result<(), SpecError> {
    if code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(SpecError::new("code", "must be the 6 digits sent by email"))
    }
}
