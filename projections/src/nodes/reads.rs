//! The catalog's read side: its rows, orders and cursors, the catalog query
//! users browse, and the maintenance windows' reads.

use super::*;

/// One row of `node_catalog`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NodeRow {
    /// Grid node id.
    pub node_id: i64,
    /// The node's farm.
    pub farm_id: i64,
    /// The node's twin.
    pub twin_id: i64,
    /// Country, as the grid reports it.
    pub country: String,
    /// City, as the grid reports it.
    pub city: String,
    /// vCPUs.
    pub total_cru: i64,
    /// Memory, bytes.
    pub total_mru: i64,
    /// SSD, bytes.
    pub total_sru: i64,
    /// HDD, bytes.
    pub total_hru: i64,
    /// vCPUs not reserved.
    pub free_cru: i64,
    /// Memory not reserved, bytes.
    pub free_mru: i64,
    /// SSD not reserved, bytes.
    pub free_sru: i64,
    /// HDD not reserved, bytes.
    pub free_hru: i64,
    /// Has a public IPv4 address.
    pub public_ipv4: bool,
    /// Free public IPv4 addresses of the node's farm.
    pub farm_free_ips: i32,
    /// Has a public IPv6 address.
    pub public_ipv6: bool,
    /// Certified hardware.
    pub certified: bool,
    /// Only rented whole.
    pub dedicated: bool,
    /// Can be rented whole now.
    pub rentable: bool,
    /// Rented whole.
    pub rented: bool,
    /// Number of GPUs.
    pub gpus: i32,
    /// The farmer's extra monthly fee, USD chain units.
    pub extra_fee: i64,
    /// `up`, `standby` or `down`.
    pub status: String,
    /// Uptime of the current boot, seconds.
    pub uptime_seconds: i64,
    /// When the node last reported.
    pub last_report: DateTime<Utc>,
    /// Whole-node compute units, thousandths.
    pub cu_milli: i64,
    /// Whole-node storage units, thousandths.
    pub su_milli: i64,
    /// The grid's snapshot as last synced.
    pub snapshot: Value,
    /// The last sync that changed the snapshot or status.
    pub updated_at: DateTime<Utc>,
    /// Last node aggregate sequence applied (maintenance events included).
    pub version: i64,
}

impl NodeRow {
    /// The status, if it is one this build knows.
    pub fn status(&self) -> Option<NodeStatus> {
        NodeStatus::parse(&self.status)
    }

    /// The stored snapshot.
    pub fn snapshot(&self) -> Result<NodeSnapshot, serde_json::Error> {
        serde_json::from_value(self.snapshot.clone())
    }

    /// What the whole node costs for an hour under a policy (see [`hourly_usd`]).
    pub fn hourly_usd(&self, policy: &PricingPolicy) -> UsdAmount {
        let units = hourly_usd(self.cu_milli, self.su_milli, self.certified, policy);
        UsdAmount::from_units(units.max(0) as u64)
    }
}

/// The catalog's orders. Every order breaks ties by ascending node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Ascending node id.
    #[default]
    NodeId,
    /// Most free vCPUs first.
    FreeCruDesc,
    /// Most free memory first.
    FreeMruDesc,
    /// Cheapest whole node first, under the query's policy.
    PriceAsc,
    /// Longest uptime first.
    UptimeDesc,
}

impl Sort {
    /// Every order, for validating requests.
    pub const ALL: [Sort; 5] = [
        Sort::NodeId,
        Sort::FreeCruDesc,
        Sort::FreeMruDesc,
        Sort::PriceAsc,
        Sort::UptimeDesc,
    ];

    /// The order's name in requests and cursors.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::NodeId => "node_id",
            Sort::FreeCruDesc => "free_cru",
            Sort::FreeMruDesc => "free_mru",
            Sort::PriceAsc => "price",
            Sort::UptimeDesc => "uptime",
        }
    }

    /// Parses an order's name.
    pub fn parse(name: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the key descends.
    fn descending(self) -> bool {
        matches!(
            self,
            Sort::FreeCruDesc | Sort::FreeMruDesc | Sort::UptimeDesc
        )
    }
}

