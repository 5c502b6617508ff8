//! The settlement's rules by example, then its properties over generated
//! alliances: any income, any rule, any uptime.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const TFT: u128 = 10_000_000;

fn node(node_id: u32, member: &str, cu: u64, uptime_bps: u16, income: u128) -> NodeFigures {
    NodeFigures {
        node_id,
        member: member.into(),
        capacity: Capacity::new(cu, 0).expect("valid"),
        uptime_bps,
        income,
        billed: BTreeMap::new(),
    }
}

fn billed(mut n: NodeFigures, users: &[(&str, u128)]) -> NodeFigures {
    n.billed = users.iter().map(|(u, b)| (u.to_string(), *b)).collect();
    n
}

fn members(ms: &[&str]) -> BTreeSet<MemberId> {
    ms.iter().map(|m| m.to_string()).collect()
}

fn sla(credits_to: CreditsTo) -> Sla {
    let tier = |below_bps, credit_bps| SlaTier {
        below_bps,
        credit_bps,
    };
    Sla::new(
        9_800,
        vec![tier(9_800, 1_000), tier(9_500, 2_500), tier(9_000, 5_000)],
        credits_to,
    )
    .expect("valid")
}

fn shares(s: &Settlement) -> Vec<(&str, u128)> {
    s.shares.iter().map(|(m, v)| (m.as_str(), *v)).collect()
}

fn check_exact(s: &Settlement) {
    assert_eq!(s.paid_out() + s.carried, s.income + s.carried_in);
}

#[test]
fn equal_shares_go_to_members_with_a_counted_node() {
    let nodes = [
        node(1, "a", 10, 10_000, 100),
        node(2, "a", 10, 10_000, 100),
        node(3, "b", 1, 10_000, 1),
    ];
    let s = settle(
        &SharingRule::Equal,
        &Sla::none(),
        &members(&["a", "b", "c"]),
        &nodes,
        0,
    )
    .expect("settles");
    // 201 between a and b; c has no node. The odd unit goes to a (tie, lower id).
    assert_eq!(shares(&s), vec![("a", 101), ("b", 100)]);
    assert_eq!(s.carried, 0);
    check_exact(&s);
}

#[test]
fn capacity_shares_follow_cu_plus_su() {
    let mut big = node(1, "a", 30, 10_000, 90 * TFT);
    big.capacity = Capacity::new(20, 10).expect("valid");
    let nodes = [big, node(2, "b", 10, 10_000, 10 * TFT)];
    let s = settle(
        &SharingRule::Capacity,
        &Sla::none(),
        &members(&["a", "b"]),
        &nodes,
        5,
    )
    .expect("settles");
    assert_eq!(shares(&s), vec![("a", 75 * TFT + 4), ("b", 25 * TFT + 1)]);
    check_exact(&s);
}

#[test]
fn uptime_weighted_capacity_weighs_each_node_by_its_uptime() {
    let nodes = [node(1, "a", 10, 10_000, 50), node(2, "b", 10, 5_000, 50)];
    let s = settle(
        &SharingRule::UptimeWeightedCapacity,
        &Sla::none(),
        &members(&["a", "b"]),
        &nodes,
        0,
    )
    .expect("settles");
    // Weights 100,000 and 50,000: 2/3 and 1/3 of 100.
    assert_eq!(shares(&s), vec![("a", 67), ("b", 33)]);
    check_exact(&s);
}

#[test]
fn fixed_shares_drop_members_who_left() {
    let rule = SharingRule::Fixed {
        shares: [
            ("a".to_string(), 5_000),
            ("b".to_string(), 3_000),
            ("c".to_string(), 2_000),
        ]
        .into(),
    };
    let nodes = [node(1, "a", 10, 10_000, 1_000)];
    let s = settle(&rule, &Sla::none(), &members(&["a", "b", "c"]), &nodes, 0).expect("settles");
    assert_eq!(shares(&s), vec![("a", 500), ("b", 300), ("c", 200)]);
    let s = settle(&rule, &Sla::none(), &members(&["a", "b"]), &nodes, 0).expect("settles");
    assert_eq!(shares(&s), vec![("a", 625), ("b", 375)]);
    check_exact(&s);
}

