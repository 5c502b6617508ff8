//! Given a catalog, when ranking, then these nodes in this order, or this
//! refusal.

use chrono::{TimeZone, Utc};

use super::*;
use crate::deployment::{Country, FlistImage, KubernetesSpec, MachineSize, SshPublicKey, VmSpec};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn image() -> FlistImage {
    FlistImage::new("https://hub.grid.tf/tf-official-apps/base:latest.flist").expect("valid image")
}

fn key() -> SshPublicKey {
    SshPublicKey::new("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq alice@laptop").expect("valid key")
}

fn vm(cpu: u32, memory_mib: u32, rootfs_gb: u32, ipv4: bool) -> WorkloadSpec {
    let size = MachineSize::new(cpu, memory_mib, rootfs_gb).expect("valid size");
    WorkloadSpec::Vm(VmSpec::new(size, vec![], ipv4, image(), key()).expect("valid vm"))
}

/// 2 vCPUs, 4 GiB, 20 GB, no public IP.
fn small() -> Demand {
    Demand::of(&vm(2, 4096, 20, false))
}

fn belgium() -> Placement {
    Placement {
        country: Some(Country::new("Belgium").expect("valid country")),
        ..Placement::default()
    }
}

/// An up, shared, DIY node in Belgium with room for 16 vCPUs, 64 GiB,
/// 1 TB SSD, 4 TB HDD, up for 60 days, priced 0.01 USD/h.
fn node(id: u32) -> Candidate {
    Candidate {
        node_id: id,
        farm_id: 1,
        country: "Belgium".into(),
        certified: false,
        dedicated: false,
        rentable: false,
        rented: false,
        status: NodeStatus::Up,
        uptime_seconds: 60 * 86_400,
        free_cru: 16,
        free_mru: 64 * GIB,
        free_sru: 1024 * GIB,
        free_hru: 4096 * GIB,
        farm_free_ips: 0,
        maintenance: vec![],
        hourly_usd: UsdAmount::from_units(100_000),
    }
}

fn ids(choices: &[Choice]) -> Vec<u32> {
    choices.iter().map(|c| c.node_id).collect()
}

#[track_caller]
fn refused(demand: &Demand, criteria: &Placement, catalog: &[Candidate]) -> NoCandidate {
    rank(demand, criteria, catalog, now(), &[]).expect_err("no node should fit")
}

#[test]
fn demand_sums_machines_in_catalog_units() {
    let d = Demand::of(&vm(2, 4096, 20, true));
    assert_eq!(
        (d.cru, d.mru, d.sru, d.hru, d.ipv4),
        (2, 4 * GIB, 20 * GIB, 0, 1)
    );
    let size = MachineSize::new(1, 512, 10).expect("valid size");
    let cluster = WorkloadSpec::Kubernetes(
        KubernetesSpec::new(3, 2, size, size, true, image(), key()).expect("valid cluster"),
    );
    let d = Demand::of(&cluster);
    assert_eq!(d.cru, 5);
    assert_eq!(d.mru, 5 * 512 * MIB);
    assert_eq!(d.sru, 50 * GIB);
    assert_eq!(d.ipv4, 3, "each master has its own address");
    assert_eq!(d.machines.len(), 5);
}

#[test]
fn the_cheapest_node_comes_first_with_a_reason() {
    let cheap = Candidate {
        hourly_usd: UsdAmount::from_units(50_000),
        ..node(9)
    };
    let choices =
        rank(&small(), &belgium(), &[node(1), cheap, node(5)], now(), &[]).expect("three fit");
    assert_eq!(ids(&choices), vec![9, 1, 5]);
    assert_eq!(
        choices[0].reason,
        "cheapest of 3 nodes in Belgium with 2 free vCPUs, 4 GiB free memory and 20 GB free SSD: \
         0.005 USD/h"
    );
    assert_eq!(choices[0].hourly_usd, UsdAmount::from_units(50_000));
    assert!(choices[1].reason.starts_with("2nd by price of 3 nodes"));
}

#[test]
fn equal_prices_go_to_the_freest_node_then_the_lowest_id() {
    let more_cpu = Candidate {
        free_cru: 32,
        ..node(7)
    };
    let more_memory = Candidate {
        free_mru: 128 * GIB,
        ..node(8)
    };
    let choices = rank(
        &small(),
        &Placement::default(),
        &[node(4), more_memory, node(2), more_cpu],
        now(),
        &[],
    )
    .expect("all fit");
    assert_eq!(ids(&choices), vec![7, 8, 2, 4]);
}

