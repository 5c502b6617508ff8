//! The TFChain and ZOS SIMULATORs, driven over real HTTP through the
//! marketplace's own adapters (`HttpChain`, `HttpRmb`) as the provisioning
//! manager will drive them; only the simulator's controls (funding, node
//! behaviour, `/farms`) and a tampered extrinsic are sent by hand.
//! No database is needed.

use std::time::{Duration, Instant};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use marketplace_app::grid::{GridClient, GridFarm, GridNode};
use marketplace_app::tfchain::http::wire::{Call, SignedExtrinsic};
use marketplace_app::tfchain::http::HttpChain;
use marketplace_app::tfchain::{
    Chain, ChainError, Contract, ContractData, ContractState, Custody, DeletionCause, Receipt,
    Signer,
};
use marketplace_app::zos::rmb::HttpRmb;
use marketplace_app::zos::{
    Deployment, NodeAddress, Nodes, ResultState, SignatureRequirement, Workload, WorkloadResult,
    ZosError,
};
use marketplace_dev::grid_sim::{self as sim, Seed, SimOptions};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Where the simulated clock starts (2025-06-15T14:40:00Z).
const START: i64 = 1_750_000_000;
const TFT: u128 = 10_000_000;
const GIB: u64 = 1 << 30;

/// The simulator on a free loopback port with the dev catalog, stopped on drop.
struct TestSim {
    base: String,
    http: reqwest::Client,
    cancel: CancellationToken,
    chain: HttpChain,
    rmb: HttpRmb,
    custody: Custody,
}

impl Drop for TestSim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl TestSim {
    async fn start(workload_delay: Duration) -> TestSim {
        let mut seed = Seed::dev();
        seed.now = Some(START);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sim");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let cancel = CancellationToken::new();
        tokio::spawn(sim::serve(
            listener,
            seed,
            SimOptions { workload_delay },
            cancel.clone(),
        ));
        let custody = Custody::from_seed(&SecretString::from(
            "0x0707070707070707070707070707070707070707070707070707070707070707".to_owned(),
        ))
        .expect("seed");
        TestSim {
            chain: HttpChain::new(&base).expect("chain"),
            rmb: HttpRmb::new(&base).expect("rmb"),
            base,
            http: reqwest::Client::new(),
            cancel,
            custody,
        }
    }

    fn user(&self, name: &str) -> Signer {
        self.custody.wallet(name)
    }

    /// A funded account with a twin; its twin id.
    async fn twin(&self, signer: &Signer) -> u32 {
        self.fund(signer, 1_000 * TFT).await;
        let receipt = self.chain.create_twin(signer, None).await.expect("twin");
        let stored = receipt
            .event("tfgridModule", "TwinStored")
            .expect("TwinStored");
        u32::try_from(stored.data["id"].as_u64().expect("twin id")).expect("u32")
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("sim request")
    }

    async fn control(&self, path: &str, body: Value) {
        let status = self.post(path, body).await.status();
        assert!(status.is_success(), "POST {path}: {status}");
    }

    async fn fund(&self, signer: &Signer, amount: u128) {
        self.control(
            "/sim/chain/fund",
            json!({ "account": signer.address(), "amount": amount.to_string() }),
        )
        .await;
    }

    async fn farms(&self) -> Vec<GridFarm> {
        let client = GridClient::new(&self.base).expect("client");
        client.farms().await.expect("farms")
    }

    async fn node(&self, id: u32) -> GridNode {
        let client = GridClient::new(&self.base).expect("client");
        let nodes = client.nodes().await.expect("nodes");
        nodes
            .into_iter()
            .find(|n| n.node_id == id)
            .expect("node listed")
    }

    /// Creates the node contract for `deployment` and sets its id.
    async fn contract(
        &self,
        signer: &Signer,
        node_id: u32,
        deployment: &mut Deployment,
        public_ips: u32,
    ) -> Receipt {
        let receipt = self
            .chain
            .create_node_contract(
                signer,
                node_id,
                &deployment.deployment_hash(),
                r#"{"deployment":"test"}"#,
                public_ips,
                None,
            )
            .await
            .expect("node contract");
        deployment.contract_id = receipt.contract().expect("contract").contract_id;
        receipt
    }

