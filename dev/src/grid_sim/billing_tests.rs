//! Billing, grace periods, uptime and price in the TFChain SIMULATOR,
//! without HTTP: given a chain, when the clock moves, then these events.
//! Expected amounts are worked out here from the pricing rules (DOMAIN.md,
//! "Pricing and billing"), not read back from the simulator; only the
//! USD → TFT conversion, whose fixed-point truncation `cost.rs` pins down in
//! its own tests, is reused.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use marketplace_app::tfchain::http::wire::Call;
use marketplace_app::tfchain::{ChainEvent, ContractState, DeletionCause};
use marketplace_app::zos::{
    Capacity, Deployment, ResultState, SignatureRequirement, Workload, WorkloadResult,
};

use super::super::zos::NodeFacts;
use super::super::{Seed, Sim, SimOptions};
use super::cost::usd_to_tft;

const GIB: u64 = 1 << 30;
const START: i64 = 1_800_000_000;
/// The default price, mUSD.
const PRICE: u32 = 10;

fn options(cycle: u32) -> SimOptions {
    SimOptions {
        workload_delay: Duration::ZERO,
        billing_cycle_blocks: cycle,
        ..SimOptions::default()
    }
}

fn sim(options: SimOptions) -> Sim {
    Sim::new(Seed::dev(), START, options)
}

fn advance(sim: &mut Sim, minutes: i64) {
    let from = sim.catalog.now;
    sim.catalog.advance(minutes * 60);
    sim.produce_blocks(from);
}

fn twin(sim: &mut Sim, account: &str, funds: u128) -> u32 {
    sim.submit(
        account,
        &Call::new(
            "tfgridModule",
            "createTwin",
            json!({"relay": null, "pk": null}),
        ),
    )
    .expect("twin");
    if funds > 0 {
        let now = sim.catalog.now;
        sim.chain.fund(now, account, funds);
    }
    sim.chain.twin_id_by_account(account).expect("twin id")
}

fn free(sim: &Sim, account: &str) -> u128 {
    sim.chain.account(account).data.free
}

fn workload(name: &str, kind: &str, data: Value) -> Workload {
    Workload {
        version: 0,
        name: name.to_owned(),
        kind: kind.to_owned(),
        data,
        metadata: String::new(),
        description: String::new(),
        result: WorkloadResult::default(),
    }
}

/// 2 vCPU, 4 GiB, 50 GiB rootfs: CU = min(max(4/4, 2/2), max(4/8, 2),
/// max(4/2, 2/4)) = 1, SU = 50/200 = 0.25.
fn small_vm() -> Vec<Workload> {
    vec![workload(
        "vm",
        "zmachine",
        json!({
            "flist": "https://hub.grid.tf/x.flist",
            "size": 50 * GIB,
            "compute_capacity": {"cpu": 2, "memory": 4 * GIB},
            "network": {"interfaces": [{"network": "net", "ip": "10.20.2.5"}]},
        }),
    )]
}

/// The small VM's price: 1 CU × 100,000 + 0.25 SU × 50,000 an hour.
const SMALL_VM_PER_HOUR: u64 = 100_000 + 50_000 / 4;

/// Units USD for `secs` at `per_hour`, rounded up as the chain rounds.
fn usd(per_hour: u64, secs: u64) -> u64 {
    (per_hour * secs).div_ceil(3_600)
}

