//! The TFChain SIMULATOR's billing-era routes over real HTTP: the event
//! retention's 410, the price and NRU controls, a restart that keeps the
//! chain, and an alliance's life through the `Chain` port: its farm, its
//! members' nodes moving in, the rewards paid to its account, payouts from
//! it that a crashed payer can find again, and a node that goes down.

use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use marketplace_app::tfchain::http::HttpChain;
use marketplace_app::tfchain::{Chain, ChainError};

use super::super::{Seed, SimOptions, Simulator};

const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

struct Served {
    base: String,
    cancel: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

async fn serve_on(simulator: &Simulator, listener: TcpListener) -> Served {
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let simulator = simulator.clone();
        let cancel = cancel.clone();
        async move { simulator.serve(listener, cancel).await }
    });
    Served { base, cancel, task }
}

async fn serve(simulator: &Simulator) -> Served {
    serve_on(
        simulator,
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    )
    .await
}

fn simulator(options: SimOptions) -> Simulator {
    let seed = Seed {
        now: Some(1_800_000_000),
        ..Seed::dev()
    };
    Simulator::new(seed, options).expect("simulator")
}

async fn post(base: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    let res = reqwest::get(format!("{base}{path}")).await.expect("get");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn events_older_than_the_retention_answer_410_gone() {
    let sim = simulator(SimOptions {
        event_retention_blocks: 100,
        ..SimOptions::default()
    });
    let served = serve(&sim).await;
    let chain = HttpChain::new(&served.base).expect("chain");
    // Nothing dropped yet: the whole log, from genesis's price events.
    let all = chain.events(None, 100).await.expect("events");
    assert_eq!(all[0].name, "PriceStored");
    assert_eq!(all[0].data, json!([10]));
    assert_eq!(all[1].name, "AveragePriceStored");
    assert_eq!(all[1].data, json!([10]));
    let genesis_cursor = all[1].id;

    // 90 minutes: blocks 1..=900, with nodes' uptime reports at minutes
    // 1-8, 41-48 and 81-88; events of blocks before 800 are dropped.
    post(&served.base, "/sim/clock/advance?minutes=90", json!({})).await;
    let (status, body) = get(&served.base, "/chain/events").await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["first_kept_block"], 800);
    assert!(body["error"].as_str().is_some());
    assert_eq!(
        chain.events(Some(genesis_cursor), 10).await,
        Err(ChainError::Pruned {
            first_kept_block: 800
        })
    );
    assert_eq!(
        chain.events(None, 10).await,
        Err(ChainError::Pruned {
            first_kept_block: 800
        })
    );
    // From a kept block on, it pages as before.
    let (status, body) = get(&served.base, "/chain/events?from_block=800").await;
    assert_eq!(status, StatusCode::OK);
    let kept = body["events"].as_array().expect("events").clone();
    assert!(!kept.is_empty());
    let last = kept.last().expect("an event");
    let after = marketplace_app::tfchain::EventId {
        block_number: last["block_number"].as_u64().expect("block") as u32,
        event_index: last["event_index"].as_u64().expect("index") as u32,
    };
    assert_eq!(chain.events(Some(after), 10).await, Ok(Vec::new()));
    served.cancel.cancel();
}