#[test]
fn a_single_fit_is_the_only_one() {
    let choices = rank(&small(), &Placement::default(), &[node(3)], now(), &[]).expect("fits");
    assert_eq!(
        choices[0].reason,
        "only node with 2 free vCPUs, 4 GiB free memory and 20 GB free SSD: 0.01 USD/h"
    );
}

#[test]
fn down_standby_and_excluded_nodes_are_skipped() {
    let down = Candidate {
        status: NodeStatus::Down,
        ..node(1)
    };
    let standby = Candidate {
        status: NodeStatus::Standby,
        ..node(2)
    };
    let catalog = [down, standby, node(3), node(4)];
    let choices = rank(&small(), &Placement::default(), &catalog, now(), &[3]).expect("4 fits");
    assert_eq!(ids(&choices), vec![4]);
    let no = rank(&small(), &Placement::default(), &catalog, now(), &[4, 3]).expect_err("none");
    assert_eq!(no.filter, Filter::Status);
    assert_eq!(no.reason, "no node up besides excluded nodes 3 and 4");
    let no = refused(&small(), &Placement::default(), &[]);
    assert_eq!(no.reason, "no node up");
}

#[test]
fn the_country_matches_whatever_its_case() {
    let lower = Candidate {
        country: "belgium".into(),
        ..node(1)
    };
    let dutch = Candidate {
        country: "Netherlands".into(),
        ..node(2)
    };
    let choices = rank(&small(), &belgium(), &[lower, dutch.clone()], now(), &[]).expect("fits");
    assert_eq!(ids(&choices), vec![1]);
    let no = refused(&small(), &belgium(), &[dutch]);
    assert_eq!(no.filter, Filter::Country);
    assert_eq!(no.reason, "no node in Belgium");
}

#[test]
fn a_farm_and_certification_narrow_the_set_and_name_themselves() {
    let in_farm_3 = Candidate {
        farm_id: 3,
        ..node(1)
    };
    let criteria = Placement {
        farm_id: Some(3),
        ..belgium()
    };
    assert_eq!(
        refused(&small(), &criteria, &[node(2)]).reason,
        "no node in Belgium in farm 3"
    );
    let certified = Placement {
        certified_only: true,
        ..criteria
    };
    let no = refused(&small(), &certified, &[in_farm_3.clone(), node(2)]);
    assert_eq!(no.filter, Filter::Certification);
    assert_eq!(no.reason, "no certified node in Belgium in farm 3");
    let cert_node = Candidate {
        certified: true,
        ..in_farm_3
    };
    let choices = rank(&small(), &certified, &[cert_node, node(2)], now(), &[]).expect("fits");
    assert_eq!(ids(&choices), vec![1]);
}

#[test]
fn shared_deployments_avoid_rented_and_dedicated_nodes() {
    let rented = Candidate {
        rented: true,
        ..node(1)
    };
    let dedicated = Candidate {
        dedicated: true,
        rentable: true,
        ..node(2)
    };
    let shared_rentable = Candidate {
        rentable: true,
        ..node(3)
    };
    let choices = rank(
        &small(),
        &Placement::default(),
        &[rented.clone(), dedicated.clone(), shared_rentable],
        now(),
        &[],
    )
    .expect("3 fits");
    assert_eq!(ids(&choices), vec![3]);
    let no = refused(&small(), &belgium(), &[rented, dedicated]);
    assert_eq!(no.filter, Filter::Dedication);
    assert_eq!(
        no.reason,
        "no node in Belgium that is neither rented nor dedicated"
    );
}

#[test]
fn a_dedicated_deployment_needs_a_node_rentable_whole_and_not_rented() {
    let criteria = Placement {
        dedicated: true,
        ..belgium()
    };
    let rented = Candidate {
        dedicated: true,
        rentable: false,
        rented: true,
        ..node(1)
    };
    let dedicated = Candidate {
        dedicated: true,
        rentable: true,
        ..node(2)
    };
    let empty_shared = Candidate {
        rentable: true,
        ..node(3)
    };
    let busy_shared = node(4);
    let catalog = [rented.clone(), dedicated, empty_shared, busy_shared.clone()];
    let choices = rank(&small(), &criteria, &catalog, now(), &[]).expect("fits");
    assert_eq!(ids(&choices), vec![2, 3]);
    let no = refused(&small(), &criteria, &[rented, busy_shared]);
    assert_eq!(no.reason, "no node in Belgium that can be rented whole");
}