/// Creates a node contract (and, with workloads, the deployment on the
/// node, settled); its id.
fn deploy(sim: &mut Sim, account: &str, node_id: u32, ips: u32, workloads: Vec<Workload>) -> u64 {
    let twin_id = sim.chain.twin_id_by_account(account).expect("twin");
    let mut deployment = Deployment {
        version: 0,
        twin_id,
        contract_id: 0,
        metadata: String::new(),
        description: String::new(),
        expiration: 0,
        signature_requirement: SignatureRequirement::default(),
        workloads,
    };
    let receipt = sim
        .submit(
            account,
            &Call::new(
                "smartContractModule",
                "createNodeContract",
                json!({
                    "node_id": node_id,
                    "deployment_hash": deployment.deployment_hash(),
                    "deployment_data": "",
                    "public_ips": ips,
                    "solution_provider_id": null,
                }),
            ),
        )
        .expect("node contract");
    let contract_id = receipt.contract().expect("contract").contract_id;
    if !deployment.workloads.is_empty() {
        deployment.contract_id = contract_id;
        let facts = NodeFacts {
            node_id,
            total: Capacity {
                cru: 256,
                mru: 1_024 * GIB,
                sru: 10_000 * GIB,
                hru: 10_000 * GIB,
                ipv4u: 8,
            },
            used_elsewhere: Capacity::default(),
        };
        let contract = sim.chain.live_contract(contract_id).cloned();
        let clocks = sim.clocks();
        sim.zos
            .node_mut(node_id)
            .deploy(&facts, contract.as_ref(), twin_id, deployment, clocks)
            .expect("deploy");
        sim.settle();
    }
    contract_id
}

fn rent(sim: &mut Sim, account: &str, node_id: u32) -> u64 {
    let receipt = sim
        .submit(
            account,
            &Call::new(
                "smartContractModule",
                "createRentContract",
                json!({"node_id": node_id, "solution_provider_id": null}),
            ),
        )
        .expect("rent contract");
    receipt.contract().expect("contract").contract_id
}

fn events(sim: &Sim, name: &str) -> Vec<ChainEvent> {
    sim.chain
        .events(None, 0, None, Some(name), 1_000_000)
        .expect("kept")
}

fn of(events: &[ChainEvent], contract_id: u64) -> Vec<ChainEvent> {
    events
        .iter()
        .filter(|e| e.data["contract_id"] == contract_id)
        .cloned()
        .collect()
}

fn amounts(sim: &Sim, contract_id: u64) -> Vec<u128> {
    of(&events(sim, "ContractBilled"), contract_id)
        .iter()
        .map(|e| {
            e.data["amount_billed"]
                .as_str()
                .expect("decimal string")
                .parse()
                .expect("u128")
        })
        .collect()
}

fn states(sim: &Sim, node_id: u32, twin_id: u32, contract_id: u64) -> Vec<ResultState> {
    sim.zos
        .node(node_id)
        .expect("node")
        .get(twin_id, contract_id)
        .expect("deployment")
        .workloads
        .iter()
        .map(|w| w.result.state)
        .collect()
}

#[test]
fn the_node_reports_a_settled_deployments_resources() {
    let mut sim = sim(options(10));
    twin(&mut sim, "alice", 0);
    let id = deploy(&mut sim, "alice", 5, 0, small_vm());
    let reports = of(&events(&sim, "UpdatedUsedResources"), id);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].data["used"],
        json!({"hru": 0, "sru": 50 * GIB, "cru": 2, "mru": 4 * GIB})
    );
    // Settling again reports nothing new.
    sim.settle();
    assert_eq!(of(&events(&sim, "UpdatedUsedResources"), id).len(), 1);
}

