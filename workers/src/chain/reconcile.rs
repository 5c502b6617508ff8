//! Reconciliation: each custodial wallet's ledger against its chain
//! account. The ledger is ahead of the chain by the credits the treasury
//! has not delivered yet; anything else is a mismatch, reported (metric and
//! log line), never corrected. With an indexer, each wallet's recorded
//! bills are also compared with the indexer's bill reports of its twin's
//! contracts.

use marketplace_app::tfchain::{Chain, ChainError, Indexer, IndexerError, PageAfter};
use sqlx::PgPool;
use tracing::warn;

/// A wallet whose ledger disagrees with its chain account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The wallet.
    pub wallet_id: String,
    /// Its chain account.
    pub account: String,
    /// What the ledger says the account holds: balance − undelivered.
    pub expected: i128,
    /// What the chain says it holds.
    pub on_chain: u128,
}

/// Compares every custodial wallet with the chain once; answers the
/// mismatches (each also logged) and how many wallets were compared.
pub async fn reconcile_once(
    pool: &PgPool,
    chain: &dyn Chain,
) -> Result<(Vec<Mismatch>, usize), ReconcileError> {
    let wallets = marketplace_projections::wallets::custodial(pool).await?;
    let mut mismatches = Vec::new();
    let compared = wallets.len();
    for (wallet_id, wallet) in wallets {
        let Some(s) = wallet.state() else { continue };
        let Some(account) = &s.chain_account else {
            continue;
        };
        let expected = s.balance() - i128::try_from(s.undelivered()).unwrap_or(i128::MAX);
        let on_chain = chain.free_balance(&account.address).await?;
        if i128::try_from(on_chain).ok() != Some(expected) {
            warn!(
                wallet = %wallet_id, account = %account.address, expected, on_chain,
                "a wallet's ledger disagrees with its chain account (not corrected)"
            );
            mismatches.push(Mismatch {
                wallet_id,
                account: account.address.clone(),
                expected,
                on_chain,
            });
        }
    }
    Ok((mismatches, compared))
}

/// Why a reconciliation could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The views could not be read.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The chain could not be read.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The indexer could not be read.
    #[error("indexer: {0}")]
    Indexer(#[from] IndexerError),
}

/// A wallet whose recorded bills disagree with the indexer's bill reports
/// of its twin's contracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillMismatch {
    /// The wallet.
    pub wallet_id: String,
    /// TFT base units its `BillPaid` events sum to.
    pub recorded: u128,
    /// What the indexer's reports of its contracts sum to, up to the
    /// follower's cursor.
    pub indexed: u128,
}

/// Compares each custodial wallet's recorded bills (the store's `BillPaid`
/// events) with the indexer's bill reports of its twin's contracts, up to
/// the follower's cursor (later bills are not applied yet); answers the
/// mismatches, each also logged.
pub async fn reconcile_bills(
    pool: &PgPool,
    indexer: &dyn Indexer,
) -> Result<Vec<BillMismatch>, ReconcileError> {
    let Some(cursor) = super::follower::cursor(pool).await? else {
        return Ok(Vec::new());
    };
    let mut mismatches = Vec::new();
    for (wallet_id, wallet) in marketplace_projections::wallets::custodial(pool).await? {
        let Some(account) = wallet.state().and_then(|s| s.chain_account.clone()) else {
            continue;
        };
        let contracts: Vec<i64> =
            sqlx::query_scalar("SELECT contract_id FROM chain_contracts WHERE twin_id = $1")
                .bind(i64::from(account.twin_id))
                .fetch_all(pool)
                .await?;
        let ids: Vec<u64> = contracts
            .into_iter()
            .filter_map(|c| u64::try_from(c).ok())
            .collect();
        let mut indexed: u128 = 0;
        let mut after = None;
        while !ids.is_empty() {
            let page = indexer.bill_reports(&ids, after, 1_000).await?;
            let Some(last) = page.last() else { break };
            after = Some(PageAfter {
                timestamp: last.timestamp,
                event: last.event,
            });
            indexed += page
                .iter()
                .filter(|b| b.event <= cursor)
                .map(|b| b.amount_billed)
                .sum::<u128>();
        }
        let recorded: Option<String> = sqlx::query_scalar(
            "SELECT sum((payload->'BillPaid'->'bill'->>'amount')::numeric)::text FROM events
              WHERE aggregate_type = 'wallet' AND aggregate_id = $1 AND event_type = 'BillPaid'",
        )
        .bind(&wallet_id)
        .fetch_one(pool)
        .await?;
        let recorded: u128 = recorded.and_then(|r| r.parse().ok()).unwrap_or(0);
        if recorded != indexed {
            warn!(wallet = %wallet_id, recorded, indexed,
                "a wallet's recorded bills disagree with the indexer's bill reports (not corrected)");
            mismatches.push(BillMismatch {
                wallet_id,
                recorded,
                indexed,
            });
        }
    }
    Ok(mismatches)
}

/// The reconciler: every `every`, each custodial ledger against its chain
/// account and, with an indexer, each wallet's bills against the indexer's
/// bill reports; the number of mismatches is saved for `/metrics`.
pub fn spawn_reconciler(
    pool: &PgPool,
    chain: std::sync::Arc<dyn Chain>,
    indexer: Option<std::sync::Arc<dyn Indexer>>,
    every: std::time::Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (pool, cancel) = (pool.clone(), cancel.clone());
    tokio::spawn(async move {
        let schedule = crate::runtime::Schedule::every("chain-reconcile", every);
        crate::runtime::run(&pool.clone(), schedule, cancel, || {
            let (pool, chain, indexer) = (pool.clone(), chain.clone(), indexer.clone());
            async move {
                let (mismatches, _) = reconcile_once(&pool, &*chain).await?;
                let mut mismatched = mismatches.len();
                if let Some(indexer) = &indexer {
                    mismatched += reconcile_bills(&pool, &**indexer).await?.len();
                }
                super::save_reconciliation(&pool, mismatched).await?;
                Ok::<_, anyhow::Error>(crate::runtime::Round::Idle)
            }
        })
        .await;
    })
}
