//! The TFChain SIMULATOR through `HttpChain`: twins, transfers, contracts, IPs, rent, events, signatures.

use super::*;

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
    // Only genesis's price events: the refused extrinsics emitted nothing.
    assert!(sim
        .chain
        .events(None, 100)
        .await
        .expect("events")
        .iter()
        .all(|e| e.pallet == "tftPriceModule"));
}
