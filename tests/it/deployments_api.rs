//! A deployment's provisioning as its owner sees it, through HTTP: the
//! detail shows the node (and its capacity), the contracts, why the node was
//! chosen and the workloads' addresses; the event stream sends the history,
//! then each change as it is projected, resumes with `Last-Event-ID` and ends
//! after a terminal status. Deployments are driven by the operator endpoints,
//! the provisioning manager's manual overrides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::openapi::{assert_fits, response_schema};
use async_trait::async_trait;
use chrono::Utc;
use cqrs_es::EventStore;
use marketplace_app::store;
use marketplace_app::zos::{
    Capacity, Deployment, NodeAddress, Nodes, Statistics, Workload, ZosError,
};
use marketplace_domain::node::{Certification, Node, NodeCommand, NodeResources, NodeSnapshot};
use marketplace_domain::EventSourced;
use marketplace_projections::{nodes::NodeProjection, tail};
use serde_json::{json, Value};

const GIB: u64 = 1 << 30;
/// What an operator's manual assignment records as placement's reason.
const MANUAL: &str = "assigned by an operator (manual override of placement)";

/// Syncs a node into the catalog as the grid sync worker would: 16 cores,
/// 64 GiB memory, 1 TiB SSD, of which 2 cores, 8 GiB and 100 GiB are used.
async fn sync_node(app: &TestApp, node_id: u32, farm_id: u32) {
    let snapshot = NodeSnapshot {
        node_id,
        farm_id,
        twin_id: 100 + node_id,
        country: "Belgium".into(),
        city: "Ghent".into(),
        total: NodeResources {
            cru: 16,
            mru: 64 * GIB,
            sru: 1024 * GIB,
            hru: 0,
        },
        used: NodeResources {
            cru: 2,
            mru: 8 * GIB,
            sru: 100 * GIB,
            hru: 0,
        },
        public_ipv4: true,
        farm_free_ips: 3,
        public_ipv6: true,
        certification: Certification::Diy,
        dedicated: false,
        rentable: true,
        rented: false,
        gpus: 0,
        extra_fee: 0,
        powered_up: true,
        uptime_seconds: 86_400,
        last_report: Utc::now(),
    };
    let nodes = store::<Node>(app.pool.clone());
    let id = node_id.to_string();
    let ctx = nodes.load_aggregate(&id).await.expect("load");
    let events = ctx
        .aggregate
        .decide_command(NodeCommand::Sync {
            snapshot,
            now: Utc::now(),
        })
        .expect("sync");
    let meta = HashMap::from([("actor_subject".to_string(), "test-sync".to_string())]);
    nodes.commit(events, ctx, meta).await.expect("commit");
    tail::catch_up(&app.pool, &NodeProjection, 500)
        .await
        .expect("catch up");
}

/// An operator's life-cycle step on a deployment; returns the new version.
async fn step(app: &TestApp, id: &str, path: &str, body: Value) -> u64 {
    let r = app
        .post(&format!("/v1/deployments/{id}/{path}"), &operator(), &body)
        .await;
    assert_eq!(
        r.status(),
        202,
        "{path}: {}",
        r.text().await.unwrap_or_default()
    );
    let v: Value = r.json().await.expect("json");
    v["version"].as_u64().expect("version")
}

