//! Applying a page of chain events: first the facts the follower keeps
//! itself (contracts created, uptime reports), in set-based statements;
//! then the commands, partitioned by the wallet they concern so that each
//! wallet's (and its deployments') events are applied in chain order, and
//! different wallets at once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use marketplace_app::tfchain::{Chain, ChainEvent, Contract, ContractData, EventId};
use marketplace_app::{CommandError, EventMetadata, Exec, Stores};
use marketplace_domain::chain::{ChainEventRef, ContractBill};
use marketplace_domain::deployment::{DeletionCause, DeploymentCommand};
use marketplace_domain::pricing::DiscountLevel;
use marketplace_domain::tft_price::{TftPriceCommand, AGGREGATE_ID as PRICE_ID};
use marketplace_domain::wallet::WalletCommand;
use marketplace_domain::TftAmount;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tracing::{debug, warn};
use uuid::Uuid;

use super::follower::FollowError;

/// The subject the follower's events are recorded under.
pub const ACTOR: &str = "chain-follower";

/// What a page did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub recorded: u64,
    pub refused: u64,
    pub skipped: u64,
}

/// One command-bearing chain event, resolved to whom it concerns.
#[derive(Debug, Clone)]
pub(super) enum Effect {
    Bill {
        wallet: String,
        deployment: Option<Uuid>,
        bill: ContractBill,
    },
    Grace {
        deployment: Uuid,
        contract_id: u64,
        started: bool,
        at: DateTime<Utc>,
    },
    OutOfFunds {
        deployment: Uuid,
        at: DateTime<Utc>,
    },
    Price {
        price_musd: u32,
        event: ChainEventRef,
        at: DateTime<Utc>,
    },
}

/// The chain event an effect comes from, as its causation.
fn cause(id: EventId) -> String {
    format!("tfchain:{}-{}", id.block_number, id.event_index)
}

pub(super) fn event_ref(id: EventId) -> ChainEventRef {
    ChainEventRef {
        block_number: id.block_number,
        event_index: id.event_index,
    }
}

fn timestamp(e: &ChainEvent) -> DateTime<Utc> {
    DateTime::from_timestamp(e.timestamp, 0).unwrap_or_default()
}

/// Applies `events` (in chain order).
pub async fn apply_batch(
    pool: &PgPool,
    stores: &std::sync::Arc<Stores>,
    chain: &dyn Chain,
    events: &[ChainEvent],
    concurrency: usize,
) -> Result<Applied, FollowError> {
    record_facts(pool, events).await?;
    super::facts::record(pool, events).await?;
    // Resolve every event to its effect and partition by wallet.
    let mut effects = Vec::new();
    let mut skipped = 0;
    // Whose contract each is, looked up once a page (a page holds many
    // bills of the same contracts).
    let mut owners = Owners::default();
    for e in events {
        match resolve(pool, chain, &mut owners, e).await? {
            Resolved::Effect(key, effect) => effects.push((key, e.id, effect)),
            Resolved::Fact => {}
            Resolved::Skip => skipped += 1,
        }
    }
    let mut applied = run_effects(stores, effects, concurrency).await?;
    applied.skipped += skipped;
    Ok(applied)
}

