//! The follower's loop: read a page of chain events after the cursor,
//! apply it, move the cursor.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use marketplace_app::tfchain::{Chain, ChainError, ChainEvent, EventId, Indexer};
use marketplace_app::{CommandError, Stores};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::apply::{apply_batch, Applied};
use crate::runtime::{self, Round, Schedule};

/// The cursor's name in `chain_cursors`.
pub const CURSOR: &str = "chain-follower";

/// How the follower runs.
#[derive(Debug, Clone)]
pub struct FollowerOptions {
    /// Events read and applied at a time.
    pub batch: u32,
    /// How often it looks for new events once caught up.
    pub poll: Duration,
    /// Wallets (partitions of a batch) applied at once.
    pub concurrency: usize,
}

impl Default for FollowerOptions {
    fn default() -> Self {
        Self {
            batch: 500,
            poll: Duration::from_secs(2),
            concurrency: 8,
        }
    }
}

/// What the follower did so far (this process).
#[derive(Debug, Default)]
pub struct FollowerStats {
    /// Chain events read and applied (including skipped ones).
    pub events: AtomicU64,
    /// Commands that recorded something.
    pub recorded: AtomicU64,
    /// Events the domain refused (logged).
    pub refused: AtomicU64,
    /// Events about contracts, nodes or twins that are not the marketplace's.
    pub skipped: AtomicU64,
    /// The chain's best block at the last look.
    pub head_block: AtomicU64,
    /// The cursor's block.
    pub cursor_block: AtomicU64,
}

/// Follows the chain's events into commands.
#[derive(Clone)]
pub struct ChainFollower {
    pool: PgPool,
    chain: Arc<dyn Chain>,
    stores: Arc<Stores>,
    options: FollowerOptions,
    stats: Arc<FollowerStats>,
    indexer: Option<Arc<dyn Indexer>>,
}

