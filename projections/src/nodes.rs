//! The node catalog users browse, and the maintenance windows providers
//! schedule. One Node aggregate feeds both tables; its version line is the
//! node's row in `node_catalog`: every node event, maintenance included,
//! moves that row's `version` under the `version = sequence - 1` guard, and
//! a window row records the sequence that last touched it.
//!
//! Units. The catalog keeps capacity as the grid reports it: `cru` in vCPUs,
//! `mru`, `sru` and `hru` in bytes (so the `min_free_*` filters are bytes
//! too). `cu_milli` and `su_milli` are the whole node's capacity priced by
//! [`marketplace_domain::pricing::MachineUsage`], which wants memory in MiB
//! and disks in GB; the grid's "GB" is a GiB (TFChain's `cost.rs` divides
//! bytes by 1024³), so memory is `bytes / 2^20` MiB and SSD/HDD are
//! `bytes / 2^30` GB, both rounded down.
//!
//! Prices. [`hourly_usd`] prices a whole node for an hour from `cu_milli`
//! and `su_milli` under a policy, the certified multiplier and the
//! marketplace's markup included (it is what a user pays), no IPv4, no
//! discount, rounded once, half up. Because it starts from the rounded
//! thousandths, it can differ from `pricing::quote` of the same node by a
//! unit or so. The catalog computes the same figure in SQL to filter and
//! sort by price.
//!
//! Every column comes from events, never from the clock, so a rebuild
//! reproduces the tables exactly (ARCHITECTURE.md, invariant 6).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use marketplace_domain::node::{
    Certification, NodeEvent, NodeResources, NodeSnapshot, NodeStatus, EVENT_VERSION,
};
use marketplace_domain::pricing::{quote, MachineUsage, PricingPolicy};
use marketplace_domain::{TftPrice, UsdAmount};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use crate::{ApplyError, Projection, StoredEvent};

/// Builds `node_catalog` and `maintenance_windows`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "nodes";

/// The aggregate type it reads.
pub const AGGREGATE_TYPE: &str = "node";

/// The largest catalog page.
pub const MAX_PAGE: i64 = 1_000;

