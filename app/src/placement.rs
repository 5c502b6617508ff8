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
//! for a handful of queries (5 to 15 ms on a 10,000-node catalog, see
//! docs/measurements.md#placement); [`release`] and [`mark_running`] only
//! lower what is reserved and take no lock.
//!
//! Reservations are subtracted in Rust, not joined in SQL: the live ones
//! are few and read once by the catalog's primary key, where a join of the
//! catalog to their sums had the planner re-aggregate them for every row.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Duration, Utc};
use marketplace_domain::deployment::Placement;
use marketplace_domain::node::NodeStatus;
use marketplace_domain::placement::{
    first_failure, node_price, rank, Candidate, Choice, Demand, Filter, NoCandidate,
    MAINTENANCE_HORIZON_HOURS, UPTIME_WINDOW_SECONDS,
};
use marketplace_domain::pricing::PricingPolicy;
use marketplace_domain::UsdAmount;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The advisory lock every placement holds for its transaction, as
/// `pg_advisory_xact_lock(hashtextextended('capacity-placement', 7))` (the
/// projections' locks use the same form with their own names).
pub const LOCK: &str = "capacity-placement";

/// The reservations that still count, one row each: `running_at` unset, or
/// the node's last report not after it. Few (the placements of the last
/// hour or so), read through the catalog's primary key.
const LIVE: &str = "SELECT r.node_id, r.farm_id, r.cru, r.mru, r.sru, r.hru, r.ipv4::bigint
      FROM capacity_reservations r
      JOIN node_catalog c ON c.node_id = r.node_id
     WHERE r.running_at IS NULL OR c.last_report <= r.running_at";

/// The catalog columns a [`Candidate`] is made from.
const COLUMNS: &str = "SELECT c.node_id, c.farm_id, c.country, c.certified, c.dedicated,
           c.rentable, c.rented, c.uptime_seconds, c.extra_fee, c.free_cru, c.free_mru,
           c.free_sru, c.free_hru, c.farm_free_ips::bigint AS farm_free_ips
      FROM node_catalog c";

/// The domain's filters from `Status` to `Ipv4` ([`Filter::ALL`] but
/// maintenance), one SQL condition each over a catalog row `c`, on its
/// free capacity before reservations: a pre-filter that can only keep too
/// many, since reservations only lower what is free; [`rank`] applies the
/// filters again, net of them. Parameters: `$1` excluded node ids, `$2`
/// country, `$3` farm, `$4` certified only, `$5` dedicated, `$6` minimum
/// uptime in basis points, `$7`-`$10` demanded cru, mru, sru, hru, `$11`
/// public IPv4 count, `$12` an alliance whose nodes only may host it (an
/// alliance's nodes are the ones counted in it now, contributed and not
/// withdrawn; the domain's ranking knows no alliances, so this condition
/// rides with the farm's and an empty set names the farm filter). The uptime figure is
/// [`availability_bps`](marketplace_domain::placement::availability_bps) in
/// the same integer arithmetic.
fn conditions() -> [String; 11] {
    [
        "c.status = 'up' AND NOT (c.node_id = ANY($1::bigint[]))".into(),
        "($2::text IS NULL OR lower(c.country) = lower($2::text))".into(),
        "($3::bigint IS NULL OR c.farm_id = $3::bigint) AND ($12::text IS NULL OR c.node_id IN \
              (SELECT an.node_id FROM alliance_nodes an \
                WHERE an.alliance_id = $12::text AND an.counted_until IS NULL))"
            .into(),
        "(NOT $4::boolean OR c.certified)".into(),
        "(CASE WHEN $5::boolean THEN c.rentable AND NOT c.rented \
              ELSE NOT c.rented AND NOT c.dedicated END)"
            .into(),
        format!(
            "(LEAST(GREATEST(c.uptime_seconds, 0), {w}) * 10000 / {w} >= $6::bigint)",
            w = UPTIME_WINDOW_SECONDS
        ),
        "c.free_cru >= $7::bigint".into(),
        "c.free_mru >= $8::bigint".into(),
        "c.free_sru >= $9::bigint".into(),
        "c.free_hru >= $10::bigint".into(),
        "c.farm_free_ips >= $11::bigint".into(),
    ]
}

/// The candidates before reservations: up nodes that meet the criteria and
/// whose free capacity covers the demand. Uses the catalog's indexes on
/// status, country and farm.
static CANDIDATES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{COLUMNS}\n     WHERE {}",
        conditions().join("\n       AND ")
    )
});

/// Every up node, to name the filter that emptied the set over the whole
/// catalog when nothing was eligible. A node that is not up fails the
/// first filter, so it can never be the one that got furthest.
static UP: LazyLock<String> = LazyLock::new(|| format!("{COLUMNS} WHERE c.status = 'up'"));

/// What the live reservations hold, per node (cru, mru, sru, hru) and per
/// farm (public IPv4 addresses).
#[derive(Debug, Default)]
struct Reserved {
    nodes: HashMap<i64, [i64; 4]>,
    farms: HashMap<i64, i64>,
}