#[test]
fn nothing_to_share_among_is_carried() {
    let s = settle(&SharingRule::Equal, &Sla::none(), &members(&["a"]), &[], 42).expect("settles");
    assert_eq!((s.carried, s.shares.len()), (42, 0));
    let zero = node(1, "a", 10, 0, 100);
    let s = settle(
        &SharingRule::UptimeWeightedCapacity,
        &Sla::none(),
        &members(&["a"]),
        &[zero],
        0,
    )
    .expect("settles");
    assert_eq!((s.carried, shares(&s)), (100, vec![("a", 0)]));
    check_exact(&s);
}

#[test]
fn user_credits_are_pro_rata_to_billing_and_paid_off_the_top() {
    // Node 1 at 94%: the 5,000 bps tier? No: 9,400 is below 9,500, not 9,000 -> 2,500.
    let n1 = billed(node(1, "a", 10, 9_400, 1_000), &[("u1", 2), ("u2", 1)]);
    let n2 = node(2, "b", 10, 9_900, 1_000);
    let s = settle(
        &SharingRule::Capacity,
        &sla(CreditsTo::Users),
        &members(&["a", "b"]),
        &[n1, n2],
        0,
    )
    .expect("settles");
    assert_eq!(
        s.node_credits.get(&1),
        Some(&NodeCredit {
            credit_bps: 2_500,
            amount: 250,
            to: CreditsTo::Users
        })
    );
    assert!(!s.node_credits.contains_key(&2), "node 2 met the target");
    // 250 split 2:1 -> 166.67 and 83.33 -> 167 and 83.
    assert_eq!(
        s.user_credits,
        [("u1".to_string(), 167), ("u2".to_string(), 83)].into()
    );
    assert_eq!(shares(&s), vec![("a", 875), ("b", 875)]);
    check_exact(&s);
}

#[test]
fn a_credit_to_users_with_nobody_billed_goes_to_the_other_members() {
    let n1 = node(1, "a", 10, 8_000, 1_000);
    let n2 = node(2, "b", 10, 10_000, 1_000);
    let s = settle(
        &SharingRule::Capacity,
        &sla(CreditsTo::Users),
        &members(&["a", "b"]),
        &[n1, n2],
        0,
    )
    .expect("settles");
    assert_eq!(
        s.node_credits.get(&1).map(|c| (c.amount, c.to)),
        Some((500, CreditsTo::Members))
    );
    assert!(s.user_credits.is_empty());
    assert_eq!(shares(&s), vec![("a", 500), ("b", 1_500)]);
    check_exact(&s);
}

#[test]
fn a_penalty_goes_to_the_other_members_by_their_weights() {
    let n1 = node(1, "a", 10, 9_700, 10_000);
    let n2 = node(2, "b", 10, 10_000, 0);
    let n3 = node(3, "c", 30, 10_000, 0);
    let s = settle(
        &SharingRule::Capacity,
        &sla(CreditsTo::Members),
        &members(&["a", "b", "c"]),
        &[n1, n2, n3],
        0,
    )
    .expect("settles");
    // Base 2,000 / 2,000 / 6,000; a owes 1,000, shared 1:3 by b and c.
    assert_eq!(s.penalties, [("a".to_string(), 1_000)].into());
    assert_eq!(shares(&s), vec![("a", 1_000), ("b", 2_250), ("c", 6_750)]);
    check_exact(&s);
}

#[test]
fn a_penalty_never_takes_more_than_the_share_nor_from_a_lone_member() {
    // Equal shares of 10,000: a owes 5,000 of its node's 10,000 but has 5,000.
    let n1 = node(1, "a", 10, 0, 10_000);
    let n2 = node(2, "b", 10, 10_000, 0);
    let s = settle(
        &SharingRule::Equal,
        &sla(CreditsTo::Members),
        &members(&["a", "b"]),
        &[n1.clone(), n2],
        0,
    )
    .expect("settles");
    assert_eq!(shares(&s), vec![("a", 0), ("b", 10_000)]);
    let alone = settle(
        &SharingRule::Equal,
        &sla(CreditsTo::Members),
        &members(&["a"]),
        &[n1],
        0,
    )
    .expect("settles");
    assert_eq!(
        (shares(&alone), alone.penalties.len()),
        (vec![("a", 10_000)], 0)
    );
}

