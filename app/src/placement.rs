//! Placement with capacity reservations, in PostgreSQL: choose a node for a
//! deployment with [`marketplace_domain::placement::rank`] over the node
//! catalog, and hold the capacity it needs there until the node's own
//! reports count it (`capacity_reservations`, migration 0012).
//!
//! A reservation counts against its node's free capacity, and its IPv4
//! count against its farm's free IPs, while `running_at` is unset or the
//! node's `last_report` is not after it; once the node has reported since
//! the deployment ran, the catalog's own used capacity includes it and the
//! reservation stops counting ([`prune`] deletes such rows).
//!
//! Every [`reserve`] runs in one transaction holding the advisory lock
//! [`LOCK`], so concurrent placements are serialised and cannot overbook:
//! each sees the reservations the previous ones committed. The lock is held
//! for a handful of queries (a few milliseconds on a 10,000-node catalog,
//! see docs/measurements.md); [`release`] and [`mark_running`] only lower
//! what is reserved and take no lock.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use marketplace_domain::deployment::Placement;
use marketplace_domain::node::NodeStatus;
use marketplace_domain::placement::{
    node_price, rank, Candidate, Choice, Demand, Filter, NoCandidate, MAINTENANCE_HORIZON_HOURS,
    UPTIME_WINDOW_SECONDS,
};
use marketplace_domain::pricing::PricingPolicy;
use marketplace_domain::UsdAmount;
use std::sync::LazyLock;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The advisory lock every placement holds for its transaction, as
/// `pg_advisory_xact_lock(hashtextextended('capacity-placement', 7))` (the
/// projections' locks use the same form with their own names).
pub const LOCK: &str = "capacity-placement";

/// The live reservations, summed per node and per farm: the CTEs the
/// candidate and diagnosis queries both start with.
const LIVE: &str = "WITH live AS (
        SELECT r.node_id, r.farm_id, r.cru, r.mru, r.sru, r.hru, r.ipv4
          FROM capacity_reservations r
          JOIN node_catalog nc ON nc.node_id = r.node_id
         WHERE r.running_at IS NULL OR nc.last_report <= r.running_at
    ), by_node AS (
        SELECT node_id, sum(cru)::bigint AS cru, sum(mru)::bigint AS mru,
               sum(sru)::bigint AS sru, sum(hru)::bigint AS hru
          FROM live GROUP BY node_id
    ), by_farm AS (
        SELECT farm_id, sum(ipv4)::bigint AS ipv4 FROM live GROUP BY farm_id
    )
    ";

/// A catalog row `c` with its node's and farm's live reservations.
const JOINS: &str = "
      FROM node_catalog c
      LEFT JOIN by_node n ON n.node_id = c.node_id
      LEFT JOIN by_farm f ON f.farm_id = c.farm_id";

/// Free capacity net of live reservations, never below 0: vCPUs, memory,
/// SSD, HDD and the farm's public IPs.
const NET: [&str; 5] = [
    "GREATEST(c.free_cru - COALESCE(n.cru, 0), 0)",
    "GREATEST(c.free_mru - COALESCE(n.mru, 0), 0)",
    "GREATEST(c.free_sru - COALESCE(n.sru, 0), 0)",
    "GREATEST(c.free_hru - COALESCE(n.hru, 0), 0)",
    "GREATEST(c.farm_free_ips - COALESCE(f.ipv4, 0), 0)",
];

/// The same figures before reservations, which the catalog's columns are.
const GROSS: [&str; 5] = [
    "c.free_cru",
    "c.free_mru",
    "c.free_sru",
    "c.free_hru",
    "c.farm_free_ips",
];

