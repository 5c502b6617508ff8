//! Billing in the TFChain SIMULATOR, by `pallet-smart-contract`'s
//! `billing.rs`: each live contract is billed in its cycle slot for the
//! seconds since its last bill ([`Sim::bill`]), from its twin's free
//! balance; a bill the balance cannot pay puts the contract in its grace
//! period (the node pauses its workloads), a later bill that can pay ends
//! it, and one that finds the grace period over deletes the contract
//! `OutOfFunds`. Node contracts bill the resources their node reported
//! (`UpdatedUsedResources`, [`Sim::report_used_resources`]) and the NU of
//! NRU reports ([`Sim::report_nru`]).
//!
//! As in the pallet, a bill *reserves* the amount on the twin's account
//! (free to reserved, [`PaymentState`] keeps it per contract), and the
//! reserve is paid out ([`Sim::remit`], `remit_funds`) every
//! [`SimOptions::reward_distribution_cycles`](super::SimOptions) bills of
//! the contract and when it is deleted: `RewardDistributed{contract_id,
//! standard_rewards, additional_rewards}`; of the standard part 10% to the
//! staking pool, 40% to the foundation and the rest (50%) to the farmer,
//! the twin of the farm the node is in *at distribution time*; the
//! additional part (a rent contract's extra fee) wholly to the farmer.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use marketplace_app::grid::types::NodeCertification;
use marketplace_app::tfchain::{
    ss58_address, Block, ContractData, ContractState, DeletionCause, SS58_PREFIX,
};
use marketplace_app::zos::Capacity;

use super::chain::{event, Pending};
use super::cost::{self, Resources};
use super::Sim;

/// What the chain keeps of a contract's payments
/// (`ContractPaymentState`, `ContractBillingInformation` and
/// `NodeContractResources`, merged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(super) struct PaymentState {
    pub(super) contract_id: u64,
    /// When it was last billed (its creation until the first bill), unix
    /// seconds.
    pub(super) last_billed: i64,
    /// Owed from earlier cycles: the standard part (CU, SU, IPs, NU)...
    #[serde(with = "decimal")]
    pub(super) standard_overdraft: u128,
    /// ...and the additional part (a dedicated node's extra fee).
    #[serde(with = "decimal")]
    pub(super) additional_overdraft: u128,
    /// Everything billed so far, standard part: the farmer's share of it is
    /// half (the rest goes to the foundation and the staking pool).
    #[serde(with = "decimal")]
    pub(super) billed_standard: u128,
    /// Everything billed so far, additional part: wholly the farmer's.
    #[serde(with = "decimal")]
    pub(super) billed_additional: u128,
    /// Reserved on the twin's account and not yet distributed
    /// (`standard_reserve`)...
    #[serde(with = "decimal")]
    pub(super) standard_reserve: u128,
    /// ...and of the additional part (`additional_reserve`).
    #[serde(with = "decimal")]
    pub(super) additional_reserve: u128,
    /// Bills since the rewards were last distributed (`cycles`).
    pub(super) cycles: u32,
    /// NU reported since the last bill, units USD.
    pub(super) nu_unbilled: u64,
    /// What the node last reported the contract uses.
    pub(super) used: Resources,
}

impl PaymentState {
    fn overdraft(&self) -> u128 {
        self.standard_overdraft
            .saturating_add(self.additional_overdraft)
    }

    fn has_reserve(&self) -> bool {
        self.standard_reserve > 0 || self.additional_reserve > 0
    }

    /// The farmer's share of everything billed (50% of the standard part
    /// and all of the additional), computed once over the total: what was
    /// paid out differs by the rounding of each distribution
    /// (`RewardDistributed`).
    pub(super) fn farmer_share(&self) -> u128 {
        let standard = self.billed_standard;
        // The pallet computes the 10% and 40% and gives the farmer the rest.
        let others = cost::percent_of(standard, 10) + cost::percent_of(standard, 40);
        standard.saturating_sub(others) + self.billed_additional
    }
}

mod decimal {
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }
}

/// Every live contract's payment state.
#[derive(Default)]
pub(super) struct Billing {
    payments: BTreeMap<u64, PaymentState>,
    /// Deleted contracts' final states.
    closed: BTreeMap<u64, PaymentState>,
}