#[test]
fn bad_figures_are_refused() {
    let n = node(1, "a", 10, 10_000, 1);
    assert_eq!(
        settle(
            &SharingRule::Equal,
            &Sla::none(),
            &members(&["a"]),
            &[n.clone(), n.clone()],
            0
        ),
        Err(SettlementError::DuplicateNode(1))
    );
    let mut high = n.clone();
    high.uptime_bps = 10_001;
    assert_eq!(
        settle(
            &SharingRule::Equal,
            &Sla::none(),
            &members(&["a"]),
            &[high],
            0
        ),
        Err(SettlementError::UptimeOutOfRange(1))
    );
    let mut huge = n;
    huge.income = u128::MAX;
    assert_eq!(
        settle(
            &SharingRule::Equal,
            &Sla::none(),
            &members(&["a"]),
            &[huge],
            1
        ),
        Err(SettlementError::Overflow)
    );
}

// ---- properties ----

const MEMBERS: [&str; 4] = ["m1", "m2", "m3", "m4"];
const USERS: [&str; 3] = ["u1", "u2", "u3"];

fn arb_rule() -> impl Strategy<Value = SharingRule> {
    prop_oneof![
        Just(SharingRule::Equal),
        Just(SharingRule::Capacity),
        Just(SharingRule::UptimeWeightedCapacity),
        (1u16..10_000, 0usize..4).prop_map(|(cut, pair)| {
            let (a, b) = (MEMBERS[pair], MEMBERS[(pair + 1) % 4]);
            SharingRule::Fixed {
                shares: [(a.to_string(), cut), (b.to_string(), 10_000 - cut)].into(),
            }
        }),
    ]
}

fn arb_sla() -> impl Strategy<Value = Sla> {
    prop_oneof![
        Just(Sla::none()),
        Just(sla(CreditsTo::Users)),
        Just(sla(CreditsTo::Members)),
        (0u16..=10_000, 0u16..=10_000, any::<bool>()).prop_map(|(target, credit, users)| {
            let to = if users {
                CreditsTo::Users
            } else {
                CreditsTo::Members
            };
            Sla::new(
                target,
                vec![SlaTier {
                    below_bps: target,
                    credit_bps: credit,
                }],
                to,
            )
            .expect("valid")
        }),
    ]
}

fn arb_income() -> impl Strategy<Value = u128> {
    prop_oneof![
        0u128..1_000,
        0u128..10_000 * TFT,
        Just(0u128),
        (u64::MAX as u128 / 2)..(u64::MAX as u128)
    ]
}

fn arb_uptime() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(10_000u16),
        Just(0u16),
        8_000u16..=10_000,
        0u16..=10_000
    ]
}

fn arb_nodes() -> impl Strategy<Value = Vec<NodeFigures>> {
    prop::collection::vec(
        (
            0usize..4,
            (0u64..40, 0u64..40),
            arb_uptime(),
            arb_income(),
            prop::collection::btree_map(0usize..3, 0u128..1_000_000, 0..3),
        ),
        0..8,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(
                |(i, (m, (cu, su), uptime_bps, income, billed))| NodeFigures {
                    node_id: i as u32 + 1,
                    member: MEMBERS[m].to_string(),
                    capacity: Capacity::new(cu, su.max(u64::from(cu == 0))).expect("some capacity"),
                    uptime_bps,
                    income,
                    billed: billed
                        .into_iter()
                        .map(|(u, b)| (USERS[u].to_string(), b))
                        .collect(),
                },
            )
            .collect()
    })
}

fn all_members() -> BTreeSet<MemberId> {
    members(&MEMBERS)
}