    /// Polls `zos.deployment.get` until `done` holds (at most 5 s).
    async fn wait_for(
        &self,
        node: NodeAddress,
        twin: u32,
        contract_id: u64,
        done: impl Fn(&Deployment) -> bool,
    ) -> Deployment {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let held = self.rmb.get(node, twin, contract_id).await.expect("get");
            if done(&held) {
                return held;
            }
            assert!(Instant::now() < deadline, "still {held:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A dev-catalog node's address (its twin is 1000 + its id).
fn node(id: u32) -> NodeAddress {
    NodeAddress {
        node_id: id,
        twin_id: 1_000 + id,
    }
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

/// A VM of `cpu` cores and 2 GiB on network `net`, with the `ip` workload
/// as its public IP when `public` is set.
fn deployment(twin: u32, cpu: u64, public: bool) -> Deployment {
    let mut workloads = vec![workload(
        "net",
        "network-light",
        json!({"subnet": "10.20.2.0/24", "mycelium": {"key": "00"}}),
    )];
    if public {
        workloads.push(workload("ip", "ip", json!({"v4": true, "v6": false})));
    }
    workloads.push(workload(
        "vm",
        "zmachine",
        json!({
            "flist": "https://hub.grid.tf/tf-official-apps/base:latest.flist",
            "size": 10 * GIB,
            "compute_capacity": {"cpu": cpu, "memory": 2 * GIB},
            "network": {
                "public_ip": if public { "ip" } else { "" },
                "interfaces": [{"network": "net", "ip": "10.20.2.2"}],
                "mycelium": {"network": "net", "hex_seed": "abcdef"},
            },
            "entrypoint": "/sbin/zinit init",
            "env": {},
        }),
    ));
    Deployment {
        version: 0,
        twin_id: twin,
        contract_id: 0,
        metadata: r#"{"deployment":"test"}"#.to_owned(),
        description: String::new(),
        expiration: 0,
        signature_requirement: SignatureRequirement::default(),
        workloads,
    }
}

fn module(err: &ChainError) -> (String, String) {
    match err {
        ChainError::Module { pallet, error } => (pallet.clone(), error.clone()),
        other => panic!("expected a pallet error, got {other}"),
    }
}

fn refusal(err: ZosError) -> String {
    match err {
        ZosError::Refused { message, .. } => message,
        other => panic!("expected a refusal, got {other}"),
    }
}

fn state(d: &Deployment, name: &str) -> ResultState {
    d.workload(name).expect("workload").result.state
}

#[tokio::test]
async fn an_account_creates_one_twin() {
    let sim = TestSim::start(Duration::ZERO).await;
    let alice = sim.user("alice");
    assert_eq!(
        sim.chain
            .twin_id_by_account(alice.address())
            .await
            .expect("read"),
        None
    );
    let twin = sim.twin(&alice).await;
    assert!(twin >= 10_000, "{twin}");
    assert_eq!(
        sim.chain
            .twin_id_by_account(alice.address())
            .await
            .expect("read"),
        Some(twin)
    );
    let again = sim.chain.create_twin(&alice, None).await.expect_err("dup");
    assert_eq!(
        module(&again),
        ("tfgridModule".into(), "TwinWithSameAccountIdExists".into())
    );
    let bob = sim.user("bob");
    assert_eq!(sim.twin(&bob).await, twin + 1);
}

#[tokio::test]
async fn a_tagged_transfer_is_found_again_and_a_short_one_changes_nothing() {
    let sim = TestSim::start(Duration::ZERO).await;
    let (alice, bob) = (sim.user("alice"), sim.user("bob"));
    sim.fund(&alice, 100 * TFT).await;
    assert_eq!(
        sim.chain.free_balance(alice.address()).await.expect("read"),
        100 * TFT
    );
    let start = sim.chain.latest_block().await.expect("block").number;

    let receipt = sim
        .chain
        .transfer_with_remark(&alice, bob.address(), 30 * TFT, b"topup:1")
        .await
        .expect("transfer");
    let transfer = receipt.event("balances", "Transfer").expect("Transfer");
    assert_eq!(transfer.data["amount"], (30 * TFT).to_string());
    let remarked = receipt.event("system", "Remarked").expect("Remarked");
    let hash: [u8; 32] = Blake2b::<U32>::digest(b"topup:1").into();
    assert_eq!(remarked.data["hash"], format!("0x{}", hex::encode(hash)));
    assert_eq!(
        sim.chain.free_balance(bob.address()).await.expect("read"),
        30 * TFT
    );
    assert_eq!(
        sim.chain
            .find_remark(alice.address(), hash, start)
            .await
            .expect("scan"),
        Some(remarked.id)
    );
    assert_eq!(
        sim.chain
            .find_remark(bob.address(), hash, start)
            .await
            .expect("scan"),
        None,
        "another sender"
    );

    let short = sim
        .chain
        .transfer_with_remark(&alice, bob.address(), 71 * TFT, b"topup:2")
        .await
        .expect_err("short");
    assert_eq!(
        module(&short),
        ("balances".into(), "InsufficientBalance".into())
    );
    assert_eq!(
        sim.chain.free_balance(alice.address()).await.expect("read"),
        70 * TFT
    );
    assert_eq!(
        sim.chain.free_balance(bob.address()).await.expect("read"),
        30 * TFT
    );
    let hash2: [u8; 32] = Blake2b::<U32>::digest(b"topup:2").into();
    assert_eq!(
        sim.chain
            .find_remark(alice.address(), hash2, start)
            .await
            .expect("scan"),
        None,
        "all or nothing"
    );
}

#[tokio::test]
async fn node_contracts_are_unique_per_node_and_hash() {
    let sim = TestSim::start(Duration::ZERO).await;
    let alice = sim.user("alice");
    let nobody = sim.user("nobody");
    let d = deployment(0, 1, false);
    let hash = d.deployment_hash();
    let no_twin = sim
        .chain
        .create_node_contract(&nobody, 1, &hash, "", 0, None)
        .await
        .expect_err("no twin");
    assert_eq!(module(&no_twin).1, "TwinNotExists");

    let twin = sim.twin(&alice).await;
    let mut d = deployment(twin, 1, false);
    let receipt = sim.contract(&alice, 1, &mut d, 0).await;
    let contract = receipt.contract().expect("ContractCreated");
    assert_eq!(contract.twin_id, twin);
    assert_eq!(contract.state, ContractState::Created);
    let node_contract = contract.node_contract().expect("node contract");
    assert_eq!(node_contract.node_id, 1);
    assert_eq!(node_contract.deployment_hash, d.deployment_hash());
    assert_eq!(
        sim.chain
            .contract_id_by_node_and_hash(1, &d.deployment_hash())
            .await
            .expect("read"),
        Some(contract.contract_id)
    );
    assert_eq!(
        sim.chain
            .contract(contract.contract_id)
            .await
            .expect("read"),
        Some(contract.clone())
    );

    let hash = d.deployment_hash();
    for (node_id, ips, error) in [
        (1, 0, "ContractIsNotUnique"),
        (999, 0, "NodeNotExists"),
        (4, 0, "NodeNotAvailableToDeploy"), // standby
        (7, 0, "NodeNotAvailableToDeploy"), // dedicated, not rented
        (8, 0, "NodeNotAvailableToDeploy"), // rented by someone else
        (2, 5, "FarmHasNotEnoughPublicIPs"),
    ] {
        let err = sim
            .chain
            .create_node_contract(&alice, node_id, &hash, "", ips, None)
            .await
            .expect_err(error);
        assert_eq!(
            module(&err),
            ("smartContractModule".into(), error.into()),
            "node {node_id}"
        );
    }
    // The same deployment on another node is another contract.
    sim.chain
        .create_node_contract(&alice, 2, &hash, "", 0, None)
        .await
        .expect("on node 2");
}

#[tokio::test]
async fn public_ips_are_reserved_and_freed_on_cancel() {
    let sim = TestSim::start(Duration::ZERO).await;
    let (alice, bob) = (sim.user("alice"), sim.user("bob"));
    let twin = sim.twin(&alice).await;
    sim.twin(&bob).await;
    let free_before = sim.node(1).await.farm_free_ips;
    assert_eq!(free_before, 2);

    let mut d = deployment(twin, 1, true);
    let receipt = sim.contract(&alice, 1, &mut d, 2).await;
    let reserved = receipt
        .event("smartContractModule", "IPsReserved")
        .expect("IPsReserved");
    let ips: Vec<String> = reserved.data["public_ips"]
        .as_array()
        .expect("ips")
        .iter()
        .map(|ip| ip["ip"].as_str().expect("ip").to_owned())
        .collect();
    assert_eq!(ips, ["198.18.1.10/24", "198.18.1.11/24"]);
    let contract = receipt.contract().expect("contract");
    assert_eq!(
        contract
            .node_contract()
            .expect("node")
            .public_ips_list
            .len(),
        2
    );
    let farm = sim
        .farms()
        .await
        .into_iter()
        .find(|f| f.farm_id == 1)
        .expect("farm 1");
    let held: Vec<u64> = farm.public_ips.iter().map(|ip| ip.contract_id).collect();
    assert_eq!(held, [contract.contract_id, contract.contract_id, 7001]);
    assert_eq!(sim.node(1).await.farm_free_ips, 0);

    let other = deployment(twin, 2, true);
    let err = sim
        .chain
        .create_node_contract(&alice, 1, &other.deployment_hash(), "", 1, None)
        .await
        .expect_err("no IP left");
    assert_eq!(module(&err).1, "FarmHasNotEnoughPublicIPsFree");

    let err = sim
        .chain
        .cancel_contract(&bob, contract.contract_id)
        .await
        .expect_err("not bob's");
    assert_eq!(module(&err).1, "TwinNotAuthorizedToCancelContract");
    let receipt = sim
        .chain
        .cancel_contract(&alice, contract.contract_id)
        .await
        .expect("cancel");
    let freed = receipt
        .event("smartContractModule", "IPsFreed")
        .expect("IPsFreed");
    assert_eq!(freed.data["public_ips"].as_array().map(Vec::len), Some(2));
    let canceled = receipt
        .event("smartContractModule", "NodeContractCanceled")
        .expect("NodeContractCanceled");
    assert_eq!(canceled.data["twin_id"], twin);
    assert_eq!(sim.node(1).await.farm_free_ips, 2);

    // The pallet removes a deleted contract from storage.
    assert_eq!(
        sim.chain
            .contract(contract.contract_id)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        sim.chain
            .contract_id_by_node_and_hash(1, &d.deployment_hash())
            .await
            .expect("read"),
        None
    );
    let err = sim
        .chain
        .cancel_contract(&alice, contract.contract_id)
        .await
        .expect_err("gone");
    assert_eq!(module(&err).1, "ContractNotExists");
    let all: Vec<Contract> = sim
        .http
        .get(format!("{}/sim/chain/contracts", sim.base))
        .send()
        .await
        .expect("contracts")
        .json()
        .await
        .expect("json");
    assert_eq!(
        all[0].state,
        ContractState::Deleted(DeletionCause::CanceledByUser)
    );
}

#[tokio::test]
async fn a_node_refuses_a_wrong_hash_a_foreign_twin_and_another_node() {
    let sim = TestSim::start(Duration::ZERO).await;
    let (alice, bob) = (sim.user("alice"), sim.user("bob"));
    let (alice_twin, bob_twin) = (sim.twin(&alice).await, sim.twin(&bob).await);
    let mut d = deployment(alice_twin, 1, false);
    sim.contract(&alice, 2, &mut d, 0).await;

    let mut changed = d.clone();
    changed.workloads[1].data["compute_capacity"]["cpu"] = json!(2);
    let err = sim
        .rmb
        .deploy(node(2), alice_twin, &changed)
        .await
        .expect_err("hash");
    assert_eq!(refusal(err), "contract hash does not match deployment hash");

    let err = sim
        .rmb
        .deploy(node(2), bob_twin, &d)
        .await
        .expect_err("sender");
    assert!(refusal(err).starts_with("twin id mismatch"));

    let mut bobs = d.clone();
    bobs.twin_id = bob_twin;
    let err = sim
        .rmb
        .deploy(node(2), bob_twin, &bobs)
        .await
        .expect_err("owner");
    assert!(refusal(err).contains(&format!("belongs to twin {alice_twin}")));

    let err = sim
        .rmb
        .deploy(node(5), alice_twin, &d)
        .await
        .expect_err("node");
    assert_eq!(refusal(err), "invalid node address in contract");

    let err = sim
        .rmb
        .deploy(node(1), alice_twin, &deployment(alice_twin, 1, false))
        .await
        .expect_err("no contract");
    assert!(refusal(err).contains("contract not found"));
    assert!(sim
        .rmb
        .get(node(2), alice_twin, d.contract_id)
        .await
        .is_err());
}

#[tokio::test]
async fn a_deployment_goes_init_then_ok_with_its_addresses() {
    let sim = TestSim::start(Duration::from_millis(300)).await;
    let alice = sim.user("alice");
    let twin = sim.twin(&alice).await;
    let mut d = deployment(twin, 2, true);
    let receipt = sim.contract(&alice, 1, &mut d, 1).await;
    let reserved = receipt
        .event("smartContractModule", "IPsReserved")
        .expect("IPsReserved")
        .data["public_ips"][0]
        .clone();

    sim.rmb.deploy(node(1), twin, &d).await.expect("deploy");
    let first = sim
        .rmb
        .get(node(1), twin, d.contract_id)
        .await
        .expect("get");
    assert_eq!(state(&first, "vm"), ResultState::Init);
    let err = sim.rmb.deploy(node(1), twin, &d).await.expect_err("twice");
    assert_eq!(refusal(err), "exists");

    let done = sim
        .wait_for(node(1), twin, d.contract_id, |held| {
            held.workloads
                .iter()
                .all(|w| w.result.state == ResultState::Ok)
        })
        .await;
    let vm = &done.workload("vm").expect("vm").result.data;
    assert_eq!(vm["ip"], "10.20.2.2");
    assert_eq!(vm["console_url"], "10.20.2.1:20002");
    assert!(vm["mycelium_ip"].as_str().is_some_and(|ip| !ip.is_empty()));
    let ip = &done.workload("ip").expect("ip").result.data;
    assert_eq!(ip["ip"], reserved["ip"]);
    assert_eq!(ip["gateway"], reserved["gateway"]);

    let changes = sim
        .rmb
        .changes(node(1), twin, d.contract_id)
        .await
        .expect("changes");
    let states: Vec<(&str, ResultState)> = changes
        .iter()
        .map(|w| (w.name.as_str(), w.result.state))
        .collect();
    assert_eq!(states.len(), 6, "{states:?}");
    assert!(states[..3].iter().all(|(_, s)| *s == ResultState::Init));
    assert!(states[3..].iter().all(|(_, s)| *s == ResultState::Ok));
}

#[tokio::test]
async fn the_fail_and_stall_controls_decide_what_workloads_become() {
    let delay = Duration::from_millis(100);
    let sim = TestSim::start(delay).await;
    let alice = sim.user("alice");
    let twin = sim.twin(&alice).await;

    sim.control(
        "/sim/zos/nodes/2/fail",
        json!({"message": "no space left on device"}),
    )
    .await;
    let mut failing = deployment(twin, 1, false);
    sim.contract(&alice, 2, &mut failing, 0).await;
    sim.rmb
        .deploy(node(2), twin, &failing)
        .await
        .expect("deploy");
    let done = sim
        .wait_for(node(2), twin, failing.contract_id, |held| {
            state(held, "vm") != ResultState::Init
        })
        .await;
    let vm = &done.workload("vm").expect("vm").result;
    assert_eq!(vm.state, ResultState::Error);
    assert_eq!(vm.message, "no space left on device");

    sim.control("/sim/zos/nodes/5/stall", json!({})).await;
    let mut stalled = deployment(twin, 1, false);
    stalled.metadata = "stalled".to_owned();
    sim.contract(&alice, 5, &mut stalled, 0).await;
    sim.rmb
        .deploy(node(5), twin, &stalled)
        .await
        .expect("deploy");
    tokio::time::sleep(delay * 4).await;
    let held = sim
        .rmb
        .get(node(5), twin, stalled.contract_id)
        .await
        .expect("get");
    assert!(held
        .workloads
        .iter()
        .all(|w| w.result.state == ResultState::Init));

    sim.control("/sim/zos/nodes/2/heal", json!({})).await;
    let mut healed = deployment(twin, 1, false);
    healed.metadata = "healed".to_owned();
    sim.contract(&alice, 2, &mut healed, 0).await;
    sim.rmb
        .deploy(node(2), twin, &healed)
        .await
        .expect("deploy");
    sim.wait_for(node(2), twin, healed.contract_id, |held| {
        state(held, "vm") == ResultState::Ok
    })
    .await;
}

#[tokio::test]
async fn statistics_and_the_catalog_follow_deployments() {
    let sim = TestSim::start(Duration::ZERO).await;
    let alice = sim.user("alice");
    let twin = sim.twin(&alice).await;
    let before = sim.rmb.statistics(node(2), twin).await.expect("stats");
    assert_eq!(before.total.cru, 16);
    assert_eq!(before.used.cru, 0);
    assert_eq!(sim.node(2).await.used_resources.cru, 0);

    let mut d = deployment(twin, 3, false);
    sim.contract(&alice, 2, &mut d, 0).await;
    sim.rmb.deploy(node(2), twin, &d).await.expect("deploy");
    let during = sim.rmb.statistics(node(2), twin).await.expect("stats");
    assert_eq!(during.used.cru, 3);
    assert_eq!(during.used.mru, 2 * GIB);
    assert_eq!(during.used.sru, 10 * GIB);
    assert_eq!(during.users.deployments, 1);
    assert_eq!(during.users.workloads, 2);
    let listed = sim.node(2).await;
    assert_eq!(listed.used_resources.cru, 3);
    assert!(
        !listed.rentable,
        "a node with a deployment cannot be rented"
    );

    let mut too_big = deployment(twin, 14, false);
    too_big.metadata = "big".to_owned();
    sim.contract(&alice, 2, &mut too_big, 0).await;
    let err = sim
        .rmb
        .deploy(node(2), twin, &too_big)
        .await
        .expect_err("full");
    assert!(refusal(err).starts_with("not enough capacity"));

    sim.chain
        .cancel_contract(&alice, d.contract_id)
        .await
        .expect("cancel");
    let after = sim.rmb.statistics(node(2), twin).await.expect("stats");
    assert_eq!(after.used, before.used);
    assert_eq!(after.users.deployments, 0);
    assert_eq!(sim.node(2).await.used_resources.cru, 0);
    let err = sim
        .rmb
        .get(node(2), twin, d.contract_id)
        .await
        .expect_err("gone");
    assert_eq!(refusal(err), "deployment not found");
}

#[tokio::test]
async fn a_rent_contract_gives_the_node_to_the_renter() {
    let sim = TestSim::start(Duration::ZERO).await;
    let (alice, bob) = (sim.user("alice"), sim.user("bob"));
    let (alice_twin, bob_twin) = (sim.twin(&alice).await, sim.twin(&bob).await);
    let mut d = deployment(alice_twin, 4, false);
    let hash = d.deployment_hash();
    let err = sim
        .chain
        .create_node_contract(&alice, 7, &hash, "", 0, None)
        .await
        .expect_err("dedicated");
    assert_eq!(module(&err).1, "NodeNotAvailableToDeploy");

    let receipt = sim
        .chain
        .create_rent_contract(&alice, 7, None)
        .await
        .expect("rent");
    let rent = receipt.contract().expect("ContractCreated");
    assert_eq!(
        rent.contract_type,
        ContractData::RentContract { node_id: 7 }
    );
    assert_eq!(
        sim.chain
            .active_rent_contract_for_node(7)
            .await
            .expect("read"),
        Some(rent.contract_id)
    );
    let listed = sim.node(7).await;
    assert!(listed.rented && !listed.rentable);
    assert_eq!(listed.rented_by_twin_id, alice_twin);
    assert_eq!(listed.rent_contract_id, rent.contract_id);

    let err = sim
        .chain
        .create_rent_contract(&bob, 7, None)
        .await
        .expect_err("taken");
    assert_eq!(module(&err).1, "NodeHasRentContract");
    let bobs = deployment(bob_twin, 1, false);
    let err = sim
        .chain
        .create_node_contract(&bob, 7, &bobs.deployment_hash(), "", 0, None)
        .await
        .expect_err("not bob's node");
    assert_eq!(module(&err).1, "NodeNotAvailableToDeploy");
    let err = sim
        .chain
        .create_rent_contract(&bob, 1, None)
        .await
        .expect_err("busy");
    assert_eq!(
        module(&err).1,
        "NodeNotAvailableToDeploy",
        "node 1 is not rentable"
    );

    sim.contract(&alice, 7, &mut d, 0).await;
    sim.rmb
        .deploy(node(7), alice_twin, &d)
        .await
        .expect("deploy on the rented node");
    let err = sim
        .chain
        .cancel_contract(&alice, rent.contract_id)
        .await
        .expect_err("in use");
    assert_eq!(module(&err).1, "NodeHasActiveContracts");
    sim.chain
        .cancel_contract(&alice, d.contract_id)
        .await
        .expect("cancel");
    let receipt = sim
        .chain
        .cancel_contract(&alice, rent.contract_id)
        .await
        .expect("cancel rent");
    assert!(receipt
        .event("smartContractModule", "RentContractCanceled")
        .is_some());
    assert_eq!(
        sim.chain
            .active_rent_contract_for_node(7)
            .await
            .expect("read"),
        None
    );
    let listed = sim.node(7).await;
    assert!(!listed.rented && listed.rentable);
}

#[tokio::test]
async fn events_are_ordered_with_unique_ids_across_blocks() {
    let sim = TestSim::start(Duration::ZERO).await;
    let alice = sim.user("alice");
    let bob = sim.user("bob");
    let twin = sim.twin(&alice).await;
    let genesis = sim.chain.latest_block().await.expect("block");
    assert_eq!(genesis.number, 0);
    assert_eq!(genesis.timestamp, START);
    sim.control("/sim/clock/advance?minutes=1", json!({})).await;
    let block = sim.chain.latest_block().await.expect("block");
    assert_eq!((block.number, block.timestamp), (10, START + 60));
    for n in 0..3u8 {
        sim.chain
            .transfer_with_remark(&alice, bob.address(), TFT, &[n])
            .await
            .expect("transfer");
    }
    let mut d = deployment(twin, 1, false);
    let receipt = sim.contract(&alice, 2, &mut d, 0).await;
    assert_eq!(receipt.block.number, 10);

    let all = sim.chain.events(None, 1_000).await.expect("events");
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = sim.chain.events(after, 4).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "strictly ordered"
    );
    assert!(all.iter().any(|e| e.id.block_number == 0));
    let in_ten: Vec<u32> = all
        .iter()
        .filter(|e| e.id.block_number == 10)
        .map(|e| e.id.event_index)
        .collect();
    assert_eq!(in_ten, (0..in_ten.len() as u32).collect::<Vec<_>>());
    assert!(all
        .iter()
        .all(|e| e.timestamp == START + 6 * i64::from(e.id.block_number)));
}

#[tokio::test]
async fn tampered_signatures_are_refused_and_change_nothing() {
    let sim = TestSim::start(Duration::ZERO).await;
    let (alice, mallory) = (sim.user("alice"), sim.user("mallory"));
    let mut extrinsic = SignedExtrinsic::sign(
        &alice,
        Call::new(
            "tfgridModule",
            "createTwin",
            json!({"relay": "evil", "pk": null}),
        ),
    );
    extrinsic.call.args["relay"] = json!("relay.grid.tf");
    let response = sim.post("/chain/extrinsic", json!(extrinsic)).await;
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("signature")),
        "{body}"
    );

    let mut forged = SignedExtrinsic::sign(
        &mallory,
        Call::new(
            "tfgridModule",
            "createTwin",
            json!({"relay": null, "pk": null}),
        ),
    );
    forged.signer = alice.address().to_owned();
    let response = sim.post("/chain/extrinsic", json!(forged)).await;
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        sim.chain
            .twin_id_by_account(alice.address())
            .await
            .expect("read"),
        None
    );
    assert!(sim
        .chain
        .events(None, 100)
        .await
        .expect("events")
        .is_empty());
}