#[test]
fn a_vm_is_billed_each_cycle_for_the_seconds_since_its_last_bill() {
    let mut sim = sim(options(10));
    let funds = 1_000_000_000; // 100 TFT: a few days of this VM, no discount
    twin(&mut sim, "alice", funds);
    let id = deploy(&mut sim, "alice", 5, 0, small_vm());
    assert_eq!(id, 1);

    // Slot 1 of 10: blocks 1, 11, 21 in the next three minutes.
    advance(&mut sim, 3);
    let bills = of(&events(&sim, "ContractBilled"), id);
    let blocks: Vec<u32> = bills.iter().map(|e| e.id.block_number).collect();
    assert_eq!(blocks, [1, 11, 21]);
    let first = usd_to_tft(usd(SMALL_VM_PER_HOUR, 6), PRICE);
    let then = usd_to_tft(usd(SMALL_VM_PER_HOUR, 60), PRICE);
    assert_eq!(usd(SMALL_VM_PER_HOUR, 60), 1_875);
    assert_eq!(amounts(&sim, id), [first, then, then]);
    for bill in &bills {
        assert_eq!(bill.data["discount_level"], "None");
        assert_eq!(bill.data["timestamp"], bill.timestamp);
    }
    assert_eq!(free(&sim, "alice"), funds - first - 2 * then);
    // What was billed is kept for the farmer's share: what is left of it
    // after the staking pool's 10% and the foundation's 40% (each to the
    // nearest unit, halves down).
    let state = sim.billing.get(id).expect("payment state");
    let billed = first + 2 * then;
    assert_eq!(state.billed_standard, billed);
    assert_eq!(state.billed_additional, 0);
    let (pool, foundation) = ((billed * 10 + 49) / 100, (billed * 40 + 49) / 100);
    assert_eq!(state.farmer_share(), billed - pool - foundation);
}

#[test]
fn a_certified_node_costs_a_quarter_more() {
    let mut sim = sim(options(10));
    twin(&mut sim, "alice", 1_000_000_000);
    twin(&mut sim, "bob", 1_000_000_000);
    let diy = deploy(&mut sim, "alice", 5, 0, small_vm());
    let certified = deploy(&mut sim, "bob", 1, 0, small_vm());
    advance(&mut sim, 2);
    let base = usd_to_tft(usd(SMALL_VM_PER_HOUR, 60), PRICE);
    assert_eq!(amounts(&sim, diy)[1], base);
    assert_eq!(amounts(&sim, certified)[1], (base * 5).div_ceil(4));
}

#[test]
fn on_a_rented_node_contracts_pay_their_ips_and_the_rent_pays_half_plus_the_fee() {
    let mut sim = sim(options(10));
    twin(&mut sim, "alice", 100_000_000_000);
    // Node 7: DIY, dedicated, 64 cores, 512 GiB, 1,000 GB SSD, 4 TB HDD,
    // an extra fee of 20,000 mUSD a month.
    let rent_7 = rent(&mut sim, "alice", 7);
    // Node 2: certified, its farm has public IPs.
    let rent_2 = rent(&mut sim, "alice", 2);
    let on_rented = deploy(&mut sim, "alice", 2, 1, small_vm());
    advance(&mut sim, 2);

    // The second bills cover 60 s.
    let secs: u128 = 60;
    let gib = u128::from(GIB);
    let (hru, sru) = (4_000_000_000_000_u128, 1_000_000_000_000_u128);
    // CU = min(max(512/4, 64/2), max(512/8, 64), max(512/2, 64/4)) = 64;
    // SU = hru/1200 + sru/200 GiB; over 3600 × 1200 GiB, rounded up.
    let numerator = secs * (64 * 100_000 * 1_200 * gib + 50_000 * (hru + 6 * sru));
    let full = numerator.div_ceil(3_600 * 1_200 * gib) as u64;
    // 50%, to the nearest with halves down: an odd cost's half rounds down.
    let half = full / 2;
    let fee = 20_000 * 10_000 * 60 / (30 * 24 * 3_600);
    let rent_bill = usd_to_tft(half, PRICE) + usd_to_tft(fee, PRICE);
    assert_eq!(amounts(&sim, rent_7)[1], rent_bill);
    // 10,000 TFT is under 1.5 months of renting node 7: no discount.
    let rent_bills = of(&events(&sim, "ContractBilled"), rent_7);
    assert_eq!(rent_bills[1].data["discount_level"], "None");

    // The node contract on rented node 2 pays its IP only: the same
    // balance is years of one IP (Gold, × 0.4), and node 2 is certified
    // (× 1.25).
    let ip = usd_to_tft(usd(40_000, 60), PRICE);
    let bills = of(&events(&sim, "ContractBilled"), on_rented);
    assert_eq!(bills[1].data["discount_level"], "Gold");
    assert_eq!(amounts(&sim, on_rented)[1], (ip * 4 * 5).div_ceil(40));
    // The rent of node 2 (certified, no fee) is billed too.
    assert!(amounts(&sim, rent_2).len() >= 2);
}

