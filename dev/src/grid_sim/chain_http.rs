//! The TFChain SIMULATOR's HTTP routes (the shape `marketplace_app`'s
//! `HttpChain` speaks; see its module documentation) and its controls.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use marketplace_app::tfchain::http::wire::{
    balance, EventsPage, ModuleError, ModuleErrorBody, SignedExtrinsic,
};
use marketplace_app::tfchain::{ss58_public_key, Block, Contract, EventId};

use super::billing::{NruRefusal, PaymentState};
use super::chain::{Pruned, Refusal};
use super::price;
use super::Shared;

/// Events a page holds when the request asks for none.
const DEFAULT_EVENTS_PAGE: usize = 100;

/// The most events a page holds.
const MAX_EVENTS_PAGE: usize = 1_000;

/// Why a chain request was not served.
#[derive(Debug, thiserror::Error)]
pub(super) enum ChainHttpError {
    /// Not JSON, or not the expected fields.
    #[error("{0}")]
    BadRequest(String),
    /// The signature does not verify.
    #[error("{0}")]
    BadSignature(String),
    /// No such storage item, or contract.
    #[error("{0}")]
    NotFound(String),
    /// The events asked for are older than the retention.
    #[error("events before block {first_kept_block} are no longer kept")]
    Gone { first_kept_block: u32 },
    /// Dispatched and failed.
    #[error("{pallet}.{error}")]
    Module {
        pallet: &'static str,
        error: &'static str,
    },
}

impl IntoResponse for ChainHttpError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ChainHttpError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({ "error": m })),
            ChainHttpError::BadSignature(m) => (
                StatusCode::UNAUTHORIZED,
                json!({ "error": format!("bad signature: {m}") }),
            ),
            ChainHttpError::NotFound(m) => (StatusCode::NOT_FOUND, json!({ "error": m })),
            ChainHttpError::Gone { first_kept_block } => (
                StatusCode::GONE,
                json!({
                    "error": self.to_string(),
                    "first_kept_block": first_kept_block,
                }),
            ),
            ChainHttpError::Module { pallet, error } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::to_value(ModuleErrorBody {
                    module_error: ModuleError {
                        pallet: (*pallet).to_owned(),
                        error: (*error).to_owned(),
                    },
                })
                .unwrap_or(Value::Null),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// `POST /chain/extrinsic`.
pub(super) async fn extrinsic(
    State(shared): State<Shared>,
    body: Bytes,
) -> Result<Response, ChainHttpError> {
    let extrinsic: SignedExtrinsic = serde_json::from_slice(&body)
        .map_err(|e| ChainHttpError::BadRequest(format!("not a signed extrinsic: {e}")))?;
    let call = &extrinsic.call;
    if let Err(e) = extrinsic.verify() {
        warn!(signer = %extrinsic.signer, pallet = %call.pallet, call = %call.name, error = %e,
            "TFChain SIMULATOR: extrinsic refused");
        return Err(ChainHttpError::BadSignature(e.to_string()));
    }
    let mut sim = shared.lock();
    match sim.submit(&extrinsic.signer, call) {
        Ok(receipt) => {
            info!(
                signer = %extrinsic.signer,
                pallet = %call.pallet,
                call = %call.name,
                block = receipt.block.number,
                events = receipt.events.len(),
                "TFChain SIMULATOR: extrinsic included"
            );
            Ok(Json(receipt).into_response())
        }
        Err(Refusal::Module { pallet, error }) => {
            info!(
                signer = %extrinsic.signer,
                pallet = %call.pallet,
                call = %call.name,
                "TFChain SIMULATOR: extrinsic failed with {pallet}.{error}"
            );
            Err(ChainHttpError::Module { pallet, error })
        }
        Err(Refusal::BadCall(message)) => Err(ChainHttpError::BadRequest(message)),
    }
}

type Keys = Query<HashMap<String, String>>;

fn key<T: std::str::FromStr>(
    keys: &HashMap<String, String>,
    name: &str,
) -> Result<T, ChainHttpError> {
    let text = keys
        .get(name)
        .ok_or_else(|| ChainHttpError::BadRequest(format!("missing key {name}")))?;
    text.parse()
        .map_err(|_| ChainHttpError::BadRequest(format!("key {name}={text:?} does not parse")))
}