/// Reads a stored node event, upcasting older payload versions.
pub fn upcast(event: &StoredEvent) -> Result<NodeEvent, ApplyError> {
    crate::decode_event(event, EVENT_VERSION)
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A count the grid reports as u64, as a bigint; beyond i64 (exabytes) it
/// saturates, the same way on every replay.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The whole node's capacity in thousandths of CU and SU.
pub fn capacity_units(total: &NodeResources) -> (i64, i64) {
    let usage = MachineUsage {
        cru: total.cru,
        mru_mib: total.mru / MIB,
        sru_gb: total.sru / GIB,
        hru_gb: total.hru / GIB,
        ipv4: 0,
    };
    // Only the unit counts are read; the TFT price does not enter them.
    let price = TftPrice::from_usd_units(1).expect("a positive price");
    let q = quote(&[usage], false, &PricingPolicy::default(), price, None);
    (big(q.cu_milli), big(q.su_milli))
}

/// What a whole node costs for an hour, in USD chain units: `(cu_milli *
/// cu_price + su_milli * su_price) / 1000`, times the certified multiplier
/// for a certified node, times the markup, rounded half up, at most
/// `i64::MAX`. The catalog's SQL computes exactly this.
pub fn hourly_usd(cu_milli: i64, su_milli: i64, certified: bool, policy: &PricingPolicy) -> i64 {
    let cert = if certified {
        u128::from(policy.certified_multiplier_bps)
    } else {
        10_000
    };
    let base = (cu_milli.max(0) as u128)
        .saturating_mul(u128::from(policy.cu_per_hour.units()))
        .saturating_add(
            (su_milli.max(0) as u128).saturating_mul(u128::from(policy.su_per_hour.units())),
        );
    let num = base
        .saturating_mul(cert)
        .saturating_mul(10_000 + u128::from(policy.markup_bps));
    let den: u128 = 1_000 * 10_000 * 10_000;
    let rounded = num.saturating_add(den / 2) / den;
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// The SQL of [`hourly_usd`] over a row aliased `c`, with the policy's
/// figures bound.
fn push_price(sql: &mut sqlx::QueryBuilder<'_, Postgres>, policy: &PricingPolicy) {
    sql.push("LEAST(div((c.cu_milli::numeric * ")
        .push_bind(big(policy.cu_per_hour.units()))
        .push(" + c.su_milli::numeric * ")
        .push_bind(big(policy.su_per_hour.units()))
        .push(") * (CASE WHEN c.certified THEN ")
        .push_bind(i64::from(policy.certified_multiplier_bps))
        .push(" ELSE 10000 END) * ")
        .push_bind(10_000 + i64::from(policy.markup_bps))
        .push(" + 50000000000, 100000000000), 9223372036854775807)::bigint");
}

/// The catalog columns a snapshot sets, in bind order `$5` onwards.
struct SnapshotColumns {
    farm_id: i64,
    twin_id: i64,
    country: String,
    city: String,
    total: [i64; 4],
    free: [i64; 4],
    public_ipv4: bool,
    public_ipv6: bool,
    farm_free_ips: i32,
    certified: bool,
    dedicated: bool,
    rentable: bool,
    rented: bool,
    gpus: i32,
    extra_fee: i64,
    uptime_seconds: i64,
    last_report: DateTime<Utc>,
    cu_milli: i64,
    su_milli: i64,
    snapshot: Value,
}

impl SnapshotColumns {
    fn of(snapshot: &NodeSnapshot) -> Result<Self, ApplyError> {
        let NodeSnapshot { total, used, .. } = snapshot;
        let (cu_milli, su_milli) = capacity_units(total);
        Ok(Self {
            farm_id: snapshot.farm_id.into(),
            twin_id: snapshot.twin_id.into(),
            country: snapshot.country.clone(),
            city: snapshot.city.clone(),
            total: [total.cru, total.mru, total.sru, total.hru].map(big),
            free: [
                total.cru.saturating_sub(used.cru),
                total.mru.saturating_sub(used.mru),
                total.sru.saturating_sub(used.sru),
                total.hru.saturating_sub(used.hru),
            ]
            .map(big),
            public_ipv4: snapshot.public_ipv4,
            public_ipv6: snapshot.public_ipv6,
            farm_free_ips: i32::try_from(snapshot.farm_free_ips).unwrap_or(i32::MAX),
            certified: snapshot.certification == Certification::Certified,
            dedicated: snapshot.dedicated,
            rentable: snapshot.rentable,
            rented: snapshot.rented,
            gpus: i32::try_from(snapshot.gpus).unwrap_or(i32::MAX),
            extra_fee: big(snapshot.extra_fee),
            uptime_seconds: big(snapshot.uptime_seconds),
            last_report: snapshot.last_report,
            cu_milli,
            su_milli,
            snapshot: serde_json::to_value(snapshot)
                .map_err(|e| ApplyError::Poison(format!("cannot serialise: {e}")))?,
        })
    }

    fn bind<'q>(self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        let [tc, tm, ts, th] = self.total;
        let [fc, fm, fs, fh] = self.free;
        query
            .bind(self.farm_id)
            .bind(self.twin_id)
            .bind(self.country)
            .bind(self.city)
            .bind(tc)
            .bind(tm)
            .bind(ts)
            .bind(th)
            .bind(fc)
            .bind(fm)
            .bind(fs)
            .bind(fh)
            .bind(self.public_ipv4)
            .bind(self.public_ipv6)
            .bind(self.certified)
            .bind(self.dedicated)
            .bind(self.rentable)
            .bind(self.rented)
            .bind(self.gpus)
            .bind(self.extra_fee)
            .bind(self.uptime_seconds)
            .bind(self.last_report)
            .bind(self.cu_milli)
            .bind(self.su_milli)
            .bind(self.snapshot)
            .bind(self.farm_free_ips)
    }
}

/// `INSERT` of a discovered node: `$1` node, `$2` sequence, `$3` when,
/// `$4` status, then the snapshot's columns as [`SnapshotColumns::bind`]
/// binds them.
const INSERT_NODE: &str = "INSERT INTO node_catalog
    (node_id, version, updated_at, status,
     farm_id, twin_id, country, city,
     total_cru, total_mru, total_sru, total_hru, free_cru, free_mru, free_sru, free_hru,
     public_ipv4, public_ipv6, certified, dedicated, rentable, rented, gpus, extra_fee,
     uptime_seconds, last_report, cu_milli, su_milli, snapshot, farm_free_ips)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
          $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)
  ON CONFLICT (node_id) DO NOTHING";

