//! A deployment's life with no operator: placed, contracted, deployed,
//! running; moved on from a failing or stalled node; failed with a reason;
//! cancelled off the chain.

use marketplace_app::tfchain::Chain;
use serde_json::{json, Value};

use super::{dev_seed, vm, Grid};
use crate::common::{alice, k8s_body, operator};

fn workload<'a>(detail: &'a Value, name: &str) -> &'a Value {
    detail["workloads"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["name"] == json!(name)))
        .unwrap_or_else(|| panic!("no workload {name} in {detail:#}"))
}

async fn history_events(grid: &Grid, id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'deployment' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id)
    .fetch_all(&grid.app.pool)
    .await
    .expect("events")
}

#[tokio::test]
async fn a_vm_goes_from_request_to_running_with_no_operator_call() {
    let grid = Grid::start(dev_seed()).await;
    let id = grid.request_as_alice(&vm("web", 2, true)).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    assert_eq!(
        d["node_id"], 1,
        "the freest of Belgium's two certified nodes"
    );
    let contract_id = d["contract_id"].as_u64().expect("contract id");
    let web = workload(&d, "web");
    assert_eq!(web["state"], "ok");
    assert!(
        web["ip"].as_str().is_some_and(|ip| ip.starts_with("10.")),
        "{web}"
    );
    assert!(
        web["public_ip"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("198.18.1.")),
        "{web}"
    );

    // The contract is the user's twin's, on node 1, and holds the VM's IP.
    let contracts = grid.live_contracts_on(1).await;
    assert_eq!(contracts.len(), 1, "{contracts:#?}");
    assert_eq!(contracts[0]["contract_id"], contract_id);
    let twin = grid
        .chain
        .twin_id_by_account(grid.custody.wallet("alice").address())
        .await
        .expect("twin lookup")
        .expect("alice has a twin");
    assert_eq!(contracts[0]["twin_id"], twin);
    assert_eq!(
        contracts[0]["contract_type"]["NodeContract"]["public_ips"],
        1
    );

    // Every step was the manager's, caused by the request's conversation.
    let steps: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT event_type, metadata->>'actor_subject', metadata->>'causation_id' FROM events
         WHERE aggregate_type = 'deployment' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&grid.app.pool)
    .await
    .expect("events");
    let correlation: Option<String> = sqlx::query_scalar(
        "SELECT metadata->>'correlation_id' FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(&id)
    .fetch_one(&grid.app.pool)
    .await
    .expect("request");
    let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "DeploymentRequested",
            "NodeAssigned",
            "ContractCreated",
            "DeploymentRunning"
        ]
    );
    for (event, actor, causation) in &steps[1..] {
        assert_eq!(actor.as_deref(), Some("provisioning"), "{event}");
        assert_eq!(causation, &correlation, "{event} is caused by the request");
    }

    // The manager's intake and queue show in the metrics: the intake
    // catches up with the last event and its queue drains. (The running
    // deployment's last event may still be on its way to the intake when
    // the view shows it, so this waits, bounded, rather than reading once.)
    let caught_up = [
        "marketplace_projection_lag_events{projection=\"provisioning-intake\"} 0",
        "marketplace_jobs{queue=\"provisioning\",state=\"due\"} 0",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let metrics = grid
            .app
            .get("/metrics", &alice())
            .await
            .text()
            .await
            .expect("metrics");
        if caught_up.iter().all(|line| metrics.contains(line)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_kubernetes_cluster_of_one_master_and_two_workers_runs_on_one_node() {
    let grid = Grid::start(dev_seed()).await;
    let mut body = k8s_body("kube");
    body["placement"] =
        json!({ "country": "Belgium", "certified_only": false, "min_uptime_bps": 0 });
    let id = grid.request_as_alice(&body).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    for name in ["kubemaster0", "kubeworker0", "kubeworker1"] {
        assert_eq!(workload(&d, name)["state"], "ok");
    }
    let node = d["node_id"].as_u64().expect("node") as u32;
    let held = grid
        .sim_get(&format!("/sim/zos/nodes/{node}/deployments"))
        .await;
    let machines = held[0]["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .filter(|w| w["type"] == "zmachine")
        .count();
    assert_eq!(machines, 3, "{held:#}");
    assert!(
        held[0]["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .any(|w| w["type"] == "network-light"),
        "the cluster's private network"
    );
}

#[tokio::test]
async fn a_deployment_no_node_can_take_fails_with_a_reason_the_user_can_read() {
    let grid = Grid::start(dev_seed()).await;
    let id = grid.request_as_alice(&vm("huge", 32, false)).await;
    let d = grid.settled(&alice(), &id, &["failed", "running"]).await;
    assert_eq!(d["status"], "failed");
    let reason = d["failure_reason"].as_str().expect("reason");
    assert!(
        reason.contains("no node in Belgium with 32 free vCPUs"),
        "{reason}"
    );
    assert!(grid.contracts().await.is_empty(), "nothing was contracted");
}

#[tokio::test]
async fn a_workload_error_on_the_first_node_moves_the_deployment_to_the_second() {
    let grid = Grid::start(dev_seed()).await;
    grid.control(
        "/sim/zos/nodes/1/fail",
        json!({ "message": "flist not found" }),
    )
    .await;
    let id = grid.request_as_alice(&vm("web", 2, false)).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    assert_eq!(d["node_id"], 2);
    assert!(
        grid.live_contracts_on(1).await.is_empty(),
        "node 1's contract was cancelled"
    );
    assert_eq!(grid.live_contracts_on(2).await.len(), 1);
    let events = history_events(&grid, &id).await;
    assert!(
        events.contains(&"ProvisioningAttemptFailed".to_string()),
        "{events:?}"
    );
    let held = grid.sim_get("/sim/zos/nodes/1/deployments").await;
    assert!(
        held.as_array()
            .is_none_or(|ds| ds.iter().all(|d| d["workloads"]
                .as_array()
                .is_none_or(|ws| ws.iter().all(|w| w["result"]["state"] != "ok")))),
        "nothing runs on node 1: {held:#}"
    );
}

#[tokio::test]
async fn a_stalled_node_is_given_up_after_four_minutes_on_the_chains_clock() {
    let grid = Grid::start(dev_seed()).await;
    grid.control("/sim/zos/nodes/1/stall", json!({})).await;
    let id = grid.request_as_alice(&vm("web", 2, false)).await;
    let d = grid.settled(&alice(), &id, &["provisioning"]).await;
    assert_eq!(d["node_id"], 1);
    // Time stands still on the chain: the node is waited for, not given up.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let d = grid.settled(&alice(), &id, &["provisioning"]).await;
    assert_eq!(d["node_id"], 1, "still waiting for node 1");
    grid.advance(5).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    assert_eq!(d["node_id"], 2);
    assert!(grid.live_contracts_on(1).await.is_empty());
}

#[tokio::test]
async fn cancelling_frees_the_nodes_capacity_and_its_public_ip() {
    let grid = Grid::start(dev_seed()).await;
    let before = grid.statistics(1).await;
    let free_ips = |farms: &Value| -> usize {
        farms[0]["publicIps"]
            .as_array()
            .or_else(|| farms.as_array().and_then(|f| f[0]["publicIps"].as_array()))
            .map(|ips| ips.iter().filter(|ip| ip["contract_id"] == 0).count())
            .unwrap_or(0)
    };
    let ips_before = free_ips(&grid.sim_get("/farms?farm_id=1").await);
    let id = grid.request_as_alice(&vm("web", 2, true)).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    let during = grid.statistics(1).await;
    assert_eq!(during.used.cru, before.used.cru + 2);
    assert_eq!(
        free_ips(&grid.sim_get("/farms?farm_id=1").await),
        ips_before - 1
    );

    let r = grid
        .app
        .post(
            &format!("/v1/deployments/{id}/cancel"),
            &alice(),
            &json!({ "reason": "done" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let d = grid.settled(&alice(), &id, &["deleted"]).await;
    assert_eq!(d["deletion_cause"], "canceled_by_user");
    assert_eq!(grid.statistics(1).await.used, before.used);
    assert_eq!(
        free_ips(&grid.sim_get("/farms?farm_id=1").await),
        ips_before
    );
    assert!(grid.live_contracts_on(1).await.is_empty());
}

#[tokio::test]
async fn the_operator_steps_stay_as_manual_overrides() {
    // Without a manager, an operator still walks a deployment through.
    let grid = Grid::without_manager(dev_seed()).await;
    let id = grid.request_as_alice(&vm("web", 2, false)).await;
    let r = grid
        .app
        .post(
            &format!("/v1/deployments/{id}/node"),
            &operator(),
            &json!({ "node_id": 2, "farm_id": 1 }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let d = grid.settled(&alice(), &id, &["placed"]).await;
    assert_eq!(d["node_id"], 2);
    // The manager, started now, takes it from the operator's choice.
    grid.spawn_manager(Default::default());
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    assert_eq!(d["node_id"], 2, "the operator's node was kept");
    let assigned: Option<String> = sqlx::query_scalar(
        "SELECT metadata->>'actor_role' FROM events WHERE aggregate_id = $1 AND event_type = 'NodeAssigned'",
    )
    .bind(&id)
    .fetch_one(&grid.app.pool)
    .await
    .expect("assignment");
    assert_eq!(
        assigned.as_deref(),
        Some("cloud-operator"),
        "audited as the operator's"
    );
}

#[tokio::test]
async fn a_dedicated_deployment_rents_its_node_first_and_gives_it_back_on_cancel() {
    let grid = Grid::start(dev_seed()).await;
    let mut body = vm("gpu", 4, false);
    body["placement"] =
        json!({ "country": "United States", "dedicated": true, "min_uptime_bps": 0 });
    let id = grid.request_as_alice(&body).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    assert_eq!(d["node_id"], 7, "the free dedicated node");
    let rent = d["rent_contract_id"].as_u64().expect("a rent contract");
    let contracts = grid.contracts().await;
    let rented = contracts
        .iter()
        .find(|c| c["contract_id"] == rent)
        .expect("the rent contract on chain");
    assert_eq!(rented["contract_type"]["RentContract"]["node_id"], 7);
    assert_eq!(
        rented["twin_id"],
        contracts
            .iter()
            .find(|c| c["contract_id"] == d["contract_id"])
            .expect("node contract")["twin_id"]
    );

    let r = grid
        .app
        .post(
            &format!("/v1/deployments/{id}/cancel"),
            &alice(),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    grid.settled(&alice(), &id, &["deleted"]).await;
    let live: Vec<Value> = grid
        .contracts()
        .await
        .into_iter()
        .filter(|c| c["state"] == json!("Created"))
        .collect();
    assert!(
        live.is_empty(),
        "node and rent contracts cancelled: {live:#?}"
    );
}

#[tokio::test]
async fn a_deployment_every_candidate_fails_ends_failed_naming_the_nodes_tried() {
    let grid = Grid::start(dev_seed()).await;
    for node in [1, 2] {
        grid.control(
            &format!("/sim/zos/nodes/{node}/fail"),
            json!({ "message": "disk error" }),
        )
        .await;
    }
    let id = grid.request_as_alice(&vm("web", 2, false)).await;
    let d = grid.settled(&alice(), &id, &["failed", "running"]).await;
    assert_eq!(d["status"], "failed", "{d:#}");
    assert_eq!(d["tried_nodes"], json!([1, 2]));
    let reason = d["failure_reason"].as_str().expect("reason");
    assert!(reason.contains("node 1, 2"), "{reason}");
    assert!(reason.contains("disk error"), "{reason}");
    assert!(
        grid.contracts()
            .await
            .iter()
            .all(|c| c["state"] != json!("Created")),
        "no contract left behind"
    );
}
