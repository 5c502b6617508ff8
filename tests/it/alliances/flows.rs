//! Two simulated months of an alliance of three providers and five nodes.

use std::collections::BTreeMap;

use marketplace_app::bus::load;
use marketplace_app::tfchain::Chain;
use marketplace_app::Stores;
use marketplace_domain::alliance::{CreditsTo, Settlement};
use marketplace_domain::wallet::EntryKind;
use serde_json::{json, Value};

use super::*;
use crate::billing::{spawn_follower, until_followed};
use crate::common::{alice, bob};
use crate::nodes_api::approve_farm;
use crate::provisioning::vm;

const MEMBERS: [&str; 3] = ["p1", "p2", "p3"];

async fn settlement_of(grid: &Grid, id: &str, period: Period) -> Settlement {
    let stores = Stores::new(&grid.app.pool);
    let (a, _) = load(&stores.alliances, id).await.expect("alliance");
    a.state()
        .and_then(|s| s.settlements.get(&period).cloned())
        .unwrap_or_else(|| panic!("{period} is not settled"))
}

async fn balance(grid: &Grid, account: &str) -> u128 {
    grid.chain.free_balance(account).await.expect("balance")
}

/// Runs the settlement worker until `period` is settled and every share
/// and credit of it is recorded.
async fn settle_and_pay(grid: &Grid, id: &str, period: Period) -> Settlement {
    let worker = settlement_worker(grid);
    for _ in 0..5 {
        worker.round().await.expect("settlement round");
    }
    let s = settlement_of(grid, id, period).await;
    let stores = Stores::new(&grid.app.pool);
    let (a, _) = load(&stores.alliances, id).await.expect("alliance");
    let paid = a
        .state()
        .and_then(|st| st.payouts.get(&period).cloned())
        .unwrap_or_default();
    for (m, share) in &s.shares {
        if *share > 0 {
            assert_eq!(paid.get(m).map(|p| p.amount), Some(*share), "{m} paid");
        }
    }
    s
}

