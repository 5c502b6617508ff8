//! Given / when / then: every rule of the ProviderRequest aggregate.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::actor::{Actor, Role};
use crate::testing::{Scenario, Then};

impl Scenario for ProviderRequest {}

/// A refusal for one invalid field: which field matters here, not the
/// message it was refused with.
trait ThenInvalid {
    fn then_expect_invalid(self, field: &str);
}

impl ThenInvalid for Then<'_, ProviderRequest> {
    #[track_caller]
    fn then_expect_invalid(self, field: &str) {
        match self.then_refused() {
            ProviderRequestError::Invalid(e) => assert_eq!(e.field, field),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn farmer() -> Actor {
    Actor::new("farmer", Role::CloudProvider)
}
fn other_farmer() -> Actor {
    Actor::new("someone-else", Role::CloudProvider)
}
fn operator() -> Actor {
    Actor::new("ops", Role::CloudOperator)
}
fn user() -> Actor {
    Actor::new("farmer", Role::CloudUser)
}

const FARM: u32 = 7;

fn submit_by(provider: &str, at: DateTime<Utc>) -> ProviderRequestCommand {
    ProviderRequestCommand::Submit {
        provider: provider.into(),
        company: CompanyName::new("Acme Farms").expect("valid"),
        contact: ContactEmail::new("ops@acme.example").expect("valid"),
        farm_id: FARM,
        node_ids: NodeIds::new(vec![11, 12]).expect("valid"),
        country: Country::new("Belgium").expect("valid"),
        message: Some("two nodes in Ghent".into()),
        at,
    }
}

fn submit() -> ProviderRequestCommand {
    submit_by("farmer", t0())
}

fn submitted_by(provider: &str, round: u32, at: DateTime<Utc>) -> ProviderRequestEvent {
    ProviderRequestEvent::ProviderRequestSubmitted {
        provider: provider.into(),
        company: CompanyName::new("Acme Farms").expect("valid"),
        contact: ContactEmail::new("ops@acme.example").expect("valid"),
        farm_id: FARM,
        node_ids: NodeIds::new(vec![11, 12]).expect("valid"),
        country: Country::new("Belgium").expect("valid"),
        message: Some("two nodes in Ghent".into()),
        round,
        at,
    }
}

fn submitted() -> ProviderRequestEvent {
    submitted_by("farmer", 1, t0())
}

fn rejected(reason: &str) -> ProviderRequestEvent {
    ProviderRequestEvent::ProviderRequestRejected {
        by: operator(),
        reason: reason.into(),
        at: t0(),
    }
}

fn asked() -> ProviderRequestEvent {
    ProviderRequestEvent::InformationRequested {
        by: operator(),
        question: "Which datacenter?".into(),
        at: t0(),
    }
}

fn approved() -> ProviderRequestEvent {
    ProviderRequestEvent::ProviderRequestApproved {
        by: operator(),
        note: None,
        at: t0(),
    }
}

fn withdrawn() -> ProviderRequestEvent {
    ProviderRequestEvent::ProviderRequestWithdrawn {
        by: farmer(),
        at: t0(),
    }
}

fn approve(by: Actor) -> ProviderRequestCommand {
    ProviderRequestCommand::Approve {
        by,
        note: Some("welcome".into()),
        at: t0(),
    }
}

fn reject(by: Actor, reason: &str) -> ProviderRequestCommand {
    ProviderRequestCommand::Reject {
        by,
        reason: reason.into(),
        at: t0(),
    }
}

fn ask(by: Actor, question: &str) -> ProviderRequestCommand {
    ProviderRequestCommand::RequestInformation {
        by,
        question: question.into(),
        at: t0(),
    }
}

fn answer(by: Actor, answer: &str) -> ProviderRequestCommand {
    ProviderRequestCommand::Answer {
        by,
        answer: answer.into(),
        at: t0(),
    }
}

fn withdraw(by: Actor) -> ProviderRequestCommand {
    ProviderRequestCommand::Withdraw { by, at: t0() }
}

fn status_after(events: Vec<ProviderRequestEvent>) -> Status {
    ProviderRequest::given(events)
        .state()
        .expect("submitted")
        .status
}

// ---- submit ----

#[test]
fn a_first_submission_is_round_one() {
    ProviderRequest::given(vec![])
        .when(submit())
        .then_expect_events(vec![submitted()]);
    let r = ProviderRequest::given(vec![submitted()]);
    let s = r.state().expect("submitted");
    assert_eq!(s.status, Status::Submitted);
    assert_eq!(s.round, 1);
    assert_eq!(s.farm_id, FARM);
    assert_eq!(s.provider, "farmer");
}

#[test]
fn a_farm_has_at_most_one_open_request() {
    ProviderRequest::given(vec![submitted()])
        .when(submit())
        .then_expect_error(ProviderRequestError::OpenRequestExists);
    ProviderRequest::given(vec![submitted(), asked()])
        .when(submit())
        .then_expect_error(ProviderRequestError::OpenRequestExists);
}

#[test]
fn an_approved_farm_cannot_apply_again() {
    ProviderRequest::given(vec![submitted(), approved()])
        .when(submit())
        .then_expect_error(ProviderRequestError::AlreadyApproved);
}

#[test]
fn re_submission_after_rejection_makes_round_two() {
    let later = t0() + Duration::days(3);
    let r = ProviderRequest::given(vec![submitted(), rejected("no SLA")]);
    r.when(submit_by("farmer", later))
        .then_expect_events(vec![submitted_by("farmer", 2, later)]);
    let r = ProviderRequest::given(vec![
        submitted(),
        rejected("no SLA"),
        submitted_by("farmer", 2, later),
    ]);
    let s = r.state().expect("submitted");
    assert_eq!((s.round, s.status), (2, Status::Submitted));
    assert_eq!(s.submitted_at, later);
    assert_eq!(
        s.last_reason.as_deref(),
        Some("no SLA"),
        "the reviewer still sees why the last round failed"
    );
}

#[test]
fn re_submission_after_withdrawal_makes_a_new_round() {
    ProviderRequest::given(vec![submitted(), withdrawn()])
        .when(submit())
        .then_expect_events(vec![submitted_by("farmer", 2, t0())]);
}

#[test]
fn a_new_owner_may_apply_once_the_last_request_is_closed() {
    let r = ProviderRequest::given(vec![submitted(), rejected("no SLA")]);
    r.when(submit_by("new-owner", t0()))
        .then_expect_events(vec![submitted_by("new-owner", 2, t0())]);
    let r = ProviderRequest::given(vec![submitted(), withdrawn()]);
    r.when(submit_by("new-owner", t0()))
        .then_expect_events(vec![submitted_by("new-owner", 2, t0())]);
    ProviderRequest::given(vec![submitted()])
        .when(submit_by("new-owner", t0()))
        .then_expect_error(ProviderRequestError::OpenRequestExists);
}

#[test]
fn a_re_submission_must_name_the_same_farm() {
    let mut cmd = submit();
    if let ProviderRequestCommand::Submit { farm_id, .. } = &mut cmd {
        *farm_id = FARM + 1;
    }
    ProviderRequest::given(vec![submitted(), rejected("no")])
        .when(cmd)
        .then_expect_error(ProviderRequestError::FarmMismatch {
            expected: FARM,
            got: FARM + 1,
        });
}

#[test]
fn a_submission_needs_a_real_farm_and_a_short_message() {
    let mut cmd = submit();
    if let ProviderRequestCommand::Submit { farm_id, .. } = &mut cmd {
        *farm_id = 0;
    }
    ProviderRequest::given(vec![])
        .when(cmd)
        .then_expect_invalid("farm_id");

    let mut cmd = submit();
    if let ProviderRequestCommand::Submit { message, .. } = &mut cmd {
        *message = Some("x".repeat(2_001));
    }
    ProviderRequest::given(vec![])
        .when(cmd)
        .then_expect_invalid("message");
}

// ---- review: operator only ----

#[test]
fn an_operator_approves_a_submitted_request() {
    ProviderRequest::given(vec![submitted()])
        .when(approve(operator()))
        .then_expect_events(vec![ProviderRequestEvent::ProviderRequestApproved {
            by: operator(),
            note: Some("welcome".into()),
            at: t0(),
        }]);
    assert_eq!(
        status_after(vec![submitted(), approved()]),
        Status::Approved
    );
}

#[test]
fn an_operator_may_decide_while_information_is_requested() {
    let r = ProviderRequest::given(vec![submitted(), asked()]);
    assert!(r.decide(approve(operator())).is_ok());
    r.when(reject(operator(), "no answer"))
        .then_expect_events(vec![rejected("no answer")]);
}

#[test]
fn only_operators_review() {
    let r = ProviderRequest::given(vec![submitted()]);
    for who in [farmer(), other_farmer(), user()] {
        r.when(approve(who.clone()))
            .then_expect_error(ProviderRequestError::NotPermitted);
        r.when(reject(who.clone(), "x"))
            .then_expect_error(ProviderRequestError::NotPermitted);
        r.when(ask(who, "x"))
            .then_expect_error(ProviderRequestError::NotPermitted);
    }
}

#[test]
fn an_operator_rejects_with_a_reason() {
    let r = ProviderRequest::given(vec![submitted()]);
    r.when(reject(operator(), "no SLA"))
        .then_expect_events(vec![rejected("no SLA")]);
    r.when(reject(operator(), "   "))
        .then_expect_invalid("reason");
    r.when(reject(operator(), &"x".repeat(2_001)))
        .then_expect_invalid("reason");
    let r = ProviderRequest::given(vec![submitted(), rejected("no SLA")]);
    let s = r.state().expect("submitted");
    assert_eq!(s.status, Status::Rejected);
    assert_eq!(s.last_reason.as_deref(), Some("no SLA"));
}

#[test]
fn an_operator_asks_a_question() {
    let r = ProviderRequest::given(vec![submitted()]);
    r.when(ask(operator(), "Which datacenter?"))
        .then_expect_events(vec![asked()]);
    r.when(ask(operator(), "")).then_expect_invalid("question");
    let r = ProviderRequest::given(vec![submitted(), asked()]);
    let s = r.state().expect("submitted");
    assert_eq!(s.status, Status::InformationRequested);
    assert_eq!(s.last_question.as_deref(), Some("Which datacenter?"));
}

#[test]
fn information_is_asked_only_of_a_submitted_request() {
    ProviderRequest::given(vec![submitted(), asked()])
        .when(ask(operator(), "again?"))
        .then_expect_error(ProviderRequestError::InvalidTransition {
            command: "request_information",
            status: Status::InformationRequested,
        });
}

#[test]
fn a_closed_request_is_not_reviewed() {
    let closed = [
        (approved(), Status::Approved),
        (rejected("no"), Status::Rejected),
        (withdrawn(), Status::Withdrawn),
    ];
    for (event, status) in closed {
        let r = ProviderRequest::given(vec![submitted(), event]);
        r.when(approve(operator()))
            .then_expect_error(ProviderRequestError::InvalidTransition {
                command: "approve",
                status,
            });
        r.when(reject(operator(), "no")).then_expect_error(
            ProviderRequestError::InvalidTransition {
                command: "reject",
                status,
            },
        );
        r.when(ask(operator(), "?"))
            .then_expect_error(ProviderRequestError::InvalidTransition {
                command: "request_information",
                status,
            });
    }
}

// ---- answer ----

#[test]
fn the_provider_answers_and_the_request_goes_back_to_review() {
    let r = ProviderRequest::given(vec![submitted(), asked()]);
    let provided = ProviderRequestEvent::InformationProvided {
        by: farmer(),
        answer: "Ghent DC2".into(),
        at: t0(),
    };
    r.when(answer(farmer(), "Ghent DC2"))
        .then_expect_events(vec![provided.clone()]);
    assert_eq!(
        status_after(vec![submitted(), asked(), provided]),
        Status::Submitted
    );
}

#[test]
fn only_the_requests_provider_answers() {
    let r = ProviderRequest::given(vec![submitted(), asked()]);
    for who in [other_farmer(), operator(), user()] {
        r.when(answer(who, "x"))
            .then_expect_error(ProviderRequestError::NotPermitted);
    }
}

#[test]
fn an_answer_needs_a_question_and_text() {
    ProviderRequest::given(vec![submitted()])
        .when(answer(farmer(), "unasked"))
        .then_expect_error(ProviderRequestError::InvalidTransition {
            command: "answer",
            status: Status::Submitted,
        });
    ProviderRequest::given(vec![submitted(), asked()])
        .when(answer(farmer(), " \n "))
        .then_expect_invalid("answer");
}

// ---- withdraw ----

#[test]
fn the_provider_withdraws_an_open_request() {
    ProviderRequest::given(vec![submitted()])
        .when(withdraw(farmer()))
        .then_expect_events(vec![withdrawn()]);
    ProviderRequest::given(vec![submitted(), asked()])
        .when(withdraw(farmer()))
        .then_expect_events(vec![withdrawn()]);
    assert_eq!(
        status_after(vec![submitted(), withdrawn()]),
        Status::Withdrawn
    );
}

#[test]
fn only_the_provider_withdraws() {
    let r = ProviderRequest::given(vec![submitted()]);
    for who in [other_farmer(), operator(), user()] {
        r.when(withdraw(who))
            .then_expect_error(ProviderRequestError::NotPermitted);
    }
}

#[test]
fn a_closed_request_cannot_be_withdrawn() {
    ProviderRequest::given(vec![submitted(), approved()])
        .when(withdraw(farmer()))
        .then_expect_error(ProviderRequestError::InvalidTransition {
            command: "withdraw",
            status: Status::Approved,
        });
    ProviderRequest::given(vec![submitted(), withdrawn()])
        .when(withdraw(farmer()))
        .then_expect_error(ProviderRequestError::InvalidTransition {
            command: "withdraw",
            status: Status::Withdrawn,
        });
}

// ---- not found, names, serialisation ----

#[test]
fn any_other_command_before_a_submission_is_not_found() {
    let r = ProviderRequest::given(vec![]);
    r.when(approve(operator()))
        .then_expect_error(ProviderRequestError::NotFound);
    r.when(withdraw(farmer()))
        .then_expect_error(ProviderRequestError::NotFound);
}

#[test]
fn statuses_round_trip_by_name() {
    for s in Status::ALL {
        assert_eq!(Status::parse(s.as_str()), Some(s));
        assert_eq!(
            serde_json::to_value(s).expect("serialises"),
            serde_json::Value::String(s.as_str().into())
        );
    }
    assert_eq!(Status::parse("open"), None);
}

#[test]
fn events_are_named_versioned_and_round_trip() {
    use cqrs_es::DomainEvent;
    let events = vec![
        submitted(),
        asked(),
        rejected("no"),
        approved(),
        withdrawn(),
    ];
    for e in events {
        assert_eq!(e.event_version(), EVENT_VERSION);
        assert_eq!(e.at(), t0());
        let json = serde_json::to_string(&e).expect("serialises");
        let back: ProviderRequestEvent = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, e);
    }
    assert_eq!(submitted().event_type(), "ProviderRequestSubmitted");
    assert_eq!(asked().event_type(), "InformationRequested");
}