/// The domain's filters from `Status` to `Ipv4` ([`Filter::ALL`] but the
/// last), one SQL condition each over a catalog row `c`, with `capacity`
/// the five free figures to compare. Parameters: `$1` excluded node ids,
/// `$2` country, `$3` farm, `$4` certified only, `$5` dedicated, `$6`
/// minimum uptime in basis points, `$7`-`$10` demanded cru, mru, sru, hru,
/// `$11` public IPv4 count. The uptime figure is
/// [`availability_bps`](marketplace_domain::placement::availability_bps),
/// in integers as in Rust. Maintenance (the last filter) is left to
/// [`rank`], over the windows [`maintenance`] loads.
fn conditions(capacity: [&str; 5]) -> [String; 11] {
    let [cru, mru, sru, hru, ips] = capacity;
    [
        "c.status = 'up' AND NOT (c.node_id = ANY($1::bigint[]))".into(),
        "($2::text IS NULL OR lower(c.country) = lower($2::text))".into(),
        "($3::bigint IS NULL OR c.farm_id = $3::bigint)".into(),
        "(NOT $4::boolean OR c.certified)".into(),
        "(CASE WHEN $5::boolean THEN c.rentable AND NOT c.rented \
              ELSE NOT c.rented AND NOT c.dedicated END)"
            .into(),
        format!(
            "(LEAST(GREATEST(c.uptime_seconds, 0), {w}) * 10000 / {w} >= $6::bigint)",
            w = UPTIME_WINDOW_SECONDS
        ),
        format!("{cru} >= $7::bigint"),
        format!("{mru} >= $8::bigint"),
        format!("{sru} >= $9::bigint"),
        format!("{hru} >= $10::bigint"),
        format!("{ips} >= $11::bigint"),
    ]
}

/// The candidates: up nodes that meet the criteria and whose free capacity
/// before reservations covers the demand (an index-friendly pre-filter
/// that can only keep too many), with their capacity net of reservations.
static CANDIDATES: LazyLock<String> = LazyLock::new(|| {
    let [cru, mru, sru, hru, ips] = NET;
    format!(
        "{LIVE}SELECT c.node_id, c.farm_id, c.country, c.certified, c.dedicated, c.rentable,
               c.rented, c.uptime_seconds, c.extra_fee,
               {cru} AS free_cru, {mru} AS free_mru, {sru} AS free_sru, {hru} AS free_hru,
               {ips} AS farm_free_ips{JOINS}
         WHERE {}",
        conditions(GROSS).join("\n           AND ")
    )
});

/// The furthest filter any catalog node passes, net of reservations, as an
/// index into [`Filter::ALL`]: 0 when no node is up, 11 (maintenance) when
/// some node passes every filter up to the IPs. Read only when nothing was
/// eligible, to name the filter that emptied the set over the whole
/// catalog rather than over the pre-filtered candidates alone.
static FURTHEST: LazyLock<String> = LazyLock::new(|| {
    let arms: Vec<String> = conditions(NET)
        .iter()
        .enumerate()
        .map(|(i, cond)| format!("WHEN NOT ({cond}) THEN {i}"))
        .collect();
    format!(
        "{LIVE}SELECT COALESCE(max(CASE {} ELSE {} END), 0)::bigint{JOINS}",
        arms.join("\n                 "),
        arms.len()
    )
});

/// The demand and criteria as the queries bind them (`$1`-`$11`).
struct Params {
    exclude: Vec<i64>,
    country: Option<String>,
    farm: Option<i64>,
    certified_only: bool,
    dedicated: bool,
    min_uptime_bps: i64,
    capacity: [i64; 5],
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Params {
    fn new(demand: &Demand, criteria: &Placement, exclude: &[u32]) -> Self {
        Self {
            exclude: exclude.iter().map(|id| i64::from(*id)).collect(),
            country: criteria.country.as_ref().map(|c| c.as_str().to_string()),
            farm: criteria.farm_id.map(i64::from),
            certified_only: criteria.certified_only,
            dedicated: criteria.dedicated,
            min_uptime_bps: i64::from(criteria.min_uptime_bps),
            capacity: [
                big(demand.cru),
                big(demand.mru),
                big(demand.sru),
                big(demand.hru),
                i64::from(demand.ipv4),
            ],
        }
    }

    fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        let [cru, mru, sru, hru, ipv4] = self.capacity;
        query
            .bind(&self.exclude)
            .bind(&self.country)
            .bind(self.farm)
            .bind(self.certified_only)
            .bind(self.dedicated)
            .bind(self.min_uptime_bps)
            .bind(cru)
            .bind(mru)
            .bind(sru)
            .bind(hru)
            .bind(ipv4)
    }
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    node_id: i64,
    farm_id: i64,
    country: String,
    certified: bool,
    dedicated: bool,
    rentable: bool,
    rented: bool,
    uptime_seconds: i64,
    extra_fee: i64,
    free_cru: i64,
    free_mru: i64,
    free_sru: i64,
    free_hru: i64,
    farm_free_ips: i64,
}