/// Runs `effects` (in chain order), those of one key (a wallet) in order,
/// `concurrency` keys at a time. A refusal is counted and skipped; any
/// other failure fails the whole (it is all applied again, once more).
pub(super) async fn run_effects(
    stores: &std::sync::Arc<Stores>,
    effects: Vec<(String, EventId, Effect)>,
    concurrency: usize,
) -> Result<Applied, FollowError> {
    let mut applied = Applied::default();
    let mut partitions: BTreeMap<String, Vec<(EventId, Effect)>> = BTreeMap::new();
    for (key, id, effect) in effects {
        partitions.entry(key).or_default().push((id, effect));
    }
    let mut tasks = JoinSet::new();
    let mut partitions = partitions.into_values();
    let mut outcome: Result<(), FollowError> = Ok(());
    loop {
        while tasks.len() < concurrency.max(1) {
            let Some(effects) = partitions.next() else {
                break;
            };
            let stores = stores.clone();
            tasks.spawn(async move {
                let mut done = Applied::default();
                for (id, effect) in effects {
                    match run(&stores, id, effect).await {
                        Ok(true) => done.recorded += 1,
                        Ok(false) => {}
                        Err(e) if e.is_transient() => return Err(FollowError::Command(e)),
                        Err(e) => {
                            warn!(chain_event = %cause(id), error = %e, "the domain refused a chain event; skipped");
                            done.refused += 1;
                        }
                    }
                }
                Ok(done)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(done)) => {
                applied.recorded += done.recorded;
                applied.refused += done.refused;
            }
            Ok(Err(e)) => outcome = outcome.and(Err(e)),
            Err(e) => {
                outcome = outcome.and(Err(FollowError::Command(CommandError::Internal(format!(
                    "a partition panicked: {e}"
                )))))
            }
        }
    }
    outcome.map(|()| applied)
}

enum Resolved {
    Effect(String, Effect),
    Fact,
    Skip,
}

#[derive(Deserialize)]
struct Billed {
    contract_id: u64,
    discount_level: String,
    #[serde(with = "marketplace_app::tfchain::http::wire::balance")]
    amount_billed: u128,
}

#[derive(Deserialize)]
struct ContractRef {
    contract_id: u64,
}

/// The owners a page looked up, by contract (`None`: not the marketplace's).
type Owners = std::collections::HashMap<u64, Option<Owner>>;

async fn cached_owner(
    pool: &PgPool,
    chain: &dyn Chain,
    owners: &mut Owners,
    contract_id: u64,
) -> Result<Option<Owner>, FollowError> {
    if let Some(known) = owners.get(&contract_id) {
        return Ok(known.clone());
    }
    let owner = owner_of(pool, chain, contract_id).await?;
    owners.insert(contract_id, owner.clone());
    Ok(owner)
}

async fn resolve(
    pool: &PgPool,
    chain: &dyn Chain,
    owners: &mut Owners,
    e: &ChainEvent,
) -> Result<Resolved, FollowError> {
    let data = &e.data;
    if super::facts::is_fact(e) {
        return Ok(Resolved::Fact);
    }
    Ok(match (e.pallet.as_str(), e.name.as_str()) {
        ("smartContractModule", "ContractCreated") | ("tfgridModule", "NodeUptimeReported") => {
            Resolved::Fact
        }
        ("smartContractModule", "ContractBilled") => {
            let Ok(b) = serde_json::from_value::<Billed>(data.clone()) else {
                warn!(chain_event = %cause(e.id), "ContractBilled with unexpected data; skipped");
                return Ok(Resolved::Skip);
            };
            let Some(owner) = cached_owner(pool, chain, owners, b.contract_id).await? else {
                return Ok(Resolved::Skip);
            };
            let Ok(amount) = u64::try_from(b.amount_billed) else {
                warn!(chain_event = %cause(e.id), "a bill beyond u64 base units; skipped");
                return Ok(Resolved::Skip);
            };
            let bill = ContractBill {
                event: event_ref(e.id),
                contract_id: b.contract_id,
                amount: TftAmount::from_base_units(amount),
                discount_level: discount(&b.discount_level),
                billed_at: timestamp(e),
            };
            Resolved::Effect(
                owner.wallet.clone(),
                Effect::Bill {
                    wallet: owner.wallet,
                    deployment: owner.deployment,
                    bill,
                },
            )
        }
        (
            "smartContractModule",
            name @ ("ContractGracePeriodStarted"
            | "ContractGracePeriodEnded"
            | "ContractGracePeriodElapsed"),
        ) => {
            let Ok(c) = serde_json::from_value::<ContractRef>(data.clone()) else {
                return Ok(Resolved::Skip);
            };
            let Some(owner) = cached_owner(pool, chain, owners, c.contract_id).await? else {
                return Ok(Resolved::Skip);
            };
            let Some(deployment) = owner.deployment else {
                return Ok(Resolved::Skip);
            };
            let effect = if name == "ContractGracePeriodElapsed" {
                Effect::OutOfFunds {
                    deployment,
                    at: timestamp(e),
                }
            } else {
                Effect::Grace {
                    deployment,
                    contract_id: c.contract_id,
                    started: name == "ContractGracePeriodStarted",
                    at: timestamp(e),
                }
            };
            Resolved::Effect(owner.wallet, effect)
        }
        ("tftPriceModule", "AveragePriceStored") => {
            let Some(price_musd) = first_u32(data) else {
                return Ok(Resolved::Skip);
            };
            Resolved::Effect(
                format!("price:{PRICE_ID}"),
                Effect::Price {
                    price_musd,
                    event: event_ref(e.id),
                    at: timestamp(e),
                },
            )
        }
        _ => Resolved::Skip,
    })
}

/// `[n]` or `n`.
fn first_u32(data: &Value) -> Option<u32> {
    let v = data.as_array().and_then(|a| a.first()).unwrap_or(data);
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .and_then(|n| u32::try_from(n).ok())
}

fn discount(level: &str) -> DiscountLevel {
    match level {
        "Default" => DiscountLevel::Default,
        "Bronze" => DiscountLevel::Bronze,
        "Silver" => DiscountLevel::Silver,
        "Gold" => DiscountLevel::Gold,
        _ => DiscountLevel::None,
    }
}

#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub(super) wallet: String,
    pub(super) deployment: Option<Uuid>,
}

