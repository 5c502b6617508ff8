//! Placement over a 10,000-node catalog: the pure ranking, then reserving
//! against PostgreSQL.
//!
//! The catalog is generated deterministically (splitmix64, fixed seed):
//! 400 farms in 20 countries, 90% of nodes up, 20% certified, 5% dedicated,
//! 5% rented, up to 64 vCPUs, 256 GiB and 4 TB SSD free, a farm's free IPs
//! 0 to 4, a maintenance window within the day on 2% of nodes.
//!
//! 1. **rank**: `marketplace_domain::placement::rank` over the 10,000
//!    candidates, `BENCH_RANKS` (200) times per criteria case, for a 2-vCPU,
//!    4 GiB, 50 GB VM: p50, p99 and mean, and how many nodes were eligible.
//! 2. **reserve**: `marketplace_app::placement::reserve` on a private
//!    durable PostgreSQL holding the same 10,000 rows in `node_catalog`,
//!    `BENCH_RESERVES` (200) placements one after another per case (each
//!    commits its reservation, so reservations accumulate), then the same
//!    number from `BENCH_CONCURRENCY` (8) tasks at once (throughput under
//!    the one lock), then refusals (a country with no node), which also
//!    read the whole catalog to name the filter.
//!
//! `cargo bench --bench placement`.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{env_num, machine_line, ms, pct};
use marketplace_app::placement::reserve;
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_domain::deployment::{Country, Placement};
use marketplace_domain::node::NodeStatus;
use marketplace_domain::placement::{node_price, rank, Candidate, Demand};
use marketplace_domain::pricing::{MachineUsage, PricingPolicy};
use sqlx::PgPool;
use uuid::Uuid;

const GIB: u64 = 1 << 30;
const COUNTRIES: [&str; 20] = [
    "Belgium",
    "Netherlands",
    "Germany",
    "France",
    "Egypt",
    "United States",
    "Canada",
    "Brazil",
    "India",
    "Japan",
    "Austria",
    "Switzerland",
    "Spain",
    "Italy",
    "Finland",
    "Tanzania",
    "Kenya",
    "Singapore",
    "Australia",
    "Ireland",
];