impl Billing {
    /// A contract created at `now` starts being billed from then.
    pub(super) fn open(&mut self, contract_id: u64, now: i64) {
        self.payments.insert(
            contract_id,
            PaymentState {
                contract_id,
                last_billed: now,
                ..PaymentState::default()
            },
        );
    }

    /// The contract is deleted: its state is kept for reading only.
    pub(super) fn close(&mut self, contract_id: u64) {
        if let Some(state) = self.payments.remove(&contract_id) {
            self.closed.insert(contract_id, state);
        }
    }

    /// A live contract's payment state.
    pub(super) fn get(&self, contract_id: u64) -> Option<&PaymentState> {
        self.payments.get(&contract_id)
    }

    /// Every contract's, deleted ones included, by id.
    pub(super) fn all(&self) -> Vec<&PaymentState> {
        let mut all: Vec<&PaymentState> =
            self.payments.values().chain(self.closed.values()).collect();
        all.sort_by_key(|p| p.contract_id);
        all
    }
}

/// Why an NRU report was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NruRefusal {
    /// No live node contract with that id.
    NotANodeContract(u64),
}

fn resources(capacity: Capacity) -> Resources {
    Resources {
        hru: capacity.hru,
        sru: capacity.sru,
        cru: capacity.cru,
        mru: capacity.mru,
    }
}

impl Sim {
    /// The node reports what each settled deployment uses: when it differs
    /// from the last report, the chain records
    /// `UpdatedUsedResources{contract_id, used}` in the current block.
    pub(super) fn report_used_resources(&mut self) {
        let mut events = Vec::new();
        for (contract_id, capacity) in self.zos.settled_usage() {
            let used = resources(capacity);
            let live = self.chain.live_contract(contract_id).is_some();
            let Some(state) = self.billing.payments.get_mut(&contract_id) else {
                continue;
            };
            if !live || state.used == used {
                continue;
            }
            state.used = used;
            events.push(event(
                "smartContractModule",
                "UpdatedUsedResources",
                json!({ "contract_id": contract_id, "used": used }),
            ));
        }
        if !events.is_empty() {
            let block = self.chain.block_at(self.catalog.now);
            self.chain.record(block, events);
        }
    }

    /// `NruConsumptionReportReceived{contract_id, timestamp, window, nru}`:
    /// `nru` bytes of public traffic, billed at the contract's next bill.
    pub(super) fn report_nru(
        &mut self,
        contract_id: u64,
        nru: u64,
        window: u64,
    ) -> Result<(), NruRefusal> {
        let is_node_contract = self
            .chain
            .live_contract(contract_id)
            .is_some_and(|c| c.node_contract().is_some());
        let state = self
            .billing
            .payments
            .get_mut(&contract_id)
            .filter(|_| is_node_contract)
            .ok_or(NruRefusal::NotANodeContract(contract_id))?;
        state.nu_unbilled = state.nu_unbilled.saturating_add(cost::nu_cost(nru));
        let block = self.chain.block_at(self.catalog.now);
        self.chain.record(
            block,
            vec![event(
                "smartContractModule",
                "NruConsumptionReportReceived",
                json!({
                    "contract_id": contract_id,
                    "timestamp": block.timestamp,
                    "window": window,
                    "nru": nru,
                }),
            )],
        );
        Ok(())
    }

