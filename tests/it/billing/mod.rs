//! Billing from the chain, end to end: the grid SIMULATOR's TFChain bills
//! the user's contracts every cycle, the chain follower debits the wallet
//! and the deployment, grace periods pause and resume workloads, an unpaid
//! deployment is deleted out of funds, the chain's price moves quotes.

mod backfill;
mod crash;
mod flows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use marketplace_app::bus::{Exec, Stores};
use marketplace_app::tfchain::{Chain, ChainEvent, EventId};
use marketplace_app::EventMetadata;
use marketplace_dev::grid_sim::SimOptions;
use marketplace_domain::wallet::{StripeId, Wallet, WalletCommand};
use marketplace_domain::TftPrice;
use marketplace_workers::chain::{self, ChainFollower, FollowerOptions};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::provisioning::{dev_seed, Grid};

/// A grid whose chain bills every `cycle_blocks` (600: an hour), with the
/// manager and treasury running; the follower is the test's to start.
/// The chain's clock starts at the wall clock, so that bills and card
/// credits fall in the same months of a statement.
pub async fn billing_grid(cycle_blocks: u32) -> Grid {
    let mut seed = dev_seed();
    seed.now = Some(Utc::now().timestamp());
    Grid::start_with(
        seed,
        SimOptions {
            workload_delay: Duration::ZERO,
            billing_cycle_blocks: cycle_blocks,
            ..SimOptions::default()
        },
    )
    .await
}

/// The follower in this process, polling fast, until the test ends.
pub fn spawn_follower(grid: &Grid) -> ChainFollower {
    let follower = follower(grid);
    tokio::spawn(follower.clone().run(grid.app.cancel.child_token()));
    follower
}

/// A follower over the grid's chain (not started).
pub fn follower(grid: &Grid) -> ChainFollower {
    let chain: Arc<dyn Chain> = grid.chain.clone();
    ChainFollower::new(
        grid.app.pool.clone(),
        chain,
        FollowerOptions {
            poll: Duration::from_millis(20),
            ..FollowerOptions::default()
        },
    )
}

/// Waits until the follower's cursor is at the chain's last event.
pub async fn until_followed(grid: &Grid) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let at = chain::cursor(&grid.app.pool).await.expect("cursor");
        let more = grid.chain.events(at, 1).await.expect("events");
        if more.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the follower is still behind the chain at {at:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every chain event, in order.
pub async fn all_events(grid: &Grid) -> Vec<ChainEvent> {
    let mut after: Option<EventId> = None;
    let mut all = Vec::new();
    loop {
        let page = grid.chain.events(after, 1_000).await.expect("events");
        let Some(last) = page.last() else {
            return all;
        };
        after = Some(last.id);
        all.extend(page);
    }
}

/// `ContractBilled` amounts for these contracts, in chain order.
pub async fn billed(grid: &Grid, contracts: &[u64]) -> Vec<u128> {
    all_events(grid)
        .await
        .into_iter()
        .filter(|e| e.is("smartContractModule", "ContractBilled"))
        .filter(|e| {
            e.data["contract_id"]
                .as_u64()
                .is_some_and(|c| contracts.contains(&c))
        })
        .map(|e| {
            e.data["amount_billed"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("amount_billed")
        })
        .collect()
}

/// Credits alice a paid card top-up of `cents` quoted at `usd_units` per
/// TFT (as the Stripe worker would), and waits until the treasury has
/// delivered it to her chain account. The top-up's id.
pub async fn credit(grid: &Grid, n: u32, cents: u64, usd_units: u64) -> Uuid {
    let stores = Stores::new(&grid.app.pool);
    let top_up = Uuid::from_u128(u128::from(n) + 0xb111);
    let intent = StripeId::new("payment_intent_id", &format!("pi_bill{n}")).expect("intent");
    let now = Utc::now();
    let meta = EventMetadata::for_worker("test", "credit");
    let price = TftPrice::from_usd_units(usd_units).expect("price");
    let (i1, i2) = (intent.clone(), intent);
    Exec::<Wallet>::new(&stores.wallets, "alice", meta.clone())
        .opening(|| WalletCommand::Open {
            owner: "alice".into(),
            at: now,
        })
        .run(|_| {
            Ok(WalletCommand::CreateTopUp {
                top_up_id: top_up,
                payment_intent_id: i1.clone(),
                usd_cents: cents,
                tft_price: price,
                quote_expires_at: now + chrono::Duration::minutes(10),
                at: now,
            })
        })
        .await
        .expect("top-up");
    Exec::<Wallet>::new(&stores.wallets, "alice", meta)
        .run(|_| {
            Ok(WalletCommand::RecordPaymentSucceeded {
                payment_intent_id: i2.clone(),
                amount_received_cents: cents,
                charge_id: StripeId::new("charge_id", &format!("ch_bill{n}")).expect("charge"),
                receipt_url: None,
                at: now,
            })
        })
        .await
        .expect("credit");
    top_up
}

/// Waits until alice's chain account has received the top-up.
pub async fn until_delivered(grid: &Grid, top_up: Uuid) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stores = Stores::new(&grid.app.pool);
        let (w, _) = marketplace_app::bus::load(&stores.wallets, "alice")
            .await
            .expect("wallet");
        let done = w
            .state()
            .and_then(|s| s.chain_transfers.get(&top_up).cloned())
            .is_some_and(|t| t.done.is_some());
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the top-up never reached the chain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Alice's chain account's free balance.
pub async fn chain_balance(grid: &Grid) -> u128 {
    grid.chain
        .free_balance(grid.custody.wallet("alice").address())
        .await
        .expect("balance")
}

/// `GET /v1/wallet` as alice.
pub async fn wallet(grid: &Grid) -> Value {
    let r = grid.app.get("/v1/wallet", &crate::common::alice()).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("wallet json")
}

/// Waits until `check` holds on alice's wallet (the view lags the store).
pub async fn wallet_until(grid: &Grid, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = wallet(grid).await;
        if check(&w) {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {w:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The workloads' states the simulated node reports for a contract.
pub async fn node_workload_states(grid: &Grid, node_id: u32, contract_id: u64) -> Vec<String> {
    let v = grid
        .sim_get(&format!("/sim/zos/nodes/{node_id}/deployments"))
        .await;
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["contract_id"] == json!(contract_id))
        .flat_map(|d| d["workloads"].as_array().cloned().unwrap_or_default())
        .filter_map(|w| w["result"]["state"].as_str().map(str::to_string))
        .collect()
}

/// Waits until alice's wallet view has recorded `n` bills; the sum of its
/// bill lines (negative: debits).
pub async fn view_bills(grid: &Grid, n: usize) -> i64 {
    let w = wallet_until(grid, &format!("{n} bills in the wallet view"), |w| {
        let bills: u64 = w["ledger"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["kind"] == json!("bill"))
            .filter_map(|e| e["bills"].as_u64())
            .sum();
        bills == n as u64
    })
    .await;
    w["ledger"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == json!("bill"))
        .filter_map(|e| e["amount_tft_units"].as_i64())
        .sum()
}