/// splitmix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// One generated catalog node, gross (no reservations yet).
struct Node {
    id: u32,
    farm: u32,
    country: &'static str,
    up: bool,
    certified: bool,
    dedicated: bool,
    rentable: bool,
    rented: bool,
    uptime: u64,
    free: [u64; 4],
    farm_ips: u32,
    extra_fee: u64,
    maintenance: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

fn catalog(nodes: u32, farms: u32, now: DateTime<Utc>) -> Vec<Node> {
    let mut rng = Rng(0x5eed);
    let farm_ips: Vec<u32> = (0..farms).map(|_| rng.below(5) as u32).collect();
    (1..=nodes)
        .map(|id| {
            let farm = rng.below(u64::from(farms)) as u32;
            let dedicated = rng.percent(5);
            let rented = rng.percent(5);
            let maintenance = rng.percent(2).then(|| {
                let starts = now + chrono::Duration::hours(rng.below(24) as i64);
                (starts, starts + chrono::Duration::hours(2))
            });
            Node {
                id,
                farm: farm + 1,
                country: COUNTRIES[(farm as usize) % COUNTRIES.len()],
                up: rng.percent(90),
                certified: rng.percent(20),
                dedicated,
                rentable: !rented && (dedicated || rng.percent(30)),
                rented,
                uptime: rng.below(60 * 86_400),
                free: [
                    rng.below(65),
                    rng.below(257) * GIB,
                    rng.below(4_001) * GIB,
                    rng.below(8_001) * GIB,
                ],
                farm_ips: farm_ips[farm as usize],
                extra_fee: if dedicated { 20_000 } else { 0 },
                maintenance,
            }
        })
        .collect()
}

fn vm(ipv4: u64) -> Demand {
    Demand::from_machines(vec![MachineUsage {
        cru: 2,
        mru_mib: 4096,
        sru_gb: 50,
        hru_gb: 0,
        ipv4,
    }])
}

fn cases() -> Vec<(&'static str, Demand, Placement)> {
    let belgium = Some(Country::new("Belgium").expect("a country"));
    vec![
        ("no criteria", vm(0), Placement::default()),
        (
            "country",
            vm(0),
            Placement {
                country: belgium,
                ..Placement::default()
            },
        ),
        (
            "certified + public IPv4",
            vm(1),
            Placement {
                certified_only: true,
                ..Placement::default()
            },
        ),
    ]
}

fn candidates(
    nodes: &[Node],
    demand: &Demand,
    criteria: &Placement,
    policy: &PricingPolicy,
) -> Vec<Candidate> {
    nodes
        .iter()
        .map(|n| Candidate {
            node_id: n.id,
            farm_id: n.farm,
            country: n.country.to_string(),
            certified: n.certified,
            dedicated: n.dedicated,
            rentable: n.rentable,
            rented: n.rented,
            status: if n.up {
                NodeStatus::Up
            } else {
                NodeStatus::Down
            },
            uptime_seconds: n.uptime,
            free_cru: n.free[0],
            free_mru: n.free[1],
            free_sru: n.free[2],
            free_hru: n.free[3],
            farm_free_ips: n.farm_ips,
            maintenance: n.maintenance.into_iter().collect(),
            hourly_usd: node_price(demand, n.certified, n.extra_fee, criteria, policy),
        })
        .collect()
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    format!(
        "{:>9.2} {:>9.2} {:>9.2}",
        pct(&times, 0.50),
        pct(&times, 0.99),
        ms(mean)
    )
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let nodes = env_num("BENCH_NODES", 10_000) as u32;
    let farms = env_num("BENCH_FARMS", 400) as u32;
    let ranks = env_num("BENCH_RANKS", 200).max(1);
    let reserves = env_num("BENCH_RESERVES", 200).max(1);
    let concurrency = env_num("BENCH_CONCURRENCY", 8).max(1);
    let now = Utc::now();
    let policy = PricingPolicy::default();
    let generated = catalog(nodes, farms, now);
    println!("placement bench: {nodes} nodes in {farms} farms");
    println!("{}", machine_line("the bench and its PostgreSQL"));

    println!("\nrank over {nodes} candidates, {ranks} runs each:");
    println!(
        "{:<26} {:>8} {:>9} {:>9} {:>9}",
        "criteria", "eligible", "p50 ms", "p99 ms", "mean ms"
    );
    for (name, demand, criteria) in cases() {
        let all = candidates(&generated, &demand, &criteria, &policy);
        let mut times = Vec::with_capacity(ranks);
        let mut eligible = 0;
        for _ in 0..ranks {
            let t = Instant::now();
            let answer = rank(&demand, &criteria, &all, now, &[]);
            times.push(t.elapsed());
            eligible = answer.map_or(0, |c| c.len());
        }
        println!("{name:<26} {eligible:>8} {}", summary(times));
    }

    let dir = std::env::temp_dir().join(format!(
        "marketplace-bench-placement-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable: true,
        max_connections: 100,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let pool = marketplace::wiring::connect(&pg.url("bench").into(), 32).await?;
    marketplace::MIGRATOR.run(&pool).await?;
    let t = Instant::now();
    seed(&pool, &generated, now).await?;
    println!(
        "\nseeded node_catalog with {nodes} rows in {:.0} ms; reserve, durable PostgreSQL:",
        ms(t.elapsed())
    );
    println!(
        "{:<26} {:>8} {:>9} {:>9} {:>9}",
        "criteria", "placed", "p50 ms", "p99 ms", "mean ms"
    );
    let mut ok = true;
    for (name, demand, criteria) in cases() {
        let mut times = Vec::with_capacity(reserves);
        let mut placed = 0;
        for _ in 0..reserves {
            let t = Instant::now();
            let answer =
                reserve(&pool, Uuid::new_v4(), &demand, &criteria, &policy, now, &[]).await?;
            times.push(t.elapsed());
            placed += usize::from(answer.is_ok());
        }
        ok &= placed == reserves;
        println!("{name:<26} {placed:>8} {}", summary(times));
    }

    let (demand, criteria) = (vm(0), Placement::default());
    let t = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (pool, demand, criteria, policy) = (
                pool.clone(),
                demand.clone(),
                criteria.clone(),
                policy.clone(),
            );
            tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..reserves.div_ceil(concurrency) {
                    let t = Instant::now();
                    let answer =
                        reserve(&pool, Uuid::new_v4(), &demand, &criteria, &policy, now, &[])
                            .await?;
                    times.push(t.elapsed());
                    anyhow::ensure!(answer.is_ok(), "a placement was refused");
                }
                anyhow::Ok(times)
            })
        })
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await??);
    }
    let elapsed = t.elapsed();
    println!(
        "{:<26} {:>8} {}   ({:.0} placements/s from {concurrency} tasks)",
        "no criteria, concurrent",
        times.len(),
        summary(times.clone()),
        times.len() as f64 / elapsed.as_secs_f64()
    );

    let nowhere = Placement {
        country: Some(Country::new("Atlantis").expect("a country")),
        ..Placement::default()
    };
    let mut times = Vec::with_capacity(reserves);
    for _ in 0..reserves {
        let t = Instant::now();
        let answer = reserve(&pool, Uuid::new_v4(), &vm(0), &nowhere, &policy, now, &[]).await?;
        times.push(t.elapsed());
        ok &= answer.is_err_and(|no| no.reason == "no node in Atlantis");
    }
    println!(
        "{:<26} {:>8} {}",
        "refused (no such country)",
        0,
        summary(times)
    );

    pool.close().await;
    pg.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(ok, "a placement was refused, or a refusal misworded");
    Ok(())
}

