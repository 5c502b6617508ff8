//! An alliance's figures for a period, read from the chain facts the chain
//! follower keeps (`chain_rewards`, `chain_bills`, `chain_contracts`,
//! `chain_node_farms`, `node_uptime_reports`) and the maintenance windows:
//! what the settlement worker settles on, and what the API shows as live
//! uptime and projected shares.
//!
//! - **Income** of a node: the farmer's part of every `RewardDistributed`
//!   of a contract on it, in the period, made while the node was in the
//!   alliance's farm (the chain pays the farm the node is in at that
//!   moment). The farmer's part is what the pallet gives it: the standard
//!   rewards less 10% (staking pool) and 40% (foundation), each rounded to
//!   the nearest base unit with halves down, plus the additional rewards.
//! - **Billed**: what each marketplace user's twin was billed on the node in
//!   the period (`ContractBilled`), for SLA credits pro rata.
//! - **Uptime**: the grid's 80-minute rule over the period (or up to `until`
//!   while it runs), from the reports 80 minutes either side, with the
//!   node's maintenance windows (announced when scheduled or rescheduled).

use std::collections::{BTreeMap, HashMap};

use marketplace_domain::alliance::{
    measure_uptime_bps, AllianceState, MaintenanceWindow, NodeIncome, Period, MAX_REPORT_GAP,
};
use sqlx::PgPool;

/// `value * percent / 100`, to the nearest, halves down (the pallet's `Perbill`).
pub fn percent_of(value: u128, percent: u128) -> u128 {
    let scaled = value.saturating_mul(percent);
    scaled / 100 + u128::from(scaled % 100 > 50)
}

/// The farmer's part of one reward distribution.
pub fn farmer_part(standard: u128, additional: u128) -> u128 {
    standard
        .saturating_sub(percent_of(standard, 10) + percent_of(standard, 40))
        .saturating_add(additional)
}

fn amount(text: &str) -> u128 {
    text.parse().unwrap_or(0)
}

/// The farmer's part paid to `farm_id` for each of `nodes` in `[start, end)`
/// (unix seconds).
pub async fn income(
    pool: &PgPool,
    farm_id: u32,
    nodes: &[u32],
    start: i64,
    end: i64,
) -> Result<BTreeMap<u32, u128>, sqlx::Error> {
    let ids: Vec<i64> = nodes.iter().map(|&n| i64::from(n)).collect();
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT c.node_id, r.standard_rewards::text, r.additional_rewards::text
           FROM chain_rewards r
           JOIN chain_contracts c ON c.contract_id = r.contract_id
          WHERE c.node_id = ANY($1)
            AND r.distributed_at >= to_timestamp($2) AND r.distributed_at < to_timestamp($3)
            AND (SELECT f.farm_id FROM chain_node_farms f
                  WHERE f.node_id = c.node_id
                    AND (f.block_number, f.event_index) < (r.block_number, r.event_index)
                  ORDER BY f.block_number DESC, f.event_index DESC LIMIT 1) = $4",
    )
    .bind(&ids)
    .bind(start as f64)
    .bind(end as f64)
    .bind(i64::from(farm_id))
    .fetch_all(pool)
    .await?;
    let mut out: BTreeMap<u32, u128> = nodes.iter().map(|&n| (n, 0)).collect();
    for (node, standard, additional) in rows {
        if let Some(v) = u32::try_from(node).ok().and_then(|n| out.get_mut(&n)) {
            *v += farmer_part(amount(&standard), amount(&additional));
        }
    }
    Ok(out)
}

/// What each marketplace user (wallet) was billed on each of `nodes` in
/// `[start, end)`.
pub async fn billed(
    pool: &PgPool,
    nodes: &[u32],
    start: i64,
    end: i64,
) -> Result<BTreeMap<u32, BTreeMap<String, u128>>, sqlx::Error> {
    let ids: Vec<i64> = nodes.iter().map(|&n| i64::from(n)).collect();
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "WITH per_contract AS (
             SELECT b.contract_id, sum(b.amount) AS billed
               FROM chain_bills b
              WHERE b.contract_id IN (SELECT contract_id FROM chain_contracts
                                       WHERE node_id = ANY($1))
                AND b.billed_at >= to_timestamp($2) AND b.billed_at < to_timestamp($3)
              GROUP BY b.contract_id)
         SELECT c.node_id, w.wallet, sum(p.billed)::text
           FROM per_contract p
           JOIN chain_contracts c ON c.contract_id = p.contract_id
           JOIN LATERAL (
                SELECT aggregate_id AS wallet FROM events
                 WHERE aggregate_type = 'wallet' AND event_type = 'ChainTwinRecorded'
                   AND (payload->'ChainTwinRecorded'->>'twin_id')::bigint = c.twin_id
                 LIMIT 1) w ON true
          GROUP BY c.node_id, w.wallet",
    )
    .bind(&ids)
    .bind(start as f64)
    .bind(end as f64)
    .fetch_all(pool)
    .await?;
    let mut out: BTreeMap<u32, BTreeMap<String, u128>> = BTreeMap::new();
    for (node, wallet, sum) in rows {
        let Ok(node) = u32::try_from(node) else {
            continue;
        };
        let v = amount(&sum);
        if v > 0 {
            out.entry(node).or_default().insert(wallet, v);
        }
    }
    Ok(out)
}

