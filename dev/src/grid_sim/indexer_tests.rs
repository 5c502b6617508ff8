//! The INDEXER SIMULATOR over real HTTP, and the `GraphqlIndexer` adapter
//! against it.

use super::*;
use crate::grid_sim::{Seed, Shared, Sim, SimOptions};

/// The head of `app/graphql/indexer.graphql`.
const SCHEMA_HEADER: &str = "\
# TFChain's indexer (threefoldtech/tfchain_graphql, Subsquid's generated
# API): the subset the marketplace reads, as `GraphqlIndexer`'s typed
# queries (app/graphql/*.graphql) are checked against it.
#
# Generated from the INDEXER SIMULATOR (dev/src/grid_sim/indexer.rs); its
# test `the_client_schema_is_the_simulators` fails when they differ, and
# UPDATE_INDEXER_SCHEMA=1 cargo test -p marketplace-dev --lib client_schema
# rewrites it.

";

fn shared() -> Shared {
    Shared(std::sync::Arc::new(std::sync::Mutex::new(Sim::new(
        Seed::dev(),
        1_750_000_000,
        SimOptions::default(),
    ))))
}

#[test]
fn the_client_schema_is_the_simulators() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../app/graphql/indexer.graphql"
    );
    let sdl = format!("{SCHEMA_HEADER}{}", schema(shared()).expect("schema").sdl());
    if std::env::var_os("UPDATE_INDEXER_SCHEMA").is_some() {
        std::fs::write(path, &sdl).expect("write the schema");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "app/graphql/indexer.graphql is not the simulator's schema; rerun with UPDATE_INDEXER_SCHEMA=1"
    );
}

use std::time::Duration;

use marketplace_app::tfchain::http::HttpChain;
use marketplace_app::tfchain::indexer::{
    BillReport, DiscountLevel, GraphqlIndexer, IndexedContractKind, IndexedContractState,
    Indexer as _, IndexerError, PageAfter,
};
use marketplace_app::tfchain::{Block, Chain, Custody, Signer};
use secrecy::SecretString;
use serde_json::Value as Json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::grid_sim::chain::{event, Pending};

