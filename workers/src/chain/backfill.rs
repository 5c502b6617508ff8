//! Backfill after downtime longer than the chain keeps events: what the
//! follower missed, read from the chain's indexer, then live again from
//! the oldest block the chain kept.
//!
//! - Bills: every bill report of the marketplace's twins' contracts (those
//!   the follower saw created, and those the indexer lists for the twins)
//!   after the cursor and before the first kept block, recorded as a live
//!   `ContractBilled` would be, deduplicated the same way (the indexer's
//!   entity id *is* the chain event's id).
//! - Uptime: the reports of every node in the catalog in that window.
//! - Prices: the average prices stored in that window.
//! - Grace: the indexer carries no grace-period events, so each live
//!   contract's grace state is taken from the chain's storage
//!   (`Contracts(id).state`), and a deployment whose contract vanished while
//!   it was in grace was deleted out of funds.

use std::collections::BTreeSet;

use chrono::DateTime;
use marketplace_app::tfchain::{
    Chain, ContractState, DiscountLevel as IndexedLevel, EventId, Indexer, PageAfter,
};
use marketplace_app::Stores;
use marketplace_domain::chain::ContractBill;
use marketplace_domain::deployment::Status;
use marketplace_domain::pricing::DiscountLevel;
use marketplace_domain::TftAmount;
use sqlx::PgPool;
use tracing::{info, warn};
use uuid::Uuid;

use super::apply::{event_ref, owner_of, run_effects, Applied, Effect};
use super::follower::{cursor_timestamp, save_cursor, FollowError};

/// Bill reports read per indexer page.
const PAGE: u32 = 1_000;

fn level(l: IndexedLevel) -> DiscountLevel {
    match l {
        IndexedLevel::None => DiscountLevel::None,
        IndexedLevel::Default => DiscountLevel::Default,
        IndexedLevel::Bronze => DiscountLevel::Bronze,
        IndexedLevel::Silver => DiscountLevel::Silver,
        IndexedLevel::Gold => DiscountLevel::Gold,
    }
}

fn in_gap(event: EventId, after: Option<EventId>, first_kept_block: u32) -> bool {
    after.is_none_or(|a| event > a) && event.block_number < first_kept_block
}

