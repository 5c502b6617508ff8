//! The TFChain SIMULATOR's state and dispatch: accounts and balances, twins,
//! contracts with their storage indexes, and the event log. It is not
//! TFChain: no runtime, no SCALE, no fees; it applies the handful of calls
//! the marketplace makes with the pallets' own names, checks and errors
//! (`pallet-smart-contract`'s `grid_contract.rs`, `pallet-tfgrid`,
//! `pallet-balances`, `frame-system`, `pallet-utility`). Billing, grace
//! periods, uptime and price events are in `billing`, `blocks`, `cost` and
//! `price`.
//!
//! Blocks are 6 s of the simulated clock from its start (genesis); an
//! extrinsic lands in the current block and its events are numbered after
//! the block's earlier ones. A failed extrinsic emits nothing and changes
//! nothing but the signer's nonce.

use std::collections::BTreeMap;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use marketplace_app::tfchain::http::wire::{balance, AccountInfo, Call};
use marketplace_app::tfchain::{
    ss58_public_key, Block, ChainEvent, Contract, ContractData, ContractState, DeletionCause,
    EventId, NodeContract, PublicIp, Receipt,
};

use super::indexer::Indexer;
use super::Sim;

/// Seconds a block lasts.
pub(super) const BLOCK_SECS: i64 = 6;

/// The first twin id handed out (well above the catalog's made-up twins).
const FIRST_TWIN_ID: u32 = 10_000;

/// `pallet-smart-contract`'s `CONTRACT_VERSION`.
const CONTRACT_VERSION: u32 = 4;

/// `pallet-tfgrid`'s `TFGRID_TWIN_VERSION`.
const TWIN_VERSION: u32 = 1;

/// Why an extrinsic was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Dispatched and failed with the pallet's error.
    Module {
        pallet: &'static str,
        error: &'static str,
    },
    /// Not a call (or arguments) the simulator knows.
    BadCall(String),
}

fn module(pallet: &'static str, error: &'static str) -> Refusal {
    Refusal::Module { pallet, error }
}

fn contracts_error(error: &'static str) -> Refusal {
    module("smartContractModule", error)
}

/// `pallet-tfgrid`'s `Twin`, as far as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Twin {
    pub(super) version: u32,
    pub(super) id: u32,
    pub(super) account_id: String,
    pub(super) relay: Option<String>,
    pub(super) pk: Option<String>,
}

/// An event before it has its place in the chain.
pub(super) struct Pending {
    pallet: &'static str,
    name: &'static str,
    data: Value,
}

pub(super) fn event(pallet: &'static str, name: &'static str, data: Value) -> Pending {
    Pending { pallet, name, data }
}

/// The chain's state.
pub(super) struct Ledger {
    /// The simulated clock's start: block 0.
    genesis: i64,
    /// The indexer's projection of the events (its own full history).
    pub(super) indexer: Indexer,
    /// `system.Account`: free balances and nonces by SS58 address.
    accounts: BTreeMap<String, AccountInfo>,
    twins: BTreeMap<u32, Twin>,
    twin_by_account: BTreeMap<String, u32>,
    /// Every contract ever created, deleted ones included (storage drops
    /// those; `/sim/chain/contracts` shows them).
    contracts: BTreeMap<u64, Contract>,
    last_contract_id: u64,
    by_node_and_hash: BTreeMap<(u32, String), u64>,
    active_node_contracts: BTreeMap<u32, Vec<u64>>,
    active_rent: BTreeMap<u32, u64>,
    /// Every event still kept, in chain order (see [`Ledger::prune`]).
    events: Vec<ChainEvent>,
    /// The last event dropped by the retention, if any.
    pruned_through: Option<EventId>,
    /// Events of blocks below this one have been dropped.
    first_kept_block: u32,
}

/// The events asked for include dropped ones: `410 Gone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pruned {
    pub(super) first_kept_block: u32,
}

impl Ledger {
    pub(super) fn new(genesis: i64) -> Ledger {
        Ledger {
            genesis,
            indexer: Indexer::default(),
            accounts: BTreeMap::new(),
            twins: BTreeMap::new(),
            twin_by_account: BTreeMap::new(),
            contracts: BTreeMap::new(),
            last_contract_id: 0,
            by_node_and_hash: BTreeMap::new(),
            active_node_contracts: BTreeMap::new(),
            active_rent: BTreeMap::new(),
            events: Vec::new(),
            pruned_through: None,
            first_kept_block: 0,
        }
    }