/// `UPDATE` of a known node's snapshot, same parameters, guarded.
const UPDATE_NODE: &str = "UPDATE node_catalog SET version = $2, updated_at = $3, status = $4,
     farm_id = $5, twin_id = $6, country = $7, city = $8,
     total_cru = $9, total_mru = $10, total_sru = $11, total_hru = $12,
     free_cru = $13, free_mru = $14, free_sru = $15, free_hru = $16,
     public_ipv4 = $17, public_ipv6 = $18, certified = $19, dedicated = $20,
     rentable = $21, rented = $22, gpus = $23, extra_fee = $24,
     uptime_seconds = $25, last_report = $26, cu_milli = $27, su_milli = $28, snapshot = $29,
     farm_free_ips = $30
  WHERE node_id = $1 AND version = $2 - 1";

/// A maintenance statement: the node's guarded version move, then the
/// window's change `w` made only through it, answering how many rows each
/// changed.
macro_rules! maintenance {
    ($window:literal) => {
        concat!(
            "WITH node AS (UPDATE node_catalog SET version = $2
                            WHERE node_id = $1 AND version = $2 - 1 RETURNING node_id),
                  w AS (",
            $window,
            " RETURNING 1)
             SELECT (SELECT count(*) FROM node), (SELECT count(*) FROM w)"
        )
    };
}

#[async_trait::async_trait]
impl Projection for NodeProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    /// One statement per event, guarded by `version = sequence - 1` on the
    /// node's catalog row; a maintenance event changes its window in the same
    /// statement, only if the guard let the node row change. When nothing
    /// changed, a second look tells a duplicate (no-op) from a gap or a
    /// missing node (poison).
    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        use NodeEvent as E;
        let node_id = match stored.aggregate_id.parse::<u32>() {
            Ok(id) => i64::from(id),
            Err(_) => {
                return Err(ApplyError::Poison(format!(
                    "aggregate id {:?} is not a node id",
                    stored.aggregate_id
                )))
            }
        };
        let event = upcast(stored)?;
        let seq = stored.sequence;
        let at = event.at();
        let head = |sql: &'static str| sqlx::query(sql).bind(node_id).bind(seq).bind(at);
        // Maintenance: (node rows changed, window rows changed).
        let counted = |sql: &'static str| {
            sqlx::query_as::<_, (i64, i64)>(sql)
                .bind(node_id)
                .bind(seq)
                .bind(at)
        };
        let changed = match &event {
            E::NodeDiscovered {
                snapshot, status, ..
            }
            | E::NodeUpdated {
                snapshot, status, ..
            } => {
                if i64::from(snapshot.node_id) != node_id {
                    return Err(ApplyError::Poison(format!(
                        "a snapshot of node {} in the stream of node {node_id}",
                        snapshot.node_id
                    )));
                }
                // A discovery at sequence 1 creates the row; anything later
                // (the aggregate also accepts a late discovery) updates it.
                let sql = if seq == 1 && matches!(event, E::NodeDiscovered { .. }) {
                    INSERT_NODE
                } else {
                    UPDATE_NODE
                };
                let query = head(sql).bind(status.as_str());
                SnapshotColumns::of(snapshot)?
                    .bind(query)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
                    == 1
            }
            E::NodeStatusChanged { status, .. } => {
                head(
                    "UPDATE node_catalog SET version = $2, updated_at = $3, status = $4
                      WHERE node_id = $1 AND version = $2 - 1",
                )
                .bind(status.as_str())
                .execute(&mut *conn)
                .await?
                .rows_affected()
                    == 1
            }
            E::MaintenanceScheduled { window, by, .. } => {
                let (node, windows) = counted(maintenance!(
                    "INSERT INTO maintenance_windows
                        (node_id, window_id, starts_at, ends_at, reason, status, scheduled_by,
                         scheduled_at, updated_at, version)
                     SELECT node_id, $4, $5, $6, $7, 'scheduled', $8, $3, $3, $2 FROM node
                     ON CONFLICT (node_id, window_id) DO NOTHING"
                ))
                .bind(window.id)
                .bind(window.start)
                .bind(window.end)
                .bind(&window.reason)
                .bind(&by.subject)
                .fetch_one(&mut *conn)
                .await?;
                window_outcome(node, windows, window.id, "already in the view")?
            }
            E::MaintenanceRescheduled {
                window_id,
                start,
                end,
                ..
            } => {
                let (node, windows) = counted(maintenance!(
                    "UPDATE maintenance_windows m
                        SET starts_at = $5, ends_at = $6, status = 'rescheduled',
                            updated_at = $3, version = $2
                       FROM node WHERE m.node_id = node.node_id AND m.window_id = $4
                        AND m.status <> 'cancelled'"
                ))
                .bind(window_id)
                .bind(start)
                .bind(end)
                .fetch_one(&mut *conn)
                .await?;
                window_outcome(node, windows, *window_id, "not scheduled in the view")?
            }
            E::MaintenanceCancelled { window_id, .. } => {
                let (node, windows) = counted(maintenance!(
                    "UPDATE maintenance_windows m
                        SET status = 'cancelled', updated_at = $3, version = $2
                       FROM node WHERE m.node_id = node.node_id AND m.window_id = $4
                        AND m.status <> 'cancelled'"
                ))
                .bind(window_id)
                .fetch_one(&mut *conn)
                .await?;
                window_outcome(node, windows, *window_id, "not scheduled in the view")?
            }
        };
        if changed {
            return Ok(());
        }
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM node_catalog WHERE node_id = $1")
                .bind(node_id)
                .fetch_optional(&mut *conn)
                .await?;
        crate::unchanged(current, stored, "node")
    }

    fn tables(&self) -> &'static [&'static str] {
        &["node_catalog", "maintenance_windows"]
    }
}