#[test]
fn a_twin_holding_three_months_of_cost_gets_bronze_and_eighteen_gold() {
    let mut sim = sim(options(10));
    // An IP-only contract on DIY node 5: 40,000 an hour.
    let first_raw = usd_to_tft(usd(40_000, 6), PRICE);
    // The first bill covers 6 s: a month is 600 × 720 of it.
    let monthly = first_raw * 600 * 720;
    twin(&mut sim, "alice", 3 * monthly);
    let id = deploy(&mut sim, "alice", 5, 1, Vec::new());
    advance(&mut sim, 1);
    let bills = of(&events(&sim, "ContractBilled"), id);
    assert_eq!(bills[0].data["discount_level"], "Bronze");
    assert_eq!(amounts(&sim, id), [(first_raw * 7).div_ceil(10)]);

    let raw = usd_to_tft(usd(40_000, 60), PRICE);
    let now = sim.catalog.now;
    sim.chain.fund(now, "alice", 40 * raw * 60 * 720);
    advance(&mut sim, 1);
    let bills = of(&events(&sim, "ContractBilled"), id);
    assert_eq!(bills[1].data["discount_level"], "Gold");
    assert_eq!(amounts(&sim, id)[1], (raw * 4).div_ceil(10));
}

#[test]
fn an_unpaid_bill_pauses_the_workloads_until_a_top_up_ends_the_grace_period() {
    let mut sim = sim(options(10));
    let twin_id = twin(&mut sim, "alice", 100);
    let id = deploy(&mut sim, "alice", 5, 0, small_vm());
    assert_eq!(states(&sim, 5, twin_id, id), [ResultState::Ok]);

    advance(&mut sim, 1);
    let due = usd_to_tft(usd(SMALL_VM_PER_HOUR, 6), PRICE);
    let started = of(&events(&sim, "ContractGracePeriodStarted"), id);
    assert_eq!(started.len(), 1);
    assert_eq!(
        started[0].data,
        json!({"contract_id": id, "node_id": 5, "twin_id": twin_id, "block_number": 1})
    );
    // What the balance held is billed; the rest is owed.
    assert_eq!(amounts(&sim, id), [100]);
    let overdrawn = of(&events(&sim, "ContractPaymentOverdrawn"), id);
    assert_eq!(overdrawn[0].data["partially_billed_amount"], "100");
    assert_eq!(overdrawn[0].data["overdraft"], (due - 100).to_string());
    assert_eq!(free(&sim, "alice"), 0);
    assert_eq!(
        sim.chain.live_contract(id).expect("live").state,
        ContractState::GracePeriod(1)
    );
    assert_eq!(states(&sim, 5, twin_id, id), [ResultState::Paused]);

    // Still nothing: another overdraft, still in grace.
    advance(&mut sim, 1);
    assert_eq!(of(&events(&sim, "ContractPaymentOverdrawn"), id).len(), 2);
    assert_eq!(states(&sim, 5, twin_id, id), [ResultState::Paused]);

    // A top-up: the next bill takes the overdraft and the new due at once.
    let now = sim.catalog.now;
    sim.chain.fund(now, "alice", 1_000_000_000);
    advance(&mut sim, 1);
    let ended = of(&events(&sim, "ContractGracePeriodEnded"), id);
    assert_eq!(
        ended[0].data,
        json!({"contract_id": id, "node_id": 5, "twin_id": twin_id})
    );
    let minute = usd_to_tft(usd(SMALL_VM_PER_HOUR, 60), PRICE);
    let owed = (due - 100) + minute;
    assert_eq!(amounts(&sim, id), [100, owed + minute]);
    assert_eq!(free(&sim, "alice"), 1_000_000_000 - owed - minute);
    assert_eq!(
        sim.chain.live_contract(id).expect("live").state,
        ContractState::Created
    );
    assert_eq!(states(&sim, 5, twin_id, id), [ResultState::Ok]);
}

