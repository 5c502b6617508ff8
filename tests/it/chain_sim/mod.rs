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
            SimOptions {
                workload_delay,
                ..SimOptions::default()
            },
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

mod chain;
mod nodes;