/// The generated catalog as `node_catalog` rows (one statement over
/// arrays), with its maintenance windows.
async fn seed(pool: &PgPool, nodes: &[Node], now: DateTime<Utc>) -> anyhow::Result<()> {
    let col = |f: &dyn Fn(&Node) -> i64| nodes.iter().map(f).collect::<Vec<i64>>();
    let flag = |f: &dyn Fn(&Node) -> bool| nodes.iter().map(f).collect::<Vec<bool>>();
    let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let countries: Vec<&str> = nodes.iter().map(|n| n.country).collect();
    let statuses: Vec<&str> = nodes
        .iter()
        .map(|n| if n.up { "up" } else { "down" })
        .collect();
    sqlx::query(
        "INSERT INTO node_catalog
           (node_id, farm_id, twin_id, country, city, total_cru, total_mru, total_sru,
            total_hru, free_cru, free_mru, free_sru, free_hru, public_ipv4, public_ipv6,
            certified, dedicated, rentable, rented, gpus, extra_fee, status, uptime_seconds,
            last_report, cu_milli, su_milli, snapshot, updated_at, version, farm_free_ips)
         SELECT id, farm, id + 100000, country, 'City', cru, mru, sru, hru, cru, mru, sru, hru,
                true, true, certified, dedicated, rentable, rented, 0, fee, status, uptime,
                $15, 1000, 1000, '{}'::jsonb, $15, 1, ips::integer
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
                       $6::bigint[], $7::bigint[], $8::boolean[], $9::boolean[],
                       $10::boolean[], $11::boolean[], $12::bigint[], $13::text[],
                       $14::bigint[], $16::bigint[])
             AS t(id, farm, country, cru, mru, sru, hru, certified, dedicated, rentable,
                  rented, fee, status, uptime, ips)",
    )
    .bind(col(&|n| i64::from(n.id)))
    .bind(col(&|n| i64::from(n.farm)))
    .bind(&countries)
    .bind(col(&|n| big(n.free[0])))
    .bind(col(&|n| big(n.free[1])))
    .bind(col(&|n| big(n.free[2])))
    .bind(col(&|n| big(n.free[3])))
    .bind(flag(&|n| n.certified))
    .bind(flag(&|n| n.dedicated))
    .bind(flag(&|n| n.rentable))
    .bind(flag(&|n| n.rented))
    .bind(col(&|n| big(n.extra_fee)))
    .bind(&statuses)
    .bind(col(&|n| big(n.uptime)))
    .bind(now - chrono::Duration::minutes(10))
    .bind(col(&|n| i64::from(n.farm_ips)))
    .execute(pool)
    .await?;
    for n in nodes {
        if let Some((starts, ends)) = n.maintenance {
            sqlx::query(
                "INSERT INTO maintenance_windows
                   (node_id, window_id, starts_at, ends_at, reason, status, scheduled_by,
                    scheduled_at, updated_at, version)
                 VALUES ($1, $2, $3, $4, 'bench', 'scheduled', 'bench', $3, $3, 1)",
            )
            .bind(i64::from(n.id))
            .bind(Uuid::new_v4())
            .bind(starts)
            .bind(ends)
            .execute(pool)
            .await?;
        }
    }
    sqlx::query("ANALYZE node_catalog").execute(pool).await?;
    Ok(())
}