/// Each node's uptime in `[start, end)` (basis points), by the 80-minute
/// rule with its maintenance windows.
pub async fn uptime(
    pool: &PgPool,
    nodes: &[u32],
    start: i64,
    end: i64,
) -> Result<BTreeMap<u32, u16>, sqlx::Error> {
    let ids: Vec<i64> = nodes.iter().map(|&n| i64::from(n)).collect();
    // One row per node, its report times as an array: far fewer rows to decode.
    let reports: Vec<(i64, Vec<i64>)> = sqlx::query_as(
        "SELECT node_id, array_agg(extract(epoch FROM reported_at)::bigint)
           FROM node_uptime_reports
          WHERE node_id = ANY($1)
            AND reported_at >= to_timestamp($2) AND reported_at <= to_timestamp($3)
          GROUP BY node_id",
    )
    .bind(&ids)
    .bind((start - MAX_REPORT_GAP) as f64)
    .bind((end + MAX_REPORT_GAP) as f64)
    .fetch_all(pool)
    .await?;
    let windows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT node_id, extract(epoch FROM starts_at)::bigint, extract(epoch FROM ends_at)::bigint,
                extract(epoch FROM CASE WHEN status = 'rescheduled' THEN updated_at
                                        ELSE scheduled_at END)::bigint
           FROM maintenance_windows
          WHERE node_id = ANY($1) AND status <> 'cancelled'
            AND ends_at > to_timestamp($2) AND starts_at < to_timestamp($3)",
    )
    .bind(&ids)
    .bind(start as f64)
    .bind(end as f64)
    .fetch_all(pool)
    .await?;
    let by_node: HashMap<i64, Vec<i64>> = reports.into_iter().collect();
    let mut windows_by_node: HashMap<i64, Vec<MaintenanceWindow>> = HashMap::new();
    for (node, s, e, announced) in windows {
        windows_by_node
            .entry(node)
            .or_default()
            .push(MaintenanceWindow {
                start: s,
                end: e,
                announced_at: announced,
            });
    }
    Ok(nodes
        .iter()
        .map(|&n| {
            let id = i64::from(n);
            let reports = by_node.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            let windows = windows_by_node.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            (n, measure_uptime_bps(reports, start, end, windows))
        })
        .collect())
}

/// The figures of every node counted in `period`, measured up to
/// `until` (the period's end once it is over): what `Settle` carries.
/// Empty when the alliance has no farm yet.
pub async fn period_figures(
    pool: &PgPool,
    state: &AllianceState,
    period: Period,
    until: i64,
) -> Result<Vec<NodeIncome>, sqlx::Error> {
    let nodes: Vec<u32> = state.nodes_in(period).keys().copied().collect();
    let Some(farm) = &state.farm else {
        return Ok(Vec::new());
    };
    let (start, end) = (period.start(), period.end().min(until.max(period.start())));
    let income = income(pool, farm.farm_id, &nodes, start, end).await?;
    let mut billed = billed(pool, &nodes, start, end).await?;
    let uptime = uptime(pool, &nodes, start, end).await?;
    Ok(nodes
        .iter()
        .map(|&n| NodeIncome {
            node_id: n,
            income: income.get(&n).copied().unwrap_or(0),
            uptime_bps: uptime.get(&n).copied().unwrap_or(0),
            billed: billed.remove(&n).unwrap_or_default(),
        })
        .collect())
}

/// The chain time the follower has reached (its cursor's block timestamp),
/// the clock alliance figures are measured by.
pub async fn chain_now(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT block_timestamp FROM chain_cursors WHERE name = 'chain-follower'")
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_farmer_keeps_half_by_the_pallets_rounding() {
        assert_eq!(farmer_part(1_000, 0), 500);
        // 10% of 15 is 1.5 (halves down: 1), 40% is 6: the farmer gets 8.
        assert_eq!(farmer_part(15, 0), 8);
        // 10% of 16 is 1.6 (2), 40% is 6.4 (6): 8.
        assert_eq!(farmer_part(16, 0), 8);
        assert_eq!(farmer_part(0, 7), 7);
    }
}