/// A simulator on a free loopback port whose state the test reaches
/// directly (to record events the simulator does not generate yet),
/// stopped on drop.
struct Served {
    shared: Shared,
    base: String,
    http: reqwest::Client,
    cancel: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Served {
    async fn start() -> Served {
        let shared = shared();
        // The indexer and the extrinsics, over state the test keeps.
        let app = router(shared.clone())
            .route(
                "/chain/extrinsic",
                axum::routing::post(crate::grid_sim::chain_http::extrinsic),
            )
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Served {
            shared,
            base,
            http: reqwest::Client::new(),
            cancel,
        }
    }

    fn indexer(&self) -> GraphqlIndexer {
        GraphqlIndexer::with_timeout(&format!("{}/graphql", self.base), Duration::from_secs(10))
            .expect("indexer")
    }

    fn chain(&self) -> HttpChain {
        HttpChain::new(&self.base).expect("chain")
    }

    /// Records `events` in block `number` (timestamp: genesis + 6 s a block).
    fn record(&self, number: u32, events: Vec<Pending>) {
        let mut sim = self.shared.lock();
        let genesis = sim.chain.block_at(0).timestamp;
        let block = Block {
            number,
            timestamp: genesis + i64::from(number) * 6,
        };
        sim.chain.record(block, events);
    }

    /// The raw answer to `query` with `variables`.
    async fn post(&self, query: &str, variables: Json) -> (reqwest::StatusCode, Json) {
        let response = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("post");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    /// `data` of a query that must succeed.
    async fn data(&self, query: &str, variables: Json) -> Json {
        let (status, body) = self.post(query, variables).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    /// The message of a query that must fail (HTTP 200 with `errors`).
    async fn error(&self, query: &str) -> String {
        let (status, body) = self.post(query, json!({})).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {body}"))
            .to_owned()
    }
}

fn custody() -> Custody {
    Custody::from_seed(&SecretString::from(
        "0x0909090909090909090909090909090909090909090909090909090909090909".to_owned(),
    ))
    .expect("seed")
}

async fn twin(chain: &HttpChain, signer: &Signer) -> u32 {
    let receipt = chain.create_twin(signer, None).await.expect("twin");
    let stored = receipt.event("tfgridModule", "TwinStored").expect("stored");
    u32::try_from(stored.data["id"].as_u64().expect("id")).expect("u32")
}

fn billed(contract_id: u64, timestamp: i64, level: &str, amount: u128) -> Pending {
    event(
        "smartContractModule",
        "ContractBilled",
        json!({
            "contract_id": contract_id,
            "timestamp": timestamp,
            "discount_level": level,
            "amount_billed": amount.to_string(),
        }),
    )
}

fn uptime(node_id: u32, now: i64, up: u64) -> Pending {
    event(
        "tfgridModule",
        "NodeUptimeReported",
        json!([node_id, now, up]),
    )
}

fn id(block: u32, index: u32) -> String {
    EventId {
        block_number: block,
        event_index: index,
    }
    .to_indexer_id(&block_hash(block))
}

fn ids(list: &Json) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

const CONTRACTS: &str = "query($twin: Int!) {
    nodeContracts(where: {twinID_eq: $twin}, orderBy: [id_ASC]) {
        id contractID twinID nodeID state createdAt deploymentHash numberOfPublicIPs gridVersion
    }
    rentContracts(where: {twinID_eq: $twin}) { id contractID nodeID state createdAt }
}";

#[tokio::test]
async fn contracts_follow_their_extrinsics_and_the_indexers_grace_mapping() {
    let sim = Served::start().await;
    let chain = sim.chain();
    let alice = custody().wallet("alice");
    let twin = twin(&chain, &alice).await;
    let hash = format!("{:032x}", 1);
    let created = chain
        .create_node_contract(&alice, 1, &hash, "{\"name\":\"vm\"}", 0, None)
        .await
        .expect("node contract");
    let contract = created.contract().expect("contract");
    let updated_hash = format!("{:032x}", 2);
    chain
        .update_node_contract(&alice, contract.contract_id, &updated_hash, "v2")
        .await
        .expect("update");
    let rent = chain
        .create_rent_contract(&alice, 7, None)
        .await
        .expect("rent")
        .contract()
        .expect("rent contract");

    let data = sim.data(CONTRACTS, json!({ "twin": twin })).await;
    let created_event = created
        .event("smartContractModule", "ContractCreated")
        .expect("event");
    assert_eq!(
        data["nodeContracts"],
        json!([{
            "id": id(created_event.id.block_number, created_event.id.event_index),
            "contractID": contract.contract_id.to_string(),
            "twinID": twin,
            "nodeID": 1,
            "state": "Created",
            "createdAt": created.block.timestamp.to_string(),
            "deploymentHash": updated_hash,
            "numberOfPublicIPs": 0,
            "gridVersion": 4,
        }])
    );
    assert_eq!(
        data["rentContracts"][0]["contractID"],
        rent.contract_id.to_string()
    );
    assert_eq!(data["rentContracts"][0]["state"], "Created");

    // A grace period reads OutOfFunds on the indexer, and Created again after.
    let grace = |name: &'static str, contract_id: u64| {
        event(
            "smartContractModule",
            name,
            json!({"contract_id": contract_id, "node_id": 7, "twin_id": twin, "block_number": 5}),
        )
    };
    sim.record(
        5,
        vec![grace("ContractGracePeriodStarted", rent.contract_id)],
    );
    let data = sim.data(CONTRACTS, json!({ "twin": twin })).await;
    assert_eq!(data["rentContracts"][0]["state"], "OutOfFunds");
    sim.record(6, vec![grace("ContractGracePeriodEnded", rent.contract_id)]);
    let data = sim.data(CONTRACTS, json!({ "twin": twin })).await;
    assert_eq!(data["rentContracts"][0]["state"], "Created");

    chain
        .cancel_contract(&alice, contract.contract_id)
        .await
        .expect("cancel");
    let data = sim.data(CONTRACTS, json!({ "twin": twin })).await;
    assert_eq!(data["nodeContracts"][0]["state"], "Deleted");
    let deleted = sim
        .data(
            "{ nodeContracts(where: {state_eq: Deleted}) { contractID } \
               rentContracts(where: {state_in: [Deleted, OutOfFunds]}) { contractID } }",
            json!({}),
        )
        .await;
    assert_eq!(
        deleted,
        json!({"nodeContracts": [{"contractID": contract.contract_id.to_string()}], "rentContracts": []})
    );
}

#[tokio::test]
async fn billing_uptime_resources_and_price_events_become_entities() {
    let sim = Served::start().await;
    sim.record(
        10,
        vec![
            billed(3, 1_750_000_600, "Gold", 123_456_789_012_345_678_901),
            event(
                "smartContractModule",
                "UpdatedUsedResources",
                json!({"contract_id": 3, "used": {"hru": 0, "sru": 10, "cru": 2, "mru": 4}}),
            ),
            event(
                "smartContractModule",
                "NruConsumptionReportReceived",
                json!({"contract_id": 3, "timestamp": 1_750_000_601, "window": 3600, "nru": 42}),
            ),
            uptime(2, 1_750_000_602, 86_400),
            event("tftPriceModule", "PriceStored", json!([12])),
            event("tftPriceModule", "AveragePriceStored", json!([10])),
            // Not indexed.
            event(
                "smartContractModule",
                "ContractGracePeriodElapsed",
                json!({"contract_id": 3, "grace_period": 100}),
            ),
            event(
                "smartContractModule",
                "RewardDistributed",
                json!({"contract_id": 3, "standard_rewards": "1", "additional_rewards": "0"}),
            ),
        ],
    );
    // A second report replaces the contract's resources.
    sim.record(
        11,
        vec![event(
            "smartContractModule",
            "UpdatedUsedResources",
            json!({"contract_id": 3, "used": {"hru": 1, "sru": 20, "cru": 4, "mru": 8}}),
        )],
    );
    let data = sim
        .data(
            "{ contractBillReports { id contractID discountReceived amountBilled timestamp }
               nruConsumptions { id contractID timestamp window nru }
               uptimeEvents { id nodeID uptime timestamp }
               priceStoreds(where: {block_eq: 10}) { id block timestamp newPrice }
               averagePriceStoreds(where: {block_eq: 10}) { id block timestamp newAveragePrice } }",
            json!({}),
        )
        .await;
    let block_ts = sim.shared.lock().chain.block_at(0).timestamp + 60;
    assert_eq!(
        data,
        json!({
            "contractBillReports": [{"id": id(10, 0), "contractID": "3", "discountReceived": "Gold",
                "amountBilled": "123456789012345678901", "timestamp": "1750000600"}],
            "nruConsumptions": [{"id": id(10, 2), "contractID": "3", "timestamp": "1750000601",
                "window": "3600", "nru": "42"}],
            "uptimeEvents": [{"id": id(10, 3), "nodeID": 2, "uptime": "86400", "timestamp": "1750000602"}],
            "priceStoreds": [{"id": id(10, 4), "block": 10, "timestamp": block_ts.to_string(), "newPrice": "0.012"}],
            "averagePriceStoreds": [{"id": id(10, 5), "block": 10, "timestamp": block_ts.to_string(),
                "newAveragePrice": "0.01"}],
        })
    );
    // Resources of a contract the indexer has no node contract for are not served;
    // no contract 3 exists, so the list is empty until one does.
    let resources = sim
        .data("{ contractResources { id hru sru cru mru } }", json!({}))
        .await;
    assert_eq!(resources["contractResources"], json!([]));
}