#[derive(sqlx::FromRow)]
struct HeldRow {
    node_id: i64,
    farm_id: i64,
    hourly_usd: i64,
    reason: String,
}

impl HeldRow {
    /// The choice as it was made; `None` for ids beyond the grid's range,
    /// which no reservation this module wrote has.
    fn choice(self) -> Option<Choice> {
        Some(Choice {
            node_id: u32::try_from(self.node_id).ok()?,
            farm_id: u32::try_from(self.farm_id).ok()?,
            hourly_usd: UsdAmount::from_units(unsigned(self.hourly_usd)),
            reason: self.reason,
        })
    }
}

/// Places a deployment and reserves the capacity it needs: the best node
/// [`rank`] finds for `demand` under `criteria` and `policy`'s prices at
/// `now`, never one in `exclude`, with reservations other deployments hold
/// subtracted. A dedicated deployment reserves its node's whole free
/// capacity, so no other placement lands there before the node is rented.
///
/// Idempotent: a deployment that already holds a reservation on a node not
/// excluded gets that choice again (a retry after a crash mid-way changes
/// nothing); one held on an excluded node is given up first. The outer
/// error is the database's; the inner one says why no node fits, in words
/// for the user. Everything happens in one transaction under [`LOCK`].
pub async fn reserve(
    pool: &PgPool,
    deployment_id: Uuid,
    demand: &Demand,
    criteria: &Placement,
    policy: &PricingPolicy,
    now: DateTime<Utc>,
    exclude: &[u32],
) -> Result<Result<Choice, NoCandidate>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    if let Some(held) = held_in(&mut tx, deployment_id).await? {
        if !exclude.contains(&held.node_id) {
            tx.commit().await?;
            return Ok(Ok(held));
        }
    }
    // Nothing held, or held on a node the caller now excludes: give it up.
    sqlx::query("DELETE FROM capacity_reservations WHERE deployment_id = $1")
        .bind(deployment_id)
        .execute(&mut *tx)
        .await?;

    let params = Params::new(demand, criteria, exclude);
    let mut candidates = candidates(&mut tx, &params, demand, criteria, policy).await?;
    let mut windows = maintenance(&mut tx, now).await?;
    for c in &mut candidates {
        c.maintenance = windows.remove(&c.node_id).unwrap_or_default();
    }
    let ranked = rank(demand, criteria, &candidates, now, exclude);
    let choice = match ranked.map(|choices| choices.into_iter().next()) {
        Ok(Some(choice)) => choice,
        Ok(None) => {
            // rank answers an error rather than an empty list; be safe.
            let no = NoCandidate::after(Filter::Status, demand, criteria, exclude);
            tx.commit().await?;
            return Ok(Err(no));
        }
        Err(no) => {
            let no = explain(&mut tx, &params, no, demand, criteria, exclude).await?;
            tx.commit().await?;
            return Ok(Err(no));
        }
    };
    let held = match candidates.iter().find(|c| c.node_id == choice.node_id) {
        Some(node) if criteria.dedicated => {
            [node.free_cru, node.free_mru, node.free_sru, node.free_hru]
        }
        _ => [demand.cru, demand.mru, demand.sru, demand.hru],
    };
    let [cru, mru, sru, hru] = held.map(big);
    sqlx::query(
        "INSERT INTO capacity_reservations
            (deployment_id, node_id, farm_id, cru, mru, sru, hru, ipv4, hourly_usd, reason,
             reserved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(deployment_id)
    .bind(i64::from(choice.node_id))
    .bind(i64::from(choice.farm_id))
    .bind(cru)
    .bind(mru)
    .bind(sru)
    .bind(hru)
    .bind(i32::try_from(demand.ipv4).unwrap_or(i32::MAX))
    .bind(big(choice.hourly_usd.units()))
    .bind(&choice.reason)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(choice))
}

/// The choice a deployment's reservation was made with, if it holds one.
pub async fn held(pool: &PgPool, deployment_id: Uuid) -> Result<Option<Choice>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    held_in(&mut conn, deployment_id).await
}

async fn held_in(
    conn: &mut PgConnection,
    deployment_id: Uuid,
) -> Result<Option<Choice>, sqlx::Error> {
    let row: Option<HeldRow> = sqlx::query_as(
        "SELECT node_id, farm_id, hourly_usd, reason
           FROM capacity_reservations WHERE deployment_id = $1",
    )
    .bind(deployment_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(HeldRow::choice))
}

