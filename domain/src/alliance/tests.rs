//! Given / when / then: every rule of the Alliance aggregate.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::actor::{Actor, Role};
use crate::testing::{Scenario, Then};

mod governance;
mod settling;

impl Scenario for Alliance {
    fn check_invariants(&self) {
        let Some(s) = self.state() else { return };
        for (p, settled) in &s.settlements {
            assert_eq!(
                settled.paid_out() + settled.carried,
                settled.income + settled.carried_in,
                "settlement of {p} is not exact"
            );
        }
        for cs in s.nodes.values() {
            let open = cs.iter().filter(|c| c.stint.until.is_none()).count();
            assert!(open <= 1, "a node is contributed twice");
        }
    }
}

trait ThenInvalid {
    fn then_expect_invalid(self, field: &str);
}

impl ThenInvalid for Then<'_, Alliance> {
    #[track_caller]
    fn then_expect_invalid(self, field: &str) {
        match self.then_refused() {
            AllianceError::Invalid(e) => assert_eq!(e.field, field),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
}

fn time(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .expect("valid time")
}
/// Mid-November 2026, the founding month.
fn t0() -> DateTime<Utc> {
    time(2026, 11, 15)
}
/// Mid-December.
fn t1() -> DateTime<Utc> {
    time(2026, 12, 15)
}
/// Mid-January.
fn t2() -> DateTime<Utc> {
    time(2027, 1, 15)
}
fn nov() -> Period {
    Period::new(2026, 11).expect("valid")
}
fn dec() -> Period {
    nov().next()
}
fn jan() -> Period {
    dec().next()
}

fn provider(subject: &str) -> Actor {
    Actor::new(subject, Role::CloudProvider)
}
fn founder() -> Actor {
    provider("founder")
}
fn bob() -> Actor {
    provider("bob")
}
fn account(tail: char) -> ChainAccount {
    ChainAccount::new(&format!(
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQ{tail}"
    ))
    .expect("valid")
}
fn farm() -> AllianceFarm {
    AllianceFarm {
        farm_id: 90,
        twin_id: 900,
        account: account('Y'),
    }
}

fn found_with(rule: SharingRule) -> AllianceCommand {
    AllianceCommand::Found {
        by: founder(),
        provider_approved: true,
        name: AllianceName::new("Ghent Alliance").expect("valid"),
        description: "three farms in Ghent".into(),
        rule,
        sla: Sla::none(),
        governance: Governance::Founder,
        period: nov(),
        at: t0(),
    }
}

fn founded() -> AllianceEvent {
    AllianceEvent::AllianceFounded {
        founder: "founder".into(),
        name: AllianceName::new("Ghent Alliance").expect("valid"),
        description: "three farms in Ghent".into(),
        rule: SharingRule::Capacity,
        sla: Sla::none(),
        governance: Governance::Founder,
        period: nov(),
        at: t0(),
    }
}

fn farm_assigned() -> AllianceEvent {
    AllianceEvent::FarmAssigned {
        farm_id: 90,
        twin_id: 900,
        account: account('Y'),
        at: t0(),
    }
}

fn invited(who: &str) -> AllianceEvent {
    AllianceEvent::ProviderInvited {
        by: "founder".into(),
        invitee: who.into(),
        at: t0(),
    }
}

fn joined(who: &str, period: Period) -> AllianceEvent {
    AllianceEvent::InvitationAccepted {
        member: who.into(),
        period,
        at: t0(),
    }
}

fn contributed(who: &str, node_id: u32, cu: u64, from: Period) -> AllianceEvent {
    AllianceEvent::NodeContributed {
        member: who.into(),
        node_id,
        farm_id: 7,
        capacity: Capacity::new(cu, 0).expect("valid"),
        counted_from: from,
        at: t0(),
    }
}

fn withdrawn(who: &str, node_id: u32, from: Period) -> AllianceEvent {
    AllianceEvent::NodeWithdrawn {
        member: who.into(),
        node_id,
        effective_from: from,
        at: t0(),
    }
}

/// Founder with node 1 (30 CU), bob with node 2 (10 CU), from November.
fn with_members() -> Vec<AllianceEvent> {
    vec![
        founded(),
        farm_assigned(),
        invited("bob"),
        joined("bob", nov()),
        contributed("founder", 1, 30, nov()),
        contributed("bob", 2, 10, nov()),
    ]
}

fn given(events: Vec<AllianceEvent>) -> Alliance {
    Alliance::given(events)
}

fn income(node_id: u32, amount: u128, uptime_bps: u16) -> NodeIncome {
    NodeIncome {
        node_id,
        income: amount,
        uptime_bps,
        billed: BTreeMap::new(),
    }
}

fn settle_nov(nodes: Vec<NodeIncome>) -> AllianceCommand {
    AllianceCommand::Settle {
        period: nov(),
        nodes,
        now: time(2026, 12, 1),
    }
}

/// The alliance with November settled: founder 750, bob 250.
fn settled_nov() -> Alliance {
    given(with_members())
        .when(settle_nov(vec![
            income(1, 600, 10_000),
            income(2, 400, 10_000),
        ]))
        .then_accepted()
}

// ---- founding ----

#[test]
fn an_approved_provider_founds_an_alliance() {
    given(vec![])
        .when(found_with(SharingRule::Capacity))
        .then_expect_events(vec![founded()]);
    let a = given(vec![founded()]);
    let s = a.state().expect("founded");
    assert_eq!(
        s.members_in(nov()).into_iter().collect::<Vec<_>>(),
        vec!["founder".to_string()]
    );
    assert_eq!(s.rule_for(nov()), Some(&SharingRule::Capacity));
}

#[test]
fn founding_is_refused_unless_approved_once_by_a_provider_in_its_month() {
    given(vec![founded()])
        .when(found_with(SharingRule::Equal))
        .then_expect_error(AllianceError::AlreadyFounded);
    let mut c = found_with(SharingRule::Equal);
    if let AllianceCommand::Found {
        provider_approved, ..
    } = &mut c
    {
        *provider_approved = false;
    }
    given(vec![])
        .when(c)
        .then_expect_error(AllianceError::ProviderNotApproved);
    let mut c = found_with(SharingRule::Equal);
    if let AllianceCommand::Found { by, .. } = &mut c {
        *by = Actor::new("founder", Role::CloudUser);
    }
    given(vec![])
        .when(c)
        .then_expect_error(AllianceError::NotPermitted);
    let mut c = found_with(SharingRule::Equal);
    if let AllianceCommand::Found { period, .. } = &mut c {
        *period = dec();
    }
    given(vec![]).when(c).then_expect_invalid("period");
    let mut c = found_with(SharingRule::Equal);
    if let AllianceCommand::Found { description, .. } = &mut c {
        *description = "x".repeat(2_001);
    }
    given(vec![]).when(c).then_expect_invalid("description");
}

#[test]
fn fixed_shares_at_founding_name_only_the_founder() {
    let fixed = |m: &str, b: u16| SharingRule::Fixed {
        shares: [(m.to_string(), b)].into(),
    };
    given(vec![])
        .when(found_with(fixed("founder", 10_000)))
        .then_accepted();
    given(vec![])
        .when(found_with(fixed("bob", 10_000)))
        .then_expect_error(AllianceError::UnknownFixedMember("bob".into()));
    given(vec![])
        .when(found_with(fixed("founder", 9_000)))
        .then_expect_invalid("rule.shares");
}

#[test]
fn nothing_but_founding_before_the_alliance_exists() {
    given(vec![])
        .when(AllianceCommand::Dissolve {
            by: founder(),
            at: t0(),
        })
        .then_expect_error(AllianceError::NotFound);
}

#[test]
fn the_chain_farm_is_recorded_once() {
    let assign = |farm| AllianceCommand::AssignFarm { farm, at: t0() };
    given(vec![founded()])
        .when(assign(farm()))
        .then_expect_events(vec![farm_assigned()]);
    given(vec![founded(), farm_assigned()])
        .when(assign(farm()))
        .then_expect_no_events();
    let other = AllianceFarm {
        farm_id: 91,
        ..farm()
    };
    given(vec![founded(), farm_assigned()])
        .when(assign(other))
        .then_expect_error(AllianceError::FarmConflict { farm_id: 90 });
    given(vec![founded()])
        .when(assign(AllianceFarm {
            twin_id: 0,
            ..farm()
        }))
        .then_expect_invalid("farm");
}

// ---- membership ----

fn invite(by: Actor, who: &str) -> AllianceCommand {
    AllianceCommand::Invite {
        by,
        invitee: who.into(),
        at: t0(),
    }
}

#[test]
fn the_founder_invites_and_the_invitee_answers() {
    given(vec![founded()])
        .when(invite(founder(), "bob"))
        .then_expect_events(vec![invited("bob")]);
    given(vec![founded(), invited("bob")])
        .when(AllianceCommand::AcceptInvitation {
            by: bob(),
            at: t0(),
        })
        .then_expect_events(vec![joined("bob", nov())]);
    given(vec![founded(), invited("bob")])
        .when(AllianceCommand::DeclineInvitation {
            by: bob(),
            at: t0(),
        })
        .then_expect_events(vec![AllianceEvent::InvitationDeclined {
            invitee: "bob".into(),
            at: t0(),
        }]);
}

#[test]
fn invitations_are_refused_when_they_make_no_sense() {
    let a = given(with_members());
    a.when(invite(bob(), "carol"))
        .then_expect_error(AllianceError::NotPermitted);
    a.when(invite(founder(), "bob"))
        .then_expect_error(AllianceError::AlreadyMember("bob".into()));
    a.when(invite(founder(), " "))
        .then_expect_invalid("invitee");
    given(vec![founded(), invited("bob")])
        .when(invite(founder(), "bob"))
        .then_expect_error(AllianceError::AlreadyInvited("bob".into()));
    for answer in [
        AllianceCommand::AcceptInvitation {
            by: provider("carol"),
            at: t0(),
        },
        AllianceCommand::DeclineInvitation {
            by: provider("carol"),
            at: t0(),
        },
    ] {
        a.when(answer)
            .then_expect_error(AllianceError::NoInvitation("carol".into()));
    }
}

#[test]
fn a_member_leaves_at_the_end_of_the_period_with_its_nodes() {
    let left = given(with_members())
        .when(AllianceCommand::Leave {
            by: bob(),
            at: t0(),
        })
        .then_accepted();
    given(with_members())
        .when(AllianceCommand::Leave {
            by: bob(),
            at: t0(),
        })
        .then_expect_events(vec![
            AllianceEvent::MemberLeft {
                member: "bob".into(),
                effective_from: dec(),
                at: t0(),
            },
            AllianceEvent::NodeWithdrawn {
                member: "bob".into(),
                node_id: 2,
                effective_from: dec(),
                at: t0(),
            },
        ]);
    let s = left.state().expect("founded");
    assert!(
        s.members_in(nov()).contains("bob"),
        "still a member this period"
    );
    assert!(!s.members_in(dec()).contains("bob"));
    assert!(s.nodes_in(nov()).contains_key(&2));
    assert!(!s.nodes_in(dec()).contains_key(&2));
    // Gone from commands at once.
    left.when(AllianceCommand::Leave {
        by: bob(),
        at: t0(),
    })
    .then_expect_error(AllianceError::NotAMember("bob".into()));
}

#[test]
fn the_founder_cannot_leave_and_outsiders_cannot_either() {
    let a = given(with_members());
    a.when(AllianceCommand::Leave {
        by: founder(),
        at: t0(),
    })
    .then_expect_error(AllianceError::FounderCannotLeave);
    a.when(AllianceCommand::Leave {
        by: provider("carol"),
        at: t0(),
    })
    .then_expect_error(AllianceError::NotAMember("carol".into()));
}

#[test]
fn a_member_who_left_may_be_invited_back_from_the_next_period() {
    let mut events = with_members();
    events.push(AllianceEvent::MemberLeft {
        member: "bob".into(),
        effective_from: dec(),
        at: t0(),
    });
    events.push(invited("bob"));
    given(events)
        .when(AllianceCommand::AcceptInvitation {
            by: bob(),
            at: t0(),
        })
        .then_expect_events(vec![joined("bob", dec())]);
}

// ---- nodes ----

fn contribute(by: Actor, node_id: u32, at: DateTime<Utc>) -> AllianceCommand {
    AllianceCommand::ContributeNode {
        by,
        node_id,
        farm_id: 7,
        capacity: Capacity::new(10, 0).expect("valid"),
        at,
    }
}

#[test]
fn a_member_contributes_a_node_counted_from_this_period() {
    given(with_members())
        .when(contribute(bob(), 3, t0()))
        .then_expect_events(vec![contributed("bob", 3, 10, nov())]);
}

#[test]
fn contributions_are_refused_without_a_farm_membership_or_a_free_node() {
    given(vec![founded()])
        .when(contribute(founder(), 3, t0()))
        .then_expect_error(AllianceError::FarmNotAssigned);
    let a = given(with_members());
    a.when(contribute(provider("carol"), 3, t0()))
        .then_expect_error(AllianceError::NotAMember("carol".into()));
    a.when(contribute(bob(), 1, t0()))
        .then_expect_error(AllianceError::NodeAlreadyContributed(1));
    a.when(contribute(bob(), 0, t0()))
        .then_expect_invalid("node_id");
}

#[test]
fn a_withdrawn_node_counts_until_the_period_ends_and_is_free_after() {
    given(with_members())
        .when(AllianceCommand::WithdrawNode {
            by: bob(),
            node_id: 2,
            at: t0(),
        })
        .then_expect_events(vec![withdrawn("bob", 2, dec())]);
    let mut events = with_members();
    events.push(withdrawn("bob", 2, dec()));
    let a = given(events);
    a.when(contribute(founder(), 2, t0()))
        .then_expect_error(AllianceError::NodeAlreadyContributed(2));
    a.when(contribute(founder(), 2, t1()))
        .then_expect_events(vec![AllianceEvent::NodeContributed {
            member: "founder".into(),
            node_id: 2,
            farm_id: 7,
            capacity: Capacity::new(10, 0).expect("valid"),
            counted_from: dec(),
            at: t1(),
        }]);
    a.when(AllianceCommand::WithdrawNode {
        by: bob(),
        node_id: 2,
        at: t0(),
    })
    .then_expect_error(AllianceError::NodeNotContributed(2));
}

#[test]
fn only_the_contributor_withdraws_a_node() {
    let a = given(with_members());
    a.when(AllianceCommand::WithdrawNode {
        by: founder(),
        node_id: 2,
        at: t0(),
    })
    .then_expect_error(AllianceError::NotPermitted);
    a.when(AllianceCommand::WithdrawNode {
        by: bob(),
        node_id: 9,
        at: t0(),
    })
    .then_expect_error(AllianceError::NodeNotContributed(9));
}

// ---- rule and SLA ----

#[test]
fn the_founder_changes_the_rule_from_the_next_period() {
    let change = |by, rule| AllianceCommand::ChangeSharingRule { by, rule, at: t0() };
    let a = given(with_members());
    let changed = a
        .when(change(founder(), SharingRule::Equal))
        .then_accepted();
    a.when(change(founder(), SharingRule::Equal))
        .then_expect_events(vec![AllianceEvent::SharingRuleChanged {
            by: "founder".into(),
            rule: SharingRule::Equal,
            effective_from: dec(),
            at: t0(),
        }]);
    let s = changed.state().expect("founded");
    assert_eq!(s.rule_for(nov()), Some(&SharingRule::Capacity));
    assert_eq!(s.rule_for(dec()), Some(&SharingRule::Equal));
    a.when(change(bob(), SharingRule::Equal))
        .then_expect_error(AllianceError::NotPermitted);
    let fixed = SharingRule::Fixed {
        shares: [("founder".to_string(), 5_000), ("carol".to_string(), 5_000)].into(),
    };
    a.when(change(founder(), fixed))
        .then_expect_error(AllianceError::UnknownFixedMember("carol".into()));
}

#[test]
fn the_founder_changes_the_sla_from_the_next_period() {
    let sla = Sla::new(
        9_800,
        vec![SlaTier {
            below_bps: 9_800,
            credit_bps: 1_000,
        }],
        CreditsTo::Members,
    )
    .expect("valid");
    let change = |by| AllianceCommand::ChangeSla {
        by,
        sla: sla.clone(),
        at: t0(),
    };
    let changed = given(with_members())
        .when(change(founder()))
        .then_accepted();
    let s = changed.state().expect("founded");
    assert_eq!(s.sla_for(nov()), Some(&Sla::none()));
    assert_eq!(s.sla_for(dec()), Some(&sla));
    given(with_members())
        .when(change(bob()))
        .then_expect_error(AllianceError::NotPermitted);
}