#[tokio::test]
async fn used_resources_nest_their_contract_and_update_in_place() {
    let sim = Served::start().await;
    let chain = sim.chain();
    let alice = custody().wallet("alice");
    twin(&chain, &alice).await;
    let mut contract_ids = Vec::new();
    for n in 0..2u32 {
        let receipt = chain
            .create_node_contract(&alice, 1 + n, &format!("{n:032x}"), "", 0, None)
            .await
            .expect("contract");
        contract_ids.push(receipt.contract().expect("contract").contract_id);
    }
    let used = |contract_id: u64, cru: u64| {
        event(
            "smartContractModule",
            "UpdatedUsedResources",
            json!({"contract_id": contract_id, "used": {"hru": 0, "sru": 1, "cru": cru, "mru": 2}}),
        )
    };
    sim.record(20, vec![used(contract_ids[0], 1), used(contract_ids[1], 2)]);
    sim.record(21, vec![used(contract_ids[0], 8)]);
    let query = "query($ids: [BigInt!]) {
        contractResources(where: {contract: {contractID_in: $ids}}, orderBy: [id_ASC]) {
            id cru contract { contractID nodeID resourcesUsed { cru } }
        }
    }";
    let data = sim
        .data(query, json!({ "ids": [contract_ids[0].to_string()] }))
        .await;
    assert_eq!(
        data["contractResources"],
        json!([{"id": id(20, 0), "cru": "8", "contract": {
            "contractID": contract_ids[0].to_string(), "nodeID": 1, "resourcesUsed": {"cru": "8"}}}])
    );
    let adapter = sim.indexer();
    let read = adapter
        .contract_resources(&contract_ids)
        .await
        .expect("resources");
    let cru: Vec<(u64, u64)> = read.iter().map(|r| (r.contract_id, r.cru)).collect();
    assert_eq!(cru, [(contract_ids[0], 8), (contract_ids[1], 2)]);
    assert_eq!(read[1].sru, 1);
    assert_eq!(read[1].mru, 2);
}