/// Whose contract `contract_id` is: the wallet of its twin and the
/// deployment it belongs to. From the follower's own record, else the
/// chain's storage (a contract created before the follower's history).
pub(super) async fn owner_of(
    pool: &PgPool,
    chain: &dyn Chain,
    contract_id: u64,
) -> Result<Option<Owner>, FollowError> {
    let id = i64::try_from(contract_id).unwrap_or(i64::MAX);
    let known: Option<(i64, Option<Uuid>)> =
        sqlx::query_as("SELECT twin_id, deployment_id FROM chain_contracts WHERE contract_id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let (twin, deployment) = match known {
        Some((twin, deployment)) => (u32::try_from(twin).unwrap_or(0), deployment),
        None => match chain.contract(contract_id).await? {
            Some(c) => (c.twin_id, deployment_of(&c)),
            None => return Ok(None),
        },
    };
    // From the store, not a view: a view may lag behind the bill.
    let wallet: Option<String> = sqlx::query_scalar(
        "SELECT aggregate_id FROM events
          WHERE aggregate_type = 'wallet' AND event_type = 'ChainTwinRecorded'
            AND (payload->'ChainTwinRecorded'->>'twin_id')::bigint = $1
          LIMIT 1",
    )
    .bind(i64::from(twin))
    .fetch_optional(pool)
    .await?;
    let Some(wallet) = wallet else {
        return Ok(None);
    };
    let deployment = match deployment {
        Some(d) => Some(d),
        // A rent contract names no deployment: the one that took it.
        None => sqlx::query_scalar::<_, String>(
            "SELECT aggregate_id FROM events
              WHERE aggregate_type = 'deployment' AND event_type = 'ContractCreated'
                AND (payload->'ContractCreated'->>'rent_contract_id')::bigint = $1
              LIMIT 1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .and_then(|d| Uuid::parse_str(&d).ok()),
    };
    Ok(Some(Owner { wallet, deployment }))
}

/// The marketplace deployment a node contract's `deployment_data` names
/// (`projectName` = `marketplace/<id>`, the grid clients' convention).
fn deployment_of(c: &Contract) -> Option<Uuid> {
    let node = c.node_contract()?;
    let data: Value = serde_json::from_str(&node.deployment_data).ok()?;
    let project = data.get("projectName")?.as_str()?;
    Uuid::parse_str(project.strip_prefix("marketplace/")?).ok()
}

/// Keeps the facts of a page: contracts created and uptime reports, each
/// kind in one statement; a fact seen twice is kept once.
async fn record_facts(pool: &PgPool, events: &[ChainEvent]) -> Result<(), sqlx::Error> {
    let (mut ids, mut twins, mut nodes, mut kinds, mut deployments, mut blocks, mut indexes) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut u_nodes, mut u_at, mut u_uptime, mut u_blocks, mut u_indexes) =
        (vec![], vec![], vec![], vec![], vec![]);
    for e in events {
        if e.is("smartContractModule", "ContractCreated") {
            let Ok(c) = serde_json::from_value::<Contract>(e.data.clone()) else {
                warn!(chain_event = %cause(e.id), "ContractCreated with unexpected data; not kept");
                continue;
            };
            let (node, kind) = match &c.contract_type {
                ContractData::NodeContract(n) => (Some(i64::from(n.node_id)), "node"),
                ContractData::RentContract { node_id } => (Some(i64::from(*node_id)), "rent"),
                ContractData::NameContract { .. } => (None, "name"),
            };
            ids.push(i64::try_from(c.contract_id).unwrap_or(i64::MAX));
            twins.push(i64::from(c.twin_id));
            nodes.push(node);
            kinds.push(kind.to_string());
            deployments.push(deployment_of(&c));
            blocks.push(i64::from(e.id.block_number));
            indexes.push(i64::from(e.id.event_index));
        } else if e.is("tfgridModule", "NodeUptimeReported") {
            let fields: Option<(u32, i64, i64)> = e.data.as_array().and_then(|a| {
                Some((
                    u32::try_from(a.first()?.as_u64()?).ok()?,
                    a.get(1)?.as_i64()?,
                    a.get(2)?.as_i64()?,
                ))
            });
            let Some((node, now, uptime)) = fields else {
                warn!(chain_event = %cause(e.id), "NodeUptimeReported with unexpected data; not kept");
                continue;
            };
            u_nodes.push(i64::from(node));
            u_at.push(DateTime::from_timestamp(now, 0).unwrap_or_default());
            u_uptime.push(uptime);
            u_blocks.push(i64::from(e.id.block_number));
            u_indexes.push(i64::from(e.id.event_index));
        }
    }
    if !ids.is_empty() {
        sqlx::query(
            "INSERT INTO chain_contracts
                (contract_id, twin_id, node_id, kind, deployment_id, block_number, event_index)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[],
                                  $5::uuid[], $6::bigint[], $7::bigint[])
             ON CONFLICT (contract_id) DO NOTHING",
        )
        .bind(&ids)
        .bind(&twins)
        .bind(&nodes)
        .bind(&kinds)
        .bind(&deployments)
        .bind(&blocks)
        .bind(&indexes)
        .execute(pool)
        .await?;
    }
    if !u_nodes.is_empty() {
        sqlx::query(
            "INSERT INTO node_uptime_reports (node_id, reported_at, uptime_secs, block_number, event_index)
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::bigint[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&u_nodes)
        .bind(&u_at)
        .bind(&u_uptime)
        .bind(&u_blocks)
        .bind(&u_indexes)
        .execute(pool)
        .await?;
    }
    debug!(
        contracts = ids.len(),
        uptime_reports = u_nodes.len(),
        "chain facts kept"
    );
    Ok(())
}

