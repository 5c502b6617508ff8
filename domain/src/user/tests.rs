//! Given / when / then: every rule of the User aggregate.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::deployment::Country;
use crate::testing::Scenario;

impl Scenario for User {}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn register(email: Option<&str>, name: Option<&str>, at: DateTime<Utc>) -> UserCommand {
    UserCommand::Register {
        user_id: "alice".into(),
        email: email.map(str::to_string),
        name: name.map(str::to_string),
        at,
    }
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: "alice".into(),
        email: Some("alice@example.com".into()),
        name: Some("Alice".into()),
        at: t0(),
    }
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::new("contact_email", s).expect("valid")
}

fn contact_changed(to: &str) -> UserEvent {
    UserEvent::ContactEmailChanged {
        contact_email: Some(email(to)),
        at: t0(),
    }
}

const SALT: &str = "5a17";

fn started(code: &str, at: DateTime<Utc>) -> UserEvent {
    UserEvent::ContactEmailVerificationStarted {
        email: email("alice@work.example"),
        salt: SALT.into(),
        code_hash: code_hash(SALT, code),
        expires_at: at + Duration::minutes(15),
        at,
    }
}

fn start(code: &str, at: DateTime<Utc>) -> UserCommand {
    UserCommand::StartContactEmailVerification {
        salt: SALT.into(),
        code_hash: code_hash(SALT, code),
        expires_at: at + Duration::minutes(15),
        at,
    }
}

fn verify(code: &str, at: DateTime<Utc>) -> UserCommand {
    UserCommand::VerifyContactEmail {
        code: code.into(),
        at,
    }
}

fn update(patch: UserPatch) -> UserCommand {
    UserCommand::Update { patch, at: t0() }
}

#[test]
fn the_first_request_opens_the_user_from_its_claims() {
    User::given([])
        .when(register(Some(" alice@example.com "), Some("Alice"), t0()))
        .then_expect_events(vec![registered()]);
}

#[test]
fn the_same_claims_again_change_nothing() {
    User::given([registered()])
        .when(register(Some("alice@example.com"), Some("Alice"), t0()))
        .then_expect_no_events();
    // A token that leaves a claim out keeps what an earlier one said.
    User::given([registered()])
        .when(register(None, None, t0()))
        .then_expect_no_events();
}

#[test]
fn changed_claims_are_recorded() {
    User::given([registered()])
        .when(register(Some("alice@new.example"), None, t0()))
        .then_expect_events(vec![UserEvent::TokenClaimsChanged {
            email: Some("alice@new.example".into()),
            name: Some("Alice".into()),
            at: t0(),
        }]);
}

#[test]
fn blank_claims_are_not_kept() {
    User::given([])
        .when(register(Some("  "), Some("\u{7}"), t0()))
        .then_expect_events(vec![UserEvent::UserRegistered {
            user_id: "alice".into(),
            email: None,
            name: None,
            at: t0(),
        }]);
}

#[test]
fn nothing_but_registering_reaches_a_user_that_was_never_opened() {
    User::given([])
        .when(update(UserPatch::default()))
        .then_expect_error(UserError::NotFound);
    User::given([])
        .when(verify("123456", t0()))
        .then_expect_error(UserError::NotFound);
}

#[test]
fn a_profile_change_records_the_whole_profile() {
    let patch = UserPatch {
        display_name: Some(Some(ProfileText::new("display_name", "Al").expect("valid"))),
        country: Some(Some(CountryCode::new("be").expect("valid"))),
        ..UserPatch::default()
    };
    let after = User::given([registered()])
        .when(update(patch))
        .then_accepted();
    let s = after.state().expect("opened");
    assert_eq!(s.country.as_ref().map(CountryCode::as_str), Some("BE"));
    // Clearing one field keeps the others.
    after
        .when(update(UserPatch {
            display_name: Some(None),
            ..UserPatch::default()
        }))
        .then_expect_events(vec![UserEvent::ProfileUpdated {
            display_name: None,
            company: None,
            country: Some(CountryCode::new("BE").expect("valid")),
            at: t0(),
        }]);
}