/// Whether a maintenance statement applied: the node row moved and exactly
/// one window changed. A node row that moved without its window means the
/// view and the aggregate disagree: poison (the caller's savepoint undoes
/// the move).
fn window_outcome(node: i64, windows: i64, id: Uuid, problem: &str) -> Result<bool, ApplyError> {
    match (node, windows) {
        (0, _) => Ok(false),
        (1, 1) => Ok(true),
        _ => Err(ApplyError::Poison(format!(
            "maintenance window {id} is {problem}"
        ))),
    }
}

mod reads;
pub use reads::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for sort in Sort::ALL {
            let c = Cursor {
                sort,
                key: -3,
                node_id: 77,
            };
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("price|1|2|3")), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("name|1|2")), None);
    }

    #[test]
    fn capacity_counts_memory_in_mib_and_disks_in_gib() {
        // 2 vCPU, 4 GiB: 1 CU; 100 GiB SSD + 600 GiB HDD: 1 SU.
        let total = NodeResources {
            cru: 2,
            mru: 4 * GIB,
            sru: 100 * GIB,
            hru: 600 * GIB,
        };
        assert_eq!(capacity_units(&total), (1000, 1000));
        // Part of a GiB of disk does not count.
        let total = NodeResources {
            sru: 100 * GIB + GIB - 1,
            ..total
        };
        assert_eq!(capacity_units(&total), (1000, 1000));
    }

    #[test]
    fn a_whole_node_price_agrees_with_a_quote() {
        let policy = PricingPolicy {
            markup_bps: 1_000,
            ..Default::default()
        };
        let usage = MachineUsage {
            cru: 8,
            mru_mib: 32 * 1024,
            sru_gb: 1000,
            hru_gb: 6000,
            ipv4: 0,
        };
        let price = TftPrice::from_usd_units(100_000).expect("price");
        for certified in [false, true] {
            let q = quote(&[usage], certified, &policy, price, None);
            assert_eq!(
                hourly_usd(q.cu_milli as i64, q.su_milli as i64, certified, &policy),
                q.hourly_usd.units() as i64
            );
        }
        assert_eq!(hourly_usd(i64::MAX, i64::MAX, true, &policy), i64::MAX);
    }
}