/// Runs one effect's commands; whether any recorded something.
async fn run(stores: &Stores, id: EventId, effect: Effect) -> Result<bool, CommandError> {
    let meta = || EventMetadata::for_worker_run(ACTOR, &cause(id), &cause(id), &cause(id));
    let now = Utc::now();
    Ok(match effect {
        Effect::Bill {
            wallet,
            deployment,
            bill,
        } => {
            let deployment_id = deployment.map(|d| d.to_string());
            let w = Exec::new(&stores.wallets, wallet, meta())
                .run(|_| {
                    Ok(WalletCommand::RecordBill {
                        bill,
                        deployment_id: deployment_id.clone(),
                        at: now,
                    })
                })
                .await?;
            let mut recorded = !w.events.is_empty();
            if let Some(d) = deployment {
                let done = Exec::new(&stores.deployments, d.to_string(), meta())
                    .run(|_| Ok(DeploymentCommand::RecordBill { bill, at: now }))
                    .await;
                match done {
                    Ok(c) => recorded |= !c.events.is_empty(),
                    // A contract whose deployment is unknown here still paid.
                    Err(CommandError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            recorded
        }
        Effect::Grace {
            deployment,
            contract_id,
            started,
            at,
        } => {
            let c = Exec::new(&stores.deployments, deployment.to_string(), meta())
                .run(|_| {
                    Ok(if started {
                        DeploymentCommand::StartGracePeriod {
                            contract_id: Some(contract_id),
                            at,
                        }
                    } else {
                        DeploymentCommand::EndGracePeriod {
                            contract_id: Some(contract_id),
                            at,
                        }
                    })
                })
                .await?;
            !c.events.is_empty()
        }
        Effect::OutOfFunds { deployment, at } => {
            let c = Exec::new(&stores.deployments, deployment.to_string(), meta())
                .run_unless_done(|d| {
                    if d.state().is_some_and(|s| {
                        s.status == marketplace_domain::deployment::Status::Deleted
                    }) {
                        return Ok(None);
                    }
                    Ok(Some(DeploymentCommand::Delete {
                        cause: DeletionCause::OutOfFunds,
                        at,
                    }))
                })
                .await?;
            !c.events.is_empty()
        }
        Effect::Price {
            price_musd,
            event,
            at,
        } => {
            let c = Exec::new(&stores.tft_price, PRICE_ID, meta())
                .run(|_| {
                    Ok(TftPriceCommand::Observe {
                        price_musd,
                        event,
                        stored_at: at,
                        at: now,
                    })
                })
                .await?;
            !c.events.is_empty()
        }
    })
}