    /// Bills live contract `contract_id` in `block` for the seconds since
    /// its last bill (`bill_contract`); the events, for the caller to
    /// record. Nothing when it owes nothing.
    pub(super) fn bill(&mut self, contract_id: u64, block: Block) -> Vec<Pending> {
        let Some(contract) = self.chain.live_contract(contract_id).cloned() else {
            return Vec::new();
        };
        let Some(state) = self.billing.payments.get(&contract_id).cloned() else {
            return Vec::new();
        };
        let Some(account) = self
            .chain
            .twin(contract.twin_id)
            .map(|t| t.account_id.clone())
        else {
            return Vec::new();
        };
        let now = block.timestamp;
        let secs = u64::try_from(now - state.last_billed).unwrap_or(0);
        let balance = self.chain.account(&account).data.free;

        let node_id = match &contract.contract_type {
            ContractData::NodeContract(c) => c.node_id,
            ContractData::RentContract { node_id } => *node_id,
            ContractData::NameContract { .. } => 0,
        };
        let node = self.catalog.node(node_id).map(|n| &n.node);
        let certified = node.is_some_and(|n| n.certification_type == NodeCertification::Certified);
        let (standard_usd, additional_usd) = match &contract.contract_type {
            ContractData::NodeContract(c) => {
                let rented =
                    self.chain.active_rent(node_id).is_some() || node.is_some_and(|n| n.rented);
                let resources = cost::resources_cost(state.used, c.public_ips, secs, !rented);
                (resources.saturating_add(state.nu_unbilled), 0)
            }
            ContractData::RentContract { .. } => match node {
                Some(node) => {
                    let total = node.total_resources;
                    let whole = Resources {
                        hru: total.hru,
                        sru: total.sru,
                        cru: total.cru,
                        mru: total.mru,
                    };
                    (
                        cost::rent_cost(whole, secs),
                        cost::extra_fee_cost(node.extra_fee, secs),
                    )
                }
                None => (0, 0),
            },
            ContractData::NameContract { .. } => (cost::name_cost(secs), 0),
        };
        let price = self.price.billing_price();
        let (standard, level) = cost::discount(
            cost::usd_to_tft(standard_usd, price),
            secs,
            balance,
            certified,
        );
        let additional = cost::usd_to_tft(additional_usd, price);
        let due = standard.saturating_add(additional);
        if due == 0 && state.overdraft() == 0 {
            // As the pallet: nothing billed, and the seconds keep counting.
            return Vec::new();
        }
        let total = due.saturating_add(state.overdraft());
        let mut events = Vec::new();
        let billed = |amount: u128| {
            event(
                "smartContractModule",
                "ContractBilled",
                json!({
                    "contract_id": contract_id,
                    "timestamp": now,
                    "discount_level": level.name(),
                    "amount_billed": amount.to_string(),
                }),
            )
        };
        let mut deleted = false;
        if balance >= total {
            if matches!(contract.state, ContractState::GracePeriod(_))
                && !self.rent_suspended(&contract.contract_type)
            {
                events.extend(self.end_grace(contract_id));
            }
            self.chain.reserve(&account, total);
            if let Some(s) = self.billing.payments.get_mut(&contract_id) {
                s.billed_standard += standard + s.standard_overdraft;
                s.billed_additional += additional + s.additional_overdraft;
                s.standard_reserve += standard + s.standard_overdraft;
                s.additional_reserve += additional + s.additional_overdraft;
                s.standard_overdraft = 0;
                s.additional_overdraft = 0;
            }
            events.push(billed(total));
        } else {
            match contract.state {
                ContractState::Created => events.extend(self.start_grace(contract_id, block)),
                ContractState::GracePeriod(since) => {
                    let waited = block.number.saturating_sub(since);
                    if waited >= self.options.grace_period_blocks {
                        events.push(event(
                            "smartContractModule",
                            "ContractGracePeriodElapsed",
                            json!({ "contract_id": contract_id, "grace_period": waited }),
                        ));
                        deleted = true;
                    }
                }
                ContractState::Deleted(_) => {}
            }
            // Everything the balance holds goes to this bill; the rest is owed.
            let part = self.chain.reserve(&account, balance);
            if let Some(s) = self.billing.payments.get_mut(&contract_id) {
                s.standard_overdraft += standard;
                s.additional_overdraft += additional;
                let from_standard = part.min(s.standard_overdraft);
                s.standard_overdraft -= from_standard;
                s.additional_overdraft -= part - from_standard;
                s.billed_standard += from_standard;
                s.billed_additional += part - from_standard;
                s.standard_reserve += from_standard;
                s.additional_reserve += part - from_standard;
            }
            if part > 0 {
                events.push(billed(part));
            }
            events.push(event(
                "smartContractModule",
                "ContractPaymentOverdrawn",
                json!({
                    "contract_id": contract_id,
                    "timestamp": now,
                    "partially_billed_amount": part.to_string(),
                    "overdraft": due.saturating_sub(part).to_string(),
                }),
            ));
        }
        if let Some(s) = self.billing.payments.get_mut(&contract_id) {
            s.nu_unbilled = 0;
            s.last_billed = now;
        }
        // A deleted contract's rewards are distributed as it goes
        // (`delete_contract`).
        if !deleted {
            events.extend(self.remit(contract_id, false));
        }
        if deleted {
            if let ContractData::RentContract { node_id } = contract.contract_type {
                for id in self.chain.active_node_contracts(node_id).to_vec() {
                    events.extend(self.delete_contract(id, DeletionCause::OutOfFunds));
                }
            }
            events.extend(self.delete_contract(contract_id, DeletionCause::OutOfFunds));
        }
        events
    }