#[test]
fn availability_is_the_current_boot_over_thirty_days() {
    assert_eq!(availability_bps(0), 0);
    assert_eq!(availability_bps(3 * 86_400), 1_000);
    assert_eq!(availability_bps(UPTIME_WINDOW_SECONDS - 1), 9_999);
    assert_eq!(availability_bps(UPTIME_WINDOW_SECONDS), 10_000);
    assert_eq!(availability_bps(u64::MAX), 10_000);

    let criteria = Placement {
        min_uptime_bps: 9_500,
        ..belgium()
    };
    let fresh = Candidate {
        uptime_seconds: 28 * 86_400, // 9,333 bps
        ..node(1)
    };
    let steady = Candidate {
        uptime_seconds: 29 * 86_400, // 9,666 bps
        ..node(2)
    };
    let choices = rank(
        &small(),
        &criteria,
        &[fresh.clone(), steady.clone()],
        now(),
        &[],
    )
    .expect("fits");
    assert_eq!(ids(&choices), vec![2]);
    let no = refused(&small(), &criteria, &[fresh]);
    assert_eq!(no.filter, Filter::Uptime);
    assert_eq!(no.reason, "no node in Belgium with at least 95% uptime");
    let fussy = Placement {
        min_uptime_bps: 9_995,
        ..belgium()
    };
    assert_eq!(
        refused(&small(), &fussy, &[steady]).reason,
        "no node in Belgium with at least 99.95% uptime"
    );
}

#[test]
fn capacity_refusals_say_no_capacity_and_name_the_resource() {
    let big = Demand::of(&vm(8, 16 * 1024, 200, false));
    let few_cpus = Candidate {
        free_cru: 7,
        ..node(1)
    };
    let no = refused(&big, &belgium(), &[few_cpus]);
    assert_eq!(no.filter, Filter::Cru);
    assert_eq!(
        no.reason,
        "no capacity: no node in Belgium with 8 free vCPUs"
    );

    let little_memory = Candidate {
        free_mru: 16 * GIB - 1,
        ..node(2)
    };
    assert_eq!(
        refused(&big, &belgium(), &[little_memory]).reason,
        "no capacity: no node in Belgium with 8 free vCPUs and 16 GiB free memory"
    );

    let small_disk = Candidate {
        free_sru: 100 * GIB,
        ..node(3)
    };
    assert_eq!(refused(&big, &belgium(), &[small_disk]).filter, Filter::Sru);

    let hdd = Demand {
        hru: 5000 * GIB,
        ..big.clone()
    };
    let no = refused(&hdd, &Placement::default(), &[node(4)]);
    assert_eq!(no.filter, Filter::Hru);
    assert!(no.reason.ends_with("and 5000 GB free HDD"), "{}", no.reason);
}

#[test]
fn the_refusal_names_the_filter_that_emptied_the_set_not_the_first_failure() {
    // One node fails on memory, the other on vCPUs: memory is applied
    // later, so it is the one after which nothing remained.
    let big = Demand::of(&vm(8, 16 * 1024, 20, false));
    let few_cpus = Candidate {
        free_cru: 2,
        ..node(1)
    };
    let little_memory = Candidate {
        free_mru: GIB,
        ..node(2)
    };
    let no = refused(&big, &belgium(), &[few_cpus, little_memory]);
    assert_eq!(no.filter, Filter::Mru);
}

#[test]
fn a_public_ipv4_needs_a_free_address_in_the_farm() {
    let with_ip = Demand::of(&vm(2, 4096, 20, true));
    let criteria = Placement {
        farm_id: Some(3),
        ..Placement::default()
    };
    let no_ips = Candidate {
        farm_id: 3,
        ..node(1)
    };
    let no = refused(&with_ip, &criteria, std::slice::from_ref(&no_ips));
    assert_eq!(no.filter, Filter::Ipv4);
    assert_eq!(
        no.reason,
        "no capacity: no node in farm 3 with 2 free vCPUs, 4 GiB free memory, 20 GB free SSD \
         and a free public IPv4"
    );
    let one_ip = Candidate {
        farm_free_ips: 1,
        ..no_ips.clone()
    };
    let choices = rank(&with_ip, &criteria, &[one_ip], now(), &[]).expect("fits");
    assert_eq!(ids(&choices), vec![1]);
    let choices = rank(&small(), &criteria, &[no_ips], now(), &[]).expect("no IP needed");
    assert_eq!(ids(&choices), vec![1]);
}

