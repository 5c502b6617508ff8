//! The TFChain SIMULATOR's billing-era routes over real HTTP: the event
//! retention's 410, the price and NRU controls, and a restart that keeps
//! the chain.

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
