//! The chain facts an alliance settlement reads, kept by the follower as it
//! passes them (one statement per kind and page, each fact once by its
//! chain event id):
//!
//! - `ContractBilled` → `chain_bills`: what each contract was billed, so a
//!   settlement knows what each user was billed on a node;
//! - `RewardDistributed` → `chain_rewards`: the reserve a contract's bills
//!   paid out; the farmer's part went to the node's farm at that moment;
//! - `tfgridModule.NodeUpdated` → `chain_node_farms`: which farm a node
//!   moved into, and when.
//!
//! Amounts are `u128` on chain: bound as decimal text, stored as numerics.

use chrono::DateTime;
use marketplace_app::tfchain::ChainEvent;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use tracing::warn;

#[derive(Deserialize)]
struct Billed {
    contract_id: u64,
    #[serde(with = "marketplace_app::tfchain::http::wire::balance")]
    amount_billed: u128,
}

#[derive(Deserialize)]
struct Reward {
    contract_id: u64,
    #[serde(with = "marketplace_app::tfchain::http::wire::balance")]
    standard_rewards: u128,
    #[serde(with = "marketplace_app::tfchain::http::wire::balance")]
    additional_rewards: u128,
}

/// Whether the event is one of the facts kept here.
pub(super) fn is_fact(e: &ChainEvent) -> bool {
    e.is("smartContractModule", "RewardDistributed") || e.is("tfgridModule", "NodeUpdated")
}

fn id(e: &ChainEvent) -> (i64, i64) {
    (i64::from(e.id.block_number), i64::from(e.id.event_index))
}

fn contract(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Keeps the bills, rewards and farm moves of a page.
pub(super) async fn record(pool: &PgPool, events: &[ChainEvent]) -> Result<(), sqlx::Error> {
    let (mut b_block, mut b_index, mut b_contract, mut b_amount, mut b_at) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut r_block, mut r_index, mut r_contract, mut r_std, mut r_add, mut r_at) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut f_node, mut f_block, mut f_index, mut f_farm, mut f_at) =
        (vec![], vec![], vec![], vec![], vec![]);
    for e in events {
        let at = DateTime::from_timestamp(e.timestamp, 0).unwrap_or_default();
        let (block, index) = id(e);
        if e.is("smartContractModule", "ContractBilled") {
            let Ok(b) = serde_json::from_value::<Billed>(e.data.clone()) else {
                continue;
            };
            b_block.push(block);
            b_index.push(index);
            b_contract.push(contract(b.contract_id));
            b_amount.push(b.amount_billed.to_string());
            b_at.push(at);
        } else if e.is("smartContractModule", "RewardDistributed") {
            let Ok(r) = serde_json::from_value::<Reward>(e.data.clone()) else {
                warn!(
                    block,
                    index, "RewardDistributed with unexpected data; not kept"
                );
                continue;
            };
            r_block.push(block);
            r_index.push(index);
            r_contract.push(contract(r.contract_id));
            r_std.push(r.standard_rewards.to_string());
            r_add.push(r.additional_rewards.to_string());
            r_at.push(at);
        } else if e.is("tfgridModule", "NodeUpdated") {
            let field = |k: &str| e.data.get(k).and_then(Value::as_u64);
            let (Some(node), Some(farm)) = (field("id"), field("farm_id")) else {
                warn!(block, index, "NodeUpdated with unexpected data; not kept");
                continue;
            };
            f_node.push(node as i64);
            f_block.push(block);
            f_index.push(index);
            f_farm.push(farm as i64);
            f_at.push(at);
        }
    }
    if !b_block.is_empty() {
        sqlx::query(
            "INSERT INTO chain_bills (block_number, event_index, contract_id, amount, billed_at)
             SELECT b, i, c, a::numeric, t
               FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[])
                    AS x(b, i, c, a, t)
             ON CONFLICT DO NOTHING",
        )
        .bind(&b_block)
        .bind(&b_index)
        .bind(&b_contract)
        .bind(&b_amount)
        .bind(&b_at)
        .execute(pool)
        .await?;
    }
    if !r_block.is_empty() {
        sqlx::query(
            "INSERT INTO chain_rewards
                (block_number, event_index, contract_id, standard_rewards, additional_rewards,
                 distributed_at)
             SELECT b, i, c, s::numeric, a::numeric, t
               FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                           $6::timestamptz[]) AS x(b, i, c, s, a, t)
             ON CONFLICT DO NOTHING",
        )
        .bind(&r_block)
        .bind(&r_index)
        .bind(&r_contract)
        .bind(&r_std)
        .bind(&r_add)
        .bind(&r_at)
        .execute(pool)
        .await?;
    }
    if !f_node.is_empty() {
        sqlx::query(
            "INSERT INTO chain_node_farms (node_id, block_number, event_index, farm_id, moved_at)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::timestamptz[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&f_node)
        .bind(&f_block)
        .bind(&f_index)
        .bind(&f_farm)
        .bind(&f_at)
        .execute(pool)
        .await?;
    }
    Ok(())
}
