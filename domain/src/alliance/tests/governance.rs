//! Given / when / then: capacity-majority votes on the rule and the SLA.

use super::*;

/// Capacity-majority: founder 30 CU (node 1), bob 10 CU (node 2), carol
/// 20 CU (node 3); 60 in all.
fn voting() -> Vec<AllianceEvent> {
    let mut events = with_members();
    if let AllianceEvent::AllianceFounded { governance, .. } = &mut events[0] {
        *governance = Governance::CapacityMajority;
    }
    events.extend([
        invited("carol"),
        joined("carol", nov()),
        contributed("carol", 3, 20, nov()),
    ]);
    events
}

fn propose_equal(by: Actor) -> AllianceCommand {
    AllianceCommand::ChangeSharingRule {
        by,
        rule: SharingRule::Equal,
        at: t0(),
    }
}

fn vote(by: Actor, approve: bool) -> AllianceCommand {
    AllianceCommand::Vote {
        by,
        proposal: 1,
        approve,
        at: t0(),
    }
}

fn proposed(by: &str) -> Vec<AllianceEvent> {
    vec![
        AllianceEvent::ChangeProposed {
            proposal: 1,
            by: by.into(),
            change: ProposedChange::SharingRule(SharingRule::Equal),
            at: t0(),
        },
        AllianceEvent::VoteCast {
            proposal: 1,
            voter: by.into(),
            approve: true,
            at: t0(),
        },
    ]
}

fn decided(accepted: bool, approving: u128, rejecting: u128) -> AllianceEvent {
    AllianceEvent::ProposalDecided {
        proposal: 1,
        accepted,
        approving,
        rejecting,
        total: 60,
        at: t0(),
    }
}

#[test]
fn a_members_proposal_waits_for_a_capacity_majority() {
    given(voting())
        .when(propose_equal(bob()))
        .then_expect_events(proposed("bob"));
    let mut events = voting();
    events.extend(proposed("bob"));
    // Bob (10) and carol (20) are half of 60: not more than half.
    let a = given(events);
    let with_carol = a.when(vote(provider("carol"), true)).then_accepted();
    assert_eq!(
        with_carol
            .state()
            .and_then(|s| s.proposals.get(&1))
            .and_then(|p| p.decided),
        None
    );
    // The founder's 30 makes 60 of 60.
    with_carol
        .when(vote(founder(), true))
        .then_expect_events(vec![
            AllianceEvent::VoteCast {
                proposal: 1,
                voter: "founder".into(),
                approve: true,
                at: t0(),
            },
            decided(true, 60, 0),
            AllianceEvent::SharingRuleChanged {
                by: "bob".into(),
                rule: SharingRule::Equal,
                effective_from: dec(),
                at: t0(),
            },
        ]);
    // The founder's 30 rejecting is half of 60: it can no longer pass.
    let rejected = a.when(vote(founder(), false)).then_accepted();
    assert_eq!(
        rejected
            .state()
            .and_then(|s| s.proposals.get(&1))
            .and_then(|p| p.decided),
        Some(false),
        "half the capacity rejecting is enough to fail"
    );
    rejected
        .when(vote(provider("carol"), true))
        .then_expect_error(AllianceError::ProposalClosed(1));
}

#[test]
fn a_proposer_with_a_majority_carries_it_at_once() {
    let mut events = voting();
    events.push(contributed("founder", 4, 10, nov()));
    let a = given(events);
    let changed = a.when(propose_equal(founder())).then_accepted();
    let s = changed.state().expect("founded");
    assert_eq!(s.rule_for(dec()), Some(&SharingRule::Equal));
    assert_eq!(s.rule_for(nov()), Some(&SharingRule::Capacity));
}

#[test]
fn votes_are_refused_twice_on_unknown_proposals_or_from_outsiders() {
    let mut events = voting();
    events.extend(proposed("bob"));
    let a = given(events);
    a.when(vote(bob(), true))
        .then_expect_error(AllianceError::AlreadyVoted(1));
    a.when(AllianceCommand::Vote {
        by: founder(),
        proposal: 2,
        approve: true,
        at: t0(),
    })
    .then_expect_error(AllianceError::NoSuchProposal(2));
    a.when(vote(provider("dave"), true))
        .then_expect_error(AllianceError::NotAMember("dave".into()));
    a.when(propose_equal(provider("dave")))
        .then_expect_error(AllianceError::NotAMember("dave".into()));
    given(with_members())
        .when(vote(founder(), true))
        .then_expect_error(AllianceError::WrongGovernance);
}

#[test]
fn sla_changes_are_voted_on_too() {
    let sla = Sla::new(
        9_500,
        vec![SlaTier {
            below_bps: 9_500,
            credit_bps: 2_000,
        }],
        CreditsTo::Users,
    )
    .expect("valid");
    let a = given(voting())
        .when(AllianceCommand::ChangeSla {
            by: provider("carol"),
            sla: sla.clone(),
            at: t0(),
        })
        .then_accepted();
    let changed = a.when(vote(founder(), true)).then_accepted();
    assert_eq!(changed.state().and_then(|s| s.sla_for(dec())), Some(&sla));
}

#[test]
fn without_contributed_capacity_each_member_weighs_one() {
    let founded_by_vote = {
        let mut e = founded();
        if let AllianceEvent::AllianceFounded { governance, .. } = &mut e {
            *governance = Governance::CapacityMajority;
        }
        e
    };
    let a = given(vec![
        founded_by_vote,
        invited("bob"),
        joined("bob", nov()),
        invited("carol"),
        joined("carol", nov()),
    ]);
    let a = a.when(propose_equal(bob())).then_accepted();
    let events = a.decide(vote(provider("carol"), true)).expect("accepted");
    assert!(events.iter().any(|e| matches!(
        e,
        AllianceEvent::ProposalDecided {
            accepted: true,
            approving: 2,
            total: 3,
            ..
        }
    )));
}