#[tokio::test]
async fn the_price_control_stores_the_price_and_its_average() {
    let sim = simulator(SimOptions::default());
    let served = serve(&sim).await;
    let (status, body) = post(&served.base, "/sim/chain/price", json!({"price_musd": 25})).await;
    assert_eq!(status, StatusCode::OK);
    // (10 + 25) / 2 = 17.5, rounded half up.
    assert_eq!(body, json!({"price_musd": 25, "average_musd": 18}));
    let (_, page) = get(&served.base, "/chain/events?pallet=tftPriceModule").await;
    let names: Vec<(&str, &Value)> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["name"].as_str().expect("name"), &e["data"]))
        .collect();
    assert_eq!(
        names,
        [
            ("PriceStored", &json!([10])),
            ("AveragePriceStored", &json!([10])),
            ("PriceStored", &json!([25])),
            ("AveragePriceStored", &json!([18])),
        ]
    );
    let (status, _) = post(&served.base, "/sim/chain/price", json!({"price": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(
        &served.base,
        "/sim/chain/nru",
        json!({"contract_id": 42, "nru": 1, "window": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    served.cancel.cancel();
}

#[tokio::test]
async fn a_restarted_server_serves_the_same_chain_on_the_same_port() {
    let sim = simulator(SimOptions::default());
    let served = serve(&sim).await;
    let (status, _) = post(
        &served.base,
        "/sim/chain/fund",
        json!({"account": ALICE, "amount": "1234"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    post(&served.base, "/sim/clock/advance?minutes=40", json!({})).await;
    let before = HttpChain::new(&served.base)
        .expect("chain")
        .latest_block()
        .await
        .expect("block");

    served.cancel.cancel();
    served.task.await.expect("joined").expect("served");
    let addr = served.base.trim_start_matches("http://").to_owned();
    assert!(reqwest::get(format!("{}/sim/clock", served.base))
        .await
        .is_err());

    let again = serve_on(&sim, TcpListener::bind(&addr).await.expect("rebind")).await;
    assert_eq!(again.base, served.base);
    let chain = HttpChain::new(&again.base).expect("chain");
    assert_eq!(chain.latest_block().await.expect("block"), before);
    assert_eq!(chain.free_balance(ALICE).await.expect("balance"), 1234);
    again.cancel.cancel();
}

// ---------------------------------------------------------------------------
// Alliances: a farm the marketplace holds
// ---------------------------------------------------------------------------

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use marketplace_app::tfchain::{Custody, EventId, Signer};
use secrecy::SecretString;

fn custody() -> Custody {
    Custody::from_seed(&SecretString::from(
        "0x0707070707070707070707070707070707070707070707070707070707070707".to_owned(),
    ))
    .expect("seed")
}

async fn fund(base: &str, account: &str, amount: u128) {
    let (status, _) = post(
        base,
        "/sim/chain/fund",
        json!({"account": account, "amount": amount.to_string()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

fn module(pallet: &str, error: &str) -> ChainError {
    ChainError::Module {
        pallet: pallet.to_owned(),
        error: error.to_owned(),
    }
}

/// `Perbill::from_percent(p) × x`: to the nearest, halves down.
fn percent(x: u128, p: u128) -> u128 {
    (x * p + 49) / 100
}

fn decimal(value: &Value) -> u128 {
    value
        .as_str()
        .expect("decimal string")
        .parse()
        .expect("u128")
}

async fn named(chain: &HttpChain, name: &str) -> Vec<marketplace_app::tfchain::ChainEvent> {
    chain
        .events(None, 1_000)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.name == name)
        .collect()
}

#[tokio::test]
async fn an_alliance_farm_is_created_once_and_found_again_by_name() {
    let sim = simulator(SimOptions::default());
    let served = serve(&sim).await;
    let chain = HttpChain::new(&served.base).expect("chain");
    let holder: Signer = custody().derived(&["alliance", "a-1"]);

    // Its account has no twin yet.
    assert_eq!(
        chain.create_farm(&holder, "alliance-a-1").await,
        Err(module("tfgridModule", "TwinNotExists"))
    );
    chain.create_twin(&holder, None).await.expect("twin");
    let twin_id = chain
        .twin_id_by_account(holder.address())
        .await
        .expect("read")
        .expect("twin");

    assert_eq!(chain.farm_id_by_name("alliance-a-1").await, Ok(None));
    let farm_id = chain
        .create_farm(&holder, "alliance-a-1")
        .await
        .expect("farm");
    assert_eq!(farm_id, 4);
    // A creator that crashed after the call finds it by name; calling
    // again is refused.
    assert_eq!(chain.farm_id_by_name("alliance-a-1").await, Ok(Some(4)));
    assert_eq!(
        chain.create_farm(&holder, "alliance-a-1").await,
        Err(module("tfgridModule", "FarmExists"))
    );
    assert_eq!(
        chain.create_farm(&holder, "no spaces").await,
        Err(module("tfgridModule", "InvalidFarmName"))
    );

    // The chain stores it, and the grid proxy lists it with its twin.
    let (_, stored) = get(&served.base, "/chain/storage/tfgridModule/Farms?farm_id=4").await;
    assert_eq!(stored["value"]["twin_id"], twin_id);
    assert_eq!(stored["value"]["name"], "alliance-a-1");
    let (_, farms) = get(&served.base, "/farms").await;
    let listed = farms
        .as_array()
        .expect("farms")
        .iter()
        .find(|f| f["farmId"] == farm_id)
        .expect("listed")
        .clone();
    assert_eq!(listed["twinId"], twin_id);
    assert_eq!(listed["name"], "alliance-a-1");
    served.cancel.cancel();
}

#[tokio::test]
async fn the_alliance_account_is_paid_half_the_bills_on_its_nodes_and_pays_members_once() {
    let sim = simulator(SimOptions {
        billing_cycle_blocks: 10,
        reward_distribution_cycles: 2,
        ..SimOptions::default()
    });
    let served = serve(&sim).await;
    let base = served.base.as_str();
    let chain = HttpChain::new(base).expect("chain");
    let keys = custody();
    let holder = keys.derived(&["alliance", "a-2"]);
    let user = keys.wallet("user-1");
    let member = keys.wallet("member-1");

    chain.create_twin(&holder, None).await.expect("twin");
    let farm_id = chain
        .create_farm(&holder, "alliance-a-2")
        .await
        .expect("farm");
    chain.create_twin(&user, None).await.expect("user twin");
    fund(base, user.address(), 1_000_000_000).await;
    // One public IP on node 5 (farm 2 has one): billed 40,000 units an hour.
    let contract = chain
        .create_node_contract(&user, 5, &"ab".repeat(16), "", 1, None)
        .await
        .expect("contract")
        .contract()
        .expect("contract")
        .contract_id;

    // A member moves node 5 into the alliance.
    let (status, node) = post(base, "/sim/nodes/5/farm", json!({"farm_id": farm_id})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node["farmId"], farm_id);
    assert_eq!(node["farmName"], "alliance-a-2");
    let (_, nodes) = get(base, &format!("/nodes?farm_ids={farm_id}")).await;
    let ids: Vec<&Value> = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| &n["nodeId"])
        .collect();
    assert_eq!(ids, [&json!(5)]);
    let updated = named(&chain, "NodeUpdated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].data["farm_id"], farm_id);
    let (status, _) = post(base, "/sim/nodes/5/farm", json!({"farm_id": 99})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = post(base, "/sim/nodes/999/farm", json!({"farm_id": 1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Four bills, two distributions.
    post(base, "/sim/clock/advance?minutes=4", json!({})).await;
    let billed: u128 = named(&chain, "ContractBilled")
        .await
        .iter()
        .filter(|e| e.data["contract_id"] == contract)
        .map(|e| decimal(&e.data["amount_billed"]))
        .sum();
    let rewards = named(&chain, "RewardDistributed").await;
    assert_eq!(rewards.len(), 2);
    let distributed: Vec<u128> = rewards
        .iter()
        .map(|e| decimal(&e.data["standard_rewards"]))
        .collect();
    assert_eq!(distributed.iter().sum::<u128>(), billed);
    let farmer: u128 = distributed
        .iter()
        .map(|s| s - percent(*s, 10) - percent(*s, 40))
        .sum();
    assert!(farmer > 0);
    assert_eq!(chain.free_balance(holder.address()).await, Ok(farmer));

    // The alliance pays a member from its account, tagged. A payer that
    // crashed before or after the call looks for the tag first.
    let from_block = chain.latest_block().await.expect("block").number;
    let remark = b"alliance a-2 payout 2026-12 member-1";
    let hash: [u8; 32] = Blake2b::<U32>::digest(remark).into();
    assert_eq!(
        chain.find_remark(holder.address(), hash, from_block).await,
        Ok(None)
    );
    assert_eq!(
        chain
            .transfer_with_remark(&holder, member.address(), farmer + 1, remark)
            .await
            .err(),
        Some(module("balances", "InsufficientBalance"))
    );
    assert_eq!(
        chain.find_remark(holder.address(), hash, from_block).await,
        Ok(None)
    );
    let share = farmer / 2;
    let receipt = chain
        .transfer_with_remark(&holder, member.address(), share, remark)
        .await
        .expect("payout");
    let remarked: EventId = receipt.event("system", "Remarked").expect("remarked").id;
    assert_eq!(
        chain.find_remark(holder.address(), hash, from_block).await,
        Ok(Some(remarked))
    );
    // Only this sender's remark counts.
    assert_eq!(
        chain.find_remark(user.address(), hash, from_block).await,
        Ok(None)
    );
    assert_eq!(chain.free_balance(member.address()).await, Ok(share));
    assert_eq!(
        chain.free_balance(holder.address()).await,
        Ok(farmer - share)
    );
    served.cancel.cancel();
}

#[tokio::test]
async fn a_node_taken_down_sends_no_uptime_reports_until_it_is_up_again() {
    let sim = simulator(SimOptions::default());
    let served = serve(&sim).await;
    let base = served.base.as_str();
    let chain = HttpChain::new(base).expect("chain");
    let reports_of_5 = |events: Vec<marketplace_app::tfchain::ChainEvent>| -> Vec<Value> {
        events
            .into_iter()
            .filter(|e| e.data[0] == 5)
            .map(|e| e.data)
            .collect()
    };
    let (status, node) = post(base, "/sim/nodes/5/down", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node["status"], "up");
    // 20 hours without a report from node 5; the others go on.
    post(base, "/sim/clock/advance?minutes=1200", json!({})).await;
    let during = named(&chain, "NodeUptimeReported").await;
    assert!(!during.is_empty());
    assert!(reports_of_5(during.clone()).is_empty());
    let (_, down) = get(base, "/nodes?status=down").await;
    assert!(down
        .as_array()
        .expect("nodes")
        .iter()
        .any(|n| n["nodeId"] == 5));

    let (status, node) = post(base, "/sim/nodes/5/up", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node["status"], "up");
    let after = during.last().expect("a report").id;
    post(base, "/sim/clock/advance?minutes=40", json!({})).await;
    let since: Vec<_> = chain
        .events(Some(after), 1_000)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.name == "NodeUptimeReported")
        .collect();
    let five = reports_of_5(since);
    assert_eq!(five.len(), 1);
    // Its uptime counts from when it came back.
    assert!(five[0][2].as_i64().expect("uptime") <= 40 * 60);
    served.cancel.cancel();
}
