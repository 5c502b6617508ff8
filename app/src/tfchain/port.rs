//! The [`Chain`] port: what the marketplace reads from and submits to
//! TFChain, named as the pallets name it (`smartContractModule`,
//! `tfgridModule`, `balances`, `system`, `utility`), with their storage
//! items and events. Types mirror `pallet-smart-contract/src/types.rs`.
//!
//! Every call that changes the chain is an extrinsic signed by a custodial
//! account ([`Signer`]); it answers the block it was included in and the
//! events it emitted ([`Receipt`]), or the pallet's error by its name
//! ([`ChainError::Module`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Signer;

/// A block: its number and its timestamp (unix seconds, `pallet_timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The block number.
    pub number: u32,
    /// When the block was authored, unix seconds.
    pub timestamp: i64,
}

/// A chain event's identity: (block number, event index). Deduplicate on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId {
    /// The block the event was emitted in.
    pub block_number: u32,
    /// Its index among the block's events.
    pub event_index: u32,
}

/// One chain event, e.g. `smartContractModule.ContractCreated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainEvent {
    /// Where it is in the chain.
    #[serde(flatten)]
    pub id: EventId,
    /// The block's timestamp, unix seconds.
    pub timestamp: i64,
    /// The emitting pallet, e.g. `smartContractModule`.
    pub pallet: String,
    /// The event's name, e.g. `NodeContractCanceled`.
    pub name: String,
    /// Its fields, by the pallet's field names.
    pub data: serde_json::Value,
}

impl ChainEvent {
    /// Whether this is `pallet.name`.
    pub fn is(&self, pallet: &str, name: &str) -> bool {
        self.pallet == pallet && self.name == name
    }
}

/// What an included extrinsic answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The block that included it.
    pub block: Block,
    /// The events it emitted, in order.
    pub events: Vec<ChainEvent>,
}

impl Receipt {
    /// The first emitted event `pallet.name`.
    pub fn event(&self, pallet: &str, name: &str) -> Option<&ChainEvent> {
        self.events.iter().find(|e| e.is(pallet, name))
    }

    /// The contract a `ContractCreated` or `ContractUpdated` carries.
    pub fn contract(&self) -> Option<Contract> {
        self.events
            .iter()
            .filter(|e| {
                e.is("smartContractModule", "ContractCreated")
                    || e.is("smartContractModule", "ContractUpdated")
            })
            .find_map(|e| serde_json::from_value(e.data.clone()).ok())
    }
}

/// Why a contract was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletionCause {
    /// Its twin cancelled it.
    CanceledByUser,
    /// Its grace period elapsed unpaid.
    OutOfFunds,
    /// The council cancelled it.
    CanceledByCollective,
}

/// `ContractState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractState {
    /// Live and billed.
    Created,
    /// Unpaid since this block; the node pauses its workloads.
    GracePeriod(u32),
    /// Gone, and why.
    Deleted(DeletionCause),
}

/// A public IP a node contract holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicIp {
    /// The address with its prefix length, e.g. `198.18.1.10/24`.
    pub ip: String,
    /// The farm's gateway for it.
    pub gateway: String,
}

/// `NodeContract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeContract {
    /// The node the deployment runs on.
    pub node_id: u32,
    /// Hex of the deployment's MD5 challenge hash (32 characters).
    pub deployment_hash: String,
    /// Free text the deployer attaches (ours: JSON naming the deployment).
    pub deployment_data: String,
    /// How many public IPv4s it reserves from the node's farm.
    pub public_ips: u32,
    /// Which ones.
    pub public_ips_list: Vec<PublicIp>,
}

/// `ContractData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractData {
    /// A deployment on a node.
    NodeContract(NodeContract),
    /// A gateway name.
    NameContract {
        /// The name.
        name: String,
    },
    /// A whole node, dedicated.
    RentContract {
        /// The rented node.
        node_id: u32,
    },
}

/// `Contract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// The type's storage version.
    pub version: u32,
    /// Its state.
    pub state: ContractState,
    /// Its id, from 1.
    pub contract_id: u64,
    /// The twin that created it and pays for it.
    pub twin_id: u32,
    /// What it is for.
    pub contract_type: ContractData,
    /// The solution provider paid a share, if any.
    pub solution_provider_id: Option<u64>,
}

impl Contract {
    /// The node contract's fields, when it is one.
    pub fn node_contract(&self) -> Option<&NodeContract> {
        match &self.contract_type {
            ContractData::NodeContract(c) => Some(c),
            _ => None,
        }
    }

    /// Whether it is deleted.
    pub fn is_deleted(&self) -> bool {
        matches!(self.state, ContractState::Deleted(_))
    }
}

/// Why a chain call did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The extrinsic was included and failed with the pallet's error, e.g.
    /// `smartContractModule.NotEnoughResourcesOnNode`.
    #[error("{pallet}.{error}")]
    Module {
        /// The pallet.
        pallet: String,
        /// The error's name.
        error: String,
    },
    /// The chain could not be reached or answered garbage; the call may or
    /// may not have been applied, so look before repeating it.
    #[error("TFChain unavailable: {0}")]
    Unavailable(String),
    /// The events asked for are older than what the node keeps: events of
    /// blocks before `first_kept_block` were dropped. Resume from a
    /// snapshot (or the indexer), then read events from that block on.
    #[error("TFChain events before block {first_kept_block} are no longer kept")]
    Pruned {
        /// The oldest block whose events are still kept.
        first_kept_block: u32,
    },
}

