//! Many deployments at once, resizes and cluster scaling.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{dev_seed, uniform_seed, vm, Grid};
use crate::common::{alice, k8s_body, token};

#[tokio::test]
async fn fifty_requests_on_a_catalog_that_fits_forty_run_forty_and_overbook_no_node() {
    // Ten nodes of 4 vCPUs; each VM takes one.
    let grid = Grid::start(uniform_seed(10, 4)).await;
    let requests = (0..50).map(|i| {
        let grid = &grid;
        async move {
            let user = token(&format!("user{i}"), &["cloud-user"]);
            let id = grid.request(&user, &vm(&format!("vm{i}"), 1, false)).await;
            (user, id)
        }
    });
    let ids = futures::future::join_all(requests).await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut reasons = Vec::new();
    for (user, id) in &ids {
        let d = grid.settled(user, id, &["running", "failed"]).await;
        *outcomes
            .entry(d["status"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        if d["status"] == "failed" {
            reasons.push(d["failure_reason"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(outcomes.get("running"), Some(&40), "{outcomes:?}");
    assert_eq!(outcomes.get("failed"), Some(&10), "{outcomes:?}");
    for reason in &reasons {
        assert!(reason.starts_with("no capacity"), "{reason}");
    }
    for node in 1..=10 {
        let s = grid.statistics(node).await;
        assert!(s.used.cru <= s.total.cru, "node {node} overbooked: {s:?}");
        assert_eq!(s.users.deployments, 4, "node {node} holds four VMs");
    }
}

#[tokio::test]
async fn a_resized_vm_runs_again_at_its_new_size_on_the_same_contract() {
    let grid = Grid::start(dev_seed()).await;
    let id = grid.request_as_alice(&vm("web", 2, false)).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    let (node, contract) = (
        d["node_id"].as_u64().expect("node") as u32,
        d["contract_id"].clone(),
    );
    let before = grid.statistics(node).await.used.cru;
    let r = grid
        .app
        .post(
            &format!("/v1/deployments/{id}/resize"),
            &alice(),
            &json!({ "size": { "cpu": 4, "memory_mib": 2048, "rootfs_gb": 10 } }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let d: Value = grid
            .app
            .get(&format!("/v1/deployments/{id}"), &alice())
            .await
            .json()
            .await
            .expect("detail");
        if d["status"] == "running"
            && d["update_pending"] == false
            && grid.statistics(node).await.used.cru == before + 2
        {
            assert_eq!(d["contract_id"], contract, "the same contract, updated");
            break;
        }
        assert_ne!(d["status"], "failed", "{d:#}");
        assert!(
            std::time::Instant::now() < deadline,
            "never ran at 4 vCPUs: {d:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let held = grid
        .sim_get(&format!("/sim/zos/nodes/{node}/deployments"))
        .await;
    assert_eq!(held[0]["version"], 1, "the node runs revision 1");
    let contracts = grid.contracts().await;
    assert_eq!(contracts.len(), 1, "{contracts:#?}");
}

async fn machines_on(grid: &Grid, node: u32) -> usize {
    let held = grid
        .sim_get(&format!("/sim/zos/nodes/{node}/deployments"))
        .await;
    held[0]["workloads"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter(|w| w["type"] == "zmachine" && w["result"]["state"] == "ok")
                .count()
        })
        .unwrap_or(0)
}

async fn scale_to(grid: &Grid, id: &str, node: u32, workers: u8) {
    let r = grid
        .app
        .post(
            &format!("/v1/deployments/{id}/resize"),
            &alice(),
            &json!({ "size": { "cpu": 2, "memory_mib": 4096, "rootfs_gb": 20 }, "workers": workers }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while machines_on(grid, node).await != 1 + usize::from(workers) {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached {workers} workers"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The node has them all up; the deployment reports them once the
    // manager has marked the new revision running.
    loop {
        let d = grid.settled(&alice(), id, &["running"]).await;
        if d["update_pending"] == false {
            assert_eq!(
                d["workloads"].as_array().map(Vec::len),
                Some(1 + usize::from(workers)),
                "{d:#}"
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revision never ran: {d:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_cluster_scales_from_two_workers_to_three_and_back() {
    let grid = Grid::start(dev_seed()).await;
    let mut body = k8s_body("kube");
    body["placement"] =
        json!({ "country": "Belgium", "certified_only": false, "min_uptime_bps": 0 });
    let id = grid.request_as_alice(&body).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    let node = d["node_id"].as_u64().expect("node") as u32;
    assert_eq!(machines_on(&grid, node).await, 3);
    scale_to(&grid, &id, node, 3).await;
    scale_to(&grid, &id, node, 2).await;
    assert_eq!(grid.contracts().await.len(), 1, "one contract throughout");
}

async fn live_contracts(grid: &Grid) -> usize {
    grid.contracts()
        .await
        .iter()
        .filter(|c| c["state"] == json!("Created"))
        .count()
}

async fn spread_nodes(grid: &Grid, id: &str, workers: usize) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let d = grid.settled(&alice(), id, &["running", "failed"]).await;
        assert_eq!(d["status"], "running", "{d:#}");
        let placed = d["spread_workers"].as_object().map_or(0, |w| w.len());
        if d["update_pending"] == false && placed == workers {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {workers} spread workers: {d:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_spread_cluster_puts_each_worker_on_a_node_of_its_own_and_scales() {
    let grid = Grid::start(uniform_seed(5, 8)).await;
    let mut body = k8s_body("kube");
    body["spec"]["spread"] = json!(true);
    body["placement"] =
        json!({ "country": "Belgium", "certified_only": false, "min_uptime_bps": 0 });
    let id = grid.request_as_alice(&body).await;
    let d = spread_nodes(&grid, &id, 2).await;
    let master = d["node_id"].as_u64().expect("node");
    let nodes = |d: &Value| -> Vec<u64> {
        d["spread_workers"]
            .as_object()
            .expect("workers")
            .values()
            .map(|w| w["node_id"].as_u64().expect("node"))
            .collect()
    };
    let workers = nodes(&d);
    assert!(
        !workers.contains(&master),
        "no worker beside the masters: {d:#}"
    );
    assert_ne!(workers[0], workers[1], "each on its own node");
    assert_eq!(d["workloads"].as_array().map(Vec::len), Some(3), "{d:#}");
    assert_eq!(
        machines_on(&grid, master as u32).await,
        1,
        "only the master there"
    );
    assert_eq!(
        live_contracts(&grid).await,
        3,
        "the masters' and two workers'"
    );

    let r = grid
        .app
        .post(
            &format!("/v1/deployments/{id}/resize"),
            &alice(),
            &json!({ "size": { "cpu": 2, "memory_mib": 4096, "rootfs_gb": 20 }, "workers": 3 }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let d = spread_nodes(&grid, &id, 3).await;
    let three = nodes(&d);
    assert_eq!(
        three.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    assert_eq!(live_contracts(&grid).await, 4);

    let r = grid
        .app
        .post(
            &format!("/v1/deployments/{id}/resize"),
            &alice(),
            &json!({ "size": { "cpu": 2, "memory_mib": 4096, "rootfs_gb": 20 }, "workers": 2 }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let d = spread_nodes(&grid, &id, 2).await;
    assert_eq!(d["workloads"].as_array().map(Vec::len), Some(3), "{d:#}");
    assert_eq!(
        live_contracts(&grid).await,
        3,
        "the third worker's contract cancelled"
    );
}