#[test]
fn a_patch_that_changes_nothing_records_nothing() {
    User::given([registered(), contact_changed("alice@work.example")])
        .when(update(UserPatch {
            contact_email: Some(Some(email("Alice@Work.example"))),
            time_zone: Some(TimeZoneName::utc()),
            ..UserPatch::default()
        }))
        .then_expect_no_events();
}

#[test]
fn countries_are_iso_alpha_2_codes() {
    assert_eq!(CountryCode::new("us").expect("valid").as_str(), "US");
    for bad in ["Belgium", "XX", "B", "BEL", ""] {
        let e = CountryCode::new(bad).expect_err(bad);
        assert_eq!(e.field, "country");
    }
    let mut sorted = ISO_3166_ALPHA_2;
    sorted.sort_unstable();
    assert_eq!(
        sorted, ISO_3166_ALPHA_2,
        "binary search needs the list sorted"
    );
}

#[test]
fn time_zones_are_iana_names() {
    assert_eq!(
        TimeZoneName::new("Europe/Brussels")
            .expect("valid")
            .as_str(),
        "Europe/Brussels"
    );
    assert_eq!(
        TimeZoneName::new("UTC").expect("valid").tz(),
        chrono_tz::Tz::UTC
    );
    for bad in ["Europe/Atlantis", "CEST+2", "", "europe/brussels "] {
        assert_eq!(TimeZoneName::new(bad).expect_err(bad).field, "time_zone");
    }
}

#[test]
fn preferences_patch_per_kind_and_channel_and_default_to_on() {
    let patch = PrefsPatch::parse(&json!({
        "balance_low": { "email": false },
        "deployment_running": { "feed": false, "webhook": false }
    }))
    .expect("valid");
    let prefs = NotificationPrefs::default().patched(&patch);
    assert!(!prefs.enabled(NotificationKind::BalanceLow, Channel::Email));
    assert!(prefs.enabled(NotificationKind::BalanceLow, Channel::Feed));
    assert!(prefs.enabled(NotificationKind::GracePeriodStarted, Channel::Email));
    assert_eq!(
        serde_json::to_value(&prefs).expect("json"),
        json!({
            "balance_low": { "email": false },
            "deployment_running": { "feed": false, "webhook": false }
        })
    );
    // null is back to the default; a kind with nothing set disappears.
    let back = PrefsPatch::parse(&json!({ "balance_low": { "email": null } })).expect("valid");
    let prefs = prefs.patched(&back);
    assert_eq!(
        serde_json::to_value(&prefs).expect("json"),
        json!({ "deployment_running": { "feed": false, "webhook": false } })
    );
}

#[test]
fn unknown_kinds_channels_and_values_name_their_field() {
    for (patch, field) in [
        (
            json!({ "balance_high": { "email": false } }),
            "notification_prefs.balance_high",
        ),
        (
            json!({ "balance_low": { "sms": false } }),
            "notification_prefs.balance_low.sms",
        ),
        (
            json!({ "balance_low": { "email": "no" } }),
            "notification_prefs.balance_low.email",
        ),
        (
            json!({ "balance_low": true }),
            "notification_prefs.balance_low",
        ),
        (json!([]), "notification_prefs"),
    ] {
        assert_eq!(PrefsPatch::parse(&patch).expect_err("invalid").field, field);
    }
}

#[test]
fn settings_change_records_them_all() {
    let placement = Placement::new(
        Some(Country::new("Belgium").expect("valid")),
        None,
        true,
        false,
        9_500,
    )
    .expect("valid");
    let prefs =
        PrefsPatch::parse(&json!({ "maintenance_soon": { "email": false } })).expect("valid");
    User::given([registered()])
        .when(update(UserPatch {
            notification_prefs: Some(prefs.clone()),
            time_zone: Some(TimeZoneName::new("Europe/Brussels").expect("valid")),
            default_placement: Some(Some(placement.clone())),
            ..UserPatch::default()
        }))
        .then_expect_events(vec![UserEvent::SettingsUpdated {
            notification_prefs: NotificationPrefs::default().patched(&prefs),
            time_zone: TimeZoneName::new("Europe/Brussels").expect("valid"),
            default_placement: Some(placement),
            at: t0(),
        }]);
}