proptest! {
    #[test]
    fn the_settlement_distributes_exactly_what_came_in(
        rule in arb_rule(), sla in arb_sla(), nodes in arb_nodes(), carried_in in arb_income(),
    ) {
        let s = settle(&rule, &sla, &all_members(), &nodes, carried_in).expect("settles");
        prop_assert_eq!(s.income, nodes.iter().map(|n| n.income).sum::<u128>());
        prop_assert_eq!(s.paid_out() + s.carried, s.income + carried_in);
        // Every node's user credits add up to the credits to users.
        let to_users: u128 = s.node_credits.values().filter(|c| c.to == CreditsTo::Users).map(|c| c.amount).sum();
        prop_assert_eq!(s.user_credits.values().sum::<u128>(), to_users);
        // Carried only when no member had a weight.
        if s.carried > 0 {
            prop_assert!(s.shares.values().all(|&v| v == 0));
        }
    }

    #[test]
    fn a_node_that_met_its_sla_is_never_penalised(
        rule in arb_rule(), sla in arb_sla(), nodes in arb_nodes(),
    ) {
        let s = settle(&rule, &sla, &all_members(), &nodes, 0).expect("settles");
        for n in &nodes {
            if n.uptime_bps >= sla.target_bps {
                prop_assert!(!s.node_credits.contains_key(&n.node_id));
            }
            if let Some(c) = s.node_credits.get(&n.node_id) {
                prop_assert!(c.amount <= n.income);
            }
        }
        // A member whose nodes all met the SLA owes no penalty.
        for m in s.penalties.keys() {
            prop_assert!(nodes.iter().any(|n| &n.member == m && n.uptime_bps < sla.target_bps));
        }
    }

    #[test]
    fn more_capacity_never_gets_less_under_the_capacity_rule(
        nodes in arb_nodes(), carried_in in arb_income(),
    ) {
        let s = settle(&SharingRule::Capacity, &Sla::none(), &all_members(), &nodes, carried_in).expect("settles");
        let capacity = |m: &str| nodes.iter().filter(|n| n.member == m).map(|n| n.capacity.units()).sum::<u128>();
        for a in MEMBERS {
            for b in MEMBERS {
                if capacity(a) > capacity(b) {
                    let share = |m: &str| s.shares.get(m).copied().unwrap_or(0);
                    prop_assert!(share(a) >= share(b), "{} has more capacity than {} but less", a, b);
                }
            }
        }
    }

    #[test]
    fn the_same_figures_always_settle_the_same(
        rule in arb_rule(), sla in arb_sla(), nodes in arb_nodes(), carried_in in arb_income(),
    ) {
        let once = settle(&rule, &sla, &all_members(), &nodes, carried_in);
        let mut reversed = nodes.clone();
        reversed.reverse();
        prop_assert_eq!(&once, &settle(&rule, &sla, &all_members(), &nodes, carried_in));
        prop_assert_eq!(once, settle(&rule, &sla, &all_members(), &reversed, carried_in));
    }

    #[test]
    fn largest_remainder_splits_exactly(
        total in any::<u128>(),
        weights in prop::collection::btree_map(0u8..20, any::<u32>(), 1..10),
    ) {
        let weights: BTreeMap<u8, u128> = weights.into_iter().map(|(k, w)| (k, u128::from(w))).collect();
        prop_assume!(weights.values().any(|&w| w > 0));
        let parts = largest_remainder(total, &weights);
        prop_assert_eq!(parts.values().sum::<u128>(), total);
        let sum: u128 = weights.values().sum();
        for (k, &w) in &weights {
            // Within one unit of the exact share.
            let exact_floor = total / sum * w + (total % sum) * w / sum;
            let got = parts[k];
            prop_assert!(got == exact_floor || got == exact_floor + 1);
        }
    }
}

/// A node's month of reports: a regular beat with outages cut out of it.
fn arb_reported_uptime() -> impl Strategy<Value = u16> {
    const START: i64 = 1_796_083_200; // 2026-12-01
    const END: i64 = START + 31 * 86_400;
    (
        60i64..=100 * 60,
        prop::collection::vec((START..END, 0i64..5 * 86_400), 0..4),
    )
        .prop_map(|(beat, outages)| {
            let reports: Vec<i64> = (0..)
                .map(|i| START - beat + i * beat)
                .take_while(|&t| t <= END + beat)
                .filter(|&t| !outages.iter().any(|&(s, len)| (s..s + len).contains(&t)))
                .collect();
            measure_uptime_bps(&reports, START, END, &[])
        })
}

proptest! {
    #[test]
    fn measured_uptimes_settle_exactly_and_spare_nodes_that_met_the_sla(
        rule in arb_rule(),
        sla in arb_sla(),
        nodes in arb_nodes(),
        uptimes in prop::collection::vec(arb_reported_uptime(), 8),
        carried_in in arb_income(),
    ) {
        let nodes: Vec<NodeFigures> = nodes
            .into_iter()
            .zip(uptimes)
            .map(|(n, uptime_bps)| NodeFigures { uptime_bps, ..n })
            .collect();
        let s = settle(&rule, &sla, &all_members(), &nodes, carried_in).expect("settles");
        prop_assert_eq!(s.paid_out() + s.carried, s.income + carried_in);
        for n in &nodes {
            prop_assert!(n.uptime_bps <= 10_000);
            if n.uptime_bps >= sla.target_bps {
                prop_assert!(!s.node_credits.contains_key(&n.node_id));
            }
        }
    }
}
