//! Effectively once: chain events delivered twice, and a follower killed
//! with SIGKILL in the middle of a batch, still debit each bill once.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use marketplace_workers::runtime::Round;

use super::*;
use crate::common::alice;
use crate::provisioning::vm;

async fn bills_paid(grid: &Grid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'wallet' AND event_type = 'BillPaid'",
    )
    .fetch_one(&grid.app.pool)
    .await
    .expect("count")
}

async fn round_until_idle(follower: &ChainFollower) {
    for _ in 0..10_000 {
        if follower.round().await.expect("round") == Round::Idle {
            return;
        }
    }
    panic!("the follower never caught up");
}

async fn billed_vm(grid: &Grid, hours: u32) -> u64 {
    let top_up = credit(grid, 1, 10_000, 100_000).await;
    until_delivered(grid, top_up).await;
    let id = grid.request_as_alice(&vm("web", 2, true)).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    grid.advance(hours * 60).await;
    d["contract_id"].as_u64().expect("contract")
}

#[tokio::test]
async fn chain_events_delivered_twice_debit_once() {
    // Bills every minute of the simulated clock: many bills quickly.
    let grid = billing_grid(10).await;
    let contract = billed_vm(&grid, 3).await;
    let follower = follower(&grid);
    round_until_idle(&follower).await;
    let once = bills_paid(&grid).await;
    let chain_bills = billed(&grid, &[contract]).await;
    assert_eq!(
        once,
        chain_bills.len() as i64,
        "one BillPaid per ContractBilled"
    );

    // The cursor is lost: every event comes again.
    sqlx::query("DELETE FROM chain_cursors")
        .execute(&grid.app.pool)
        .await
        .expect("forget the cursor");
    round_until_idle(&follower).await;
    assert_eq!(bills_paid(&grid).await, once, "no bill recorded twice");
    let debits = -view_bills(&grid, chain_bills.len()).await;
    assert_eq!(
        u128::try_from(debits).expect("debits"),
        chain_bills.iter().sum::<u128>()
    );
}

fn follower_process(grid: &Grid) -> Child {
    Command::new(env!("CARGO_BIN_EXE_marketplace"))
        .arg("follow-chain")
        .env("DATABASE_URL", &grid.app.database_url)
        .env("TFCHAIN_URL", &grid.sim)
        .env("CHAIN_FOLLOWER_BATCH", "7")
        .env("CHAIN_FOLLOWER_POLL_MS", "20")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start `marketplace follow-chain`")
}