#[test]
fn a_code_needs_an_unverified_contact_email() {
    User::given([registered()])
        .when(start("123456", t0()))
        .then_expect_error(UserError::NoContactEmail);
    User::given([registered(), contact_changed("alice@work.example")])
        .when(start("123456", t0()))
        .then_expect_events(vec![started("123456", t0())]);
}

#[test]
fn the_right_code_verifies_the_contact_email() {
    let after = User::given([
        registered(),
        contact_changed("alice@work.example"),
        started("123456", t0()),
    ])
    .when(verify("123456", t0() + Duration::minutes(5)))
    .then_accepted();
    let s = after.state().expect("opened");
    assert!(s.contact_email_verified);
    assert_eq!(s.recipient(), Some("alice@work.example"));
    after
        .when(verify("123456", t0() + Duration::minutes(6)))
        .then_expect_error(UserError::AlreadyVerified);
    after
        .when(start("654321", t0()))
        .then_expect_error(UserError::AlreadyVerified);
}

#[test]
fn until_verified_mail_goes_to_the_token_email() {
    let user = User::given([registered(), contact_changed("alice@work.example")]);
    assert_eq!(
        user.state().expect("opened").recipient(),
        Some("alice@example.com")
    );
}

#[test]
fn a_wrong_code_costs_an_attempt_and_the_last_one_locks_the_code() {
    let mut user = User::given([
        registered(),
        contact_changed("alice@work.example"),
        started("123456", t0()),
    ]);
    for left in (0..CODE_ATTEMPTS).rev() {
        let then = user.when(verify("000000", t0()));
        user = then.then_accepted();
        assert_eq!(
            user.state()
                .and_then(|s| s.pending.as_ref())
                .map(|p| p.attempts_left),
            Some(left)
        );
    }
    user.when(verify("123456", t0()))
        .then_expect_error(UserError::TooManyAttempts);
}

#[test]
fn an_expired_code_is_refused() {
    User::given([
        registered(),
        contact_changed("alice@work.example"),
        started("123456", t0()),
    ])
    .when(verify("123456", t0() + Duration::minutes(15)))
    .then_expect_error(UserError::CodeExpired);
}

#[test]
fn a_malformed_code_costs_nothing() {
    let user = User::given([
        registered(),
        contact_changed("alice@work.example"),
        started("123456", t0()),
    ]);
    match user.when(verify("12345a", t0())).then_refused() {
        UserError::Invalid(e) => assert_eq!(e.field, "code"),
        other => panic!("expected an invalid code, got {other:?}"),
    }
    user.when(verify("999999", t0())).then_expect_events(vec![
        UserEvent::ContactEmailVerificationFailed {
            attempts_left: CODE_ATTEMPTS - 1,
            at: t0(),
        },
    ]);
}

#[test]
fn a_new_contact_email_needs_verifying_again() {
    let after = User::given([
        registered(),
        contact_changed("alice@work.example"),
        started("123456", t0()),
        UserEvent::ContactEmailVerified {
            email: email("alice@work.example"),
            at: t0(),
        },
        contact_changed("alice@home.example"),
    ]);
    let s = after.state().expect("opened");
    assert!(!s.contact_email_verified && s.pending.is_none());
    assert_eq!(s.recipient(), Some("alice@example.com"));
    after
        .when(verify("123456", t0()))
        .then_expect_error(UserError::NoVerificationPending);
}

#[test]
fn codes_are_limited_per_hour() {
    let mut events = vec![registered(), contact_changed("alice@work.example")];
    for i in 0..CODES_PER_HOUR as i64 {
        events.push(started("123456", t0() + Duration::minutes(i)));
    }
    let user = User::given(events);
    user.when(start("123456", t0() + Duration::minutes(30)))
        .then_expect_error(UserError::TooManyCodes);
    // An hour after the first, one may be sent again.
    user.when(start("123456", t0() + Duration::minutes(61)))
        .then_accepted();
}

#[test]
fn code_hashes_depend_on_salt_and_code() {
    assert_ne!(code_hash("a", "123456"), code_hash("b", "123456"));
    assert_ne!(code_hash("a", "123456"), code_hash("a", "123457"));
    assert_eq!(code_hash("a", "123456").len(), 64);
    assert!(same_hash(&code_hash("a", "1"), &code_hash("a", "1")));
    assert!(!same_hash("ab", "abc"));
}
