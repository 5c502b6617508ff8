//! Reconciliation: each custodial wallet's ledger against its chain
//! account. The ledger is ahead of the chain by the credits the treasury
//! has not delivered yet; anything else is a mismatch, reported (metric and
//! log line), never corrected.

use marketplace_app::tfchain::{Chain, ChainError};
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
}
