//! Properties of [`rank`] over generated catalogs, checked against a
//! reference written separately from the code: the same twelve criteria,
//! one boolean each.
//!
//! Catalogs are small (up to 30 nodes) and their values few (three prices,
//! three farms, a handful of sizes), so ties, near misses and every filter
//! emptying the set all come up often.

use std::collections::BTreeSet;

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::deployment::Country;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

const DAY: u64 = 86_400;

/// The criteria, in [`Filter::ALL`]'s order, as a reader of the brief
/// would write them.
fn reference(
    d: &Demand,
    p: &Placement,
    c: &Candidate,
    now: DateTime<Utc>,
    exclude: &[u32],
) -> [bool; 12] {
    let horizon = now + Duration::hours(24);
    let availability = c.uptime_seconds.min(30 * DAY) * 10_000 / (30 * DAY);
    [
        c.status == NodeStatus::Up && !exclude.contains(&c.node_id),
        match &p.country {
            None => true,
            Some(k) => k.as_str().to_lowercase() == c.country.to_lowercase(),
        },
        p.farm_id.is_none() || p.farm_id == Some(c.farm_id),
        !p.certified_only || c.certified,
        if p.dedicated {
            c.rentable && !c.rented
        } else {
            !c.rented && !c.dedicated
        },
        availability >= u64::from(p.min_uptime_bps),
        c.free_cru >= d.cru,
        c.free_mru >= d.mru,
        c.free_sru >= d.sru,
        c.free_hru >= d.hru,
        d.ipv4 == 0 || c.farm_free_ips >= d.ipv4,
        c.maintenance
            .iter()
            .all(|(starts, ends)| *ends <= now || *starts >= horizon),
    ]
}

fn fits(d: &Demand, p: &Placement, c: &Candidate, exclude: &[u32]) -> bool {
    reference(d, p, c, now(), exclude).iter().all(|ok| *ok)
}

fn status() -> impl Strategy<Value = NodeStatus> {
    prop_oneof![
        4 => Just(NodeStatus::Up),
        1 => Just(NodeStatus::Standby),
        1 => Just(NodeStatus::Down),
    ]
}

fn uptime() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(29 * DAY),
        Just(30 * DAY - 1),
        Just(30 * DAY),
        0..40 * DAY,
    ]
}

fn windows() -> impl Strategy<Value = Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    prop::collection::vec((-48i64..48, 0i64..30), 0..=1).prop_map(|ws| {
        ws.into_iter()
            .map(|(start, length)| {
                let starts = now() + Duration::hours(start);
                (starts, starts + Duration::hours(length))
            })
            .collect()
    })
}

fn candidate(node_id: u32) -> impl Strategy<Value = Candidate> {
    let place = (
        1u32..=3,
        prop::sample::select(vec!["Belgium", "belgium", "Egypt", "Netherlands"]),
        any::<bool>(),
    );
    let renting = (
        prop::bool::weighted(0.25),
        any::<bool>(),
        prop::bool::weighted(0.15),
        status(),
        uptime(),
    );
    let free = (0u64..=8, 0u64..=8, 0u64..=100, 0u64..=3, 0u32..=2);
    let rest = (windows(), 1u64..=3);
    (place, renting, free, rest).prop_map(
        move |(
            (farm_id, country, certified),
            (dedicated, rentable, rented, status, uptime_seconds),
            (cru, mru_gib, sru_gib, hru_hundred_gib, ips),
            (maintenance, price),
        )| Candidate {
            node_id,
            farm_id,
            country: country.to_string(),
            certified,
            dedicated,
            rentable,
            rented,
            status,
            uptime_seconds,
            free_cru: cru,
            free_mru: mru_gib * GIB,
            free_sru: sru_gib * GIB,
            free_hru: hru_hundred_gib * 100 * GIB,
            farm_free_ips: ips,
            maintenance,
            hourly_usd: UsdAmount::from_units(price * 10_000),
        },
    )
}

/// Node ids are unique, as in the catalog.
fn catalog() -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::btree_set(1u32..500, 0..30)
        .prop_flat_map(|ids: BTreeSet<u32>| ids.into_iter().map(candidate).collect::<Vec<_>>())
}

fn demand() -> impl Strategy<Value = Demand> {
    (0u64..=4, 0u64..=4, 0u64..=50, 0u64..=2, 0u32..=2).prop_map(|(cru, mru, sru, hru, ipv4)| {
        Demand {
            cru,
            mru: mru * GIB,
            sru: sru * GIB,
            hru: hru * 100 * GIB,
            ipv4,
            machines: vec![],
        }
    })
}