#[test]
fn maintenance_in_the_next_24_hours_rules_a_node_out() {
    let hours = |h: i64| now() + Duration::hours(h);
    let soon = Candidate {
        maintenance: vec![(hours(23), hours(25))],
        ..node(1)
    };
    let ongoing = Candidate {
        maintenance: vec![(hours(-1), hours(1))],
        ..node(2)
    };
    let later = Candidate {
        maintenance: vec![(hours(24), hours(26))],
        ..node(3)
    };
    let past = Candidate {
        maintenance: vec![(hours(-3), now())],
        ..node(4)
    };
    let choices = rank(
        &small(),
        &Placement::default(),
        &[soon.clone(), ongoing.clone(), later, past],
        now(),
        &[],
    )
    .expect("fits");
    assert_eq!(ids(&choices), vec![3, 4]);
    let no = refused(&small(), &belgium(), &[soon, ongoing]);
    assert_eq!(no.filter, Filter::Maintenance);
    assert!(!no.reason.starts_with("no capacity"));
    assert_eq!(
        no.reason,
        "no node in Belgium with 2 free vCPUs, 4 GiB free memory and 20 GB free SSD, free of \
         maintenance in the next 24 hours"
    );
}

#[test]
fn prices_follow_the_policy_and_the_extra_fee_counts_only_when_dedicated() {
    let policy = PricingPolicy::default();
    // 2 vCPU, 4 GiB = 1 CU; 20 GB SSD = 0.1 SU: 0.01 + 0.0005 = 0.0105 USD/h
    let demand = small();
    assert_eq!(
        price_for(&demand.machines, false, &policy),
        UsdAmount::from_units(105_000)
    );
    assert_eq!(
        price_for(&demand.machines, true, &policy),
        UsdAmount::from_units(131_250)
    );
    // 72,000 mUSD a month = 72 USD / 720 h = 0.1 USD/h
    assert_eq!(extra_fee_per_hour(72_000), UsdAmount::from_units(1_000_000));
    assert_eq!(extra_fee_per_hour(0), UsdAmount::from_units(0));
    // 1 mUSD a month = 10,000 / 720 = 13.9 units: rounded half up to 14
    assert_eq!(extra_fee_per_hour(1), UsdAmount::from_units(14));
    let dedicated = Placement {
        dedicated: true,
        ..Placement::default()
    };
    assert_eq!(
        node_price(&demand, false, 72_000, &dedicated, &policy),
        UsdAmount::from_units(1_105_000)
    );
    assert_eq!(
        node_price(&demand, false, 72_000, &Placement::default(), &policy),
        UsdAmount::from_units(105_000)
    );
}

#[test]
fn reasons_are_readable_in_every_shape() {
    assert_eq!(percent_of_bps(9_500), "95%");
    assert_eq!(percent_of_bps(9_950), "99.5%");
    assert_eq!(percent_of_bps(9_905), "99.05%");
    assert_eq!(ordinal(1), "1st");
    assert_eq!(ordinal(12), "12th");
    assert_eq!(ordinal(22), "22nd");
    assert_eq!(ordinal(103), "103rd");
    assert_eq!(bytes_text(512 * MIB, "GiB"), "512 MiB");
    assert_eq!(
        excluded(&[9, 1, 2, 3, 4, 5, 6, 1]),
        "excluded nodes 1, 2, 3, 4, 5 and 2 more"
    );
    assert_eq!(excluded(&[7]), "excluded node 7");
    let no = NoCandidate::after(
        Filter::Ipv4,
        &Demand {
            ipv4: 3,
            ..Demand::default()
        },
        &Placement::default(),
        &[],
    );
    assert_eq!(
        no.reason,
        "no capacity: no node with 3 free public IPv4 addresses"
    );
    assert_eq!(no.to_string(), no.reason);
}