/// A position in the catalog: the order it belongs to, the last row's sort
/// key and its node id.
///
/// A price cursor holds the price under the policy of the page it came from;
/// if the policy changes between pages, the next page continues from that
/// price under the new one (rows may then be skipped or repeated once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub(super) sort: Sort,
    pub(super) key: i64,
    pub(super) node_id: i64,
}

impl Cursor {
    /// The order this cursor continues.
    pub fn sort(&self) -> Sort {
        self.sort
    }

    /// Opaque text form for clients.
    pub fn encode(&self) -> String {
        let raw = format!("{}|{}|{}", self.sort.as_str(), self.key, self.node_id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses a cursor a client sent back; `None` if it is not one of ours.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.split('|');
        let cursor = Self {
            sort: Sort::parse(parts.next()?)?,
            key: parts.next()?.parse().ok()?,
            node_id: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

/// Filters, order and page of a catalog query. Unset filters and empty lists
/// match every node.
#[derive(Debug, Clone, Default)]
pub struct CatalogQuery {
    /// At least this many free vCPUs.
    pub min_free_cru: Option<u64>,
    /// At least this much free memory, bytes.
    pub min_free_mru: Option<u64>,
    /// At least this much free SSD, bytes.
    pub min_free_sru: Option<u64>,
    /// At least this much free HDD, bytes.
    pub min_free_hru: Option<u64>,
    /// In this country (any case).
    pub country: Option<String>,
    /// In this city (any case).
    pub city: Option<String>,
    /// In one of these farms.
    pub farm_ids: Vec<u32>,
    /// Certified (or not).
    pub certified: Option<bool>,
    /// Dedicated (or not).
    pub dedicated: Option<bool>,
    /// Rentable (or not).
    pub rentable: Option<bool>,
    /// Rented (or not).
    pub rented: Option<bool>,
    /// On a farm with a free public IPv4 address (or without).
    pub has_ipv4: Option<bool>,
    /// With at least one GPU (or none).
    pub has_gpu: Option<bool>,
    /// In one of these statuses.
    pub status: Vec<NodeStatus>,
    /// Up for at least this many seconds.
    pub min_uptime_seconds: Option<u64>,
    /// A whole node costs at least this much an hour (see [`hourly_usd`]).
    pub min_price: Option<UsdAmount>,
    /// A whole node costs at most this much an hour.
    pub max_price: Option<UsdAmount>,
    /// Counted now in this alliance (contributed and not withdrawn).
    pub alliance_id: Option<String>,
    /// In an alliance whose SLA (the latest set) targets at least this
    /// uptime, basis points.
    pub min_sla_bps: Option<u16>,
    /// The policy prices are computed under (the one in force).
    pub policy: PricingPolicy,
    /// The order.
    pub sort: Sort,
    /// Continue after this cursor; it must belong to the same order.
    pub after: Option<Cursor>,
    /// Page size, 1 to [`MAX_PAGE`].
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
struct KeyedRow {
    #[sqlx(flatten)]
    node: NodeRow,
    sort_key: i64,
}

/// Browses the catalog: one page of nodes matching every filter, in the
/// query's order, and the cursor of the next page. A cursor of another
/// order is refused with [`sqlx::Error::InvalidArgument`].
pub async fn catalog(
    pool: &PgPool,
    query: &CatalogQuery,
) -> Result<(Vec<NodeRow>, Option<Cursor>), sqlx::Error> {
    if let Some(after) = query.after {
        if after.sort != query.sort {
            return Err(sqlx::Error::InvalidArgument(format!(
                "a cursor of the {} order continues no {} list",
                after.sort.as_str(),
                query.sort.as_str()
            )));
        }
    }
    let limit = query.limit.clamp(1, MAX_PAGE);
    let mut sql = sqlx::QueryBuilder::new("SELECT n.* FROM (SELECT c.*, ");
    // The price costs numeric arithmetic on every row: only when filtered on.
    if query.min_price.is_some() || query.max_price.is_some() {
        push_price(&mut sql, &query.policy);
        sql.push(" AS hourly_usd, ");
    }
    match query.sort {
        Sort::NodeId => sql.push("c.node_id"),
        Sort::FreeCruDesc => sql.push("c.free_cru"),
        Sort::FreeMruDesc => sql.push("c.free_mru"),
        Sort::PriceAsc => {
            push_price(&mut sql, &query.policy);
            &mut sql
        }
        Sort::UptimeDesc => sql.push("c.uptime_seconds"),
    };
    sql.push(" AS sort_key FROM node_catalog c) n WHERE true");

    let at_least = |sql: &mut sqlx::QueryBuilder<'_, Postgres>, column: &str, min: Option<u64>| {
        if let Some(min) = min {
            sql.push(format_args!(" AND n.{column} >= "))
                .push_bind(big(min));
        }
    };
    at_least(&mut sql, "free_cru", query.min_free_cru);
    at_least(&mut sql, "free_mru", query.min_free_mru);
    at_least(&mut sql, "free_sru", query.min_free_sru);
    at_least(&mut sql, "free_hru", query.min_free_hru);
    at_least(&mut sql, "uptime_seconds", query.min_uptime_seconds);
    if let Some(country) = &query.country {
        sql.push(" AND lower(n.country) = lower(")
            .push_bind(country.clone())
            .push(")");
    }
    if let Some(city) = &query.city {
        sql.push(" AND lower(n.city) = lower(")
            .push_bind(city.clone())
            .push(")");
    }
    if !query.farm_ids.is_empty() {
        let farms: Vec<i64> = query.farm_ids.iter().map(|&f| f.into()).collect();
        sql.push(" AND n.farm_id = ANY(").push_bind(farms).push(")");
    }
    for (column, wanted) in [
        ("certified", query.certified),
        ("dedicated", query.dedicated),
        ("rentable", query.rentable),
        ("rented", query.rented),
    ] {
        if let Some(wanted) = wanted {
            sql.push(format_args!(" AND n.{column} = "))
                .push_bind(wanted);
        }
    }
    match query.has_ipv4 {
        Some(true) => {
            sql.push(" AND n.farm_free_ips > 0");
        }
        Some(false) => {
            sql.push(" AND n.farm_free_ips = 0");
        }
        None => {}
    }
    match query.has_gpu {
        Some(true) => {
            sql.push(" AND n.gpus > 0");
        }
        Some(false) => {
            sql.push(" AND n.gpus = 0");
        }
        None => {}
    }
    if !query.status.is_empty() {
        let statuses: Vec<&str> = query.status.iter().map(|s| s.as_str()).collect();
        sql.push(" AND n.status = ANY(")
            .push_bind(statuses)
            .push(")");
    }
    if let Some(min) = query.min_price {
        sql.push(" AND n.hourly_usd >= ")
            .push_bind(big(min.units()));
    }
    if let Some(max) = query.max_price {
        sql.push(" AND n.hourly_usd <= ")
            .push_bind(big(max.units()));
    }
    if query.alliance_id.is_some() || query.min_sla_bps.is_some() {
        // The alliance a node counts in now, and the target of its latest SLA.
        sql.push(
            " AND n.node_id IN (SELECT an.node_id FROM alliance_nodes an
                 JOIN alliance_views av ON av.alliance_id = an.alliance_id
                WHERE an.counted_until IS NULL",
        );
        if let Some(id) = &query.alliance_id {
            sql.push(" AND an.alliance_id = ").push_bind(id.clone());
        }
        if let Some(min) = query.min_sla_bps {
            sql.push(" AND (av.slas -> -1 -> 1 ->> 'target_bps')::int >= ")
                .push_bind(i32::from(min));
        }
        sql.push(")");
    }
    if let Some(after) = query.after {
        if query.sort == Sort::NodeId {
            sql.push(" AND n.node_id > ").push_bind(after.node_id);
        } else {
            // Past the cursor: beyond its key, or at its key with a higher
            // node id. The first, redundant bound lets an index on the key
            // start at the cursor instead of filtering the rows before it.
            let (bound, past) = if query.sort.descending() {
                (" <= ", " < ")
            } else {
                (" >= ", " > ")
            };
            sql.push(" AND n.sort_key")
                .push(bound)
                .push_bind(after.key)
                .push(" AND (n.sort_key")
                .push(past)
                .push_bind(after.key)
                .push(" OR n.node_id > ")
                .push_bind(after.node_id)
                .push(")");
        }
    }
    sql.push(if query.sort.descending() {
        " ORDER BY n.sort_key DESC, n.node_id"
    } else {
        " ORDER BY n.sort_key, n.node_id"
    });
    // One extra row tells whether there is a next page.
    sql.push(" LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<KeyedRow> = sql.build_query_as().fetch_all(pool).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| Cursor {
            sort: query.sort,
            key: r.sort_key,
            node_id: r.node.node_id,
        })
    } else {
        None
    };
    Ok((rows.into_iter().map(|r| r.node).collect(), next))
}

/// One node's catalog row.
pub async fn get(pool: &PgPool, node_id: u32) -> Result<Option<NodeRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM node_catalog WHERE node_id = $1")
        .bind(i64::from(node_id))
        .fetch_optional(pool)
        .await
}

/// Every known node's last synced snapshot and status, for the grid sync
/// worker to compare the grid against.
pub async fn snapshots(
    pool: &PgPool,
) -> Result<HashMap<u32, (NodeSnapshot, NodeStatus)>, sqlx::Error> {
    let rows: Vec<(i64, Value, String)> =
        sqlx::query_as("SELECT node_id, snapshot, status FROM node_catalog")
            .fetch_all(pool)
            .await?;
    rows.into_iter()
        .map(|(node_id, snapshot, status)| {
            let id = u32::try_from(node_id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let snapshot: NodeSnapshot =
                serde_json::from_value(snapshot).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let status = NodeStatus::parse(&status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown node status {status:?}").into())
            })?;
            Ok((id, (snapshot, status)))
        })
        .collect()
}

/// One maintenance window, with its node's farm.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WindowRow {
    /// The window's id (unique per node).
    pub window_id: Uuid,
    /// The node.
    pub node_id: i64,
    /// The node's farm, as the catalog has it now.
    pub farm_id: i64,
    /// When it begins.
    pub starts_at: DateTime<Utc>,
    /// When it ends (exclusive).
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// `scheduled`, `rescheduled` or `cancelled`.
    pub status: String,
    /// Who scheduled it.
    pub scheduled_by: String,
    /// When it was scheduled.
    pub scheduled_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The node aggregate's sequence that last changed it.
    pub version: i64,
}