fn account_key(keys: &HashMap<String, String>) -> Result<String, ChainHttpError> {
    let account: String = key(keys, "account")?;
    ss58_public_key(&account)
        .map_err(|e| ChainHttpError::BadRequest(format!("account {account:?}: {e}")))?;
    Ok(account)
}

/// `GET /chain/storage/{pallet}/{item}?<keys>` → `{"value": …}`.
pub(super) async fn storage(
    State(shared): State<Shared>,
    UrlPath((pallet, item)): UrlPath<(String, String)>,
    Query(keys): Keys,
) -> Result<Json<Value>, ChainHttpError> {
    let sim = shared.lock();
    let chain = &sim.chain;
    let value = match (pallet.as_str(), item.as_str()) {
        ("system", "Account") => json!(chain.account(&account_key(&keys)?)),
        ("tfgridModule", "TwinIdByAccountID") => {
            json!(chain.twin_id_by_account(&account_key(&keys)?))
        }
        ("tfgridModule", "Twins") => json!(chain.twin(key(&keys, "twin_id")?)),
        ("tfgridModule", "FarmIdByName") => {
            let name: String = key(&keys, "name")?;
            json!(sim.farm_id_by_name(&name))
        }
        ("tfgridModule", "Farms") => {
            let farm_id: u32 = key(&keys, "farm_id")?;
            sim.catalog
                .farms
                .get(&farm_id)
                .map_or(Value::Null, super::grid::farm_json)
        }
        ("smartContractModule", "Contracts") => {
            json!(chain.live_contract(key(&keys, "contract_id")?))
        }
        ("smartContractModule", "ContractIDByNodeIDAndHash") => {
            let hash: String = key(&keys, "hash")?;
            json!(chain.contract_by_node_and_hash(key(&keys, "node_id")?, &hash))
        }
        ("smartContractModule", "ActiveRentContractForNode") => {
            let node_id = key(&keys, "node_id")?;
            // A seed may rent a node under a contract this chain never saw.
            let seeded = sim
                .catalog
                .node(node_id)
                .filter(|n| n.node.rented)
                .map(|n| n.node.rent_contract_id);
            json!(chain.active_rent(node_id).or(seeded))
        }
        ("smartContractModule", "ActiveNodeContracts") => {
            json!(chain.active_node_contracts(key(&keys, "node_id")?))
        }
        ("smartContractModule", "ContractID") => json!(chain.last_contract_id()),
        _ => {
            return Err(ChainHttpError::NotFound(format!(
                "the TFChain SIMULATOR has no storage item {pallet}.{item}"
            )))
        }
    };
    Ok(Json(json!({ "value": value })))
}

/// `GET /chain/blocks/latest`.
pub(super) async fn latest_block(State(shared): State<Shared>) -> Json<Block> {
    let sim = shared.lock();
    Json(sim.chain.block_at(sim.catalog.now))
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    after_block: Option<u32>,
    after_index: Option<u32>,
    from_block: Option<u32>,
    pallet: Option<String>,
    name: Option<String>,
    limit: Option<usize>,
}

