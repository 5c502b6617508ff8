//! The monthly settlement of one large alliance: BENCH_MEMBERS members
//! (100) contributing BENCH_NODES nodes (2,000) over a 31-day month, each
//! node reporting uptime every 40 minutes (about 2.3 million reports), one
//! contract per node billed hourly (about 1.5 million bills) and its
//! rewards distributed every 24 bills, the bills paid by BENCH_USERS users
//! (200). One node in twenty is down for 20 hours, so it gives an SLA
//! credit to its users.
//!
//! The alliance is built through the command bus (founding, farm, invitations,
//! contributions); the chain facts the follower would keep are written
//! straight into its tables (`chain_contracts`, `chain_bills`,
//! `chain_rewards`, `chain_node_farms`, `node_uptime_reports`). Measured:
//! reading and computing the period's figures (`period_figures`: income by
//! node and farm, bills by user, uptime by the 80-minute rule), and the whole
//! settlement as the worker runs it (`settle_due`: load, figures, `Settle`,
//! commit of `AllianceSettled`), the figures BENCH_RUNS times (3), the
//! settlement once (a period settles once).
//!
//! `cargo bench --bench alliance_settlement`. Environment: BENCH_MEMBERS,
//! BENCH_NODES, BENCH_USERS, BENCH_RUNS, BENCH_DURABLE (1).

mod common;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use common::*;
use marketplace_app::alliance::period_figures;
use marketplace_app::bus::load;
use marketplace_app::tfchain::http::HttpChain;
use marketplace_app::tfchain::{Chain, Custody};
use marketplace_app::{EventMetadata, Exec, Stores};
use marketplace_dev::embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use marketplace_domain::alliance::{
    Alliance, AllianceCommand, AllianceFarm, AllianceName, Capacity, ChainAccount, CreditsTo,
    Governance, Period, SharingRule, Sla, SlaTier,
};
use marketplace_domain::wallet::{Wallet, WalletCommand};
use marketplace_domain::{Actor, Role};
use marketplace_workers::alliance::{SettlementOptions, SettlementWorker};
use secrecy::SecretString;
use sqlx::PgPool;

const CHAIN_SEED: &str = "0x5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const FARM: u32 = 9_000;

fn provider(i: usize) -> Actor {
    Actor {
        subject: format!("member-{i:03}"),
        role: Role::CloudProvider,
    }
}

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).expect("time")
}