    /// The block the simulated clock is in at `now`.
    pub(super) fn block_at(&self, now: i64) -> Block {
        let number = (now - self.genesis).max(0) / BLOCK_SECS;
        Block {
            number: u32::try_from(number).unwrap_or(u32::MAX),
            timestamp: self.genesis + number * BLOCK_SECS,
        }
    }

    /// Block `number`.
    pub(super) fn block(&self, number: u32) -> Block {
        Block {
            number,
            timestamp: self.genesis + i64::from(number) * BLOCK_SECS,
        }
    }

    /// Block 0's timestamp.
    pub(super) fn genesis(&self) -> i64 {
        self.genesis
    }

    pub(super) fn account(&self, account: &str) -> AccountInfo {
        self.accounts.get(account).copied().unwrap_or_default()
    }

    pub(super) fn twin_id_by_account(&self, account: &str) -> Option<u32> {
        self.twin_by_account.get(account).copied()
    }

    pub(super) fn twin(&self, id: u32) -> Option<&Twin> {
        self.twins.get(&id)
    }

    /// `smartContractModule.Contracts`: live contracts only, since the
    /// pallet removes a contract from storage once it is deleted.
    pub(super) fn live_contract(&self, id: u64) -> Option<&Contract> {
        self.contracts.get(&id).filter(|c| !c.is_deleted())
    }

    /// Every contract, deleted ones included.
    pub(super) fn all_contracts(&self) -> impl Iterator<Item = &Contract> {
        self.contracts.values()
    }

    pub(super) fn last_contract_id(&self) -> u64 {
        self.last_contract_id
    }

    pub(super) fn contract_by_node_and_hash(&self, node_id: u32, hash: &str) -> Option<u64> {
        self.by_node_and_hash
            .get(&(node_id, hash.to_owned()))
            .copied()
    }