/// Six bill reports: contracts 1 and 2, timestamps tying across blocks.
fn record_bills(sim: &Served) {
    sim.record(
        30,
        vec![billed(1, 100, "None", 10), billed(2, 100, "Default", 20)],
    );
    sim.record(31, vec![billed(1, 100, "Bronze", 11)]);
    sim.record(
        32,
        vec![billed(2, 90, "Silver", 21), billed(1, 200, "Gold", 12)],
    );
    sim.record(33, vec![billed(1, 200, "None", 13)]);
}

#[tokio::test]
async fn lists_filter_order_and_page_like_subsquid() {
    let sim = Served::start().await;
    record_bills(&sim);
    let list = |args: &str| {
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({args})")
        };
        format!("{{ contractBillReports{args} {{ id contractID amountBilled timestamp }} }}")
    };
    let amounts = |data: &Json| -> Vec<u64> {
        data["contractBillReports"]
            .as_array()
            .expect("list")
            .iter()
            .map(|r| {
                r["amountBilled"]
                    .as_str()
                    .expect("amount")
                    .parse()
                    .expect("u64")
            })
            .collect()
    };
    // No orderBy: chain order; no limit: everything.
    assert_eq!(
        amounts(&sim.data(&list(""), json!({})).await),
        [10, 20, 11, 21, 12, 13]
    );
    // Ties on timestamp are broken by id.
    let ordered = sim
        .data(&list("orderBy: [timestamp_ASC, id_ASC]"), json!({}))
        .await;
    assert_eq!(amounts(&ordered), [21, 10, 20, 11, 12, 13]);
    assert_eq!(
        ids(&ordered["contractBillReports"])[1..3],
        [id(30, 0), id(30, 1)]
    );
    let desc = sim
        .data(&list("orderBy: [timestamp_DESC, id_DESC]"), json!({}))
        .await;
    assert_eq!(amounts(&desc), [13, 12, 11, 20, 10, 21]);
    let by_contract = sim
        .data(
            &list("orderBy: [contractID_ASC, timestamp_DESC]"),
            json!({}),
        )
        .await;
    assert_eq!(amounts(&by_contract), [12, 13, 10, 11, 20, 21]);
    // _in, _eq and the comparisons.
    let only_1 = sim
        .data(
            &list("where: {contractID_in: [\"1\"]}, orderBy: [id_ASC]"),
            json!({}),
        )
        .await;
    assert_eq!(amounts(&only_1), [10, 11, 12, 13]);
    for (filter, expected) in [
        ("timestamp_gt: \"100\"", vec![12, 13]),
        ("timestamp_gte: \"100\"", vec![10, 20, 11, 12, 13]),
        ("timestamp_lt: \"100\"", vec![21]),
        ("timestamp_lte: 100", vec![10, 20, 11, 21]),
        ("timestamp_eq: \"200\", contractID_eq: 1", vec![12, 13]),
        ("discountReceived_in: [Gold, Silver]", vec![21, 12]),
        (
            "amountBilled_not_eq: \"10\", timestamp_eq: 100",
            vec![20, 11],
        ),
    ] {
        let data = sim
            .data(&list(&format!("where: {{{filter}}}")), json!({}))
            .await;
        assert_eq!(amounts(&data), expected, "{filter}");
    }
    let ids_after = sim
        .data(
            &list(&format!("where: {{id_gt: \"{}\"}}", id(32, 0))),
            json!({}),
        )
        .await;
    assert_eq!(amounts(&ids_after), [12, 13]);
    // The (timestamp, id) cursor: OR inside AND, beside another condition.
    let cursor = format!(
        "where: {{contractID_in: [1, 2], AND: [{{OR: [{{timestamp_gt: 100}}, {{timestamp_eq: 100, id_gt: \"{}\"}}]}}]}}, \
         orderBy: [timestamp_ASC, id_ASC]",
        id(30, 0)
    );
    assert_eq!(
        amounts(&sim.data(&list(&cursor), json!({})).await),
        [20, 11, 12, 13]
    );
    // Own conditions OR the OR list (an object's own conditions and OR combine as OR).
    let either = sim
        .data(
            &list("where: {amountBilled_eq: \"10\", OR: [{amountBilled_eq: \"13\"}]}"),
            json!({}),
        )
        .await;
    assert_eq!(amounts(&either), [10, 13]);
    // limit and offset.
    let page = sim
        .data(
            &list("orderBy: [timestamp_ASC, id_ASC], offset: 2, limit: 3"),
            json!({}),
        )
        .await;
    assert_eq!(amounts(&page), [20, 11, 12]);
    assert_eq!(
        amounts(&sim.data(&list("limit: 0"), json!({})).await),
        Vec::<u64>::new()
    );
}