#[test]
fn fourteen_days_unpaid_deletes_the_contract_and_frees_its_ips() {
    let mut sim = sim(SimOptions {
        workload_delay: Duration::ZERO,
        ..SimOptions::default()
    });
    twin(&mut sim, "alice", 0);
    let id = deploy(&mut sim, "alice", 5, 1, small_vm());
    let farm_ips = |sim: &Sim| sim.catalog.farms[&2].free_ips();
    assert_eq!(farm_ips(&sim), 0);

    let started = Instant::now();
    advance(&mut sim, 14 * 24 * 60 + 120);
    assert!(started.elapsed() < Duration::from_secs(2));

    let elapsed = of(&events(&sim, "ContractGracePeriodElapsed"), id);
    assert_eq!(elapsed.len(), 1);
    assert!(elapsed[0].data["grace_period"].as_u64().expect("blocks") >= 201_600);
    assert_eq!(of(&events(&sim, "IPsFreed"), id).len(), 1);
    let canceled = of(&events(&sim, "NodeContractCanceled"), id);
    assert_eq!(canceled.len(), 1);
    assert!(canceled[0].id > elapsed[0].id);
    let contract = sim.all_contract(id);
    assert_eq!(contract, ContractState::Deleted(DeletionCause::OutOfFunds));
    assert!(sim.chain.live_contract(id).is_none());
    assert_eq!(farm_ips(&sim), 1);
    assert!(sim.zos.node(5).expect("node").deployments().is_empty());
}

impl Sim {
    fn all_contract(&self, id: u64) -> ContractState {
        self.chain
            .all_contracts()
            .find(|c| c.contract_id == id)
            .expect("contract")
            .state
    }
}

#[test]
fn a_user_cancel_bills_the_seconds_since_the_last_bill_first() {
    let mut sim = sim(options(10));
    twin(&mut sim, "alice", 1_000_000_000);
    let id = deploy(&mut sim, "alice", 5, 0, small_vm());
    advance(&mut sim, 1); // billed at block 1
    let receipt = sim
        .submit(
            "alice",
            &Call::new(
                "smartContractModule",
                "cancelContract",
                json!({"contract_id": id}),
            ),
        )
        .expect("cancel");
    // Block 10: 54 s since the bill at block 1; then, as it is deleted,
    // what both bills reserved is distributed.
    let names: Vec<&str> = receipt.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ContractBilled",
            "RewardDistributed",
            "NodeContractCanceled"
        ]
    );
    assert_eq!(
        amounts(&sim, id)[1],
        usd_to_tft(usd(SMALL_VM_PER_HOUR, 54), PRICE)
    );
}

#[test]
fn a_price_observation_changes_the_next_bill() {
    let mut sim = sim(options(10));
    twin(&mut sim, "alice", 1_000_000_000);
    let id = deploy(&mut sim, "alice", 5, 0, small_vm());
    advance(&mut sim, 1);
    // Observations 10 and 30: the average is 20 mUSD.
    assert_eq!(sim.price.observe(30), 20);
    advance(&mut sim, 1);
    let minute = usd(SMALL_VM_PER_HOUR, 60);
    assert_eq!(amounts(&sim, id)[1], usd_to_tft(minute, 20));
    assert_eq!(usd_to_tft(minute, 20), 93_749); // about half of 10 mUSD's 187,499
}