    pub(super) fn active_node_contracts(&self, node_id: u32) -> &[u64] {
        self.active_node_contracts
            .get(&node_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub(super) fn active_rent(&self, node_id: u32) -> Option<u64> {
        self.active_rent.get(&node_id).copied()
    }

    /// Events after `after` (from genesis when `None`), at block `from_block`
    /// or later, optionally only `pallet`'s and only those named `name`, at
    /// most `limit`.
    pub(super) fn events(
        &self,
        after: Option<EventId>,
        from_block: u32,
        pallet: Option<&str>,
        name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChainEvent>, Pruned> {
        if let Some(dropped) = self.pruned_through {
            let wants_dropped =
                after.is_none_or(|after| after < dropped) && from_block <= dropped.block_number;
            if wants_dropped {
                return Err(Pruned {
                    first_kept_block: self.first_kept_block,
                });
            }
        }
        let start = after.map_or(0, |after| self.events.partition_point(|e| e.id <= after));
        let start = start.max(
            self.events
                .partition_point(|e| e.id.block_number < from_block),
        );
        Ok(self.events[start..]
            .iter()
            .filter(|e| pallet.is_none_or(|p| e.pallet == p) && name.is_none_or(|n| e.name == n))
            .take(limit)
            .cloned()
            .collect())
    }

    /// Drops the events of blocks older than `latest - retention` blocks.
    pub(super) fn prune(&mut self, latest: u32, retention: u32) {
        let cutoff = latest.saturating_sub(retention);
        let drop = self.events.partition_point(|e| e.id.block_number < cutoff);
        if drop > 0 {
            self.pruned_through = Some(self.events[drop - 1].id);
            self.events.drain(..drop);
        }
        self.first_kept_block = self.first_kept_block.max(cutoff);
    }

    /// The ids of every live contract, in order.
    pub(super) fn live_contract_ids(&self) -> Vec<u64> {
        self.contracts
            .values()
            .filter(|c| !c.is_deleted())
            .map(|c| c.contract_id)
            .collect()
    }

    /// Sets a live contract's state.
    pub(super) fn set_state(&mut self, contract_id: u64, state: ContractState) {
        if let Some(contract) = self.contracts.get_mut(&contract_id) {
            contract.state = state;
        }
    }

    /// Reserves `amount` (at most the free balance) of `account`, as
    /// billing does (`Currency::reserve`): what was moved from free to
    /// reserved.
    pub(super) fn reserve(&mut self, account: &str, amount: u128) -> u128 {
        let Some(info) = self.accounts.get_mut(account) else {
            return 0;
        };
        let taken = amount.min(info.data.free);
        info.data.free -= taken;
        info.data.reserved = info.data.reserved.saturating_add(taken);
        taken
    }

    /// Moves `amount` (at most what is reserved) of `from`'s reserved
    /// balance to `to`'s free balance (`repatriate_reserved` to `Free`):
    /// what was moved.
    pub(super) fn pay_reserved(&mut self, from: &str, to: &str, amount: u128) -> u128 {
        let Some(info) = self.accounts.get_mut(from) else {
            return 0;
        };
        let moved = amount.min(info.data.reserved);
        info.data.reserved -= moved;
        let to = self.accounts.entry(to.to_owned()).or_default();
        to.data.free = to.data.free.saturating_add(moved);
        moved
    }

    /// Mints `amount` into `account` (the `/sim/chain/fund` control, like
    /// sudo's `balances.forceSetBalance` to the old balance plus `amount`);
    /// emits `balances.BalanceSet`.
    pub(super) fn fund(&mut self, now: i64, account: &str, amount: u128) -> u128 {
        let info = self.accounts.entry(account.to_owned()).or_default();
        info.data.free = info.data.free.saturating_add(amount);
        let free = info.data.free;
        let block = self.block_at(now);
        self.record(
            block,
            vec![event(
                "balances",
                "BalanceSet",
                json!({ "who": account, "free": free.to_string() }),
            )],
        );
        free
    }

    /// Gives `events` their places in `block`, after the block's earlier
    /// events.
    pub(super) fn record(&mut self, block: Block, events: Vec<Pending>) -> Vec<ChainEvent> {
        let mut next = match self.events.last() {
            Some(last) if last.id.block_number == block.number => last.id.event_index + 1,
            _ => 0,
        };
        let recorded: Vec<ChainEvent> = events
            .into_iter()
            .map(|e| {
                let id = EventId {
                    block_number: block.number,
                    event_index: next,
                };
                next += 1;
                ChainEvent {
                    id,
                    timestamp: block.timestamp,
                    pallet: e.pallet.to_owned(),
                    name: e.name.to_owned(),
                    data: e.data,
                }
            })
            .collect();
        self.indexer.ingest(&recorded);
        self.events.extend(recorded.iter().cloned());
        recorded
    }

    fn signer_twin(&self, signer: &str) -> Result<u32, Refusal> {
        self.twin_id_by_account(signer)
            .ok_or(contracts_error("TwinNotExists"))
    }

    /// The live contract `id`, if `signer` is its twin's account.
    fn owned_contract(
        &self,
        signer: &str,
        id: u64,
        not_authorized: &'static str,
    ) -> Result<Contract, Refusal> {
        let contract = self
            .live_contract(id)
            .cloned()
            .ok_or(contracts_error("ContractNotExists"))?;
        let owner = self
            .twins
            .get(&contract.twin_id)
            .ok_or(contracts_error("TwinNotExists"))?;
        if owner.account_id != signer {
            return Err(contracts_error(not_authorized));
        }
        Ok(contract)
    }

    fn new_contract(
        &mut self,
        twin_id: u32,
        contract_type: ContractData,
        solution_provider_id: Option<u64>,
    ) -> Contract {
        self.last_contract_id += 1;
        let contract = Contract {
            version: CONTRACT_VERSION,
            state: ContractState::Created,
            contract_id: self.last_contract_id,
            twin_id,
            contract_type,
            solution_provider_id,
        };
        self.contracts
            .insert(contract.contract_id, contract.clone());
        contract
    }
}

/// A `u128` argument, a decimal string (or a number).
#[derive(Deserialize)]
struct Amount(#[serde(with = "balance")] u128);

pub(super) fn args<T: DeserializeOwned>(call: &Call) -> Result<T, Refusal> {
    serde_json::from_value(call.args.clone()).map_err(|e| {
        Refusal::BadCall(format!(
            "bad arguments for {}.{}: {e}",
            call.pallet, call.name
        ))
    })
}

fn check_account(what: &str, address: &str) -> Result<(), Refusal> {
    ss58_public_key(address)
        .map(drop)
        .map_err(|e| Refusal::BadCall(format!("{what} {address:?} is not an SS58 account: {e}")))
}

/// `balances.transfer*`, on a copy of the balances (see `batchAll`).
fn transfer(
    accounts: &mut BTreeMap<String, AccountInfo>,
    signer: &str,
    call: &Call,
) -> Result<Pending, Refusal> {
    #[derive(Deserialize)]
    struct Args {
        dest: String,
        value: Amount,
    }
    let Args {
        dest,
        value: Amount(value),
    } = args(call)?;
    check_account("dest", &dest)?;
    let from = accounts.get(signer).map_or(0, |a| a.data.free);
    if from < value {
        return Err(module("balances", "InsufficientBalance"));
    }
    accounts.entry(signer.to_owned()).or_default().data.free = from - value;
    let to = accounts.entry(dest.clone()).or_default();
    to.data.free = to.data.free.saturating_add(value);
    Ok(event(
        "balances",
        "Transfer",
        json!({ "from": signer, "to": dest, "amount": value.to_string() }),
    ))
}

/// `system.remarkWithEvent`: `Remarked{sender, hash}`, the hash BLAKE2b-256.
fn remark(signer: &str, call: &Call) -> Result<Pending, Refusal> {
    #[derive(Deserialize)]
    struct Args {
        remark: String,
    }
    let Args { remark } = args(call)?;
    let bytes = hex::decode(remark.strip_prefix("0x").unwrap_or(&remark))
        .map_err(|_| Refusal::BadCall("remark must be 0x and hex".to_owned()))?;
    Ok(event(
        "system",
        "Remarked",
        json!({
            "sender": signer,
            "hash": format!("0x{}", hex::encode(remark_hash(&bytes))),
        }),
    ))
}

/// BLAKE2b-256, `system.Remarked`'s hash.
pub(super) fn remark_hash(bytes: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(bytes).into()
}

impl Sim {
    /// Applies `call`, signed (and checked) by `signer`, in the current
    /// block: the receipt, or why nothing happened.
    pub(super) fn submit(&mut self, signer: &str, call: &Call) -> Result<Receipt, Refusal> {
        let block = self.chain.block_at(self.catalog.now);
        let outcome = self.dispatch(signer, call);
        if !matches!(outcome, Err(Refusal::BadCall(_))) {
            // An included extrinsic counts against the nonce, failed or not.
            let info = self.chain.accounts.entry(signer.to_owned()).or_default();
            info.nonce = info.nonce.saturating_add(1);
        }
        let events = self.chain.record(block, outcome?);
        Ok(Receipt { block, events })
    }

    fn dispatch(&mut self, signer: &str, call: &Call) -> Result<Vec<Pending>, Refusal> {
        match (call.pallet.as_str(), call.name.as_str()) {
            ("tfgridModule", "createTwin") => self.create_twin(signer, call),
            ("tfgridModule", "createFarm") => self.create_farm(signer, call),
            ("utility", "batchAll") => self.batch_all(signer, call),
            ("balances", "transferKeepAlive" | "transferAllowDeath" | "transfer") => {
                Ok(vec![transfer(&mut self.chain.accounts, signer, call)?])
            }
            ("system", "remarkWithEvent") => Ok(vec![remark(signer, call)?]),
            ("smartContractModule", "createNodeContract") => {
                self.create_node_contract(signer, call)
            }
            ("smartContractModule", "updateNodeContract") => {
                self.update_node_contract(signer, call)
            }
            ("smartContractModule", "createRentContract") => {
                self.create_rent_contract(signer, call)
            }
            ("smartContractModule", "cancelContract") => self.cancel_contract(signer, call),
            (pallet, name) => Err(Refusal::BadCall(format!(
                "the TFChain SIMULATOR has no call {pallet}.{name}"
            ))),
        }
    }

    fn create_twin(&mut self, signer: &str, call: &Call) -> Result<Vec<Pending>, Refusal> {
        #[derive(Deserialize)]
        struct Args {
            relay: Option<String>,
            pk: Option<String>,
        }
        let Args { relay, pk } = args(call)?;
        let chain = &mut self.chain;
        if chain.twin_by_account.contains_key(signer) {
            return Err(module("tfgridModule", "TwinWithSameAccountIdExists"));
        }
        let id =
            FIRST_TWIN_ID + u32::try_from(chain.twins.len()).unwrap_or(u32::MAX - FIRST_TWIN_ID);
        let twin = Twin {
            version: TWIN_VERSION,
            id,
            account_id: signer.to_owned(),
            relay,
            pk,
        };
        chain.twin_by_account.insert(signer.to_owned(), id);
        chain.twins.insert(id, twin.clone());
        Ok(vec![event(
            "tfgridModule",
            "TwinStored",
            json!({
                "id": twin.id,
                "account_id": twin.account_id,
                "relay": twin.relay,
                "pk": twin.pk,
            }),
        )])
    }

    /// `utility.batchAll`, all or nothing. The simulator batches balance
    /// transfers and remarks only (what the marketplace batches).
    fn batch_all(&mut self, signer: &str, call: &Call) -> Result<Vec<Pending>, Refusal> {
        #[derive(Deserialize)]
        struct Args {
            calls: Vec<Call>,
        }
        let Args { calls } = args(call)?;
        let mut accounts = self.chain.accounts.clone();
        let mut events = Vec::new();
        for inner in &calls {
            let emitted = match (inner.pallet.as_str(), inner.name.as_str()) {
                ("balances", "transferKeepAlive" | "transferAllowDeath" | "transfer") => {
                    transfer(&mut accounts, signer, inner)?
                }
                ("system", "remarkWithEvent") => remark(signer, inner)?,
                (pallet, name) => {
                    return Err(Refusal::BadCall(format!(
                        "the TFChain SIMULATOR's utility.batchAll takes balance transfers and \
                         system.remarkWithEvent only, not {pallet}.{name}"
                    )))
                }
            };
            events.push(emitted);
            events.push(event("utility", "ItemCompleted", json!({})));
        }
        events.push(event("utility", "BatchCompleted", json!({})));
        self.chain.accounts = accounts;
        Ok(events)
    }

    fn create_node_contract(&mut self, signer: &str, call: &Call) -> Result<Vec<Pending>, Refusal> {
        #[derive(Deserialize)]
        struct Args {
            node_id: u32,
            deployment_hash: String,
            deployment_data: String,
            public_ips: u32,
            solution_provider_id: Option<u64>,
        }
        let a: Args = args(call)?;
        let twin_id = self.chain.signer_twin(signer)?;
        let node = &self
            .catalog
            .node(a.node_id)
            .ok_or(contracts_error("NodeNotExists"))?
            .node;
        // A node that is (or goes) standby takes no new deployment.
        if node.power.state == marketplace_app::grid::types::PowerState::Down {
            return Err(contracts_error("NodeNotAvailableToDeploy"));
        }
        // On a rented node only the renter deploys; a dedicated node must be
        // rented first.
        let available = if node.rented {
            node.rented_by_twin_id == twin_id
        } else {
            !self.catalog.is_dedicated(node)
        };
        if !available {
            return Err(contracts_error("NodeNotAvailableToDeploy"));
        }
        if self
            .chain
            .contract_by_node_and_hash(a.node_id, &a.deployment_hash)
            .is_some()
        {
            return Err(contracts_error("ContractIsNotUnique"));
        }
        let farm_id = node.farm_id;
        let farm = self
            .catalog
            .farms
            .get(&farm_id)
            .ok_or(contracts_error("FarmNotExists"))?;
        let wanted = a.public_ips as usize;
        if farm.public_ips.len() < wanted {
            return Err(contracts_error("FarmHasNotEnoughPublicIPs"));
        }
        if farm.free_ips() < wanted {
            return Err(contracts_error("FarmHasNotEnoughPublicIPsFree"));
        }
        if a.solution_provider_id.is_some() {
            return Err(contracts_error("NoSuchSolutionProvider"));
        }

        let contract_id = self.chain.last_contract_id + 1;
        let mut reserved = Vec::new();
        if let Some(farm) = self.catalog.farms.get_mut(&farm_id) {
            for ip in farm
                .public_ips
                .iter_mut()
                .filter(|ip| ip.is_free())
                .take(wanted)
            {
                ip.contract_id = contract_id;
                reserved.push(PublicIp {
                    ip: ip.ip.clone(),
                    gateway: ip.gateway.clone(),
                });
            }
        }
        let contract = self.chain.new_contract(
            twin_id,
            ContractData::NodeContract(NodeContract {
                node_id: a.node_id,
                deployment_hash: a.deployment_hash.clone(),
                deployment_data: a.deployment_data,
                public_ips: a.public_ips,
                public_ips_list: reserved.clone(),
            }),
            None,
        );
        self.chain
            .by_node_and_hash
            .insert((a.node_id, a.deployment_hash), contract_id);
        self.billing.open(contract_id, self.catalog.now);
        self.chain
            .active_node_contracts
            .entry(a.node_id)
            .or_default()
            .push(contract_id);
        let mut events = vec![event(
            "smartContractModule",
            "ContractCreated",
            contract_json(&contract),
        )];
        if !reserved.is_empty() {
            events.push(event(
                "smartContractModule",
                "IPsReserved",
                json!({ "contract_id": contract_id, "public_ips": reserved }),
            ));
        }
        Ok(events)
    }

    fn update_node_contract(&mut self, signer: &str, call: &Call) -> Result<Vec<Pending>, Refusal> {
        #[derive(Deserialize)]
        struct Args {
            contract_id: u64,
            deployment_hash: String,
            deployment_data: String,
        }
        let a: Args = args(call)?;
        let mut contract = self.chain.owned_contract(
            signer,
            a.contract_id,
            "TwinNotAuthorizedToUpdateContract",
        )?;
        if matches!(contract.state, ContractState::GracePeriod(_)) {
            return Err(contracts_error("CannotUpdateContractInGraceState"));
        }
        let ContractData::NodeContract(node_contract) = &mut contract.contract_type else {
            return Err(contracts_error("InvalidContractType"));
        };
        let node_id = node_contract.node_id;
        self.chain
            .by_node_and_hash
            .remove(&(node_id, node_contract.deployment_hash.clone()));
        self.chain
            .by_node_and_hash
            .insert((node_id, a.deployment_hash.clone()), a.contract_id);
        node_contract.deployment_hash = a.deployment_hash;
        node_contract.deployment_data = a.deployment_data;
        self.chain.contracts.insert(a.contract_id, contract.clone());
        Ok(vec![event(
            "smartContractModule",
            "ContractUpdated",
            contract_json(&contract),
        )])
    }

    fn create_rent_contract(&mut self, signer: &str, call: &Call) -> Result<Vec<Pending>, Refusal> {
        #[derive(Deserialize)]
        struct Args {
            node_id: u32,
            solution_provider_id: Option<u64>,
        }
        let a: Args = args(call)?;
        let node = &self
            .catalog
            .node(a.node_id)
            .ok_or(contracts_error("NodeNotExists"))?
            .node;
        if node.rented || self.chain.active_rent(a.node_id).is_some() {
            return Err(contracts_error("NodeHasRentContract"));
        }
        // The catalog's `rentable` stands for what the simulator cannot see
        // (capacity used by contracts that are not on this chain).
        if !node.rentable || !self.chain.active_node_contracts(a.node_id).is_empty() {
            return Err(contracts_error("NodeNotAvailableToDeploy"));
        }
        let twin_id = self.chain.signer_twin(signer)?;
        if a.solution_provider_id.is_some() {
            return Err(contracts_error("NoSuchSolutionProvider"));
        }
        let contract = self.chain.new_contract(
            twin_id,
            ContractData::RentContract { node_id: a.node_id },
            None,
        );
        self.chain
            .active_rent
            .insert(a.node_id, contract.contract_id);
        self.billing.open(contract.contract_id, self.catalog.now);
        if let Ok(sim_node) = self.catalog.node_mut(a.node_id) {
            sim_node.node.rented = true;
            sim_node.node.rent_contract_id = contract.contract_id;
            sim_node.node.rented_by_twin_id = twin_id;
        }
        Ok(vec![event(
            "smartContractModule",
            "ContractCreated",
            contract_json(&contract),
        )])
    }

    fn cancel_contract(&mut self, signer: &str, call: &Call) -> Result<Vec<Pending>, Refusal> {
        #[derive(Deserialize)]
        struct Args {
            contract_id: u64,
        }
        let Args { contract_id } = args(call)?;
        let contract =
            self.chain
                .owned_contract(signer, contract_id, "TwinNotAuthorizedToCancelContract")?;
        if let ContractData::RentContract { node_id } = contract.contract_type {
            if !self.chain.active_node_contracts(node_id).is_empty() {
                return Err(contracts_error("NodeHasActiveContracts"));
            }
        }
        // The pallet bills the contract up to now before it goes.
        let block = self.chain.block_at(self.catalog.now);
        let mut events = self.bill(contract_id, block);
        if self.chain.live_contract(contract_id).is_some() {
            events.extend(self.delete_contract(contract_id, DeletionCause::CanceledByUser));
        }
        Ok(events)
    }

    /// Deletes a live contract for `cause`, as the pallet's
    /// `remove_contract` does: a node contract frees its IPs (`IPsFreed`),
    /// leaves the node's indexes and its deployment
    /// (`NodeContractCanceled`); a rent contract gives the node back
    /// (`RentContractCanceled`).
    pub(super) fn delete_contract(
        &mut self,
        contract_id: u64,
        cause: DeletionCause,
    ) -> Vec<Pending> {
        let Some(mut contract) = self.chain.live_contract(contract_id).cloned() else {
            return Vec::new();
        };
        // What is still reserved is distributed first (`remit_funds` of a
        // deleted contract).
        let mut events = self.remit(contract_id, true);
        contract.state = ContractState::Deleted(cause);
        match &contract.contract_type {
            ContractData::NodeContract(node_contract) => {
                let node_id = node_contract.node_id;
                if node_contract.public_ips > 0 {
                    events.push(self.free_ips(contract_id));
                }
                if let Some(ids) = self.chain.active_node_contracts.get_mut(&node_id) {
                    ids.retain(|id| *id != contract_id);
                }
                self.chain
                    .by_node_and_hash
                    .remove(&(node_id, node_contract.deployment_hash.clone()));
                self.zos.drop_deployment(node_id, contract_id);
                events.push(event(
                    "smartContractModule",
                    "NodeContractCanceled",
                    json!({
                        "contract_id": contract_id,
                        "node_id": node_id,
                        "twin_id": contract.twin_id,
                    }),
                ));
            }
            ContractData::RentContract { node_id } => {
                self.chain.active_rent.remove(node_id);
                if let Ok(sim_node) = self.catalog.node_mut(*node_id) {
                    sim_node.node.rented = false;
                    sim_node.node.rent_contract_id = 0;
                    sim_node.node.rented_by_twin_id = 0;
                }
                events.push(event(
                    "smartContractModule",
                    "RentContractCanceled",
                    json!({ "contract_id": contract_id }),
                ));
            }
            ContractData::NameContract { .. } => {
                events.push(event(
                    "smartContractModule",
                    "NameContractCanceled",
                    json!({ "contract_id": contract_id }),
                ));
            }
        }
        self.chain.contracts.insert(contract_id, contract);
        self.billing.close(contract_id);
        events
    }

    /// Gives the farm's IPs held by `contract_id` back: `IPsFreed`. The
    /// node may have moved to another farm since they were reserved, so
    /// every farm is searched.
    fn free_ips(&mut self, contract_id: u64) -> Pending {
        let mut freed = Vec::new();
        for farm in self.catalog.farms.values_mut() {
            for ip in farm
                .public_ips
                .iter_mut()
                .filter(|ip| ip.contract_id == contract_id)
            {
                ip.contract_id = 0;
                freed.push(PublicIp {
                    ip: ip.ip.clone(),
                    gateway: ip.gateway.clone(),
                });
            }
        }
        event(
            "smartContractModule",
            "IPsFreed",
            json!({ "contract_id": contract_id, "public_ips": freed }),
        )
    }
}

/// A contract as an event's data (`ContractCreated(Contract)`).
fn contract_json(contract: &Contract) -> Value {
    serde_json::to_value(contract).unwrap_or(Value::Null)
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