async fn openapi_doc(app: &TestApp) -> Value {
    app.client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn the_detail_shows_the_node_contracts_placement_reason_and_workload_addresses() {
    let app = spawn_app().await;
    sync_node(&app, 11, 1).await;
    let (id, v) = app.request(&alice(), &vm_body("web1")).await;
    let d = app.read(&alice(), &id, v).await;
    assert!(d["node"].is_null());
    assert!(d["placement_reason"].is_null());
    assert_eq!(d["tried_nodes"], json!([]));
    assert_eq!(
        (&d["revision"], &d["running_revision"], &d["update_pending"]),
        (&json!(0), &Value::Null, &json!(false))
    );

    step(&app, &id, "node", json!({ "node_id": 11, "farm_id": 1 })).await;
    step(
        &app,
        &id,
        "contract",
        json!({ "contract_id": 7, "rent_contract_id": 8 }),
    )
    .await;
    let v = step(
        &app,
        &id,
        "running",
        json!({ "workloads": [{
            "name": "web1", "state": "ok", "message": "started",
            "ip": "10.20.2.2", "public_ip": "185.206.122.31/24",
            "console_url": "10.20.2.1:20002"
        }] }),
    )
    .await;
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(d["status"], "running");
    assert_eq!(
        (&d["node_id"], &d["contract_id"], &d["rent_contract_id"]),
        (&json!(11), &json!(7), &json!(8))
    );
    assert_eq!(d["placement_reason"], MANUAL);
    assert_eq!(d["placement"]["country"], "Belgium");
    let w = &d["workloads"][0];
    assert_eq!(
        (&w["state"], &w["message"], &w["ip"]),
        (&json!("ok"), &json!("started"), &json!("10.20.2.2"))
    );
    assert_eq!(
        (&w["public_ip"], &w["console_url"]),
        (&json!("185.206.122.31/24"), &json!("10.20.2.1:20002"))
    );
    assert_eq!(
        (&d["revision"], &d["running_revision"], &d["update_pending"]),
        (&json!(0), &json!(0), &json!(false))
    );
    // No node port in this app: the catalog's figures, used = total - free.
    assert_eq!(
        d["node"],
        json!({
            "node_id": 11, "farm_id": 1, "source": "catalog",
            "capacity": {
                "total": { "cru": 16, "mru": 64 * GIB, "sru": 1024 * GIB, "hru": 0, "ipv4u": null },
                "used": { "cru": 2, "mru": 8 * GIB, "sru": 100 * GIB, "hru": 0, "ipv4u": null }
            }
        })
    );
    let assigned = d["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|h| h["event"] == "NodeAssigned")
        .expect("NodeAssigned in the history");
    assert_eq!(assigned["detail"]["reason"], MANUAL);
    let doc = openapi_doc(&app).await;
    assert_fits(
        &doc,
        response_schema(&doc, "/v1/deployments/{id}", "get", 200),
        &d,
    );

    // A resize is pending until the node reports the new revision running.
    let r = app
        .post(
            &format!("/v1/deployments/{id}/resize"),
            &alice(),
            &json!({ "size": { "cpu": 4, "memory_mib": 8192, "rootfs_gb": 40 } }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let v = r.json::<Value>().await.expect("json")["version"]
        .as_u64()
        .expect("version");
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(
        (&d["revision"], &d["running_revision"], &d["update_pending"]),
        (&json!(1), &json!(0), &json!(true))
    );
    let v = step(
        &app,
        &id,
        "running",
        json!({ "workloads": [{ "name": "web1", "state": "ok" }] }),
    )
    .await;
    let d = app.read(&alice(), &id, v).await;
    assert_eq!(
        (&d["revision"], &d["running_revision"], &d["update_pending"]),
        (&json!(1), &json!(1), &json!(false))
    );
    // Addresses are optional: a report without them shows none.
    assert!(d["workloads"][0].get("ip").is_none());

    // A node the catalog does not know: the block says so.
    let (other, _) = app.request(&alice(), &vm_body("web2")).await;
    let v = step(&app, &other, "node", json!({ "node_id": 99, "farm_id": 9 })).await;
    let d = app.read(&alice(), &other, v).await;
    assert_eq!(
        d["node"],
        json!({ "node_id": 99, "farm_id": 9, "capacity": null, "source": "unknown" })
    );
}

/// A ZOS port that answers statistics for node 11, refuses node 12 and
/// never answers in time for node 13; it records who asked.
#[derive(Default)]
struct StubNodes {
    asked: Mutex<Vec<(NodeAddress, u32)>>,
}

fn unreachable() -> ZosError {
    ZosError::Unreachable("stub: only statistics".into())
}

#[async_trait]
impl Nodes for StubNodes {
    async fn deploy(&self, _: NodeAddress, _: u32, _: &Deployment) -> Result<(), ZosError> {
        Err(unreachable())
    }
    async fn update(&self, _: NodeAddress, _: u32, _: &Deployment) -> Result<(), ZosError> {
        Err(unreachable())
    }
    async fn get(&self, _: NodeAddress, _: u32, _: u64) -> Result<Deployment, ZosError> {
        Err(unreachable())
    }
    async fn changes(&self, _: NodeAddress, _: u32, _: u64) -> Result<Vec<Workload>, ZosError> {
        Err(unreachable())
    }
    async fn statistics(
        &self,
        node: NodeAddress,
        source_twin: u32,
    ) -> Result<Statistics, ZosError> {
        self.asked.lock().expect("lock").push((node, source_twin));
        match node.node_id {
            11 => Ok(Statistics {
                total: Capacity {
                    cru: 16,
                    sru: 1024 * GIB,
                    hru: 0,
                    mru: 64 * GIB,
                    ipv4u: 2,
                },
                used: Capacity {
                    cru: 6,
                    sru: 300 * GIB,
                    hru: 0,
                    mru: 20 * GIB,
                    ipv4u: 1,
                },
                ..Statistics::default()
            }),
            12 => Err(ZosError::Refused {
                code: 500,
                message: "busy".into(),
            }),
            _ => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Statistics::default())
            }
        }
    }
}

#[tokio::test]
async fn the_detail_asks_the_node_and_falls_back_to_the_catalog_when_it_cannot() {
    let stub = Arc::new(StubNodes::default());
    let app = spawn_app_with(AppOptions {
        nodes: Some(stub.clone()),
        ..AppOptions::default()
    })
    .await;
    for node in [11, 12, 13] {
        sync_node(&app, node, 1).await;
    }
    let mut details = HashMap::new();
    for node in [11u32, 12, 13] {
        let (id, _) = app.request(&alice(), &vm_body(&format!("web{node}"))).await;
        let v = step(&app, &id, "node", json!({ "node_id": node, "farm_id": 1 })).await;
        let started = Instant::now();
        details.insert(node, app.read(&alice(), &id, v).await);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a node that does not answer holds the read only briefly"
        );
    }
    assert_eq!(details[&11]["node"]["source"], "node");
    assert_eq!(
        details[&11]["node"]["capacity"],
        json!({
            "total": { "cru": 16, "mru": 64 * GIB, "sru": 1024 * GIB, "hru": 0, "ipv4u": 2 },
            "used": { "cru": 6, "mru": 20 * GIB, "sru": 300 * GIB, "hru": 0, "ipv4u": 1 }
        })
    );
    for node in [12, 13] {
        let block = &details[&node]["node"];
        assert_eq!(block["source"], "catalog", "node {node}");
        assert_eq!(block["capacity"]["used"]["cru"], 2, "node {node}");
    }
    // Each node is addressed by its own twin, as alice's custodial twin
    // (0: her wallet has no chain account yet).
    let mut asked = stub.asked.lock().expect("lock").clone();
    asked.sort_by_key(|(a, _)| a.node_id);
    asked.dedup();
    assert_eq!(
        asked,
        [11, 12, 13]
            .map(|n| (
                NodeAddress {
                    node_id: n,
                    twin_id: 100 + n
                },
                0
            ))
            .to_vec()
    );
}

/// One server-sent event.
#[derive(Debug)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<String>,
    pub(crate) event: Option<String>,
    pub(crate) data: Value,
}

