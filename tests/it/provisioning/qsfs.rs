//! A VM with a QSFS disk: its four zdb backends on four other nodes, the
//! VM's qsfs workload over them, and everything cancelled with it.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::{uniform_seed, vm, Grid};
use crate::common::alice;

#[tokio::test]
async fn a_qsfs_disk_is_spread_over_four_zdb_backends_on_other_nodes() {
    let grid = Grid::start(uniform_seed(6, 8)).await;
    let mut body = vm("vault", 2, false);
    body["spec"]["qsfs_gb"] = json!([100]);
    let id = grid.request_as_alice(&body).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    let primary = d["node_id"].as_u64().expect("node");

    let backends = d["qsfs_backends"].as_object().expect("backends").clone();
    assert_eq!(backends.len(), 4, "{d:#}");
    let nodes: HashSet<u64> = backends
        .values()
        .map(|b| b["node_id"].as_u64().expect("node"))
        .collect();
    assert_eq!(nodes.len(), 4, "four distinct nodes: {backends:#?}");
    assert!(!nodes.contains(&primary), "none on the VM's node");
    assert!(backends
        .values()
        .all(|b| b["endpoint"]["address"].is_string()));

    // The VM's deployment carries the qsfs workload over those backends.
    let held = grid
        .sim_get(&format!("/sim/zos/nodes/{primary}/deployments"))
        .await;
    let workloads = held[0]["workloads"].as_array().expect("workloads");
    let q = workloads
        .iter()
        .find(|w| w["type"] == "qsfs")
        .expect("a qsfs workload");
    assert_eq!(q["result"]["state"], "ok");
    let data: &Value = &q["data"]["config"]["groups"][0]["backends"];
    assert_eq!(data.as_array().map(Vec::len), Some(4), "{q:#}");
    let vm = workloads
        .iter()
        .find(|w| w["type"] == "zmachine")
        .expect("the VM");
    assert!(vm["data"]["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .any(|m| m["name"] == q["name"]));
    assert_eq!(
        grid.contracts().await.len(),
        5,
        "the VM's and four backends'"
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
    assert!(live.is_empty(), "every contract cancelled: {live:#?}");
}