    /// `remit_funds` after a bill of live contract `contract_id`, or with
    /// `deleting` as it is deleted: one more cycle; when the cycles reach
    /// the distribution frequency, or `deleting`, and something is
    /// reserved, the reserve is paid out (see the module documentation)
    /// and `RewardDistributed` emitted.
    pub(super) fn remit(&mut self, contract_id: u64, deleting: bool) -> Vec<Pending> {
        let frequency = self.options.reward_distribution_cycles.max(1);
        let Some(state) = self.billing.payments.get_mut(&contract_id) else {
            return Vec::new();
        };
        state.cycles = state.cycles.saturating_add(1);
        if !(state.cycles >= frequency || deleting) || !state.has_reserve() {
            return Vec::new();
        }
        let (standard, additional) = (state.standard_reserve, state.additional_reserve);
        let Some(contract) = self.chain.live_contract(contract_id).cloned() else {
            return Vec::new();
        };
        let Some(payer) = self
            .chain
            .twin(contract.twin_id)
            .map(|t| t.account_id.clone())
        else {
            return Vec::new();
        };
        let farmer = match &contract.contract_type {
            ContractData::NameContract { .. } => None,
            ContractData::NodeContract(c) => Some(self.farmer_account(c.node_id)),
            ContractData::RentContract { node_id } => Some(self.farmer_account(*node_id)),
        };
        let is_rent = matches!(contract.contract_type, ContractData::RentContract { .. });
        if is_rent {
            if let Some(farmer) = &farmer {
                self.chain.pay_reserved(&payer, farmer, additional);
            }
        }
        let pool = cost::percent_of(standard, 10);
        self.chain.pay_reserved(&payer, STAKING_POOL_ACCOUNT, pool);
        let foundation = match &farmer {
            Some(farmer) => {
                let foundation = cost::percent_of(standard, 40);
                let farmer_share = standard.saturating_sub(foundation + pool);
                self.chain.pay_reserved(&payer, farmer, farmer_share);
                foundation
            }
            None => standard.saturating_sub(pool),
        };
        self.chain
            .pay_reserved(&payer, FOUNDATION_ACCOUNT, foundation);
        if let Some(state) = self.billing.payments.get_mut(&contract_id) {
            if is_rent {
                state.additional_reserve = 0;
            }
            state.standard_reserve = 0;
            state.cycles = 0;
        }
        vec![event(
            "smartContractModule",
            "RewardDistributed",
            json!({
                "contract_id": contract_id,
                "standard_rewards": standard.to_string(),
                "additional_rewards": additional.to_string(),
            }),
        )]
    }

    /// Where the farmer's share of a bill on `node_id` goes now: the
    /// account of the twin of the farm the node is in. A seed farm's twin
    /// is not a chain account: its share goes to a made-up account for
    /// that twin ([`catalog_twin_account`]).
    fn farmer_account(&self, node_id: u32) -> String {
        let twin_id = self
            .catalog
            .node(node_id)
            .and_then(|n| self.catalog.farms.get(&n.node.farm_id))
            .map_or(0, |farm| farm.twin_id);
        match self.chain.twin(twin_id) {
            Some(twin) => twin.account_id.clone(),
            None => catalog_twin_account(twin_id),
        }
    }

    /// A node contract on a node whose rent contract is in its grace period
    /// stays in grace, paid or not.
    fn rent_suspended(&self, contract_type: &ContractData) -> bool {
        let ContractData::NodeContract(c) = contract_type else {
            return false;
        };
        self.chain
            .active_rent(c.node_id)
            .and_then(|id| self.chain.live_contract(id))
            .is_some_and(|rent| matches!(rent.state, ContractState::GracePeriod(_)))
    }