/// `GET /chain/events?after_block=&after_index=&from_block=&pallet=&name=&limit=`.
pub(super) async fn events(
    State(shared): State<Shared>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<EventsPage>, ChainHttpError> {
    let after = match (query.after_block, query.after_index) {
        (Some(block_number), Some(event_index)) => Some(EventId {
            block_number,
            event_index,
        }),
        (None, None) => None,
        _ => {
            return Err(ChainHttpError::BadRequest(
                "after_block and after_index go together".to_owned(),
            ))
        }
    };
    let limit = query
        .limit
        .unwrap_or(DEFAULT_EVENTS_PAGE)
        .clamp(1, MAX_EVENTS_PAGE);
    let sim = shared.lock();
    let events = sim
        .chain
        .events(
            after,
            query.from_block.unwrap_or(0),
            query.pallet.as_deref(),
            query.name.as_deref(),
            limit,
        )
        .map_err(|Pruned { first_kept_block }| ChainHttpError::Gone { first_kept_block })?;
    Ok(Json(EventsPage { events }))
}

#[derive(Deserialize)]
pub(super) struct Fund {
    account: String,
    #[serde(with = "balance")]
    amount: u128,
}

/// `POST /sim/chain/fund {"account", "amount"}`: mints, like sudo would.
pub(super) async fn fund(
    State(shared): State<Shared>,
    body: Bytes,
) -> Result<Json<Value>, ChainHttpError> {
    let Fund { account, amount } = serde_json::from_slice(&body)
        .map_err(|e| ChainHttpError::BadRequest(format!("expected {{account, amount}}: {e}")))?;
    ss58_public_key(&account)
        .map_err(|e| ChainHttpError::BadRequest(format!("account {account:?}: {e}")))?;
    let mut sim = shared.lock();
    let now = sim.catalog.now;
    let free = sim.chain.fund(now, &account, amount);
    info!(%account, amount = %amount, free = %free, "TFChain SIMULATOR: account funded");
    Ok(Json(
        json!({ "account": account, "free": free.to_string() }),
    ))
}

/// `GET /sim/chain/contracts`: every contract, deleted ones included.
pub(super) async fn contracts(State(shared): State<Shared>) -> Json<Vec<Contract>> {
    let sim = shared.lock();
    Json(sim.chain.all_contracts().cloned().collect())
}

/// `GET /sim/chain/billing`: every contract's payment state, deleted ones
/// included: `[{contract_id, last_billed, standard_overdraft,
/// additional_overdraft, billed_standard, billed_additional,
/// standard_reserve, additional_reserve, cycles, farmer_share, nu_unbilled,
/// used}]`.
pub(super) async fn billing(State(shared): State<Shared>) -> Json<Vec<Value>> {
    let sim = shared.lock();
    Json(
        sim.billing
            .all()
            .into_iter()
            .map(|state: &PaymentState| {
                let mut value = serde_json::to_value(state).unwrap_or(Value::Null);
                value["farmer_share"] = json!(state.farmer_share().to_string());
                value
            })
            .collect(),
    )
}

#[derive(Deserialize)]
pub(super) struct Price {
    price_musd: u32,
}

/// `POST /sim/chain/price {"price_musd"}`: a price observation, as the
/// pallet's offchain worker submits it; emits `PriceStored [price]` and
/// `AveragePriceStored [average]`; answers `{"price_musd", "average_musd"}`.
pub(super) async fn price(
    State(shared): State<Shared>,
    body: Bytes,
) -> Result<Json<Value>, ChainHttpError> {
    let Price { price_musd } = serde_json::from_slice(&body)
        .map_err(|e| ChainHttpError::BadRequest(format!("expected {{price_musd}}: {e}")))?;
    let mut sim = shared.lock();
    let average = sim.price.observe(price_musd);
    let block = sim.chain.block_at(sim.catalog.now);
    sim.chain.record(block, price::events(price_musd, average));
    info!(price_musd, average, "TFChain SIMULATOR: TFT price observed");
    Ok(Json(
        json!({ "price_musd": price_musd, "average_musd": average }),
    ))
}

#[derive(Deserialize)]
pub(super) struct Nru {
    contract_id: u64,
    nru: u64,
    window: u64,
}

/// `POST /sim/chain/nru {"contract_id", "nru", "window"}`: the node reports
/// `nru` bytes of public traffic over `window` seconds; emits
/// `NruConsumptionReportReceived`; billed at the contract's next bill.
pub(super) async fn nru(
    State(shared): State<Shared>,
    body: Bytes,
) -> Result<Json<Value>, ChainHttpError> {
    let Nru {
        contract_id,
        nru,
        window,
    } = serde_json::from_slice(&body).map_err(|e| {
        ChainHttpError::BadRequest(format!("expected {{contract_id, nru, window}}: {e}"))
    })?;
    let mut sim = shared.lock();
    sim.report_nru(contract_id, nru, window)
        .map_err(|NruRefusal::NotANodeContract(id)| {
            ChainHttpError::NotFound(format!("no live node contract {id}"))
        })?;
    Ok(Json(
        json!({ "contract_id": contract_id, "nru": nru, "window": window }),
    ))
}

#[cfg(test)]
#[path = "chain_http_tests.rs"]
mod tests;
