//! Placement with capacity reservations against real PostgreSQL: the node
//! catalog is seeded directly (it is a view; placement only reads it), then
//! `app::placement` reserves, releases and marks running.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use marketplace_app::placement::{mark_running, prune, release, reserve};
use marketplace_domain::deployment::{Country, Placement};
use marketplace_domain::placement::{Choice, Demand, NoCandidate};
use marketplace_domain::pricing::{MachineUsage, PricingPolicy};
use sqlx::PgPool;
use uuid::Uuid;

const GIB: i64 = 1 << 30;

/// A catalog row; every node is up, shared, in Belgium, reported 10
/// minutes before [`now`], with 64 GiB memory and 1 TB SSD free.
#[derive(Clone)]
struct Row {
    node_id: i64,
    farm_id: i64,
    country: &'static str,
    free_cru: i64,
    free_mru: i64,
    status: &'static str,
    certified: bool,
    dedicated: bool,
    rentable: bool,
    farm_free_ips: i32,
    cu_milli: i64,
    uptime_seconds: i64,
    last_report: DateTime<Utc>,
}

fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::seconds(1))
        .expect("whole seconds")
}

fn row(node_id: i64, free_cru: i64) -> Row {
    Row {
        node_id,
        farm_id: 1,
        country: "Belgium",
        free_cru,
        free_mru: 64 * GIB,
        status: "up",
        certified: false,
        dedicated: false,
        rentable: false,
        farm_free_ips: 0,
        cu_milli: 8_000,
        uptime_seconds: 60 * 86_400,
        last_report: now() - Duration::minutes(10),
    }
}

async fn insert(pool: &PgPool, rows: &[Row]) {
    for r in rows {
        sqlx::query(
            "INSERT INTO node_catalog
               (node_id, farm_id, twin_id, country, city, total_cru, total_mru, total_sru,
                total_hru, free_cru, free_mru, free_sru, free_hru, public_ipv4, public_ipv6,
                certified, dedicated, rentable, rented, gpus, extra_fee, status,
                uptime_seconds, last_report, cu_milli, su_milli, snapshot, updated_at,
                version, farm_free_ips)
             VALUES ($1, $2, $1 + 1000, $3, 'Ghent', $4, $5, $6, 0, $4, $5, $6, 0, true, true,
                     $7, $8, $9, false, 0, 0, $10, $14, $11, $12, 5000, '{}'::jsonb, $11,
                     1, $13)",
        )
        .bind(r.node_id)
        .bind(r.farm_id)
        .bind(r.country)
        .bind(r.free_cru)
        .bind(r.free_mru)
        .bind(1024 * GIB)
        .bind(r.certified)
        .bind(r.dedicated)
        .bind(r.rentable)
        .bind(r.status)
        .bind(r.last_report)
        .bind(r.cu_milli)
        .bind(r.farm_free_ips)
        .bind(r.uptime_seconds)
        .execute(pool)
        .await
        .expect("seed node_catalog");
    }
}

/// One VM: `cru` vCPUs, 1 GiB, 10 GB SSD, `ipv4` public addresses.
fn vm(cru: u64, ipv4: u64) -> Demand {
    Demand::from_machines(vec![MachineUsage {
        cru,
        mru_mib: 1024,
        sru_gb: 10,
        hru_gb: 0,
        ipv4,
    }])
}

async fn place(
    pool: &PgPool,
    id: Uuid,
    demand: &Demand,
    criteria: &Placement,
    exclude: &[u32],
) -> Result<Choice, NoCandidate> {
    reserve(
        pool,
        id,
        demand,
        criteria,
        &PricingPolicy::default(),
        now(),
        exclude,
    )
    .await
    .expect("the database answers")
}

async fn reservations(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM capacity_reservations")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn fifty_concurrent_placements_on_room_for_forty_never_overbook() {
    let (pool, _) = crate::common::fresh_database().await;
    // Room for 40 one-vCPU VMs: 4+4+...; plus nodes that never fit (down,
    // in another country, full).
    let mut rows: Vec<Row> = (1..=10).map(|id| row(id, 4)).collect();
    rows.push(Row {
        status: "down",
        ..row(11, 64)
    });
    rows.push(Row {
        country: "Egypt",
        ..row(12, 64)
    });
    rows.push(row(13, 0));
    insert(&pool, &rows).await;
    let criteria = Placement {
        country: Some(Country::new("belgium").expect("a country")),
        ..Placement::default()
    };

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let pool = pool.clone();
            let criteria = criteria.clone();
            tokio::spawn(async move {
                let id = Uuid::new_v4();
                place(&pool, id, &vm(1, 0), &criteria, &[]).await
            })
        })
        .collect();
    let mut placed: HashMap<u32, i64> = HashMap::new();
    let mut refusals = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(choice) => *placed.entry(choice.node_id).or_default() += 1,
            Err(no) => refusals.push(no.reason),
        }
    }
    assert_eq!(placed.values().sum::<i64>(), 40, "{placed:?}");
    assert_eq!(refusals.len(), 10);
    for reason in &refusals {
        assert!(reason.starts_with("no capacity"), "{reason}");
        assert_eq!(reason, "no capacity: no node in belgium with 1 free vCPU");
    }
    let per_node: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT r.node_id, sum(r.cru)::bigint, max(c.free_cru)
           FROM capacity_reservations r JOIN node_catalog c USING (node_id)
          GROUP BY r.node_id",
    )
    .fetch_all(&pool)
    .await
    .expect("per node");
    assert_eq!(per_node.len(), 10, "every node with room is used");
    for (node, reserved, free) in per_node {
        assert!(
            reserved <= free,
            "node {node}: {reserved} reserved of {free}"
        );
        assert_eq!(placed[&(node as u32)], reserved);
    }
}