#[test]
fn nru_reports_are_billed_at_the_next_bill() {
    let mut sim = sim(options(10));
    twin(&mut sim, "alice", 1_000_000_000);
    let id = deploy(&mut sim, "alice", 5, 1, Vec::new());
    advance(&mut sim, 1);
    sim.report_nru(id, 2_000_000_000, 60).expect("report");
    advance(&mut sim, 1);
    // 60 s of one IP and 2 GB at 15,000 a GB.
    let expected = usd_to_tft(usd(40_000, 60) + 30_000, PRICE);
    assert_eq!(amounts(&sim, id)[1], expected);
    let report = &of(&events(&sim, "NruConsumptionReportReceived"), id)[0];
    assert_eq!(report.data["nru"], 2_000_000_000_u64);
    assert_eq!(report.data["window"], 60);
}

#[test]
fn up_nodes_report_uptime_every_40_minutes_and_down_ones_do_not() {
    let mut sim = sim(options(600));
    advance(&mut sim, 120);
    let reports = events(&sim, "NodeUptimeReported");
    let of_node =
        |id: u32| -> Vec<&ChainEvent> { reports.iter().filter(|e| e.data[0] == id).collect() };
    // Node 5 reports at 5, 45 and 85 minutes, with its uptime since genesis.
    let five = of_node(5);
    assert_eq!(five.len(), 3);
    for (k, report) in five.iter().enumerate() {
        let minutes = 5 + 40 * k as i64;
        assert_eq!(report.id.block_number, (minutes * 10) as u32);
        assert_eq!(report.data, json!([5, START + minutes * 60, minutes * 60]));
    }
    // Node 6 is down, node 4 standby: no reports.
    assert!(of_node(6).is_empty());
    assert!(of_node(4).is_empty());
    for id in [1, 2, 3, 5, 7, 8] {
        assert_eq!(of_node(id).len(), 3, "node {id}");
    }
}

