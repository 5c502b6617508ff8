//! Money flowing the way TFChain makes it flow: hourly bills debit the
//! wallet to the base unit, a dry wallet is graced and resumed by a
//! top-up, one that stays dry is deleted out of funds, the staking
//! discount and the price come from the chain.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::common::alice;
use crate::provisioning::vm;

/// USD units per TFT for a quote at $0.01 (the simulator's genesis price).
const CENT: u64 = 100_000;
/// USD units per TFT for a quote at $1: a few TFT for a small top-up.
const DOLLAR: u64 = 10_000_000;

async fn running_vm(grid: &Grid, cpu: u32) -> (String, u64, u32) {
    let id = grid.request_as_alice(&vm("web", cpu, true)).await;
    let d = grid.settled(&alice(), &id, &["running", "failed"]).await;
    assert_eq!(d["status"], "running", "{d:#}");
    let contract = d["contract_id"].as_u64().expect("contract");
    let node = d["node_id"].as_u64().expect("node") as u32;
    (id, contract, node)
}

async fn notifications(grid: &Grid) -> Vec<Value> {
    let r = grid.app.get("/v1/notifications", &alice()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn notified(grid: &Grid, kind: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(n) = notifications(grid)
            .await
            .into_iter()
            .find(|n| n["kind"] == json!(kind))
        {
            return n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind} notification"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_vm_billed_over_48_hours_debits_exactly_what_the_chain_billed_and_took() {
    let grid = billing_grid(600).await;
    spawn_follower(&grid);
    let top_up = credit(&grid, 1, 10_000, CENT).await; // $100: 10,000 TFT
    until_delivered(&grid, top_up).await;
    // The chain takes no fees here: all that leaves the account is bills.
    let before = chain_balance(&grid).await;
    let (id, contract, _) = running_vm(&grid, 2).await;

    // 48 simulated hours, a few at a time as a real chain would go.
    for _ in 0..8 {
        grid.advance(6 * 60).await;
    }
    until_followed(&grid).await;

    let bills = billed(&grid, &[contract]).await;
    assert!(bills.len() >= 48, "an hourly bill: {} in 48 h", bills.len());
    let chain_total: u128 = bills.iter().sum();
    let after = chain_balance(&grid).await;
    let debits = view_bills(&grid, bills.len()).await;
    assert_eq!(
        u128::try_from(-debits).expect("debits"),
        chain_total,
        "the wallet's bill debits equal the chain's ContractBilled amounts"
    );
    assert_eq!(
        before - after,
        chain_total,
        "and the chain account's decrease"
    );
    let w = wallet(&grid).await;
    // The ledger mirrors the chain account to the base unit.
    assert_eq!(
        u128::try_from(w["balance_tft_units"].as_i64().expect("balance")).expect("positive"),
        after
    );
    let (mismatches, compared) =
        marketplace_workers::chain::reconcile_once(&grid.app.pool, &*grid.chain)
            .await
            .expect("reconcile");
    assert_eq!((mismatches, compared), (vec![], 1));
    // And the wallet's bills with the indexer's reports of its contracts.
    let indexer = marketplace_app::tfchain::GraphqlIndexer::new(&format!("{}/graphql", grid.sim))
        .expect("indexer");
    let bill_mismatches = marketplace_workers::chain::reconcile_bills(&grid.app.pool, &indexer)
        .await
        .expect("reconcile bills");
    assert_eq!(bill_mismatches, vec![]);

    // The months' statements add up to the ledger, to the base unit.
    let mut months: Vec<String> = w["ledger"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["at"].as_str().map(|at| at[..7].to_string()))
        .collect();
    months.sort();
    months.dedup();
    let mut statement_bills: i64 = 0;
    let mut closing = None;
    for month in &months {
        let r = grid
            .app
            .get(&format!("/v1/wallet/statements/{month}"), &alice())
            .await;
        assert_eq!(r.status(), 200);
        let s: Value = r.json().await.expect("statement");
        let sum_of_deployments: i64 = s["bills"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["total_tft_units"].as_i64())
            .sum();
        assert_eq!(
            Some(sum_of_deployments),
            s["total_bills_tft_units"].as_i64(),
            "{s:#}"
        );
        statement_bills += sum_of_deployments;
        closing = s["closing_balance_tft_units"].as_i64();
    }
    assert_eq!(u128::try_from(statement_bills).expect("bills"), chain_total);
    assert_eq!(
        closing,
        w["balance_tft_units"].as_i64(),
        "the last closing is the balance"
    );

    // The deployment knows what it cost; the runway is the chain's burn.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let d = loop {
        let d = grid.settled(&alice(), &id, &["running"]).await;
        if d["bills"].as_u64() == Some(bills.len() as u64) {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the view never had every bill: {d:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        d["billed_to_date_tft_units"].as_u64().map(u128::from),
        Some(chain_total),
        "{d:#}"
    );
    let runway = &w["runway"];
    assert_eq!(runway["source"], "bills", "{runway:#}");
    let last_hour = *bills.last().expect("a bill");
    assert_eq!(
        runway["hourly_burn_tft_units"].as_u64().map(u128::from),
        Some(last_hour)
    );
    assert_eq!(
        runway["runway_hours"].as_u64().map(u128::from),
        Some(after / last_hour)
    );
}

#[tokio::test]
async fn a_dry_wallet_is_graced_and_paused_and_a_top_up_resumes_it() {
    let grid = billing_grid(600).await;
    spawn_follower(&grid);
    let top_up = credit(&grid, 1, 500, DOLLAR).await; // $5 at $1: 5 TFT, about 4 hours
    until_delivered(&grid, top_up).await;
    let (id, contract, node) = running_vm(&grid, 2).await;

    // Two cycles: a first bill (part of an hour) and a full hour's; the
    // runway is the chain's burn, hours, not a day.
    grid.advance(121).await;
    until_followed(&grid).await;
    // The view has both bills before the worker measures.
    view_bills(&grid, billed(&grid, &[contract]).await.len()).await;
    let runway = marketplace_workers::stripe::RunwayWorker::new(
        grid.app.pool.clone(),
        marketplace_domain::TftPrice::from_usd_units(CENT).expect("price"),
        vec![24],
        Duration::from_secs(3600),
    );
    runway.measure_once().await.expect("runway");
    let low = notified(&grid, "balance_low").await;
    assert_eq!(low["details"]["threshold_hours"], 24, "{low:#}");

    grid.advance(8 * 60).await;
    until_followed(&grid).await;
    let d = grid.settled(&alice(), &id, &["suspended"]).await;
    assert!(d["grace_since"].is_string(), "{d:#}");
    let states = node_workload_states(&grid, node, contract).await;
    assert!(
        !states.is_empty() && states.iter().all(|s| s == "paused"),
        "{states:?}"
    );
    let n = notified(&grid, "grace_period_started").await;
    assert!(n["details"]["deletion_at"].is_string(), "{n:#}");
    assert_eq!(n["deployment_id"], json!(id));

    // A top-up reaches the chain account; the next cycle ends the grace.
    let again = credit(&grid, 2, 5_000, DOLLAR).await; // $50 at $1: 50 TFT
    until_delivered(&grid, again).await;
    grid.advance(60).await;
    until_followed(&grid).await;
    let d = grid.settled(&alice(), &id, &["running"]).await;
    assert!(d["grace_since"].is_null(), "{d:#}");
    let states = node_workload_states(&grid, node, contract).await;
    assert!(states.iter().all(|s| s == "ok"), "{states:?}");
    notified(&grid, "grace_period_ended").await;

    // The same notifications as server-sent events, resumable by position.
    let open = |last: Option<String>| {
        let mut request = grid
            .app
            .client
            .get(grid.app.url("/v1/notifications/stream"))
            .bearer_auth(alice());
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        request.send()
    };
    let response = open(None).await.expect("stream");
    assert_eq!(response.status(), 200);
    let mut stream = crate::deployments_api::SseStream {
        response,
        buf: Vec::new(),
    };
    let mut kinds = Vec::new();
    let mut ids = Vec::new();
    // Money's notifications; the deployment's own (running) come between.
    while kinds.len() < 3 {
        let e = stream.next().await.expect("an event");
        assert_eq!(e.data["kind"].as_str(), e.event.as_deref());
        if e.event.as_deref() == Some("deployment_running") {
            continue;
        }
        kinds.push(e.event.clone().unwrap_or_default());
        ids.push(e.id.clone().unwrap_or_default());
        assert_eq!(e.data["kind"].as_str(), e.event.as_deref());
    }
    assert_eq!(
        kinds,
        ["balance_low", "grace_period_started", "grace_period_ended"]
    );
    let mut resumed = crate::deployments_api::SseStream {
        response: open(Some(ids[1].clone())).await.expect("stream"),
        buf: Vec::new(),
    };
    let mut next = resumed.next().await.expect("an event");
    while next.event.as_deref() == Some("deployment_running") {
        next = resumed.next().await.expect("an event");
    }
    assert_eq!(next.event.as_deref(), Some("grace_period_ended"));
    // What the chain took while it could, and after, the ledger took too.
    let bills = billed(&grid, &[contract]).await;
    let debits = view_bills(&grid, bills.len()).await;
    assert_eq!(
        u128::try_from(-debits).expect("debits"),
        bills.iter().sum::<u128>()
    );
}

#[tokio::test]
async fn a_wallet_that_stays_dry_is_deleted_out_of_funds_after_14_days_and_its_capacity_and_ip_freed(
) {
    let grid = billing_grid(600).await;
    spawn_follower(&grid);
    let top_up = credit(&grid, 1, 500, DOLLAR).await;
    until_delivered(&grid, top_up).await;
    let (id, contract, node) = running_vm(&grid, 2).await;
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM capacity_reservations WHERE deployment_id::text = $1",
    )
    .bind(&id)
    .fetch_one(&grid.app.pool)
    .await
    .expect("reservations");
    assert!(held > 0, "a running VM holds its node's capacity");

    grid.advance(8 * 60).await;
    until_followed(&grid).await;
    grid.settled(&alice(), &id, &["suspended"]).await;
    // Thirteen days later it is still there, paused.
    for _ in 0..13 {
        grid.advance(24 * 60).await;
    }
    until_followed(&grid).await;
    grid.settled(&alice(), &id, &["suspended"]).await;
    // Past fourteen days the chain deletes it.
    grid.advance(24 * 60).await;
    until_followed(&grid).await;
    let d = grid.settled(&alice(), &id, &["deleted"]).await;
    assert_eq!(d["deletion_cause"], "out_of_funds", "{d:#}");
    notified(&grid, "deleted_out_of_funds").await;

    // The chain freed the IP and the node dropped the workloads; our
    // capacity reservations went with them.
    assert!(grid.live_contracts_on(node).await.is_empty());
    let events = all_events(&grid).await;
    let elapsed = events.iter().any(|e| {
        e.is("smartContractModule", "ContractGracePeriodElapsed")
            && e.data["contract_id"] == json!(contract)
    });
    assert!(elapsed, "the chain says the grace period elapsed");
    assert!(events.iter().any(
        |e| e.is("smartContractModule", "IPsFreed") && e.data["contract_id"] == json!(contract)
    ));
    assert!(node_workload_states(&grid, node, contract).await.is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM capacity_reservations WHERE deployment_id::text = $1",
        )
        .bind(&id)
        .fetch_one(&grid.app.pool)
        .await
        .expect("reservations");
        if held == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reservations still held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_wallet_holding_three_months_of_cost_is_billed_at_bronze() {
    let grid = billing_grid(600).await;
    spawn_follower(&grid);
    // The 2-vCPU VM with an IP on certified node 1 costs
    // (0.5 CU x 100,000 + 0.05 SU x 50,000 + 40,000) x 1.25 = 115,625
    // USD units an hour: 1.15625 TFT at $0.01, 832.5 TFT a 30-day month.
    // $26 buys 2,600 TFT: 3.12 months, Bronze (3 <= months < 6).
    let top_up = credit(&grid, 1, 2_600, CENT).await;
    until_delivered(&grid, top_up).await;
    let (_, contract, _) = running_vm(&grid, 2).await;
    grid.advance(61).await;
    until_followed(&grid).await;
    let levels: Vec<Value> = all_events(&grid)
        .await
        .into_iter()
        .filter(|e| {
            e.is("smartContractModule", "ContractBilled")
                && e.data["contract_id"] == json!(contract)
        })
        .map(|e| e.data["discount_level"].clone())
        .collect();
    assert_eq!(levels.first(), Some(&json!("Bronze")), "{levels:?}");
    let w = wallet_until(&grid, "a bill", |w| w["runway"]["source"] == "bills").await;
    assert_eq!(w["runway"]["discount_level"], "bronze", "{:#}", w["runway"]);
    assert_eq!(w["runway"]["discount_percent"], 30);
}

async fn quote(grid: &Grid, body: &Value) -> Value {
    let r = grid.app.post("/v1/quotes", &alice(), body).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("quote")
}

#[tokio::test]
async fn a_price_the_chain_stores_moves_the_next_quote() {
    let grid = billing_grid(600).await;
    spawn_follower(&grid);
    let body = json!({
        "spec": vm("web", 2, false)["spec"],
        "certified": false
    });
    until_followed(&grid).await;
    let at_genesis = quote(&grid, &body).await;
    assert_eq!(at_genesis["tft_price_usd_units"], 100_000, "{at_genesis:#}");

    // The oracle reports $0.05: the chain stores the new average.
    let stored = grid
        .control("/sim/chain/price", json!({ "price_musd": 50 }))
        .await;
    let average = stored["average_musd"].as_u64().expect("average");
    until_followed(&grid).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let q = quote(&grid, &body).await;
        if q["tft_price_usd_units"] == json!(average * 10_000) {
            let before = at_genesis["hourly_tft_units"].as_u64().expect("hourly");
            let after = q["hourly_tft_units"].as_u64().expect("hourly");
            assert!(
                after < before,
                "a dearer TFT buys the hour with fewer: {before} -> {after}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the quote never moved: {q:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn auto_top_up_fires_when_the_chains_bills_take_the_balance_below_its_threshold() {
    use marketplace_workers::stripe::{AutoTopUpOptions, AutoTopUpResult, AutoTopUpWorker};

    let mut seed = dev_seed();
    seed.now = Some(Utc::now().timestamp());
    let grid = Grid::with_sim_and_app(
        seed,
        SimOptions {
            workload_delay: Duration::ZERO,
            ..SimOptions::default()
        },
        crate::common::AppOptions {
            projections: true,
            stripe: true,
            ..crate::common::AppOptions::default()
        },
    )
    .await;
    grid.spawn_manager(Default::default());
    spawn_follower(&grid);
    let top_up = credit(&grid, 1, 500, DOLLAR).await; // 5 TFT
    until_delivered(&grid, top_up).await;

    // A card on file, and the rule: below 4 TFT, charge $10.
    let r = grid
        .app
        .post("/v1/wallet/setup-intents", &alice(), &json!({}))
        .await;
    assert_eq!(r.status(), 201);
    let si: Value = r.json().await.expect("json");
    let stripe = grid.app.stripe.as_ref().expect("localstripe");
    stripe
        .save_card(
            si["setup_intent_id"].as_str().expect("si"),
            "4242424242424242",
        )
        .await;
    wallet_until(&grid, "card saved", |w| {
        w["payment_methods"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    })
    .await;
    let r = grid
        .app
        .client
        .put(grid.app.url("/v1/wallet/auto-top-up"))
        .bearer_auth(alice())
        .json(&json!({ "threshold_tft_units": 4 * 10_000_000i64, "amount_cents": 1_000, "monthly_cap_cents": 5_000 }))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());

    let worker = AutoTopUpWorker::new(
        grid.app.pool.clone(),
        grid.app.payments.clone().expect("payments"),
        AutoTopUpOptions {
            interval: Duration::from_secs(3600),
            retry_after: chrono::Duration::hours(24),
            tft_price: marketplace_domain::TftPrice::from_usd_units(CENT).expect("price"),
        },
    );
    running_vm(&grid, 2).await;
    // Above the threshold nothing is charged.
    assert!(!matches!(
        worker.check("alice").await.expect("check"),
        AutoTopUpResult::Charged(_)
    ));

    // An hour's bill (about 1.16 TFT) takes 5 TFT below 4: the card is charged.
    grid.advance(61).await;
    until_followed(&grid).await;
    wallet_until(&grid, "below the threshold", |w| {
        w["balance_tft_units"]
            .as_i64()
            .is_some_and(|b| b < 4 * 10_000_000)
    })
    .await;
    let result = worker.check("alice").await.expect("check");
    assert!(matches!(result, AutoTopUpResult::Charged(_)), "{result:?}");
    let w = wallet_until(&grid, "the automatic top-up credited", |w| {
        w["top_ups"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["origin"] == "auto" && t["status"] == "credited")
        })
    })
    .await;
    assert!(
        w["balance_tft_units"]
            .as_i64()
            .is_some_and(|b| b > 4 * 10_000_000),
        "{w:#}"
    );
}