fn criteria() -> impl Strategy<Value = Placement> {
    let country = prop::option::of(prop::sample::select(vec!["Belgium", "BELGIUM", "Egypt"]));
    let uptime = prop_oneof![
        3 => Just(0u16),
        1 => Just(9_500),
        1 => Just(10_000),
        1 => 0u16..=10_000,
    ];
    (
        country,
        prop::option::weighted(0.3, 1u32..=3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        uptime,
    )
        .prop_map(
            |(country, farm_id, certified_only, dedicated, min_uptime_bps)| Placement {
                country: country.map(|c| Country::new(c).expect("valid country")),
                farm_id,
                certified_only,
                dedicated,
                min_uptime_bps,
                alliance_id: None,
            },
        )
}

fn exclude() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(1u32..500, 0..4)
}

/// The ranking key the answer must be sorted by.
fn key(
    c: &Candidate,
) -> (
    UsdAmount,
    std::cmp::Reverse<u64>,
    std::cmp::Reverse<u64>,
    u32,
) {
    use std::cmp::Reverse;
    (
        c.hourly_usd,
        Reverse(c.free_cru),
        Reverse(c.free_mru),
        c.node_id,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_choice_satisfies_every_criterion(
        d in demand(), p in criteria(), nodes in catalog(), ex in exclude()
    ) {
        if let Ok(choices) = rank(&d, &p, &nodes, now(), &ex) {
            for choice in &choices {
                let c = nodes.iter().find(|c| c.node_id == choice.node_id).expect("a listed node");
                prop_assert!(fits(&d, &p, c, &ex), "{choice:?} breaks a criterion");
                prop_assert_eq!(choice.farm_id, c.farm_id);
                prop_assert_eq!(choice.hourly_usd, c.hourly_usd);
            }
        }
    }

    #[test]
    fn choices_are_ordered_by_price_then_free_capacity_then_id(
        d in demand(), p in criteria(), nodes in catalog(), ex in exclude()
    ) {
        if let Ok(choices) = rank(&d, &p, &nodes, now(), &ex) {
            let keys: Vec<_> = choices
                .iter()
                .map(|ch| key(nodes.iter().find(|c| c.node_id == ch.node_id).expect("listed")))
                .collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        }
    }

    #[test]
    fn the_answer_is_exactly_the_eligible_nodes(
        d in demand(), p in criteria(), nodes in catalog(), ex in exclude()
    ) {
        let eligible: BTreeSet<u32> = nodes
            .iter()
            .filter(|c| fits(&d, &p, c, &ex))
            .map(|c| c.node_id)
            .collect();
        match rank(&d, &p, &nodes, now(), &ex) {
            Ok(choices) => {
                let chosen: BTreeSet<u32> = choices.iter().map(|c| c.node_id).collect();
                prop_assert_eq!(chosen.len(), choices.len(), "a node listed twice");
                prop_assert_eq!(chosen, eligible);
            }
            Err(no) => prop_assert!(eligible.is_empty(), "refused ({no}) with {eligible:?} eligible"),
        }
    }

    #[test]
    fn a_refusal_names_the_filter_after_which_nothing_remained(
        d in demand(), p in criteria(), nodes in catalog(), ex in exclude()
    ) {
        if let Err(no) = rank(&d, &p, &nodes, now(), &ex) {
            let k = Filter::ALL.iter().position(|f| *f == no.filter).expect("a filter");
            let survives = |upto: usize| {
                nodes.iter().any(|c| reference(&d, &p, c, now(), &ex)[..upto].iter().all(|ok| *ok))
            };
            prop_assert!(!survives(k + 1), "{no}: a node passes up to {:?}", no.filter);
            prop_assert!(k == 0 || survives(k), "{no}: nothing passed the filters before");
            prop_assert_eq!(no.reason.starts_with("no capacity: "), no.filter.is_capacity());
            prop_assert!(no.reason.starts_with("no "));
        }
    }

    #[test]
    fn rank_is_deterministic_whatever_the_catalog_order(
        d in demand(),
        p in criteria(),
        (nodes, shuffled) in catalog().prop_flat_map(|n| (Just(n.clone()), Just(n).prop_shuffle())),
        ex in exclude()
    ) {
        let first = rank(&d, &p, &nodes, now(), &ex);
        prop_assert_eq!(&first, &rank(&d, &p, &nodes, now(), &ex));
        prop_assert_eq!(&first, &rank(&d, &p, &shuffled, now(), &ex));
    }
}
