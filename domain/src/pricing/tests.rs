//! Given / when / then: every rule of the PricingPolicy aggregate.

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::actor::{Actor, Role};
use crate::money::UsdAmount;
use crate::testing::Scenario;

impl Scenario for PricingPolicyAggregate {}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn operator() -> Actor {
    Actor::new("ops", Role::CloudOperator)
}

fn with_markup(bps: u32) -> PricingPolicy {
    PricingPolicy {
        markup_bps: bps,
        ..Default::default()
    }
}

fn set(policy: PricingPolicy, by: Actor) -> PricingPolicyCommand {
    PricingPolicyCommand::SetPolicy {
        policy,
        by,
        at: t0(),
    }
}

fn changed(policy: PricingPolicy, previous: PricingPolicy) -> PricingPolicyEvent {
    PricingPolicyEvent::PricingPolicyChanged {
        policy,
        previous,
        by: operator(),
        at: t0(),
    }
}

#[test]
fn before_any_change_the_policy_is_the_grid_default() {
    let p = PricingPolicyAggregate::given(vec![]);
    assert_eq!(p.policy(), &PricingPolicy::default());
    assert_eq!(p.version(), 0);
    assert_eq!(p.changed_at(), None);
}

#[test]
fn an_operator_changes_the_policy() {
    PricingPolicyAggregate::given(vec![])
        .when(set(with_markup(500), operator()))
        .then_expect_events(vec![changed(with_markup(500), PricingPolicy::default())]);
    let p = PricingPolicyAggregate::given(vec![
        changed(with_markup(500), PricingPolicy::default()),
        changed(with_markup(700), with_markup(500)),
    ]);
    assert_eq!(p.policy(), &with_markup(700));
    assert_eq!(p.version(), 2);
    assert_eq!(p.changed_at(), Some(t0()));
}

#[test]
fn a_change_records_the_policy_it_replaced() {
    let p =
        PricingPolicyAggregate::given(vec![changed(with_markup(500), PricingPolicy::default())]);
    p.when(set(PricingPolicy::default(), operator()))
        .then_expect_events(vec![changed(PricingPolicy::default(), with_markup(500))]);
}

#[test]
fn only_operators_set_prices() {
    for role in [Role::CloudUser, Role::CloudProvider] {
        PricingPolicyAggregate::given(vec![])
            .when(set(with_markup(500), Actor::new("ops", role)))
            .then_expect_error(PricingPolicyError::NotPermitted);
    }
}

#[test]
fn an_invalid_policy_is_refused_with_its_field() {
    let p = PricingPolicyAggregate::given(vec![]);
    let cases = [
        (
            PricingPolicy {
                cu_per_hour: UsdAmount::from_units(0),
                ..Default::default()
            },
            "cu_per_hour",
        ),
        (
            PricingPolicy {
                certified_multiplier_bps: 9_000,
                ..Default::default()
            },
            "certified_multiplier_bps",
        ),
        (with_markup(10_001), "markup_bps"),
        (
            PricingPolicy {
                discounts: vec![
                    DiscountTier {
                        level: DiscountLevel::Default,
                        min_half_months: 6,
                        percent: 20,
                    },
                    DiscountTier {
                        level: DiscountLevel::Bronze,
                        min_half_months: 3,
                        percent: 30,
                    },
                ],
                ..Default::default()
            },
            "discounts[1].min_half_months",
        ),
    ];
    for (policy, field) in cases {
        match p.decide(set(policy, operator())) {
            Err(PricingPolicyError::InvalidPolicy(e)) => assert_eq!(e.field, field),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
}

#[test]
fn new_discount_tiers_are_accepted() {
    let policy = PricingPolicy {
        discounts: vec![DiscountTier {
            level: DiscountLevel::Gold,
            min_half_months: 24,
            percent: 50,
        }],
        ..Default::default()
    };
    assert!(PricingPolicyAggregate::given(vec![])
        .decide(set(policy, operator()))
        .is_ok());
}

#[test]
fn setting_the_current_policy_again_is_refused() {
    PricingPolicyAggregate::given(vec![])
        .when(set(PricingPolicy::default(), operator()))
        .then_expect_error(PricingPolicyError::PolicyUnchanged);
    let p =
        PricingPolicyAggregate::given(vec![changed(with_markup(500), PricingPolicy::default())]);
    p.when(set(with_markup(500), operator()))
        .then_expect_error(PricingPolicyError::PolicyUnchanged);
}

#[test]
fn events_are_named_versioned_and_round_trip() {
    use cqrs_es::DomainEvent;
    let e = changed(with_markup(500), PricingPolicy::default());
    assert_eq!(e.event_type(), "PricingPolicyChanged");
    assert_eq!(e.event_version(), EVENT_VERSION);
    assert_eq!(e.at(), t0());
    let json = serde_json::to_string(&e).expect("serialises");
    let back: PricingPolicyEvent = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, e);
    assert_eq!(AGGREGATE_ID, "current");
}