#[tokio::test]
async fn an_alliance_settles_two_months_by_its_rules_and_pays_each_member_once() {
    let dec = this_month();
    let jan = dec.next();
    let grid = alliance_grid(dec).await;
    spawn_follower(&grid);
    for (i, p) in MEMBERS.iter().enumerate() {
        approve_farm(&grid.app, p, i as u32 + 1).await;
    }

    // p1 founds; p2 and p3 join.
    let (id, farm, _) = found(&grid, "p1").await;
    for p in ["p2", "p3"] {
        let version = accepted(
            grid.app
                .post(
                    &format!("/v1/alliances/{id}/invitations"),
                    &provider("p1"),
                    &json!({ "provider": p }),
                )
                .await,
        )
        .await;
        alliance(&grid, &provider(p), &id, version).await;
        accepted(
            grid.app
                .post(
                    &format!("/v1/alliances/{id}/invitation/accept"),
                    &provider(p),
                    &json!({}),
                )
                .await,
        )
        .await;
    }
    // Five nodes, each moved into the alliance's farm on chain.
    for (p, node) in [("p1", 1), ("p1", 2), ("p2", 3), ("p2", 4), ("p3", 5)] {
        accepted(
            grid.app
                .post(
                    &format!("/v1/alliances/{id}/nodes"),
                    &provider(p),
                    &json!({ "node_id": node }),
                )
                .await,
        )
        .await;
        grid.control(
            &format!("/sim/nodes/{node}/farm"),
            json!({ "farm_id": farm }),
        )
        .await;
    }
    let mut payout = BTreeMap::new();
    for p in MEMBERS {
        payout.insert(p, link_payout(&grid, &id, p).await);
    }

    // Users deploy: one VM of 6 vCPUs per node (8 each), three alice's, two bob's.
    let mut on_node = BTreeMap::new();
    for (i, user) in ["alice", "bob", "alice", "bob", "alice"].iter().enumerate() {
        let token = if *user == "alice" { alice() } else { bob() };
        let d = grid.request(&token, &vm(&format!("vm{i}"), 6, false)).await;
        let detail = grid.settled(&token, &d, &["running", "failed"]).await;
        assert_eq!(detail["status"], "running", "{detail:#}");
        let node = detail["node_id"].as_u64().expect("node") as u32;
        let contract = detail["contract_id"].as_u64().expect("contract");
        on_node.insert(node, (user.to_string(), contract));
    }
    assert_eq!(on_node.len(), 5, "one VM per node: {on_node:?}");
    let (down_user, _) = on_node[&1].clone();

    // Into the month; node 1 is down for 20 hours on its fifth day.
    advance_to(&grid, dec.start() + 4 * 86_400).await;
    grid.control("/sim/nodes/1/down", json!({})).await;
    advance_to(&grid, dec.start() + 4 * 86_400 + 20 * 3_600).await;
    grid.control("/sim/nodes/1/up", json!({})).await;
    advance_to(&grid, dec.start() + 5 * 86_400).await;

    // Live: each node's uptime this month against the SLA, projected shares.
    let live = alliance(&grid, &provider("p3"), &id, 0).await;
    let nodes = live["nodes"].as_array().cloned().expect("nodes");
    assert_eq!(nodes.len(), 5);
    for n in &nodes {
        let expected = n["node_id"] != 1;
        assert_eq!(n["meets_sla"], json!(expected), "{n:#}");
        assert_eq!(n["target_bps"], 9800);
    }
    let projected = live["projected_shares"]
        .as_array()
        .cloned()
        .expect("shares");
    assert_eq!(projected.len(), 3, "{live:#}");
    assert!(
        live["income_so_far"].as_str().is_some_and(|i| i != "0"),
        "{live:#}"
    );
    // Operators see every alliance.
    let all: Value = grid
        .app
        .get("/v1/alliances", &crate::common::operator())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["items"][0]["id"], json!(id));

    // Mid-month: p2 withdraws node 4 (it counts until the month's end) and
    // the founder changes the rule to equal shares (from next month).
    advance_to(&grid, dec.start() + 12 * 86_400).await;
    accepted(
        grid.app
            .post(
                &format!("/v1/alliances/{id}/nodes/4/withdraw"),
                &provider("p2"),
                &json!({}),
            )
            .await,
    )
    .await;
    let r = put(
        &grid,
        &format!("/v1/alliances/{id}/rule"),
        &provider("p1"),
        &json!({ "kind": "equal" }),
        None,
    )
    .await;
    let version = accepted(r).await;
    let view = alliance(&grid, &provider("p2"), &id, version).await;
    assert_eq!(view["current_rule"]["kind"], "capacity", "{view:#}");
    assert_eq!(view["rule"]["kind"], "equal");

    // The month ends; p2 moves node 4 back to its farm as it leaves.
    advance_to(&grid, dec.end() - 3_600).await;
    grid.control("/sim/nodes/4/farm", json!({ "farm_id": 2 }))
        .await;
    advance_to(&grid, dec.end() + 3 * 3_600).await;
    until_followed(&grid).await;

    // A worker killed mid-payout: p1's transfer went out, its record did not.
    let worker = settlement_worker(&grid);
    let now = marketplace_app::alliance::chain_now(&grid.app.pool)
        .await
        .expect("now")
        .expect("followed");
    assert_eq!(worker.settle_due(&id, now).await.expect("settle"), 1);
    let s = settlement_of(&grid, &id, dec).await;
    let p1_share = s.shares["p1"];
    worker
        .transfer(&id, dec, "member:p1", &payout["p1"], p1_share)
        .await
        .expect("the crashed worker's transfer");
    // ... and it died before keeping even its own note of it.
    sqlx::query("UPDATE alliance_transfers SET transfer = NULL WHERE recipient = 'member:p1'")
        .execute(&grid.app.pool)
        .await
        .expect("forget");
    // Restarted, it pays everyone, p1 no second time.
    let s = settle_and_pay(&grid, &id, dec).await;
    for p in MEMBERS {
        assert_eq!(
            balance(&grid, &payout[p]).await,
            s.shares[p],
            "{p}'s account holds exactly its share, once"
        );
    }

    // Exactly the income, by the capacity rule, less the down node's credit.
    let stores = Stores::new(&grid.app.pool);
    let (a, _) = load(&stores.alliances, &id).await.expect("alliance");
    let figures: Vec<Value> = {
        let r = grid
            .app
            .get(&format!("/v1/alliances/{id}/settlements"), &provider("p3"))
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        v[0]["nodes"].as_array().cloned().expect("nodes")
    };
    assert_eq!(
        figures.len(),
        5,
        "the withdrawn node counts to the month's end"
    );
    let income: u128 = figures
        .iter()
        .map(|n| n["income"].as_u64().expect("income") as u128)
        .sum();
    assert!(income > 0);
    assert_eq!(s.income, income);
    let credits: u128 = s.user_credits.values().sum();
    assert_eq!(
        s.shares.values().sum::<u128>() + credits + s.carried,
        s.income + s.carried_in
    );
    let node1 = figures.iter().find(|n| n["node_id"] == 1).expect("node 1");
    let uptime = node1["uptime_bps"].as_u64().expect("uptime");
    assert!((9_500..9_800).contains(&uptime), "20 h down: {uptime}");
    let node1_income = node1["income"].as_u64().expect("income") as u128;
    let credit = s.node_credits.get(&1).expect("node 1 credits");
    assert_eq!(credit.to, CreditsTo::Users);
    assert_eq!(credit.amount, node1_income * 1_000 / 10_000);
    assert_eq!(s.node_credits.len(), 1, "only the down node credits");
    assert_eq!(s.user_credits.get(&down_user), Some(&credit.amount));
    // Equal capacity per node: p1 and p2 (two nodes) get twice p3 (one).
    let distributable = s.income - credits;
    for (p, nodes) in [("p1", 2u128), ("p2", 2), ("p3", 1)] {
        let exact = distributable * nodes / 5;
        assert!(
            s.shares[p].abs_diff(exact) <= 1,
            "{p}: {} vs {exact}",
            s.shares[p]
        );
    }
    // The credited user's wallet got exactly the credit.
    let (w, _) = load(&stores.wallets, &down_user).await.expect("wallet");
    let sla_credits: Vec<i128> = w
        .ledger()
        .iter()
        .filter(|e| e.kind == EntryKind::SlaCredit)
        .map(|e| e.amount)
        .collect();
    assert_eq!(sla_credits, vec![credit.amount as i128]);
    // ... and the TFT in the user's chain account, from the alliance's.
    let user_account = grid.custody.wallet(&down_user).address().to_string();
    let farm_account = a
        .state()
        .and_then(|s| s.farm.clone())
        .expect("farm")
        .account;
    let from_block: i64 = sqlx::query_scalar(
        "SELECT from_block FROM alliance_transfers WHERE recipient = 'user:' || $1",
    )
    .bind(&down_user)
    .fetch_one(&grid.app.pool)
    .await
    .expect("transfer row");
    let mut after = Some(marketplace_app::tfchain::EventId {
        block_number: from_block as u32,
        event_index: 0,
    });
    let mut events = Vec::new();
    loop {
        let page = grid.chain.events(after, 1_000).await.expect("events");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        events.extend(page);
    }
    let sent: Vec<u128> = events
        .into_iter()
        .filter(|e| e.is("balances", "Transfer"))
        .filter(|e| e.data["from"] == json!(farm_account.as_str()))
        .filter(|e| e.data["to"] == json!(user_account))
        .filter_map(|e| e.data["amount"].as_str().and_then(|a| a.parse().ok()))
        .collect();
    assert_eq!(sent, vec![credit.amount]);
    // What is left in the alliance's account: the carried remainder, and
    // what January brought so far.
    let account = a
        .state()
        .and_then(|s| s.farm.clone())
        .expect("farm")
        .account;
    let jan_so_far = marketplace_app::alliance::income(
        &grid.app.pool,
        farm,
        &[1, 2, 3, 4, 5],
        jan.start(),
        grid.now().await + 1,
    )
    .await
    .expect("income")
    .values()
    .sum::<u128>();
    assert_eq!(
        balance(&grid, account.as_str()).await,
        s.carried + jan_so_far
    );

    // January: equal shares among members with a counted node; the users
    // leave before its end, so all of it is paid out by its settlement.
    let before: BTreeMap<&str, u128> = {
        let mut m = BTreeMap::new();
        for p in MEMBERS {
            m.insert(p, balance(&grid, &payout[p]).await);
        }
        m
    };
    advance_to(&grid, jan.end() - 6 * 3_600).await;
    for (node, (user, contract)) in &on_node {
        let signer = grid.custody.wallet(user);
        grid.chain
            .cancel_contract(&signer, *contract)
            .await
            .unwrap_or_else(|e| panic!("cancel on node {node}: {e}"));
    }
    advance_to(&grid, jan.end() + 3 * 3_600).await;
    until_followed(&grid).await;
    // January is settled and paid by the workers as the app runs them.
    let workers = grid.app.cancel.child_token();
    let chain: Arc<dyn Chain> = grid.chain.clone();
    marketplace_workers::alliance::spawn(
        &grid.app.pool,
        chain,
        grid.custody.clone(),
        SettlementOptions::default(),
        std::time::Duration::from_millis(50),
        &workers,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let s2 = loop {
        let (a, _) = load(&stores.alliances, &id).await.expect("alliance");
        let st = a.state().expect("state");
        if let Some(s2) = st.settlements.get(&jan) {
            let paid = st.payouts.get(&jan).map_or(0, |p| p.len());
            if paid == s2.shares.values().filter(|v| **v > 0).count() {
                break s2.clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "January is not settled and paid"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    workers.cancel();
    assert!(s2.income > 0);
    let counted: Vec<&str> = MEMBERS.to_vec();
    let each = (s2.income - s2.user_credits.values().sum::<u128>()) / 3;
    for p in &counted {
        assert!(
            s2.shares[*p].abs_diff(each) <= 1,
            "equal in January: {:?}",
            s2.shares
        );
        assert_eq!(
            balance(&grid, &payout[*p]).await - before[*p],
            s2.shares[*p]
        );
    }
    assert_eq!(
        balance(&grid, account.as_str()).await,
        s2.carried,
        "the alliance's account holds exactly the carried remainder"
    );

    // A member's statement, as JSON and as a PDF.
    let r = grid
        .app
        .get(
            &format!("/v1/alliances/{id}/statements/{dec}"),
            &provider("p2"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let st: Value = r.json().await.expect("json");
    assert_eq!(st["share"], json!(s.shares["p2"].to_string()));
    assert_eq!(st["paid"], json!(s.shares["p2"].to_string()));
    // Operators read any member's; a member only its own.
    let r = grid
        .app
        .get(
            &format!("/v1/alliances/{id}/statements/{dec}?member=p3"),
            &crate::common::operator(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = grid
        .app
        .get(
            &format!("/v1/alliances/{id}/statements/{dec}?member=p3"),
            &provider("p2"),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(st["nodes"].as_array().map(Vec::len), Some(2));
    let r = grid
        .http
        .get(
            grid.app
                .url(&format!("/v1/alliances/{id}/statements/{dec}")),
        )
        .bearer_auth(provider("p2"))
        .header("accept", "application/pdf")
        .send()
        .await
        .expect("pdf");
    assert_eq!(r.status(), 200);
    let pdf = r.bytes().await.expect("bytes");
    assert!(pdf.starts_with(b"%PDF"));

    // Replay equals live: the alliance views rebuilt from the store are the
    // tables live processing built.
    use marketplace_projections::alliances::AllianceProjection;
    use marketplace_projections::tail;
    tail::catch_up(&grid.app.pool, &AllianceProjection, 100)
        .await
        .expect("catch up");
    let live = crate::common::dump_views(&grid.app.pool, &AllianceProjection).await;
    tail::rebuild(&grid.app.pool, &AllianceProjection, 7)
        .await
        .expect("rebuild");
    let fresh = crate::common::dump_views(&grid.app.pool, &AllianceProjection).await;
    assert_eq!(live, fresh);
}
