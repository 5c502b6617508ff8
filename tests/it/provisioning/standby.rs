//! A VM with a standby on another farm, taking over when the primary's
//! node has been unreachable for 30 minutes.

use serde_json::json;

use super::{uniform_seed, vm, Grid};
use crate::common::alice;

#[tokio::test]
async fn a_standby_vm_takes_over_when_the_primarys_node_has_been_down_for_thirty_minutes() {
    // Two Belgian nodes, in farms 1 and 2.
    let mut seed = uniform_seed(2, 8);
    seed.nodes[1].farm_id = 2;
    let grid = Grid::start(seed).await;
    // The chain bills hourly from the start: alice holds TFT, or her
    // contracts would be in their grace period (paused, not updatable) by
    // the time the failover updates them.
    let account = grid.custody.wallet("alice").address().to_owned();
    grid.control(
        "/sim/chain/fund",
        json!({ "account": account, "amount": 10_000u64 * 10_000_000 }),
    )
    .await;
    let mut body = vm("web", 2, false);
    body["spec"]["standby"] = json!(true);
    let id = grid.request_as_alice(&body).await;

    // Running on node 1, its standby ready on node 2.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let d = loop {
        let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
        assert_eq!(d["status"], "running", "{d:#}");
        if d["standby"]["ready"] == true {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never got ready: {d:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(d["node_id"], 1, "{d:#}");
    assert_eq!(d["standby"]["node_id"], 2, "another farm's node");
    assert!(d["failover"].is_null());
    assert_eq!(
        grid.live_contracts_on(2).await.len(),
        1,
        "the standby's contract"
    );
    let held = grid.sim_get("/sim/zos/nodes/2/deployments").await;
    assert!(
        held[0]["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .all(|w| w["type"] != "zmachine"),
        "the standby holds disks and network, no running VM: {held:#}"
    );

    // Node 1 goes down: nothing happens before 30 minutes.
    grid.control("/sim/nodes/1/down", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    grid.advance(20).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let d = grid.settled(&alice(), &id, &["running"]).await;
    assert_eq!(d["node_id"], 1, "20 minutes down is not enough: {d:#}");
    grid.advance(11).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let d = loop {
        let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
        assert_eq!(d["status"], "running", "{d:#}");
        if d["node_id"] == 2 && d["update_pending"] == false {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never failed over: {d:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let reason = d["failover"]["reason"].as_str().expect("why it moved");
    assert!(reason.contains("node 1 unreachable for 3"), "{reason}");
    assert_eq!(d["failover"]["from_node"], 1);
    assert_eq!(d["workloads"][0]["state"], "ok", "{d:#}");
    assert!(
        grid.live_contracts_on(1).await.is_empty(),
        "the primary's contract was cancelled"
    );
    let held = grid.sim_get("/sim/zos/nodes/2/deployments").await;
    assert!(
        held[0]["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .any(|w| w["type"] == "zmachine" && w["result"]["state"] == "ok"),
        "the VM runs on node 2: {held:#}"
    );
}