#[test]
fn forty_eight_hours_over_fifty_contracts_take_well_under_a_second() {
    let mut sim = sim(SimOptions {
        workload_delay: Duration::ZERO,
        ..SimOptions::default()
    });
    twin(&mut sim, "alice", 1_000_000_000_000);
    for k in 0..50 {
        let disk = workload(&format!("disk{k}"), "zmount", json!({"size": GIB}));
        deploy(&mut sim, "alice", 1, 0, vec![disk]);
    }
    let started = Instant::now();
    advance(&mut sim, 48 * 60);
    let took = started.elapsed();
    assert_eq!(events(&sim, "ContractBilled").len(), 50 * 48);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

// ---------------------------------------------------------------------------
// Rewards: `remit_funds`
// ---------------------------------------------------------------------------

use super::{catalog_twin_account, FOUNDATION_ACCOUNT, STAKING_POOL_ACCOUNT};

/// Bills every 10 blocks, rewards every `every` bills.
fn rewarding(every: u32) -> SimOptions {
    SimOptions {
        reward_distribution_cycles: every,
        ..options(10)
    }
}

/// A farm made on this chain by `account` (given a twin), and `nodes`
/// moved into it: its id.
fn alliance(sim: &mut Sim, account: &str, nodes: &[u32]) -> u32 {
    twin(sim, account, 0);
    let receipt = sim
        .submit(
            account,
            &Call::new(
                "tfgridModule",
                "createFarm",
                json!({"name": format!("{account}-farm"), "public_ips": []}),
            ),
        )
        .expect("farm");
    let farm_id = receipt.events[0].data["id"].as_u64().expect("id") as u32;
    for node in nodes {
        sim.move_node(*node, farm_id).expect("move");
    }
    farm_id
}

/// `Perbill::from_percent(p) × x`: to the nearest, halves down.
fn percent(x: u128, p: u128) -> u128 {
    (x * p + 49) / 100
}

/// The farmer's part of one distribution of `standard`: what is left
/// after the staking pool's 10% and the foundation's 40%.
fn farmer_part(standard: u128) -> u128 {
    standard - percent(standard, 10) - percent(standard, 40)
}

fn reserved(sim: &Sim, account: &str) -> u128 {
    sim.chain.account(account).data.reserved
}

fn rewards(sim: &Sim, contract_id: u64) -> Vec<(u128, u128)> {
    of(&events(sim, "RewardDistributed"), contract_id)
        .iter()
        .map(|e| {
            let amount = |field: &str| -> u128 {
                e.data[field]
                    .as_str()
                    .expect("decimal string")
                    .parse()
                    .expect("u128")
            };
            (amount("standard_rewards"), amount("additional_rewards"))
        })
        .collect()
}

#[test]
fn the_named_beneficiary_accounts_are_ss58_addresses() {
    for account in [
        STAKING_POOL_ACCOUNT.to_owned(),
        FOUNDATION_ACCOUNT.to_owned(),
        catalog_twin_account(102),
    ] {
        marketplace_app::tfchain::ss58_public_key(&account).expect(&account);
    }
    assert_ne!(catalog_twin_account(101), catalog_twin_account(102));
}

#[test]
fn the_farm_twin_is_paid_half_of_the_bills_on_its_nodes_at_each_distribution() {
    let mut sim = sim(rewarding(3));
    alliance(&mut sim, "alliance", &[5]);
    let funds = 1_000_000_000;
    twin(&mut sim, "alice", funds);
    let id = deploy(&mut sim, "alice", 5, 0, small_vm());

    // Ten bills (blocks 1, 11, ..., 91): rewards after the 3rd, 6th, 9th.
    advance(&mut sim, 10);
    let first = usd_to_tft(usd(SMALL_VM_PER_HOUR, 6), PRICE);
    let then = usd_to_tft(usd(SMALL_VM_PER_HOUR, 60), PRICE);
    let mut bills = vec![first];
    bills.extend([then; 9]);
    assert_eq!(amounts(&sim, id), bills);
    let groups = [first + 2 * then, 3 * then, 3 * then];
    assert_eq!(rewards(&sim, id), groups.map(|g| (g, 0)));
    let distributed = of(&events(&sim, "RewardDistributed"), id);
    let billed = of(&events(&sim, "ContractBilled"), id);
    for (k, reward) in distributed.iter().enumerate() {
        // Right after the bill that completes the cycles, in its block.
        let bill = &billed[3 * k + 2];
        assert_eq!(reward.id.block_number, bill.id.block_number);
        assert_eq!(reward.id.event_index, bill.id.event_index + 1);
        assert_eq!(reward.data["contract_id"], id);
    }

    // The farm's twin holds half of each distribution, to the base unit.
    let farmer: u128 = groups.iter().map(|g| farmer_part(*g)).sum();
    assert_eq!(free(&sim, "alliance"), farmer);
    let pool: u128 = groups.iter().map(|g| percent(*g, 10)).sum();
    let foundation: u128 = groups.iter().map(|g| percent(*g, 40)).sum();
    assert_eq!(free(&sim, STAKING_POOL_ACCOUNT), pool);
    assert_eq!(free(&sim, FOUNDATION_ACCOUNT), foundation);
    // The user paid every bill from free; the tenth is still reserved.
    let total: u128 = bills.iter().sum();
    assert_eq!(free(&sim, "alice"), funds - total);
    assert_eq!(reserved(&sim, "alice"), then);
    assert_eq!(farmer + pool + foundation + then, total);
    let state = sim.billing.get(id).expect("payment state");
    assert_eq!((state.standard_reserve, state.cycles), (then, 1));

    // A cancel bills the rest and distributes all that is reserved before
    // the contract goes.
    let receipt = sim
        .submit(
            "alice",
            &Call::new(
                "smartContractModule",
                "cancelContract",
                json!({"contract_id": id}),
            ),
        )
        .expect("cancel");
    let names: Vec<&str> = receipt.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ContractBilled",
            "RewardDistributed",
            "NodeContractCanceled"
        ]
    );
    let last = *amounts(&sim, id).last().expect("last bill");
    assert_eq!(rewards(&sim, id)[3], (then + last, 0));
    assert_eq!(reserved(&sim, "alice"), 0);
    assert_eq!(free(&sim, "alliance"), farmer + farmer_part(then + last));
}