async fn build_alliance(
    stores: &Stores,
    custody: &Custody,
    id: &str,
    month: Period,
    members: usize,
    nodes: usize,
) -> anyhow::Result<()> {
    let meta = EventMetadata::for_worker("bench", "alliance");
    let t = month.start() + 3_600;
    let run = |cmd: AllianceCommand| {
        let meta = meta.clone();
        async move {
            Exec::<Alliance>::new(&stores.alliances, id, meta)
                .run(move |_| Ok(cmd.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
    };
    let tiers = vec![
        SlaTier {
            below_bps: 9_800,
            credit_bps: 1_000,
        },
        SlaTier {
            below_bps: 9_500,
            credit_bps: 2_500,
        },
        SlaTier {
            below_bps: 9_000,
            credit_bps: 5_000,
        },
    ];
    run(AllianceCommand::Found {
        by: provider(0),
        provider_approved: true,
        name: AllianceName::new("Bench alliance")?,
        description: String::new(),
        rule: SharingRule::UptimeWeightedCapacity,
        sla: Sla::new(9_800, tiers, CreditsTo::Users)?,
        governance: Governance::Founder,
        period: month,
        at: at(t),
    })
    .await?;
    let account = custody.alliance(id);
    run(AllianceCommand::AssignFarm {
        farm: AllianceFarm {
            farm_id: FARM,
            twin_id: 90_000,
            account: ChainAccount::new(account.address())?,
        },
        at: at(t),
    })
    .await?;
    for m in 1..members {
        run(AllianceCommand::Invite {
            by: provider(0),
            invitee: provider(m).subject,
            at: at(t),
        })
        .await?;
        run(AllianceCommand::AcceptInvitation {
            by: provider(m),
            at: at(t),
        })
        .await?;
    }
    for n in 1..=nodes {
        let m = n % members;
        run(AllianceCommand::ContributeNode {
            by: provider(m),
            node_id: n as u32,
            farm_id: 1 + m as u32,
            capacity: Capacity::new(2 + (n % 7) as u64, 10 + (n % 13) as u64)?,
            at: at(t),
        })
        .await?;
    }
    Ok(())
}

async fn build_users(stores: &Stores, custody: &Custody, users: usize) -> anyhow::Result<()> {
    let meta = EventMetadata::for_worker("bench", "users");
    for u in 0..users {
        let owner = format!("user-{u:03}");
        let address = custody.wallet(&owner).address().to_string();
        let open = owner.clone();
        Exec::<Wallet>::new(&stores.wallets, owner.clone(), meta.clone())
            .opening(move || WalletCommand::Open {
                owner: open.clone(),
                at: Utc::now(),
            })
            .run(|_| {
                Ok(WalletCommand::RecordChainTwin {
                    address: address.clone(),
                    twin_id: 20_000 + u as u32,
                    at: Utc::now(),
                })
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// The chain facts of the month, set-based.
async fn build_facts(
    pool: &PgPool,
    month: Period,
    nodes: usize,
    users: usize,
) -> anyhow::Result<()> {
    let (start, end) = (month.start(), month.end());
    let n = nodes as i64;
    sqlx::query(
        "INSERT INTO chain_contracts (contract_id, twin_id, node_id, kind, block_number, event_index)
         SELECT i, 20000 + (i % $2), i, 'node', 0, i FROM generate_series(1, $1) i",
    )
    .bind(n)
    .bind(users as i64)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO chain_node_farms (node_id, block_number, event_index, farm_id, moved_at)
         SELECT i, 1, i, $2, to_timestamp($3) FROM generate_series(1, $1) i",
    )
    .bind(n)
    .bind(i64::from(FARM))
    .bind((start - 86_400) as f64)
    .execute(pool)
    .await?;
    // Hourly bills from the start; block numbers after the farm moves.
    sqlx::query(
        "INSERT INTO chain_bills (block_number, event_index, contract_id, amount, billed_at)
         SELECT 10 + h, i, i, 1000000 + (i % 97) * 1000, to_timestamp($2::bigint + h * 3600)
           FROM generate_series(1, $1) i,
                generate_series(0::bigint, (($3::bigint - $2::bigint) / 3600) - 1) h",
    )
    .bind(n)
    .bind(start)
    .bind(end)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO chain_rewards
            (block_number, event_index, contract_id, standard_rewards, additional_rewards,
             distributed_at)
         SELECT 10 + h, 1000000 + i, i, 24 * (1000000 + (i % 97) * 1000), 0,
                to_timestamp($2::bigint + h * 3600)
           FROM generate_series(1, $1) i,
                generate_series(23::bigint, (($3::bigint - $2::bigint) / 3600) - 1, 24) h",
    )
    .bind(n)
    .bind(start)
    .bind(end)
    .execute(pool)
    .await?;
    // Every 40 minutes from 2 hours before to 2 hours after; one node in
    // twenty silent for 20 hours on the tenth day.
    sqlx::query(
        "INSERT INTO node_uptime_reports (node_id, reported_at, uptime_secs, block_number, event_index)
         SELECT i, to_timestamp(t), 0, 0, t
           FROM generate_series(1, $1) i,
                generate_series($2::bigint - 7200, $3::bigint + 7200, 2400::bigint) t0,
                LATERAL (SELECT t0 + (i % 40) * 60 AS t) x
          WHERE NOT (i % 20 = 0 AND t BETWEEN $2::bigint + 9 * 86400
                                          AND $2::bigint + 9 * 86400 + 72000)",
    )
    .bind(n)
    .bind(start)
    .bind(end)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let members = env_num("BENCH_MEMBERS", 100).max(1);
    let nodes = env_num("BENCH_NODES", 2_000).max(1);
    let users = env_num("BENCH_USERS", 200).max(1);
    let runs = env_num("BENCH_RUNS", 3).max(1);
    let durable = env_num("BENCH_DURABLE", 1) != 0;
    let dir =
        std::env::temp_dir().join(format!("marketplace-bench-alliance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = EmbeddedPostgres::start(EmbeddedOptions {
        data_dir: dir.join("pgdata"),
        port: 0,
        durable,
        max_connections: 100,
    })
    .await?;
    pg.ensure_database("bench").await?;
    let pool = marketplace::wiring::connect(&pg.url("bench").into(), 16).await?;
    marketplace::MIGRATOR.run(&pool).await?;
    let stores = Stores::new(&pool);
    let custody = Custody::from_seed(&SecretString::from(CHAIN_SEED))?;
    let month = Period::new(2026, 10)?;

    let built = Instant::now();
    build_users(&stores, &custody, users).await?;
    build_alliance(&stores, &custody, "bench-0", month, members, nodes).await?;
    build_facts(&pool, month, nodes, users).await?;
    let reports: i64 = sqlx::query_scalar("SELECT count(*) FROM node_uptime_reports")
        .fetch_one(&pool)
        .await?;
    let bills: i64 = sqlx::query_scalar("SELECT count(*) FROM chain_bills")
        .fetch_one(&pool)
        .await?;
    println!(
        "alliance settlement: {members} members, {nodes} nodes, {users} users; \
         {reports} uptime reports, {bills} bills (built in {:.1} s)",
        built.elapsed().as_secs_f64()
    );
    println!("{}", machine_line("this bench and PostgreSQL"));

    // Never called: settling needs no chain, only paying does.
    let chain: Arc<dyn Chain> = Arc::new(HttpChain::new("http://127.0.0.1:9")?);
    let worker = SettlementWorker::new(
        pool.clone(),
        chain,
        Arc::new(custody),
        SettlementOptions::default(),
    );
    let now = month.end() + 3 * 3_600;
    let id = "bench-0";
    let (a, _) = load(&stores.alliances, id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = a.state().ok_or_else(|| anyhow::anyhow!("not founded"))?;
    // Reading and computing the figures: read-only, so repeated.
    let mut figures_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let figures = period_figures(&pool, state, month, month.end()).await?;
        figures_times.push(t.elapsed());
        assert_eq!(figures.len(), nodes);
    }
    figures_times.sort();
    println!(
        "figures (income, bills by user, uptime) of {nodes} nodes: median {:.0} ms, min {:.0} ms of {runs}",
        ms(figures_times[figures_times.len() / 2]),
        ms(figures_times[0])
    );
    // The whole settlement as the worker runs it, once (a period settles once).
    let t = Instant::now();
    let settled = worker
        .settle_due(id, now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let whole = t.elapsed();
    assert_eq!(settled, 1);
    let (a, _) = load(&stores.alliances, id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let s = a
        .state()
        .and_then(|s| s.settlements.get(&month).cloned())
        .ok_or_else(|| anyhow::anyhow!("not settled"))?;
    assert_eq!(
        s.shares.values().sum::<u128>() + s.user_credits.values().sum::<u128>() + s.carried,
        s.income + s.carried_in
    );
    println!(
        "whole settlement (load, figures, Settle, commit AllianceSettled): {:.0} ms; \
         income {} units to {} members, {} nodes credited to {} users",
        ms(whole),
        s.income,
        s.shares.len(),
        s.node_credits.len(),
        s.user_credits.len()
    );
    pool.close().await;
    pg.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