#[tokio::test]
async fn a_follower_killed_mid_batch_debits_each_bill_once_after_it_restarts() {
    let grid = billing_grid(10).await;
    let contract = billed_vm(&grid, 6).await;
    let chain_bills = billed(&grid, &[contract]).await;
    let total = chain_bills.len() as i64;
    assert!(total > 100, "enough bills to kill mid-way: {total}");

    let mut doomed = follower_process(&grid);
    let deadline = Instant::now() + Duration::from_secs(60);
    while bills_paid(&grid).await < total / 3 {
        assert!(Instant::now() < deadline, "the follower made no progress");
        assert!(
            doomed.try_wait().expect("state").is_none(),
            "the follower exited"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.kill().expect("SIGKILL the follower");
    doomed.wait().expect("reap");
    let at_kill = bills_paid(&grid).await;
    assert!(
        at_kill < total,
        "killed before the end ({at_kill} of {total})"
    );

    let mut restarted = follower_process(&grid);
    let deadline = Instant::now() + Duration::from_secs(60);
    while bills_paid(&grid).await < total {
        assert!(
            Instant::now() < deadline,
            "the restarted follower never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_followed(&grid).await;
    restarted.kill().expect("stop");
    restarted.wait().expect("reap");
    assert_eq!(bills_paid(&grid).await, total, "each bill once");
    let debits = -view_bills(&grid, total as usize).await;
    assert_eq!(
        u128::try_from(debits).expect("debits"),
        chain_bills.iter().sum::<u128>(),
        "the ledger took exactly what the chain billed"
    );
    let on_chain = chain_balance(&grid).await;
    wallet_until(&grid, "the ledger mirrors the chain account", |w| {
        w["balance_tft_units"]
            .as_i64()
            .and_then(|b| u128::try_from(b).ok())
            == Some(on_chain)
    })
    .await;
}

#[tokio::test]
async fn bills_are_debited_even_while_the_views_are_empty_or_rebuilding() {
    let grid = billing_grid(10).await;
    let contract = billed_vm(&grid, 1).await;
    // The follower finds whose contract it is in the store, not in views
    // that may lag behind the chain (or be rebuilt from scratch).
    for table in ["wallet_views", "deployment_views"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&grid.app.pool)
            .await
            .expect("empty the view");
    }
    round_until_idle(&follower(&grid)).await;
    let chain_bills = billed(&grid, &[contract]).await;
    assert!(!chain_bills.is_empty());
    assert_eq!(bills_paid(&grid).await, chain_bills.len() as i64);
}

#[tokio::test]
async fn the_follower_rides_out_the_chain_going_away_and_coming_back() {
    let grid = billing_grid(10).await;
    let follower = spawn_follower(&grid);
    let contract = billed_vm(&grid, 1).await;
    until_followed(&grid).await;
    // The chain's endpoint is gone for a while: rounds fail, nothing moves.
    let cursor = chain::cursor(&grid.app.pool).await.expect("cursor");
    grid.restart_sim(Duration::from_millis(800)).await;
    grid.advance(60).await;
    until_followed(&grid).await;
    assert!(chain::cursor(&grid.app.pool).await.expect("cursor") > cursor);
    let chain_bills = billed(&grid, &[contract]).await;
    assert_eq!(
        bills_paid(&grid).await,
        chain_bills.len() as i64,
        "each bill once"
    );
    let debits = -view_bills(&grid, chain_bills.len()).await;
    assert_eq!(
        u128::try_from(debits).expect("debits"),
        chain_bills.iter().sum::<u128>()
    );
    drop(follower);
}

#[tokio::test]
async fn a_bill_wakes_no_provisioning_job_while_other_deployment_events_do() {
    use marketplace_projections::{Projection, StoredEvent};
    use marketplace_workers::provisioning::intake::ProvisioningIntake;

    let grid = billing_grid(10).await;
    billed_vm(&grid, 1).await;
    round_until_idle(&follower(&grid)).await;
    let last_of = |event_type: &'static str| {
        let pool = grid.app.pool.clone();
        async move {
            sqlx::query_as::<_, StoredEvent>(
                "SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type,
                        event_version, payload, metadata, recorded_at
                   FROM events WHERE aggregate_type = 'deployment' AND event_type = $1
                  ORDER BY position DESC LIMIT 1",
            )
            .bind(event_type)
            .fetch_one(&pool)
            .await
            .expect("event")
        }
    };
    for (event_type, wakes) in [("DeploymentBilled", 0), ("DeploymentRunning", 1)] {
        let stored = last_of(event_type).await;
        // In a transaction of its own, so that the running manager cannot
        // settle (delete) the job before it is counted.
        let mut tx = grid.app.pool.begin().await.expect("tx");
        sqlx::query("DELETE FROM provisioning_jobs")
            .execute(&mut *tx)
            .await
            .expect("clear the queue");
        ProvisioningIntake
            .apply(&mut tx, &stored)
            .await
            .expect("apply");
        let woken: i64 =
            sqlx::query_scalar("SELECT count(*) FROM provisioning_jobs WHERE job_id = $1")
                .bind(&stored.aggregate_id)
                .fetch_one(&mut *tx)
                .await
                .expect("jobs");
        tx.rollback().await.expect("rollback");
        assert_eq!(woken, wakes, "{event_type}");
    }
}