#[test]
fn rewards_go_to_the_farm_the_node_is_in_when_they_are_distributed() {
    let mut sim = sim(rewarding(3));
    twin(&mut sim, "alice", 1_000_000_000);
    let id = deploy(&mut sim, "alice", 5, 0, small_vm());
    // Two bills while node 5 is in seed farm 2, whose twin 102 is not a
    // chain account.
    advance(&mut sim, 2);
    assert!(rewards(&sim, id).is_empty());
    alliance(&mut sim, "alliance", &[5]);
    // The third bill distributes all three: to the farm node 5 is in now.
    advance(&mut sim, 1);
    let billed: u128 = amounts(&sim, id).iter().sum();
    assert_eq!(rewards(&sim, id), [(billed, 0)]);
    assert_eq!(free(&sim, "alliance"), farmer_part(billed));
    assert_eq!(free(&sim, &catalog_twin_account(102)), 0);

    // Moved back, the next distribution goes to farm 2's twin.
    sim.move_node(5, 2).expect("move back");
    advance(&mut sim, 3);
    let next = rewards(&sim, id)[1].0;
    assert_eq!(free(&sim, &catalog_twin_account(102)), farmer_part(next));
    assert_eq!(free(&sim, "alliance"), farmer_part(billed));
}

#[test]
fn a_rent_contracts_extra_fee_goes_wholly_to_the_farmer() {
    let mut sim = sim(rewarding(1));
    // Node 7: dedicated, an extra fee of 20,000 mUSD a month.
    alliance(&mut sim, "alliance", &[7]);
    twin(&mut sim, "alice", 100_000_000_000);
    let id = rent(&mut sim, "alice", 7);
    advance(&mut sim, 2);
    let fee = usd_to_tft(20_000 * 10_000 * 60 / (30 * 24 * 3_600), PRICE);
    let distributed = rewards(&sim, id);
    assert_eq!(distributed.len(), 2);
    let (standard, additional) = distributed[1];
    assert_eq!(additional, fee);
    assert_eq!(amounts(&sim, id)[1], standard + additional);
    let farmer: u128 = distributed.iter().map(|(s, a)| farmer_part(*s) + a).sum();
    assert_eq!(free(&sim, "alliance"), farmer);
    assert_eq!(reserved(&sim, "alice"), 0);
}

#[test]
fn a_contract_deleted_out_of_funds_distributes_what_it_could_bill() {
    let mut sim = sim(SimOptions {
        workload_delay: Duration::ZERO,
        ..SimOptions::default()
    });
    alliance(&mut sim, "alliance", &[5]);
    twin(&mut sim, "alice", 100);
    let id = deploy(&mut sim, "alice", 5, 0, small_vm());
    advance(&mut sim, 14 * 24 * 60 + 120);
    assert_eq!(
        sim.all_contract(id),
        ContractState::Deleted(DeletionCause::OutOfFunds)
    );
    // Only the first bill took anything: the 100 units the balance held.
    assert_eq!(rewards(&sim, id), [(100, 0)]);
    assert_eq!(free(&sim, "alliance"), 50);
    assert_eq!(free(&sim, STAKING_POOL_ACCOUNT), 10);
    assert_eq!(free(&sim, FOUNDATION_ACCOUNT), 40);
    let reward = &of(&events(&sim, "RewardDistributed"), id)[0];
    let canceled = &of(&events(&sim, "NodeContractCanceled"), id)[0];
    assert!(reward.id < canceled.id);
}