impl Reserved {
    async fn load(conn: &mut PgConnection) -> Result<Self, sqlx::Error> {
        let rows: Vec<(i64, i64, i64, i64, i64, i64, i64)> =
            sqlx::query_as(LIVE).fetch_all(conn).await?;
        let mut held = Self::default();
        for (node, farm, cru, mru, sru, hru, ipv4) in rows {
            let sums = held.nodes.entry(node).or_default();
            for (sum, n) in sums.iter_mut().zip([cru, mru, sru, hru]) {
                *sum = sum.saturating_add(n);
            }
            let ips = held.farms.entry(farm).or_default();
            *ips = ips.saturating_add(ipv4);
        }
        Ok(held)
    }
}

/// The demand and criteria as the pre-filter binds them (`$1`-`$11`).
struct Params {
    exclude: Vec<i64>,
    country: Option<String>,
    farm: Option<i64>,
    alliance: Option<String>,
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
            alliance: criteria.alliance_id.clone(),
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
            .bind(&self.alliance)
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
    let reserved = Reserved::load(&mut tx).await?;
    let mut candidates = candidates(&mut tx, &params, &reserved, demand, criteria, policy).await?;
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
            let no = explain(&mut tx, &reserved, no, demand, criteria, now, exclude).await?;
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

/// Frees every reservation of these ids at once (a deployment's own and
/// its satellites').
pub async fn release_all(pool: &PgPool, ids: &[Uuid]) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM capacity_reservations WHERE deployment_id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
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

impl CandidateRow {
    /// The row as placement sees it: free capacity and the farm's free IPs
    /// net of what live reservations hold (never below 0), at `hourly_usd`,
    /// without maintenance windows yet. `None` for ids beyond u32, which no
    /// grid node has.
    fn candidate(self, reserved: &Reserved, hourly_usd: UsdAmount) -> Option<Candidate> {
        let node_id = u32::try_from(self.node_id).ok()?;
        let farm_id = u32::try_from(self.farm_id).ok()?;
        let held = reserved
            .nodes
            .get(&self.node_id)
            .copied()
            .unwrap_or_default();
        let net = |free: i64, held: i64| unsigned(free.saturating_sub(held));
        let ips = self
            .farm_free_ips
            .saturating_sub(reserved.farms.get(&self.farm_id).copied().unwrap_or(0));
        Some(Candidate {
            node_id,
            farm_id,
            country: self.country,
            certified: self.certified,
            dedicated: self.dedicated,
            rentable: self.rentable,
            rented: self.rented,
            // Both queries read only up nodes.
            status: NodeStatus::Up,
            uptime_seconds: unsigned(self.uptime_seconds),
            free_cru: net(self.free_cru, held[0]),
            free_mru: net(self.free_mru, held[1]),
            free_sru: net(self.free_sru, held[2]),
            free_hru: net(self.free_hru, held[3]),
            farm_free_ips: u32::try_from(ips.max(0)).unwrap_or(u32::MAX),
            maintenance: Vec::new(),
            hourly_usd,
        })
    }
}

/// The pre-filtered catalog as candidates, net of reservations and priced
/// for the demand, without maintenance windows yet.
async fn candidates(
    conn: &mut PgConnection,
    params: &Params,
    reserved: &Reserved,
    demand: &Demand,
    criteria: &Placement,
    policy: &PricingPolicy,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows: Vec<CandidateRow> = params
        .bind(sqlx::query_as(CANDIDATES.as_str()))
        .fetch_all(conn)
        .await?;
    // A demand costs one of two prices (certified or not) plus, when
    // dedicated, the node's extra fee: price each pair once.
    let mut prices: HashMap<(bool, u64), UsdAmount> = HashMap::new();
    let mut price = |certified: bool, fee: u64| {
        *prices
            .entry((certified, fee))
            .or_insert_with(|| node_price(demand, certified, fee, criteria, policy))
    };
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let hourly = price(r.certified, unsigned(r.extra_fee));
            r.candidate(reserved, hourly)
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
/// every up node, net of reservations, by the domain's own filters. A node
/// that passes all of them but maintenance was a candidate, and failed on
/// maintenance there.
async fn explain(
    conn: &mut PgConnection,
    reserved: &Reserved,
    no: NoCandidate,
    demand: &Demand,
    criteria: &Placement,
    now: DateTime<Utc>,
    exclude: &[u32],
) -> Result<NoCandidate, sqlx::Error> {
    let rows: Vec<CandidateRow> = sqlx::query_as(UP.as_str()).fetch_all(conn).await?;
    let furthest = rows
        .into_iter()
        .filter_map(|r| r.candidate(reserved, UsdAmount::default()))
        .map(|c| first_failure(demand, criteria, &c, now, exclude).unwrap_or(Filter::Maintenance))
        .max()
        .unwrap_or(Filter::Status);
    Ok(if furthest > no.filter {
        NoCandidate::after(furthest, demand, criteria, exclude)
    } else {
        no
    })
}