#[tokio::test]
async fn unknown_fields_and_bad_arguments_are_graphql_errors() {
    let sim = Served::start().await;
    record_bills(&sim);
    for (query, says) in [
        ("{ contractBillReports { nope } }", "nope"),
        ("{ contractBills { id } }", "contractBills"),
        (
            "{ contractBillReports(where: {nope_eq: 1}) { id } }",
            "nope_eq",
        ),
        (
            "{ contractBillReports(where: {contractID_eq: \"x\"}) { id } }",
            "contractID_eq",
        ),
        (
            "{ contractBillReports(orderBy: [amount_ASC]) { id } }",
            "amount_ASC",
        ),
        (
            "{ contractBillReports(limit: 10001) { id } }",
            "at most 10000",
        ),
        ("{ contractBillReports(offset: -1) { id } }", "negative"),
        (
            "{ averagePriceStoreds(where: {newAveragePrice_gt: \"0.0001\"}) { id } }",
            "newAveragePrice_gt",
        ),
    ] {
        let message = sim.error(query).await;
        assert!(message.contains(says), "{query}: {message}");
    }
    let response = sim
        .http
        .post(format!("{}/graphql", sim.base))
        .body("not json")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_adapter_pages_bill_reports_strictly_after_ties() {
    let sim = Served::start().await;
    record_bills(&sim);
    sim.record(34, vec![billed(9, 150, "None", 99)]);
    let indexer = sim.indexer();
    let mut seen: Vec<BillReport> = Vec::new();
    loop {
        let since = seen.last().map(|r| PageAfter {
            timestamp: r.timestamp,
            event: r.event,
        });
        let page = indexer.bill_reports(&[1, 2], since, 2).await.expect("page");
        assert!(page.len() <= 2);
        if page.is_empty() {
            break;
        }
        seen.extend(page);
    }
    let amounts: Vec<u128> = seen.iter().map(|r| r.amount_billed).collect();
    assert_eq!(amounts, [21, 10, 20, 11, 12, 13]);
    assert_eq!(
        seen[1],
        BillReport {
            event: EventId {
                block_number: 30,
                event_index: 0
            },
            contract_id: 1,
            discount_received: DiscountLevel::None,
            amount_billed: 10,
            timestamp: 100,
        }
    );
    let levels: Vec<DiscountLevel> = seen.iter().map(|r| r.discount_received).collect();
    assert_eq!(
        levels,
        [
            DiscountLevel::Silver,
            DiscountLevel::None,
            DiscountLevel::Default,
            DiscountLevel::Bronze,
            DiscountLevel::Gold,
            DiscountLevel::None
        ]
    );
    let nine = indexer.bill_reports(&[9], None, 10).await.expect("nine");
    assert_eq!(nine.len(), 1);
    assert_eq!(nine[0].amount_billed, 99);
    assert!(indexer
        .bill_reports(&[], None, 10)
        .await
        .expect("none")
        .is_empty());
}

#[tokio::test]
async fn the_adapter_reads_every_page_of_uptime_in_a_window() {
    let sim = Served::start().await;
    // 1,205 reports of node 5 (two per timestamp), one of node 6.
    for block in 0..603u32 {
        let at = 1_000 + i64::from(block);
        sim.record(
            100 + block,
            vec![
                uptime(5, at, u64::from(block)),
                uptime(5, at, u64::from(block) + 1),
            ],
        );
    }
    sim.record(800, vec![uptime(6, 1_100, 1)]);
    let indexer = sim.indexer();
    let all = indexer.uptime_events(5, 1_000, 1_602).await.expect("all");
    assert_eq!(all.len(), 1_206);
    assert!(all
        .windows(2)
        .all(|w| (w[0].timestamp, w[0].event) < (w[1].timestamp, w[1].event)));
    assert!(all.iter().all(|u| u.node_id == 5));
    let window = indexer
        .uptime_events(5, 1_100, 1_101)
        .await
        .expect("window");
    let seen: Vec<(i64, u64)> = window.iter().map(|u| (u.timestamp, u.uptime)).collect();
    assert_eq!(
        seen,
        [(1_100, 100), (1_100, 101), (1_101, 101), (1_101, 102)]
    );
}

#[tokio::test]
async fn the_adapter_reads_contracts_by_twin_with_the_indexers_states() {
    let sim = Served::start().await;
    let chain = sim.chain();
    let (alice, bob) = (custody().wallet("alice"), custody().wallet("bob"));
    let alice_twin = twin(&chain, &alice).await;
    twin(&chain, &bob).await;
    let mut node_contracts = Vec::new();
    for n in 0..3u32 {
        let receipt = chain
            .create_node_contract(&alice, 1, &format!("{n:032x}"), "", 0, None)
            .await
            .expect("contract");
        node_contracts.push(receipt.contract().expect("contract").contract_id);
    }
    chain
        .create_node_contract(&bob, 2, &format!("{:032x}", 9), "", 0, None)
        .await
        .expect("bob's");
    let rent = chain
        .create_rent_contract(&alice, 7, None)
        .await
        .expect("rent")
        .contract()
        .expect("rent contract");
    chain
        .cancel_contract(&alice, node_contracts[0])
        .await
        .expect("cancel");
    sim.record(
        50,
        vec![event(
            "smartContractModule",
            "ContractGracePeriodStarted",
            json!({"contract_id": node_contracts[1], "node_id": 1, "twin_id": alice_twin, "block_number": 50}),
        )],
    );

    let indexer = sim.indexer();
    let read = indexer
        .node_contracts(alice_twin)
        .await
        .expect("node contracts");
    let states: Vec<(u64, IndexedContractState)> =
        read.iter().map(|c| (c.contract_id, c.state)).collect();
    assert_eq!(
        states,
        [
            (node_contracts[0], IndexedContractState::Deleted),
            (node_contracts[1], IndexedContractState::OutOfFunds),
            (node_contracts[2], IndexedContractState::Created),
        ]
    );
    assert!(read
        .iter()
        .all(|c| c.kind == IndexedContractKind::Node && c.twin_id == alice_twin && c.node_id == 1));
    let rents = indexer.rent_contracts(alice_twin).await.expect("rents");
    assert_eq!(rents.len(), 1);
    assert_eq!(rents[0].contract_id, rent.contract_id);
    assert_eq!(rents[0].node_id, 7);
    assert_eq!(rents[0].kind, IndexedContractKind::Rent);
    assert_eq!(rents[0].state, IndexedContractState::Created);
    assert!(indexer
        .rent_contracts(1)
        .await
        .expect("nobody's")
        .is_empty());
}

#[tokio::test]
async fn the_adapter_reads_average_prices_back_in_musd() {
    let sim = Served::start().await;
    let price = |musd: u32| event("tftPriceModule", "AveragePriceStored", json!([musd]));
    sim.record(60, vec![price(10), price(1_500)]);
    sim.record(
        61,
        vec![
            price(2_001),
            event("tftPriceModule", "PriceStored", json!([7])),
        ],
    );
    let indexer = sim.indexer();
    // The chain may store a price at genesis too: look at ours.
    let all = indexer.average_prices(None, 100).await.expect("all");
    let ours: Vec<_> = all.iter().filter(|p| p.event.block_number >= 60).collect();
    let musd: Vec<u32> = ours.iter().map(|p| p.price_musd).collect();
    assert_eq!(musd, [10, 1_500, 2_001]);
    let before = indexer
        .average_prices(None, u32::try_from(all.len() - 1).expect("len"))
        .await
        .expect("first");
    assert_eq!(before.last().map(|p| p.price_musd), Some(1_500));
    let after = PageAfter {
        timestamp: ours[1].timestamp,
        event: ours[1].event,
    };
    let rest = indexer.average_prices(Some(after), 10).await.expect("rest");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].price_musd, 2_001);
    assert_eq!(
        rest[0].event,
        EventId {
            block_number: 61,
            event_index: 0
        }
    );
}