/// Reads a `text/event-stream` response event by event.
pub(crate) struct SseStream {
    pub(crate) response: reqwest::Response,
    pub(crate) buf: Vec<u8>,
}

impl SseStream {
    /// The next event, skipping keep-alive comments; `None` once the server
    /// ended the stream. Fails the test when nothing comes within 10 s.
    pub(crate) async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(Duration::from_secs(10), self.read_event())
            .await
            .expect("an event, or the end of the stream, within 10 s")
    }

    async fn read_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(event) = parse_event(&String::from_utf8(block).expect("utf-8")) {
                    return Some(event);
                }
            }
            match self.response.chunk().await.expect("read the stream") {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => return None,
            }
        }
    }
}

/// One event block's `id:`, `event:` and `data:` lines; `None` for a
/// comment-only block (a keep-alive).
fn parse_event(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(':'))
    {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_string();
        match field {
            "id" => id = Some(value),
            "event" => event = Some(value),
            "data" => data.push(value),
            _ => {}
        }
    }
    if id.is_none() && event.is_none() && data.is_empty() {
        return None;
    }
    let data = serde_json::from_str(&data.join("\n")).expect("data is JSON");
    Some(SseEvent { id, event, data })
}

/// Opens `/v1/deployments/{id}/events{query}` as `token`, with a
/// `Last-Event-ID` when given.
async fn open(
    app: &TestApp,
    token: &str,
    id: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/deployments/{id}/events{query}")))
        .bearer_auth(token);
    if let Some(last) = last_event_id {
        request = request.header("Last-Event-ID", last);
    }
    request.send().await.expect("request")
}

