//! The grid proxy SIMULATOR over real HTTP.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use marketplace_app::grid::types::{Capacity, GridNode, NodeStatus};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;
use marketplace_app::grid::client::{GridClient, GridError};
use tokio::task::JoinHandle;

/// A simulator on a free loopback port, stopped on drop.
struct TestSim {
    base: String,
    cancel: CancellationToken,
    _task: JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

impl Drop for TestSim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl TestSim {
    async fn start(seed: Seed) -> TestSim {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, seed, SimOptions::default(), cancel.clone()));
        TestSim {
            base,
            cancel,
            _task: task,
            http: reqwest::Client::new(),
        }
    }

    fn client(&self) -> GridClient {
        GridClient::new(&self.base).expect("client")
    }

    async fn post(&self, path: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .expect("post")
    }

    async fn now(&self) -> i64 {
        let clock: SimClock = self
            .http
            .get(format!("{}/sim/clock", self.base))
            .send()
            .await
            .expect("clock")
            .json()
            .await
            .expect("clock json");
        clock.now
    }

    async fn node(&self, id: u32) -> GridNode {
        self.client()
            .nodes()
            .await
            .expect("nodes")
            .into_iter()
            .find(|n| n.node_id == id)
            .expect("node listed")
    }
}

#[tokio::test]
async fn every_page_of_1050_nodes_arrives_exactly_once() {
    let seed = Seed::generate(40, 1_050, 7);
    let sim = TestSim::start(seed.clone()).await;
    // 100 a page ends on a short page; 150 a page divides 1,050 evenly.
    for size in [100, 150, 1_000] {
        let nodes = sim
            .client()
            .with_page_size(size)
            .nodes()
            .await
            .expect("nodes");
        assert_eq!(nodes.len(), 1_050, "page size {size}");
        let ids: Vec<u32> = nodes.iter().map(|n| n.node_id).collect();
        assert_eq!(ids, (1..=1_050).collect::<Vec<_>>(), "page size {size}");
    }
    let by_id: BTreeMap<u32, &GridNode> = seed.nodes.iter().map(|n| (n.node_id, n)).collect();
    let nodes = sim.client().nodes().await.expect("nodes");
    for node in &nodes {
        let seeded = by_id[&node.node_id];
        assert_eq!(node.total_resources, seeded.total_resources);
        assert_eq!(node.country, seeded.country);
        assert_eq!(
            node.status == NodeStatus::Down,
            seeded.status == NodeStatus::Down
        );
    }
}