/// Backfills the gap between `after` and `first_kept_block`, then moves the
/// cursor to just before the first kept block.
pub(super) async fn backfill(
    pool: &PgPool,
    stores: &std::sync::Arc<Stores>,
    chain: &dyn Chain,
    indexer: &dyn Indexer,
    after: Option<EventId>,
    first_kept_block: u32,
    concurrency: usize,
) -> Result<Applied, FollowError> {
    warn!(
        ?after,
        first_kept_block,
        "the chain dropped events the follower had not applied; backfilling from the indexer"
    );
    let since = cursor_timestamp(pool).await?.unwrap_or(0);
    let head = chain.latest_block().await?;
    // Block timestamps before the head, at 6 s a block.
    let block_time = |block: u32| head.timestamp - (i64::from(head.number) - i64::from(block)) * 6;
    let until = block_time(first_kept_block);

    // The marketplace's twins, and their contracts.
    let twins: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT (payload->'ChainTwinRecorded'->>'twin_id')::bigint FROM events
          WHERE aggregate_type = 'wallet' AND event_type = 'ChainTwinRecorded'",
    )
    .fetch_all(pool)
    .await?;
    let mut contracts: BTreeSet<u64> = sqlx::query_scalar::<_, i64>(
        "SELECT contract_id FROM chain_contracts WHERE twin_id = ANY($1)",
    )
    .bind(&twins)
    .fetch_all(pool)
    .await?
    .into_iter()
    .filter_map(|c| u64::try_from(c).ok())
    .collect();
    for twin in twins.iter().filter_map(|t| u32::try_from(*t).ok()) {
        let mut listed = indexer.node_contracts(twin).await?;
        listed.extend(indexer.rent_contracts(twin).await?);
        for c in listed {
            if contracts.insert(c.contract_id) {
                remember(pool, &c).await?;
            }
        }
    }

    // Bills in the gap.
    let ids: Vec<u64> = contracts.iter().copied().collect();
    let mut effects = Vec::new();
    let mut page_after = after.map(|event| PageAfter {
        timestamp: since,
        event,
    });
    loop {
        let page = indexer.bill_reports(&ids, page_after, PAGE).await?;
        let Some(last) = page.last() else { break };
        page_after = Some(PageAfter {
            timestamp: last.timestamp,
            event: last.event,
        });
        let done = last.event.block_number >= first_kept_block;
        for b in page
            .into_iter()
            .filter(|b| in_gap(b.event, after, first_kept_block))
        {
            let Some(owner) = owner_of(pool, chain, b.contract_id).await? else {
                continue;
            };
            let Ok(amount) = u64::try_from(b.amount_billed) else {
                continue;
            };
            let bill = ContractBill {
                event: event_ref(b.event),
                contract_id: b.contract_id,
                amount: TftAmount::from_base_units(amount),
                discount_level: level(b.discount_received),
                billed_at: DateTime::from_timestamp(b.timestamp, 0).unwrap_or_default(),
            };
            effects.push((
                owner.wallet.clone(),
                b.event,
                Effect::Bill {
                    wallet: owner.wallet,
                    deployment: owner.deployment,
                    bill,
                },
            ));
        }
        if done {
            break;
        }
    }
    let bills = effects.len();

    // Prices in the gap.
    let mut price_after = None;
    loop {
        let page = indexer.average_prices(price_after, PAGE).await?;
        let Some(last) = page.last() else { break };
        price_after = Some(PageAfter {
            timestamp: last.timestamp,
            event: last.event,
        });
        for p in page
            .into_iter()
            .filter(|p| in_gap(p.event, after, first_kept_block))
        {
            effects.push((
                "price".into(),
                p.event,
                Effect::Price {
                    price_musd: p.price_musd,
                    event: event_ref(p.event),
                    at: DateTime::from_timestamp(p.timestamp, 0).unwrap_or_default(),
                },
            ));
        }
    }
    let mut applied = run_effects(stores, effects, concurrency).await?;

    // Uptime of the catalog's nodes in the gap.
    let nodes: Vec<i64> = sqlx::query_scalar("SELECT node_id FROM node_catalog")
        .fetch_all(pool)
        .await?;
    let mut uptime = 0;
    for node in nodes.iter().filter_map(|n| u32::try_from(*n).ok()) {
        let reports: Vec<_> = indexer
            .uptime_events(node, since, until)
            .await?
            .into_iter()
            .filter(|r| in_gap(r.event, after, first_kept_block))
            .collect();
        uptime += reports.len();
        for r in reports {
            sqlx::query(
                "INSERT INTO node_uptime_reports (node_id, reported_at, uptime_secs, block_number, event_index)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(i64::from(r.node_id))
            .bind(DateTime::from_timestamp(r.timestamp, 0).unwrap_or_default())
            .bind(i64::try_from(r.uptime).unwrap_or(i64::MAX))
            .bind(i64::from(r.event.block_number))
            .bind(i64::from(r.event.event_index))
            .execute(pool)
            .await?;
        }
    }

    // Grace states from the chain's storage.
    let mut grace = Vec::new();
    for &contract_id in &contracts {
        let Some(owner) = owner_of(pool, chain, contract_id).await? else {
            continue;
        };
        let Some(deployment) = owner.deployment else {
            continue;
        };
        let (d, _) =
            marketplace_app::bus::load(&stores.deployments, &deployment.to_string()).await?;
        let Some(s) = d.state() else { continue };
        let in_grace_here = s.grace_contracts.contains(&contract_id);
        let effect = match chain.contract(contract_id).await?.map(|c| c.state) {
            Some(ContractState::GracePeriod(since_block)) if !in_grace_here => {
                Some(Effect::Grace {
                    deployment,
                    contract_id,
                    started: true,
                    at: DateTime::from_timestamp(block_time(since_block), 0).unwrap_or_default(),
                })
            }
            Some(ContractState::Created) if in_grace_here => Some(Effect::Grace {
                deployment,
                contract_id,
                started: false,
                at: DateTime::from_timestamp(head.timestamp, 0).unwrap_or_default(),
            }),
            // Gone while in grace: the chain deleted it out of funds.
            None if in_grace_here && s.status == Status::Suspended => Some(Effect::OutOfFunds {
                deployment,
                at: DateTime::from_timestamp(head.timestamp, 0).unwrap_or_default(),
            }),
            _ => None,
        };
        if let Some(effect) = effect {
            grace.push((
                owner.wallet,
                EventId {
                    block_number: head.number,
                    event_index: 0,
                },
                effect,
            ));
        }
    }
    let graced = grace.len();
    let more = run_effects(stores, grace, concurrency).await?;
    applied.recorded += more.recorded;
    applied.refused += more.refused;

    let resume = EventId {
        block_number: first_kept_block.saturating_sub(1),
        event_index: u32::MAX,
    };
    save_cursor(pool, resume, block_time(resume.block_number)).await?;
    info!(
        contracts = contracts.len(),
        bills,
        uptime_reports = uptime,
        grace_changes = graced,
        recorded = applied.recorded,
        "backfilled from the indexer; following the chain again from block {first_kept_block}"
    );
    Ok(applied)
}

/// Keeps a contract the indexer listed (created in the gap) like one seen
/// created live, its deployment found in the store.
async fn remember(
    pool: &PgPool,
    c: &marketplace_app::tfchain::IndexedContract,
) -> Result<(), sqlx::Error> {
    let id = i64::try_from(c.contract_id).unwrap_or(i64::MAX);
    let deployment: Option<String> = sqlx::query_scalar(
        "SELECT aggregate_id FROM events
          WHERE aggregate_type = 'deployment' AND event_type = 'ContractCreated'
            AND ((payload->'ContractCreated'->>'contract_id')::bigint = $1
              OR (payload->'ContractCreated'->>'rent_contract_id')::bigint = $1)
          LIMIT 1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let kind = match c.kind {
        marketplace_app::tfchain::IndexedContractKind::Rent => "rent",
        marketplace_app::tfchain::IndexedContractKind::Node => "node",
    };
    sqlx::query(
        "INSERT INTO chain_contracts
            (contract_id, twin_id, node_id, kind, deployment_id, block_number, event_index)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (contract_id) DO NOTHING",
    )
    .bind(id)
    .bind(i64::from(c.twin_id))
    .bind(i64::from(c.node_id))
    .bind(kind)
    .bind(deployment.and_then(|d| Uuid::parse_str(&d).ok()))
    .bind(i64::from(c.event.block_number))
    .bind(i64::from(c.event.event_index))
    .execute(pool)
    .await?;
    Ok(())
}
