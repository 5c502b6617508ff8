//! A follower away longer than the chain keeps events: it reads what it
//! missed from the indexer (bills, uptime, prices) and follows live again,
//! every bill debited once; without an indexer it stops and says why.

use std::sync::Arc;

use marketplace_app::tfchain::{GraphqlIndexer, Indexer};
use marketplace_workers::runtime::Round;

use super::*;
use crate::common::alice;
use crate::provisioning::vm;

async fn until_idle(follower: &ChainFollower) {
    for _ in 0..10_000 {
        if follower.round().await.expect("round") == Round::Idle {
            return;
        }
    }
    panic!("the follower never caught up");
}

#[tokio::test]
async fn a_follower_away_longer_than_the_chain_keeps_events_backfills_from_the_indexer() {
    let mut seed = dev_seed();
    seed.now = Some(Utc::now().timestamp());
    let grid = Grid::start_with(
        seed,
        SimOptions {
            workload_delay: Duration::ZERO,
            billing_cycle_blocks: 10,
            // 20 minutes of events: a 3-hour absence loses most of them.
            event_retention_blocks: 200,
            ..SimOptions::default()
        },
    )
    .await;
    let top_up = credit(&grid, 1, 10_000, 100_000).await;
    until_delivered(&grid, top_up).await;
    let before = chain_balance(&grid).await;
    let indexer: Arc<dyn Indexer> =
        Arc::new(GraphqlIndexer::new(&format!("{}/graphql", grid.sim)).expect("indexer"));
    let follower = follower(&grid).with_indexer(indexer.clone());
    until_idle(&follower).await;

    // Away: the VM is created and billed for three hours meanwhile.
    let id = grid.request_as_alice(&vm("web", 2, true)).await;
    let d = grid.settled(&alice(), &id, &["running"]).await;
    let contract = d["contract_id"].as_u64().expect("contract");
    grid.advance(3 * 60).await;
    grid.control("/sim/chain/price", json!({ "price_musd": 12 }))
        .await;
    grid.advance(60).await;

    // Without the indexer the follower cannot know what it missed.
    let blind = super::follower(&grid);
    let lost = blind.round().await.expect_err("history lost");
    assert!(lost.to_string().contains("TFCHAIN_INDEXER_URL"), "{lost}");

    until_idle(&follower).await;
    let reports = indexer
        .bill_reports(&[contract], None, 10_000)
        .await
        .expect("bill reports");
    assert!(reports.len() > 100, "{} bills", reports.len());
    let billed: u128 = reports.iter().map(|r| r.amount_billed).sum();
    let debits = view_bills(&grid, reports.len()).await;
    assert_eq!(u128::try_from(-debits).expect("debits"), billed);
    assert_eq!(
        before - chain_balance(&grid).await,
        billed,
        "the chain took the same"
    );

    // Uptime reports of the absence, and the price stored meanwhile.
    let uptime: i64 =
        sqlx::query_scalar("SELECT count(*) FROM node_uptime_reports WHERE node_id = 1")
            .fetch_one(&grid.app.pool)
            .await
            .expect("uptime");
    assert!(uptime >= 4, "node 1 reported every 40 minutes: {uptime}");
    let price: Option<i32> = sqlx::query_scalar(
        "SELECT price_musd FROM tft_price_observations ORDER BY sequence DESC LIMIT 1",
    )
    .fetch_optional(&grid.app.pool)
    .await
    .expect("price");
    assert!(
        price.is_some_and(|p| p > 10),
        "the average moved: {price:?}"
    );

    // Live again: a further bill is debited once, like any other.
    grid.advance(10).await;
    until_idle(&follower).await;
    let all = indexer
        .bill_reports(&[contract], None, 10_000)
        .await
        .expect("bill reports");
    assert!(all.len() > reports.len());
    let debits = view_bills(&grid, all.len()).await;
    assert_eq!(
        u128::try_from(-debits).expect("debits"),
        all.iter().map(|r| r.amount_billed).sum::<u128>()
    );
}
