//! Provider alliances end to end: providers found an alliance through the
//! API, the farm worker gives it a farm on the SIMULATED chain (over HTTP),
//! members contribute nodes and move them into it, users deploy there, the
//! chain bills and pays rewards for simulated weeks while nodes report
//! uptime, and the settlement worker settles each month and pays members
//! and credited users on chain.

mod api;
mod flows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use marketplace_app::tfchain::Chain;
use marketplace_app::Stores;
use marketplace_dev::grid_sim::{Seed, SimOptions};
use marketplace_domain::alliance::Period;
use marketplace_workers::alliance::{assign_farms_once, SettlementOptions, SettlementWorker};
use serde_json::{json, Value};

use crate::common::token;
use crate::provisioning::{uniform_seed, Grid};

/// A provider's token.
pub fn provider(sub: &str) -> String {
    token(sub, &["cloud-provider"])
}

/// Five nodes of 8 vCPUs in Belgium: 1 and 2 in farm 1, 3 and 4 in farm
/// 2, 5 in farm 3; the chain's clock two hours before this month starts,
/// so that every node has reported when the month begins.
pub fn alliance_seed(month: Period) -> Seed {
    let mut seed = uniform_seed(5, 8);
    for n in &mut seed.nodes {
        n.farm_id = match n.node_id {
            1 | 2 => 1,
            3 | 4 => 2,
            _ => 3,
        };
    }
    for f in &mut seed.farms {
        f.dedicated = false;
    }
    seed.now = Some(month.start() - 2 * 3_600);
    seed
}

/// This month, by the wall clock the API decides by.
pub fn this_month() -> Period {
    Period::of(Utc::now().timestamp()).expect("month")
}

/// The grid: simulator, app with projections, manager; users funded.
pub async fn alliance_grid(month: Period) -> Grid {
    let grid = Grid::start_with(
        alliance_seed(month),
        SimOptions {
            workload_delay: Duration::ZERO,
            ..SimOptions::default()
        },
    )
    .await;
    for user in ["alice", "bob"] {
        let account = grid.custody.wallet(user);
        grid.control(
            "/sim/chain/fund",
            json!({ "account": account.address(), "amount": (1_000_000u128 * 10_000_000).to_string() }),
        )
        .await;
    }
    grid
}

/// Asserts a 202 and answers the new version.
pub async fn accepted(r: reqwest::Response) -> u64 {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(status, 202, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["version"].as_u64().expect("version")
}

/// Reads an alliance as `token` once its view reached `version`.
pub async fn alliance(grid: &Grid, token: &str, id: &str, version: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = grid
            .app
            .get(&format!("/v1/alliances/{id}?min_version={version}"), token)
            .await;
        if r.status() == 200 {
            return r.json().await.expect("json");
        }
        assert!(
            Instant::now() < deadline,
            "alliance {id} v{version}: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A capacity-shared alliance with the certified tiers, credits to users.
pub fn found_body(name: &str) -> Value {
    json!({
        "name": name,
        "description": "Belgian nodes under one SLA",
        "rule": { "kind": "capacity" },
        "sla": {
            "target_bps": 9800,
            "tiers": [
                { "below_bps": 9800, "credit_bps": 1000 },
                { "below_bps": 9500, "credit_bps": 2500 },
                { "below_bps": 9000, "credit_bps": 5000 }
            ],
            "credits_to": "users"
        }
    })
}

/// Founds an alliance as `founder` (whose farm is approved) and gives it
/// its chain farm; (id, farm id, version).
pub async fn found(grid: &Grid, founder: &str) -> (String, u32, u64) {
    let r = grid
        .app
        .post(
            "/v1/alliances",
            &provider(founder),
            &found_body("Ghent Pool"),
        )
        .await;
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 202, "{v:#}");
    let id = v["id"].as_str().expect("id").to_string();
    let version = v["version"].as_u64().expect("version");
    alliance(grid, &provider(founder), &id, version).await;
    let stores = Stores::new(&grid.app.pool);
    let chain: Arc<dyn Chain> = grid.chain.clone();
    assert_eq!(
        assign_farms_once(&grid.app.pool, &stores, &*chain, &grid.custody)
            .await
            .expect("farm"),
        1
    );
    let a = alliance(grid, &provider(founder), &id, version + 1).await;
    let farm = a["farm_id"].as_u64().expect("farm") as u32;
    (id, farm, version + 1)
}

/// `PUT path` as `token`, optionally with `If-Match`.
pub async fn put(
    grid: &Grid,
    path: &str,
    token: &str,
    body: &Value,
    if_match: Option<u64>,
) -> reqwest::Response {
    let mut r = grid
        .http
        .put(grid.app.url(path))
        .bearer_auth(token)
        .json(body);
    if let Some(v) = if_match {
        r = r.header("if-match", format!("\"{v}\""));
    }
    r.send().await.expect("put")
}

/// Links `member`'s payout account (derived for the test) by signed challenge.
pub async fn link_payout(grid: &Grid, id: &str, member: &str) -> String {
    let signer = grid.custody.derived(&["test-payout", member]);
    let r = grid
        .app
        .post(
            &format!("/v1/alliances/{id}/payout-account/challenges"),
            &provider(member),
            &json!({ "account": signer.address(), "key_type": "sr25519" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.expect("json");
    let message = c["message"].as_str().expect("message");
    let signature = hex::encode(signer.sign(message.as_bytes()));
    let r = grid
        .app
        .post(
            &format!(
                "/v1/alliances/{id}/payout-account/challenges/{}/signature",
                c["challenge_id"].as_str().expect("challenge")
            ),
            &provider(member),
            &json!({ "signature": signature }),
        )
        .await;
    accepted(r).await;
    signer.address().to_string()
}

/// The settlement worker over the grid's chain.
pub fn settlement_worker(grid: &Grid) -> SettlementWorker {
    let chain: Arc<dyn Chain> = grid.chain.clone();
    SettlementWorker::new(
        grid.app.pool.clone(),
        chain,
        grid.custody.clone(),
        SettlementOptions::default(),
    )
}

/// Advances the chain in steps of at most 12 hours (its events outlive
/// each step) until its clock reaches `until`, keeping the follower caught up.
pub async fn advance_to(grid: &Grid, until: i64) {
    loop {
        let now = grid.now().await;
        if now >= until {
            return;
        }
        let minutes = ((until - now + 59) / 60).min(12 * 60) as u32;
        grid.advance(minutes.max(1)).await;
        crate::billing::until_followed(grid).await;
    }
}