const WINDOWS: &str = "SELECT w.window_id, w.node_id, c.farm_id, w.starts_at, w.ends_at, w.reason,
        w.status, w.scheduled_by, w.scheduled_at, w.updated_at, w.version
   FROM maintenance_windows w JOIN node_catalog c ON c.node_id = w.node_id
  WHERE w.status <> 'cancelled' AND w.ends_at > $1";

const WINDOWS_ORDER: &str = " ORDER BY w.starts_at, w.node_id, w.window_id";

/// A node's windows not cancelled and not ended by `after`, earliest first.
pub async fn windows_for_node(
    pool: &PgPool,
    node_id: u32,
    after: DateTime<Utc>,
) -> Result<Vec<WindowRow>, sqlx::Error> {
    windows_for_nodes(pool, &[node_id], after).await
}

/// The windows of these nodes not cancelled and not ended by `after`,
/// earliest first.
pub async fn windows_for_nodes(
    pool: &PgPool,
    node_ids: &[u32],
    after: DateTime<Utc>,
) -> Result<Vec<WindowRow>, sqlx::Error> {
    let ids: Vec<i64> = node_ids.iter().map(|&n| n.into()).collect();
    sqlx::query_as(&format!("{WINDOWS} AND w.node_id = ANY($2){WINDOWS_ORDER}"))
        .bind(after)
        .bind(ids)
        .fetch_all(pool)
        .await
}

/// The windows of every node of these farms not cancelled and not ended by
/// `after`, earliest first: a provider's maintenance calendar.
pub async fn windows_for_farms(
    pool: &PgPool,
    farm_ids: &[u32],
    after: DateTime<Utc>,
) -> Result<Vec<WindowRow>, sqlx::Error> {
    let ids: Vec<i64> = farm_ids.iter().map(|&f| f.into()).collect();
    sqlx::query_as(&format!("{WINDOWS} AND c.farm_id = ANY($2){WINDOWS_ORDER}"))
        .bind(after)
        .bind(ids)
        .fetch_all(pool)
        .await
}