#[tokio::test]
async fn the_adapter_tells_refusals_from_outages() {
    let sim = Served::start().await;
    let indexer = sim.indexer();
    let refused = indexer
        .bill_reports(&[1], None, 20_000)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(refused, IndexerError::Query(ref m) if m.contains("at most")),
        "{refused:?}"
    );

    let wrong_path = GraphqlIndexer::new(&format!("{}/nope", sim.base)).expect("indexer");
    let err = wrong_path.average_prices(None, 1).await.expect_err("404");
    assert!(matches!(err, IndexerError::Unavailable(_)), "{err:?}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}/graphql", listener.local_addr().expect("addr"));
    drop(listener);
    let err = GraphqlIndexer::new(&closed)
        .expect("indexer")
        .uptime_events(1, 0, 1)
        .await
        .expect_err("closed");
    assert!(matches!(err, IndexerError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn the_simulator_serves_the_indexer_beside_the_chain() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let cancel = CancellationToken::new();
    tokio::spawn(crate::grid_sim::serve(
        listener,
        Seed::dev(),
        SimOptions::default(),
        cancel.clone(),
    ));
    let chain = HttpChain::new(&base).expect("chain");
    let alice = custody().wallet("alice");
    let twin = twin(&chain, &alice).await;
    chain
        .create_node_contract(&alice, 1, &format!("{:032x}", 5), "", 0, None)
        .await
        .expect("contract");
    let indexer = GraphqlIndexer::new(&format!("{base}/graphql")).expect("indexer");
    let contracts = indexer.node_contracts(twin).await.expect("contracts");
    assert_eq!(contracts.len(), 1);
    assert_eq!(contracts[0].state, IndexedContractState::Created);
    cancel.cancel();
}