    /// `Created` → `GracePeriod(block)`: `ContractGracePeriodStarted`, the
    /// node pauses the workloads; a rent contract takes its node's node
    /// contracts along.
    fn start_grace(&mut self, contract_id: u64, block: Block) -> Vec<Pending> {
        let mut ids = vec![contract_id];
        if let Some(ContractData::RentContract { node_id }) = self
            .chain
            .live_contract(contract_id)
            .map(|c| c.contract_type.clone())
        {
            ids.extend(self.chain.active_node_contracts(node_id).iter().copied());
        }
        let mut events = Vec::new();
        for id in ids {
            let Some(contract) = self.chain.live_contract(id).cloned() else {
                continue;
            };
            if !matches!(contract.state, ContractState::Created) {
                continue;
            }
            self.chain
                .set_state(id, ContractState::GracePeriod(block.number));
            let node_id = contract_node(&contract.contract_type);
            self.zos.set_paused(node_id, id, true, self.catalog.now);
            events.push(event(
                "smartContractModule",
                "ContractGracePeriodStarted",
                json!({
                    "contract_id": id,
                    "node_id": node_id,
                    "twin_id": contract.twin_id,
                    "block_number": block.number,
                }),
            ));
        }
        events
    }

    /// `GracePeriod` → `Created`: `ContractGracePeriodEnded`, the workloads
    /// run again; a rent contract takes its node's node contracts along
    /// (those that owe nothing themselves).
    fn end_grace(&mut self, contract_id: u64) -> Vec<Pending> {
        let mut ids = vec![contract_id];
        if let Some(ContractData::RentContract { node_id }) = self
            .chain
            .live_contract(contract_id)
            .map(|c| c.contract_type.clone())
        {
            ids.extend(
                self.chain
                    .active_node_contracts(node_id)
                    .iter()
                    .copied()
                    .filter(|id| self.billing.get(*id).is_none_or(|s| s.overdraft() == 0)),
            );
        }
        let mut events = Vec::new();
        for id in ids {
            let Some(contract) = self.chain.live_contract(id).cloned() else {
                continue;
            };
            if !matches!(contract.state, ContractState::GracePeriod(_)) {
                continue;
            }
            self.chain.set_state(id, ContractState::Created);
            let node_id = contract_node(&contract.contract_type);
            self.zos.set_paused(node_id, id, false, self.catalog.now);
            events.push(event(
                "smartContractModule",
                "ContractGracePeriodEnded",
                json!({
                    "contract_id": id,
                    "node_id": node_id,
                    "twin_id": contract.twin_id,
                }),
            ));
        }
        events
    }
}

/// The staking pool's account (`StakingPoolAccount`, the runtime's
/// `get_staking_pool_account`): 10% of every contract's standard rewards.
pub const STAKING_POOL_ACCOUNT: &str = "5CNposRewardAccount11111111111111111111111111FSU";

/// The foundation's account (pricing policy 1's `foundation_account`; Eve
/// on a development chain, as here): 40% of the standard rewards (90% on a
/// name contract).
pub const FOUNDATION_ACCOUNT: &str = "5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw";

/// The made-up account standing for catalog twin `twin_id` (a seed farm's
/// twin, which has no chain account): the SS58 address of the BLAKE2b-256
/// of `grid-sim catalog twin <id>`. Farmer shares of bills on seed farms'
/// nodes are paid there.
pub fn catalog_twin_account(twin_id: u32) -> String {
    let key = super::chain::remark_hash(format!("grid-sim catalog twin {twin_id}").as_bytes());
    ss58_address(&key, SS58_PREFIX)
}

/// The node a contract is on (0 for a name contract, as the pallet says).
fn contract_node(contract_type: &ContractData) -> u32 {
    match contract_type {
        ContractData::NodeContract(c) => c.node_id,
        ContractData::RentContract { node_id } => *node_id,
        ContractData::NameContract { .. } => 0,
    }
}

#[cfg(test)]
#[path = "billing_tests.rs"]
mod tests;