#[tokio::test]
async fn a_released_reservation_frees_its_capacity() {
    let (pool, _) = crate::common::fresh_database().await;
    insert(&pool, &[row(1, 2)]).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let any = Placement::default();
    let first = place(&pool, a, &vm(2, 0), &any, &[]).await.expect("fits");
    assert_eq!(first.node_id, 1);
    let no = place(&pool, b, &vm(2, 0), &any, &[])
        .await
        .expect_err("full");
    assert_eq!(no.reason, "no capacity: no node with 2 free vCPUs");
    assert!(release(&pool, a).await.expect("release"));
    assert!(!release(&pool, a).await.expect("release again"));
    let second = place(&pool, b, &vm(2, 0), &any, &[])
        .await
        .expect("fits again");
    assert_eq!(second.node_id, 1);
}

#[tokio::test]
async fn a_reservation_stops_counting_once_the_node_reports_after_it_ran() {
    let (pool, _) = crate::common::fresh_database().await;
    insert(&pool, &[row(1, 1)]).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let any = Placement::default();
    place(&pool, a, &vm(1, 0), &any, &[]).await.expect("fits");
    let ran = now();
    assert!(mark_running(&pool, a, ran).await.expect("mark"));
    assert!(!mark_running(&pool, Uuid::new_v4(), ran)
        .await
        .expect("mark"));
    place(&pool, b, &vm(1, 0), &any, &[])
        .await
        .expect_err("the node has not reported since");

    let report = |at: DateTime<Utc>| {
        sqlx::query("UPDATE node_catalog SET last_report = $1 WHERE node_id = 1")
            .bind(at)
            .execute(&pool)
    };
    report(ran).await.expect("report");
    place(&pool, b, &vm(1, 0), &any, &[])
        .await
        .expect_err("a report at the same instant may predate the deployment");
    assert_eq!(prune(&pool).await.expect("prune"), 0);

    // The node's next report counts the deployment in its own used
    // capacity (this test leaves free_cru alone to see the rule alone).
    report(ran + Duration::seconds(1)).await.expect("report");
    let choice = place(&pool, b, &vm(1, 0), &any, &[])
        .await
        .expect("a's reservation no longer counts");
    assert_eq!(choice.node_id, 1);
    assert_eq!(prune(&pool).await.expect("prune"), 1, "a's row goes");
    assert_eq!(reservations(&pool).await, 1, "b's stays");
}

#[tokio::test]
async fn a_retry_after_a_crash_gets_the_same_node_and_an_exclusion_moves_it() {
    let (pool, _) = crate::common::fresh_database().await;
    insert(&pool, &[row(1, 8), row(2, 8)]).await;
    let id = Uuid::new_v4();
    let any = Placement::default();
    let first = place(&pool, id, &vm(1, 0), &any, &[]).await.expect("fits");
    // A better node appears: same price, more free vCPUs, so a fresh
    // ranking would now choose it.
    insert(&pool, &[row(3, 64)]).await;
    let again = place(&pool, id, &vm(1, 0), &any, &[]).await.expect("held");
    assert_eq!(
        again, first,
        "the retry gets the held choice, not a new one"
    );
    assert_eq!(reservations(&pool).await, 1);

    let moved = place(&pool, id, &vm(1, 0), &any, &[first.node_id])
        .await
        .expect("another node");
    assert_ne!(moved.node_id, first.node_id);
    assert_eq!(moved.node_id, 3, "the freest of the rest");
    assert_eq!(reservations(&pool).await, 1, "the old one was given up");

    let no = place(&pool, id, &vm(1, 0), &any, &[1, 2, 3])
        .await
        .expect_err("all excluded");
    assert_eq!(no.reason, "no node up besides excluded nodes 1, 2 and 3");
    assert_eq!(reservations(&pool).await, 0);
}