impl ChainError {
    /// Whether this is `pallet.error`.
    pub fn is(&self, pallet: &str, error: &str) -> bool {
        matches!(self, ChainError::Module { pallet: p, error: e } if p == pallet && e == error)
    }
}

/// TFChain, as the marketplace uses it.
#[async_trait]
pub trait Chain: Send + Sync {
    /// The best block (its timestamp is "now" on the chain).
    async fn latest_block(&self) -> Result<Block, ChainError>;

    /// `system.Account(account).data.free`, TFT base units.
    async fn free_balance(&self, account: &str) -> Result<u128, ChainError>;

    /// `tfgridModule.TwinIdByAccountID(account)`.
    async fn twin_id_by_account(&self, account: &str) -> Result<Option<u32>, ChainError>;

    /// `tfgridModule.createTwin(relay, pk)`, by the account itself; emits
    /// `TwinStored`. Fails with `tfgridModule.TwinWithSameAccountIdExists`
    /// when it already has one.
    async fn create_twin(
        &self,
        signer: &Signer,
        relay: Option<&str>,
    ) -> Result<Receipt, ChainError>;

    /// `tfgridModule.FarmIdByName(name)`: the farm called `name`, if any.
    /// Farm names are unique on chain, so a caller that crashed after
    /// [`Chain::create_farm`] finds the farm it made here before making
    /// another.
    async fn farm_id_by_name(&self, name: &str) -> Result<Option<u32>, ChainError>;

    /// `tfgridModule.createFarm(name, public_ips: [])`, by an account that
    /// has a twin: that twin becomes the farm's, so the farmer's share of
    /// the bills on the farm's nodes is paid to this account. Emits
    /// `FarmStored(Farm)`; answers the new farm's id. Fails with
    /// `tfgridModule.TwinNotExists` (the signer has no twin),
    /// `tfgridModule.FarmExists` (the name is taken: look it up with
    /// [`Chain::farm_id_by_name`]), `FarmNameTooShort`, `FarmNameTooLong` or
    /// `InvalidFarmName` (3 to 40 of `a-z A-Z 0-9 - _`).
    async fn create_farm(&self, signer: &Signer, name: &str) -> Result<u32, ChainError>;

    /// `utility.batchAll([balances.transferKeepAlive(dest, value),
    /// system.remarkWithEvent(remark)])`: a transfer tagged so that it can be
    /// found again ([`Chain::find_remark`]); emits `balances.Transfer` and
    /// `system.Remarked{sender, hash}` with `hash` the BLAKE2b-256 of
    /// `remark`, or nothing.
    async fn transfer_with_remark(
        &self,
        signer: &Signer,
        dest: &str,
        value: u128,
        remark: &[u8],
    ) -> Result<Receipt, ChainError>;

    /// The `system.Remarked{sender, hash}` event at or after `from_block`,
    /// if any: whether a tagged transfer went through.
    async fn find_remark(
        &self,
        sender: &str,
        hash: [u8; 32],
        from_block: u32,
    ) -> Result<Option<EventId>, ChainError>;

    /// `smartContractModule.ContractIDByNodeIDAndHash(node_id, hash)`: the
    /// live node contract for this deployment on this node, if any.
    async fn contract_id_by_node_and_hash(
        &self,
        node_id: u32,
        deployment_hash: &str,
    ) -> Result<Option<u64>, ChainError>;

    /// `smartContractModule.ActiveRentContractForNode(node_id)`.
    async fn active_rent_contract_for_node(&self, node_id: u32) -> Result<Option<u64>, ChainError>;

    /// `smartContractModule.Contracts(contract_id)`.
    async fn contract(&self, contract_id: u64) -> Result<Option<Contract>, ChainError>;

    /// `smartContractModule.createNodeContract(node_id, deployment_hash,
    /// deployment_data, public_ips, solution_provider_id)`; emits
    /// `ContractCreated` (and `IPsReserved` when it takes IPs).
    async fn create_node_contract(
        &self,
        signer: &Signer,
        node_id: u32,
        deployment_hash: &str,
        deployment_data: &str,
        public_ips: u32,
        solution_provider_id: Option<u64>,
    ) -> Result<Receipt, ChainError>;

    /// `smartContractModule.updateNodeContract(contract_id, deployment_hash,
    /// deployment_data)`; emits `ContractUpdated`.
    async fn update_node_contract(
        &self,
        signer: &Signer,
        contract_id: u64,
        deployment_hash: &str,
        deployment_data: &str,
    ) -> Result<Receipt, ChainError>;

    /// `smartContractModule.createRentContract(node_id, solution_provider_id)`.
    async fn create_rent_contract(
        &self,
        signer: &Signer,
        node_id: u32,
        solution_provider_id: Option<u64>,
    ) -> Result<Receipt, ChainError>;

    /// `smartContractModule.cancelContract(contract_id)`; emits
    /// `NodeContractCanceled` / `RentContractCanceled` (and `IPsFreed`).
    async fn cancel_contract(
        &self,
        signer: &Signer,
        contract_id: u64,
    ) -> Result<Receipt, ChainError>;

    /// The chain's events after `after` (all from genesis when `None`), in
    /// order, at most `limit`; [`ChainError::Pruned`] when some of them are
    /// no longer kept.
    async fn events(
        &self,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<ChainEvent>, ChainError>;
}
