//! The ZOS SIMULATOR through `HttpRmb`: deploy checks, workload states, statistics, reachability.

use super::*;

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