#[tokio::test]
async fn refusals_name_the_criterion_over_the_whole_catalog() {
    let (pool, _) = crate::common::fresh_database().await;
    let farm3 = |id| Row {
        farm_id: 3,
        farm_free_ips: 1,
        ..row(id, 8)
    };
    insert(&pool, &[farm3(1), farm3(2), row(3, 8)]).await;
    let criteria = |country: &str| Placement {
        country: Some(Country::new(country).expect("a country")),
        ..Placement::default()
    };
    let no = place(&pool, Uuid::new_v4(), &vm(1, 0), &criteria("Egypt"), &[])
        .await
        .expect_err("nothing in Egypt");
    assert_eq!(no.reason, "no node in Egypt");
    let certified = Placement {
        certified_only: true,
        ..criteria("Belgium")
    };
    let no = place(&pool, Uuid::new_v4(), &vm(1, 0), &certified, &[])
        .await
        .expect_err("nothing certified");
    assert_eq!(no.reason, "no certified node in Belgium");

    // The farm's one free IP is shared by its nodes.
    let in_farm_3 = Placement {
        farm_id: Some(3),
        ..Placement::default()
    };
    let with_ip = vm(1, 1);
    place(&pool, Uuid::new_v4(), &with_ip, &in_farm_3, &[])
        .await
        .expect("one IP");
    let no = place(&pool, Uuid::new_v4(), &with_ip, &in_farm_3, &[])
        .await
        .expect_err("no IP left in the farm");
    assert_eq!(
        no.reason,
        "no capacity: no node in farm 3 with 1 free vCPU, 1 GiB free memory, 10 GB free SSD \
         and a free public IPv4"
    );
    // One node short of vCPUs, the other of IPs: the IPs, applied later,
    // emptied the set.
    sqlx::query("UPDATE node_catalog SET free_cru = 0 WHERE node_id = 2")
        .execute(&pool)
        .await
        .expect("fill node 2");
    let no = place(&pool, Uuid::new_v4(), &with_ip, &in_farm_3, &[])
        .await
        .expect_err("still no IP");
    assert!(no.reason.ends_with("a free public IPv4"), "{}", no.reason);

    // Maintenance within the day rules node 3 out (farm 1 has no IPs).
    sqlx::query(
        "INSERT INTO maintenance_windows
           (node_id, window_id, starts_at, ends_at, reason, status, scheduled_by, scheduled_at,
            updated_at, version)
         VALUES (3, $1, $2, $3, 'disk swap', 'scheduled', 'farmer', $2, $2, 1)",
    )
    .bind(Uuid::new_v4())
    .bind(now() + Duration::hours(2))
    .bind(now() + Duration::hours(3))
    .execute(&pool)
    .await
    .expect("window");
    let farm1 = Placement {
        farm_id: Some(1),
        ..Placement::default()
    };
    let no = place(&pool, Uuid::new_v4(), &vm(1, 0), &farm1, &[])
        .await
        .expect_err("under maintenance");
    assert!(
        no.reason
            .ends_with("free of maintenance in the next 24 hours"),
        "{}",
        no.reason
    );
    assert!(!no.reason.starts_with("no capacity"));
}

#[tokio::test]
async fn a_dedicated_deployment_holds_the_whole_node() {
    let (pool, _) = crate::common::fresh_database().await;
    let rentable = |id| Row {
        dedicated: true,
        rentable: true,
        ..row(id, 16)
    };
    insert(&pool, &[rentable(1), row(2, 16)]).await;
    let dedicated = Placement {
        dedicated: true,
        ..Placement::default()
    };
    let a = Uuid::new_v4();
    let choice = place(&pool, a, &vm(2, 0), &dedicated, &[])
        .await
        .expect("fits");
    assert_eq!(choice.node_id, 1, "node 2 is shared and not rentable");
    let held: (i64, i64) =
        sqlx::query_as("SELECT cru, mru FROM capacity_reservations WHERE deployment_id = $1")
            .bind(a)
            .fetch_one(&pool)
            .await
            .expect("held");
    assert_eq!(held, (16, 64 * GIB), "the whole node's free capacity");
    let no = place(&pool, Uuid::new_v4(), &vm(1, 0), &dedicated, &[])
        .await
        .expect_err("taken whole");
    assert!(no.reason.starts_with("no capacity: "), "{}", no.reason);
    let shared = place(&pool, Uuid::new_v4(), &vm(1, 0), &Placement::default(), &[])
        .await
        .expect("the shared node");
    assert_eq!(shared.node_id, 2);
    let nodes: BTreeSet<i64> = sqlx::query_scalar("SELECT node_id FROM capacity_reservations")
        .fetch_all(&pool)
        .await
        .expect("nodes")
        .into_iter()
        .collect();
    assert_eq!(nodes, BTreeSet::from([1, 2]));
}

#[tokio::test]
async fn the_sql_pre_filter_keeps_what_rank_keeps_at_the_uptime_boundary() {
    let (pool, _) = crate::common::fresh_database().await;
    // 95% of 30 days is 2,462,400 s exactly; one second less is 9,499 bps.
    let at = Row {
        uptime_seconds: 2_462_400,
        ..row(1, 4)
    };
    let below = Row {
        uptime_seconds: 2_462_399,
        ..row(2, 8)
    };
    insert(&pool, &[at, below]).await;
    let criteria = Placement {
        min_uptime_bps: 9_500,
        ..Placement::default()
    };
    let choice = place(&pool, Uuid::new_v4(), &vm(1, 0), &criteria, &[])
        .await
        .expect("node 1 is at 95%");
    assert_eq!(choice.node_id, 1);
    let no = place(&pool, Uuid::new_v4(), &vm(1, 0), &criteria, &[1])
        .await
        .expect_err("node 2 is below");
    assert_eq!(no.reason, "no node with at least 95% uptime");
}