async fn stream(
    app: &TestApp,
    token: &str,
    id: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> SseStream {
    let response = open(app, token, id, query, last_event_id).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    SseStream {
        response,
        buf: Vec::new(),
    }
}

/// Asserts an event is the change with this sequence, type and status.
#[track_caller]
fn assert_change(event: &SseEvent, sequence: i64, kind: &str, status: &str) {
    assert_eq!(event.id.as_deref(), Some(sequence.to_string().as_str()));
    assert_eq!(event.event.as_deref(), Some(kind));
    assert_eq!(event.data["sequence"], sequence);
    assert_eq!(event.data["event"], kind);
    assert_eq!(event.data["status"], status);
    assert!(event.data["at"].is_string());
    assert!(event.data["detail"].is_object());
}

#[tokio::test]
async fn the_event_stream_sends_the_history_then_live_changes_until_a_terminal_status() {
    let app = spawn_app().await;
    let (id, _) = app.request(&alice(), &vm_body("web1")).await;
    let v = step(&app, &id, "node", json!({ "node_id": 11, "farm_id": 1 })).await;
    app.read(&alice(), &id, v).await;

    // The history so far, in order.
    let mut live = stream(&app, &alice(), &id, "", None).await;
    let first = live.next().await.expect("event 1");
    assert_change(&first, 1, "DeploymentRequested", "requested");
    let placed = live.next().await.expect("event 2");
    assert_change(&placed, 2, "NodeAssigned", "placed");
    assert_eq!(placed.data["detail"]["reason"], MANUAL);
    assert_eq!(placed.data["detail"]["node_id"], 11);

    // Then a change as it is projected.
    step(&app, &id, "contract", json!({ "contract_id": 7 })).await;
    let contracted = live.next().await.expect("event 3");
    assert_change(&contracted, 3, "ContractCreated", "provisioning");
    assert_eq!(contracted.data["detail"]["contract_id"], 7);

    // A reconnecting client resumes after its Last-Event-ID; `after` too,
    // and the header wins over the query.
    let mut resumed = stream(&app, &alice(), &id, "?after=1", Some("2")).await;
    assert_change(
        &resumed.next().await.expect("resumed"),
        3,
        "ContractCreated",
        "provisioning",
    );
    let mut from_query = stream(&app, &alice(), &id, "?after=1", None).await;
    assert_change(
        &from_query.next().await.expect("after=1"),
        2,
        "NodeAssigned",
        "placed",
    );

    // A terminal status is sent, then the stream ends.
    step(&app, &id, "failed", json!({ "reason": "no node answers" })).await;
    let failed = live.next().await.expect("event 4");
    assert_change(&failed, 4, "DeploymentFailed", "failed");
    assert_eq!(failed.data["detail"]["reason"], "no node answers");
    assert!(live.next().await.is_none(), "the stream ends after failed");
    assert_change(
        &resumed.next().await.expect("resumed 4"),
        4,
        "DeploymentFailed",
        "failed",
    );
    assert!(resumed.next().await.is_none());

    // Resuming after the end: 204, which tells EventSource to stop.
    let r = open(&app, &alice(), &id, "", Some("4")).await;
    assert_eq!(r.status(), 204);

    // A failed deployment may still be deleted: a client resuming after
    // `failed` then gets that, and the end.
    let v = step(&app, &id, "delete", json!({ "cause": "canceled_by_user" })).await;
    app.read(&alice(), &id, v).await;
    let mut after_failed = stream(&app, &operator(), &id, "", Some("4")).await;
    assert_change(
        &after_failed.next().await.expect("event 5"),
        5,
        "DeploymentDeleted",
        "deleted",
    );
    assert!(after_failed.next().await.is_none());
}

#[tokio::test]
async fn the_event_stream_answers_problems_before_it_starts() {
    let app = spawn_app().await;
    let (id, v) = app.request(&alice(), &vm_body("web1")).await;
    app.read(&alice(), &id, v).await;

    // Another user's deployment, and an unknown one, are not found.
    expect_problem(open(&app, &bob(), &id, "", None).await, 404).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    expect_problem(open(&app, &alice(), &unknown, "", None).await, 404).await;
    // No token, the wrong role, a malformed resume point.
    let r = app
        .client
        .get(app.url(&format!("/v1/deployments/{id}/events")))
        .send()
        .await
        .expect("request");
    expect_problem(r, 401).await;
    let farmer = token("farmer", &["cloud-provider"]);
    expect_problem(open(&app, &farmer, &id, "", None).await, 403).await;
    expect_problem(
        open(&app, &alice(), &id, "", Some("not-a-number")).await,
        400,
    )
    .await;
    expect_problem(open(&app, &alice(), &id, "?after=-1", None).await, 400).await;
    expect_problem(open(&app, &alice(), &id, "?since=1", None).await, 400).await;

    // An operator follows anyone's; shutting down ends every stream, so a
    // graceful shutdown is not held open by idle followers.
    let mut s = stream(&app, &operator(), &id, "", None).await;
    assert_change(
        &s.next().await.expect("event 1"),
        1,
        "DeploymentRequested",
        "requested",
    );
    app.cancel.cancel();
    assert!(s.next().await.is_none(), "the stream ends on shutdown");
}

/// A deployment read back with `min_version` after its 202, which the view
/// has not even created yet, is "not caught up yet" (503, retry), not
/// unknown: the store holds the request. Somebody else's stays 404.
#[tokio::test]
async fn an_accepted_deployment_the_view_has_not_created_yet_is_lagging_not_missing() {
    let app = spawn_app_with(AppOptions {
        projections: false,
        ..AppOptions::default()
    })
    .await;
    let (id, version) = app.request(&alice(), &vm_body("notyet")).await;
    let path = format!("/v1/deployments/{id}?min_version={version}");
    let body = expect_problem(app.get(&path, &alice()).await, 503).await;
    assert_eq!(body["type"], "/problems/view-lagging");
    expect_problem(app.get(&path, &operator()).await, 503).await;
    expect_problem(app.get(&path, &bob()).await, 404).await;
    // Without min_version nothing is waited for: unknown to the view, 404.
    expect_problem(
        app.get(&format!("/v1/deployments/{id}"), &alice()).await,
        404,
    )
    .await;
}
