//! Crash safety: the manager killed between a contract and its deployment,
//! and the treasury's transfer settled across a crash.

use std::process::{Child, Command};
use std::time::Duration;

use chrono::Utc;
use marketplace_app::bus::{Exec, Stores};
use marketplace_app::tfchain::Chain;
use marketplace_app::EventMetadata;
use marketplace_domain::wallet::{Wallet, WalletCommand};
use marketplace_workers::provisioning::treasury::{remark_hash, tag};
use serde_json::json;
use uuid::Uuid;

use super::{dev_seed, vm, Grid, SEED};
use crate::common::alice;

fn manager_process(grid: &Grid) -> Child {
    Command::new(env!("CARGO_BIN_EXE_marketplace"))
        .arg("provision")
        .env("DATABASE_URL", &grid.app.database_url)
        .env("TFCHAIN_URL", &grid.sim)
        .env("MARKETPLACE_CHAIN_SEED", SEED)
        .env("PROVISIONING_LEASE_SECS", "2")
        .env_remove("RMB_URL")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start `marketplace provision`")
}

#[tokio::test]
async fn a_manager_killed_between_the_contract_and_the_deployment_leaves_exactly_one_contract() {
    let grid = Grid::without_manager(dev_seed()).await;
    // Node 1 cannot be reached: the manager contracts, then cannot send.
    grid.control("/sim/zos/nodes/1/unreachable", json!({}))
        .await;
    let mut manager = manager_process(&grid);
    let id = grid.request_as_alice(&vm("web", 2, false)).await;
    let d = grid.settled(&alice(), &id, &["provisioning"]).await;
    assert_eq!(d["node_id"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    manager.kill().expect("SIGKILL the manager");
    manager.wait().expect("reap");
    assert_eq!(
        grid.contracts().await.len(),
        1,
        "one contract before the crash"
    );

    grid.control("/sim/zos/nodes/1/heal", json!({})).await;
    let mut restarted = manager_process(&grid);
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    restarted.kill().expect("stop");
    restarted.wait().expect("reap");
    assert_eq!(d["status"], "running", "{d:#}");
    assert_eq!(d["node_id"], 1);
    let contracts = grid.contracts().await;
    assert_eq!(contracts.len(), 1, "no second contract: {contracts:#?}");
    assert_eq!(contracts[0]["contract_id"], d["contract_id"]);
}

/// Credits `cents` to alice's wallet as a paid card top-up would, at $0.01.
async fn credit(grid: &Grid, n: u32, cents: u64) -> Uuid {
    crate::billing::credit(grid, n, cents, 100_000).await
}

async fn balance_of(grid: &Grid, address: &str) -> u128 {
    grid.chain.free_balance(address).await.expect("balance")
}

async fn transfer_done(grid: &Grid, top_up: Uuid) -> bool {
    let stores = Stores::new(&grid.app.pool);
    let (w, _) = marketplace_app::bus::load(&stores.wallets, "alice")
        .await
        .expect("wallet");
    w.state()
        .and_then(|s| s.chain_transfers.get(&top_up).cloned())
        .is_some_and(|t| t.done.is_some())
}

async fn until_transferred(grid: &Grid, top_up: Uuid) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !transfer_done(grid, top_up).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the transfer never completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_credited_top_ups_tft_reaches_the_users_chain_account_exactly_once_across_a_crash() {
    let grid = Grid::without_manager(dev_seed()).await;
    let user = grid.custody.wallet("alice").address().to_string();
    let treasury = grid.custody.treasury().address().to_string();
    let treasury_before = balance_of(&grid, &treasury).await;
    let user_before = balance_of(&grid, &user).await;

    // $10 at $0.01 a TFT: 1,000 TFT.
    let first = credit(&grid, 1, 1_000).await;
    let tft_units = 1_000u128 * 10_000_000;
    // A crash after the transfer went out and before it was recorded: the
    // worker had started it and the chain has it, the wallet does not know.
    let stores = Stores::new(&grid.app.pool);
    let block = grid.chain.latest_block().await.expect("block");
    let (to, from_block) = (user.clone(), block.number);
    Exec::<Wallet>::new(
        &stores.wallets,
        "alice",
        EventMetadata::for_worker("treasury", "crashed"),
    )
    .run(|_| {
        Ok(WalletCommand::StartChainTransfer {
            top_up_id: first,
            to: to.clone(),
            from_block,
            at: Utc::now(),
        })
    })
    .await
    .expect("started");
    grid.chain
        .transfer_with_remark(&grid.custody.treasury(), &user, tft_units, &tag(first))
        .await
        .expect("the transfer that went out before the crash");

    // The worker starts again, and a second top-up is credited meanwhile.
    let cancel = grid.spawn_manager(Default::default());
    let second = credit(&grid, 2, 500).await;
    until_transferred(&grid, first).await;
    until_transferred(&grid, second).await;
    cancel.cancel();

    let both = tft_units + tft_units / 2;
    assert_eq!(
        balance_of(&grid, &user).await,
        user_before + both,
        "each top-up arrived once"
    );
    assert_eq!(balance_of(&grid, &treasury).await, treasury_before - both);
    let found = grid
        .chain
        .find_remark(&treasury, remark_hash(&tag(first)), from_block)
        .await
        .expect("search");
    assert!(
        found.is_some(),
        "the first transfer is the one found, not a new one"
    );
}