#[tokio::test]
async fn down_nodes_and_absent_chains_are_unreachable_not_refusals() {
    let sim = TestSim::start(Duration::ZERO).await;
    let alice = sim.user("alice");
    let twin = sim.twin(&alice).await;
    sim.rmb.statistics(node(1), twin).await.expect("up");
    sim.control("/sim/zos/nodes/1/unreachable", json!({})).await;
    let err = sim
        .rmb
        .statistics(node(1), twin)
        .await
        .expect_err("unreachable");
    assert!(matches!(err, ZosError::Unreachable(_)), "{err}");
    sim.control("/sim/zos/nodes/1/heal", json!({})).await;
    sim.rmb.statistics(node(1), twin).await.expect("healed");
    sim.control("/sim/nodes/1/down", json!({})).await;
    assert!(matches!(
        sim.rmb.statistics(node(1), twin).await,
        Err(ZosError::Unreachable(_))
    ));
    for standby_or_down in [4, 6] {
        assert!(matches!(
            sim.rmb.statistics(node(standby_or_down), twin).await,
            Err(ZosError::Unreachable(_))
        ));
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gone = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let err = HttpChain::new(&gone)
        .expect("chain")
        .latest_block()
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ChainError::Unavailable(_)), "{err}");
    let err = HttpRmb::new(&gone)
        .expect("rmb")
        .statistics(node(1), twin)
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ZosError::Unreachable(_)), "{err}");
}