#[tokio::test]
async fn a_node_that_stops_reporting_falls_81_minutes_behind() {
    let sim = TestSim::start(Seed::generate(5, 60, 11)).await;
    let before = sim.client().nodes().await.expect("nodes");
    let t0 = sim.now().await;
    let target = before
        .iter()
        .find(|n| n.status == NodeStatus::Up)
        .expect("an up node")
        .node_id;
    assert_eq!(sim.node(target).await.updated_at, t0);

    let res = sim.post(&format!("/sim/nodes/{target}/down")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = sim.post("/sim/clock/advance?minutes=81").await;
    assert_eq!(res.status(), StatusCode::OK);
    let now = sim.now().await;
    assert_eq!(now, t0 + 81 * 60);

    let after = sim.client().nodes().await.expect("nodes");
    for node in &after {
        let was = before
            .iter()
            .find(|n| n.node_id == node.node_id)
            .expect("same nodes");
        if node.node_id == target {
            assert_eq!(node.updated_at, t0, "silent node keeps its last report");
            assert_eq!(now - node.updated_at, 81 * 60);
            assert_eq!(node.status, NodeStatus::Down);
        } else if was.status == NodeStatus::Up {
            assert_eq!(node.updated_at, now, "node {} reported", node.node_id);
            assert_eq!(node.status, NodeStatus::Up);
        } else if was.status == NodeStatus::Down {
            assert!(node.updated_at < t0, "down nodes stay silent");
            assert_eq!(node.status, NodeStatus::Down);
        } else {
            assert_eq!(node.status, NodeStatus::Standby);
        }
    }

    let res = sim.post(&format!("/sim/nodes/{target}/up")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let back = sim.node(target).await;
    assert_eq!(back.updated_at, now);
    assert_eq!(back.status, NodeStatus::Up);
    assert_eq!(back.uptime, 0, "it rebooted");
}

#[tokio::test]
async fn fill_makes_used_equal_total() {
    let sim = TestSim::start(Seed::dev()).await;
    let res = sim.post("/sim/nodes/2/fill").await;
    assert_eq!(res.status(), StatusCode::OK);
    let node = sim.node(2).await;
    assert_eq!(node.used_resources, node.total_resources);
    assert_eq!(node.free_resources(), Capacity::default());
    assert!(!node.rentable);

    let res = sim.post("/sim/nodes/999/fill").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn farms_are_listed_in_full() {
    let seed = Seed::generate(130, 20, 3);
    let sim = TestSim::start(seed.clone()).await;
    let farms = sim.client().farms().await.expect("farms");
    assert_eq!(farms, seed.farms);
    assert_eq!(farms.len(), 130);
    assert!(farms.iter().any(|f| !f.public_ips.is_empty()));

    let dev = TestSim::start(Seed::dev()).await;
    let names: Vec<String> = dev
        .client()
        .farms()
        .await
        .expect("farms")
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        ["dev-ghent-farm", "dev-cairo-farm", "dev-dallas-gpu-farm"]
    );
}

#[tokio::test]
async fn filters_and_count_headers_follow_the_proxy() {
    let sim = TestSim::start(Seed::generate(6, 300, 5)).await;
    let all = sim.client().nodes().await.expect("nodes");
    let country = all
        .iter()
        .find(|n| n.farm_id <= 2 && n.status == NodeStatus::Up)
        .expect("an up node in farm 1 or 2")
        .country
        .clone();
    let expected: Vec<u32> = all
        .iter()
        .filter(|n| {
            [1, 2].contains(&n.farm_id)
                && matches!(n.status, NodeStatus::Up | NodeStatus::Standby)
                && n.country == country
        })
        .map(|n| n.node_id)
        .collect();
    assert!(!expected.is_empty());

    let url = format!(
        "{}/nodes?farm_ids=1,2&status=up&status=standby&country={}&ret_count=true&size=2&gpu_vendor_name=ignored",
        sim.base,
        country.to_uppercase().replace(' ', "%20")
    );
    let res = sim.http.get(&url).send().await.expect("get");
    assert_eq!(res.status(), StatusCode::OK);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("count"), Some(expected.len().to_string()));
    assert_eq!(header("size"), Some("2".to_owned()));
    assert_eq!(
        header("pages"),
        Some(expected.len().div_ceil(2).to_string())
    );
    let page: Vec<GridNode> = res.json().await.expect("json");
    let ids: Vec<u32> = page.iter().map(|n| n.node_id).collect();
    assert_eq!(ids, expected.iter().copied().take(2).collect::<Vec<_>>());

    let plain = sim
        .http
        .get(format!("{}/nodes", sim.base))
        .send()
        .await
        .expect("get");
    assert!(
        plain.headers().get("count").is_none(),
        "only with ret_count"
    );
    let page: Vec<GridNode> = plain.json().await.expect("json");
    assert_eq!(page.len(), 50, "the proxy's default page size");

    for bad in ["status=sideways", "farm_ids=one", "page=0", "size=x"] {
        let res = sim
            .http
            .get(format!("{}/nodes?{bad}", sim.base))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn nodes_can_be_added() {
    let sim = TestSim::start(Seed::dev()).await;
    let mut node = sim.node(5).await;
    node.node_id = 50;
    node.serial_number = "SIM-NEW".to_owned();
    let url = format!("{}/sim/nodes", sim.base);
    let res = sim.http.post(&url).json(&node).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::CREATED);
    let added = sim.node(50).await;
    assert_eq!(added.serial_number, "SIM-NEW");
    assert_eq!(added.updated_at, sim.now().await);
    assert_eq!(added.status, NodeStatus::Up);

    let res = sim.http.post(&url).json(&node).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::CONFLICT);
    node.node_id = 51;
    node.farm_id = 99;
    let res = sim.http.post(&url).json(&node).send().await.expect("post");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn client_errors_name_the_url_and_the_status() {
    let sim = TestSim::start(Seed::dev()).await;
    let client = GridClient::new(&format!("{}/no-such-prefix", sim.base)).expect("client");
    let err = client.nodes().await.expect_err("404");
    assert!(
        matches!(err, GridError::Status { status, .. } if status == StatusCode::NOT_FOUND),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("/no-such-prefix/nodes?page=1"), "{text}");
    assert!(text.contains("404"), "{text}");

    // Nothing listens on a port just released.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = GridClient::new(&format!("http://{addr}"))
        .expect("client")
        .farms()
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains(&format!("http://{addr}/farms")),
        "{err}"
    );
}

#[tokio::test]
async fn a_seed_that_contradicts_itself_is_refused() {
    let mut seed = Seed::dev();
    seed.nodes[0].farm_id = 77;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let err = serve(
        listener,
        seed,
        SimOptions::default(),
        CancellationToken::new(),
    )
    .await
    .expect_err("invalid seed");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("farm 77"), "{err}");
}