/// Why a round failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The chain could not be read.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// A command could not be committed.
    #[error("command: {0}")]
    Command(#[from] CommandError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The chain no longer has the events after the cursor and no indexer
    /// is configured to read them from.
    #[error("the chain dropped the events after the cursor (it keeps them from block {first_kept_block}) and no indexer is configured to backfill them from (TFCHAIN_INDEXER_URL)")]
    HistoryLost {
        /// The oldest block whose events the chain still has.
        first_kept_block: u32,
    },
    /// The indexer could not be read.
    #[error("indexer: {0}")]
    Indexer(#[from] marketplace_app::tfchain::IndexerError),
    /// The chain is behind the cursor: not the chain the cursor was made on.
    #[error("the chain's best block {head} is behind the cursor's block {cursor}: a different (or reset) chain? Not following it")]
    ChainBehind {
        /// The chain's best block.
        head: u32,
        /// The cursor's block.
        cursor: u32,
    },
}

impl ChainFollower {
    /// A follower over `chain`, recording through `stores`.
    pub fn new(pool: PgPool, chain: Arc<dyn Chain>, options: FollowerOptions) -> Self {
        Self {
            stores: Arc::new(Stores::new(&pool)),
            pool,
            chain,
            options,
            stats: Arc::new(FollowerStats::default()),
            indexer: None,
        }
    }

    /// Backfills from `indexer` when the chain has dropped events the
    /// follower has not applied (downtime longer than the chain keeps).
    pub fn with_indexer(mut self, indexer: Arc<dyn Indexer>) -> Self {
        self.indexer = Some(indexer);
        self
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<FollowerStats> {
        self.stats.clone()
    }

    /// Follows until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let schedule = Schedule::every("chain-follower", self.options.poll)
            .backing_off_to(Duration::from_secs(30));
        runtime::run(&self.pool, schedule, cancel, || async {
            let span = tracing::info_span!("chain_follower_round");
            self.round().instrument(span).await
        })
        .await;
    }

    /// The cursor: the last event applied, if any.
    pub async fn cursor(&self) -> Result<Option<EventId>, sqlx::Error> {
        cursor(&self.pool).await
    }

    /// One page: read after the cursor, apply, move the cursor. `More`
    /// while pages come full.
    pub async fn round(&self) -> Result<Round, FollowError> {
        let after = cursor(&self.pool).await?;
        let events = match self.chain.events(after, self.options.batch).await {
            Ok(events) => events,
            Err(ChainError::Pruned { first_kept_block }) => {
                let Some(indexer) = &self.indexer else {
                    return Err(FollowError::HistoryLost { first_kept_block });
                };
                let span = tracing::warn_span!("chain_backfill", first_kept_block);
                let applied = super::backfill::backfill(
                    &self.pool,
                    &self.stores,
                    &*self.chain,
                    &**indexer,
                    after,
                    first_kept_block,
                    self.options.concurrency,
                )
                .instrument(span)
                .await?;
                self.count(0, &applied);
                return Ok(Round::More);
            }
            Err(e) => return Err(e.into()),
        };
        if events.is_empty() {
            let head = self.chain.latest_block().await?;
            // Written when it moved, not on every idle look.
            let seen = self
                .stats
                .head_block
                .swap(u64::from(head.number), Ordering::Relaxed);
            if seen != u64::from(head.number) {
                sqlx::query("UPDATE chain_cursors SET head_block = $2 WHERE name = $1")
                    .bind(CURSOR)
                    .bind(i64::from(head.number))
                    .execute(&self.pool)
                    .await?;
            }
            if let Some(after) = after {
                if head.number < after.block_number {
                    return Err(FollowError::ChainBehind {
                        head: head.number,
                        cursor: after.block_number,
                    });
                }
            }
            return Ok(Round::Idle);
        }
        let full = events.len() as u32 >= self.options.batch;
        let last = events.last().map(|e| (e.id, e.timestamp));
        let applied = self.apply(&events).await?;
        if let Some((last, timestamp)) = last {
            save_cursor(&self.pool, last, timestamp).await?;
            self.stats
                .cursor_block
                .store(u64::from(last.block_number), Ordering::Relaxed);
        }
        self.count(events.len(), &applied);
        Ok(if full { Round::More } else { Round::Idle })
    }

    async fn apply(&self, events: &[ChainEvent]) -> Result<Applied, FollowError> {
        apply_batch(
            &self.pool,
            &self.stores,
            &*self.chain,
            events,
            self.options.concurrency,
        )
        .await
    }

    fn count(&self, events: usize, applied: &Applied) {
        let s = &self.stats;
        s.events.fetch_add(events as u64, Ordering::Relaxed);
        s.recorded.fetch_add(applied.recorded, Ordering::Relaxed);
        s.refused.fetch_add(applied.refused, Ordering::Relaxed);
        s.skipped.fetch_add(applied.skipped, Ordering::Relaxed);
        if applied.recorded > 0 || applied.refused > 0 {
            info!(
                events,
                recorded = applied.recorded,
                refused = applied.refused,
                skipped = applied.skipped,
                "chain events applied"
            );
        }
        if applied.refused > 0 {
            warn!(
                refused = applied.refused,
                "the domain refused some chain events (see the warnings above)"
            );
        }
    }
}

/// Records a reconciliation's outcome for the metrics.
pub async fn save_reconciliation(pool: &PgPool, mismatched: usize) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE chain_cursors SET mismatched_wallets = $2, reconciled_at = now() WHERE name = $1",
    )
    .bind(CURSOR)
    .bind(i32::try_from(mismatched).unwrap_or(i32::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// The follower's cursor, if it has one.
pub async fn cursor(pool: &PgPool) -> Result<Option<EventId>, sqlx::Error> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT block_number, event_index FROM chain_cursors WHERE name = $1")
            .bind(CURSOR)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(b, i)| EventId {
        block_number: u32::try_from(b).unwrap_or(u32::MAX),
        event_index: u32::try_from(i).unwrap_or(u32::MAX),
    }))
}

/// Moves the cursor to `to` (in a block of `timestamp`), never back.
pub async fn save_cursor(pool: &PgPool, to: EventId, timestamp: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO chain_cursors (name, block_number, event_index, block_timestamp, updated_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (name) DO UPDATE
            SET block_number = $2, event_index = $3, block_timestamp = $4, updated_at = now()
          WHERE (chain_cursors.block_number, chain_cursors.event_index) < ($2, $3)",
    )
    .bind(CURSOR)
    .bind(i64::from(to.block_number))
    .bind(i64::from(to.event_index))
    .bind(timestamp)
    .execute(pool)
    .await?;
    Ok(())
}

/// The cursor's block timestamp, if known.
pub async fn cursor_timestamp(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT block_timestamp FROM chain_cursors WHERE name = $1",
    )
    .bind(CURSOR)
    .fetch_optional(pool)
    .await?
    .flatten())
}