/// Gives up a deployment's reservation (its provisioning failed, or it was
/// deleted). Answers whether it held one.
pub async fn release(pool: &PgPool, deployment_id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM capacity_reservations WHERE deployment_id = $1")
        .bind(deployment_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Records that the deployment's workloads run on its node since `at`
/// (when the node answered them `ok`): its reservation keeps counting
/// until the node's next report after `at`, which counts the deployment
/// itself. Answers whether it held a reservation.
pub async fn mark_running(
    pool: &PgPool,
    deployment_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE capacity_reservations SET running_at = $2 WHERE deployment_id = $1")
            .bind(deployment_id)
            .bind(at)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes the reservations that no longer count, their node having
/// reported since they ran. Answers how many. Optional housekeeping: they
/// are ignored either way.
pub async fn prune(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM capacity_reservations r
          USING node_catalog c
          WHERE c.node_id = r.node_id AND r.running_at IS NOT NULL
            AND c.last_report > r.running_at",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The pre-filtered catalog as candidates, priced for the demand, without
/// maintenance windows yet.
async fn candidates(
    conn: &mut PgConnection,
    params: &Params,
    demand: &Demand,
    criteria: &Placement,
    policy: &PricingPolicy,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows: Vec<CandidateRow> = params
        .bind(sqlx::query_as(CANDIDATES.as_str()))
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            // Grid ids are u32; a row beyond that is no grid node.
            let node_id = u32::try_from(r.node_id).ok()?;
            let farm_id = u32::try_from(r.farm_id).ok()?;
            Some(Candidate {
                node_id,
                farm_id,
                country: r.country,
                certified: r.certified,
                dedicated: r.dedicated,
                rentable: r.rentable,
                rented: r.rented,
                status: NodeStatus::Up,
                uptime_seconds: unsigned(r.uptime_seconds),
                free_cru: unsigned(r.free_cru),
                free_mru: unsigned(r.free_mru),
                free_sru: unsigned(r.free_sru),
                free_hru: unsigned(r.free_hru),
                farm_free_ips: u32::try_from(r.farm_free_ips).unwrap_or(0),
                maintenance: Vec::new(),
                hourly_usd: node_price(
                    demand,
                    r.certified,
                    unsigned(r.extra_fee),
                    criteria,
                    policy,
                ),
            })
        })
        .collect())
}

/// Maintenance windows still scheduled that overlap the next
/// [`MAINTENANCE_HORIZON_HOURS`], by node: the only ones [`rank`] looks at.
async fn maintenance(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<HashMap<u32, Vec<(DateTime<Utc>, DateTime<Utc>)>>, sqlx::Error> {
    let rows: Vec<(i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT node_id, starts_at, ends_at FROM maintenance_windows
          WHERE status IN ('scheduled', 'rescheduled') AND ends_at > $1 AND starts_at < $2",
    )
    .bind(now)
    .bind(now + Duration::hours(MAINTENANCE_HORIZON_HOURS))
    .fetch_all(conn)
    .await?;
    let mut by_node: HashMap<u32, Vec<_>> = HashMap::new();
    for (node_id, starts, ends) in rows {
        if let Ok(id) = u32::try_from(node_id) {
            by_node.entry(id).or_default().push((starts, ends));
        }
    }
    Ok(by_node)
}

/// The refusal over the whole catalog: [`rank`] saw only the pre-filtered
/// candidates, so a filter that emptied the set earlier (say the country)
/// or elsewhere (one node short of vCPUs, another of IPs) is named from
/// the catalog itself. The later of the two filters wins: every node fails
/// by then.
async fn explain(
    conn: &mut PgConnection,
    params: &Params,
    no: NoCandidate,
    demand: &Demand,
    criteria: &Placement,
    exclude: &[u32],
) -> Result<NoCandidate, sqlx::Error> {
    let (furthest,): (i64,) = params
        .bind(sqlx::query_as(FURTHEST.as_str()))
        .fetch_one(conn)
        .await?;
    let filter = usize::try_from(furthest)
        .ok()
        .and_then(|i| Filter::ALL.get(i).copied())
        .unwrap_or(Filter::Status);
    Ok(if filter > no.filter {
        NoCandidate::after(filter, demand, criteria, exclude)
    } else {
        no
    })
}
