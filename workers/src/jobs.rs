//! Leased job queues in PostgreSQL: the to-do lists of process managers.
//!
//! A queue is a table (`provisioning_jobs`, `chain_transfer_jobs`, see
//! migration 0013) whose rows an intake writes from events (a projection,
//! so in commit order and checkpointed with the row) and whose due rows
//! executors lease, work and settle:
//!
//! - [`Queue::wake`] (intake): the job exists and is due now, at the
//!   aggregate's `version`; it notifies the queue's channel at commit.
//! - [`Queue::lease`]: up to `n` due rows no live lease holds, leased for a
//!   while (`FOR UPDATE SKIP LOCKED`, so executors never share a row). A
//!   crashed executor's lease lapses and another takes the job over.
//! - [`Queue::settle`]: done (the row goes, unless an event woke it again
//!   meanwhile), look again later, or failed (retried with backoff).
//!
//! Every step a job takes must be safe to repeat: a lease can lapse under
//! a slow executor, and a crash can come between a step and its settling.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// One queue table.
#[derive(Debug, Clone, Copy)]
pub struct Queue {
    table: &'static str,
    channel: &'static str,
}

/// A leased job.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Leased {
    /// The job's key.
    pub job_id: String,
    /// The aggregate's version when it was last woken.
    pub version: i64,
    /// Failed attempts in a row.
    pub failures: i32,
    /// What it waits for, if anything.
    pub waiting_for: Option<String>,
    /// Since when (chain clock, unix seconds).
    pub waiting_since: Option<i64>,
}

/// How a job's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Nothing left to do at the version leased.
    Done,
    /// Look again after this long; it waits for `waiting_for` since
    /// `waiting_since` (kept across runs, so timeouts survive restarts).
    Later {
        /// When to look again.
        after: Duration,
        /// What it waits for.
        waiting_for: Option<String>,
        /// Since when, on the chain's clock.
        waiting_since: Option<i64>,
    },
    /// The run failed; retried with backoff.
    Failed(String),
}

/// The longest wait between retries of a failing job.
const MAX_RETRY: Duration = Duration::from_secs(60);

impl Queue {
    /// The provisioning manager's queue.
    pub const PROVISIONING: Queue = Queue {
        table: "provisioning_jobs",
        channel: "provisioning_jobs",
    };

    /// The treasury's transfer queue.
    pub const CHAIN_TRANSFERS: Queue = Queue {
        table: "chain_transfer_jobs",
        channel: "chain_transfer_jobs",
    };

    /// The channel notified when a job is woken.
    pub fn channel(&self) -> &'static str {
        self.channel
    }

    /// Makes `job_id` due now at `version` (creating it), in the intake's
    /// transaction; the queue's channel is notified at commit.
    pub async fn wake(
        &self,
        conn: &mut PgConnection,
        job_id: &str,
        version: i64,
        at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO {t} (job_id, version, due_at, updated_at) VALUES ($1, $2, now(), $3)
             ON CONFLICT (job_id) DO UPDATE
                SET version = GREATEST({t}.version, EXCLUDED.version), due_at = now(), updated_at = $3",
            t = self.table
        );
        sqlx::query(&sql)
            .bind(job_id)
            .bind(version)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(self.channel)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Leases up to `limit` due jobs for `lease`, as `holder`.
    pub async fn lease(
        &self,
        pool: &PgPool,
        holder: &str,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Leased>, sqlx::Error> {
        let sql = format!(
            "UPDATE {t} SET leased_until = now() + $3 * interval '1 millisecond', leased_by = $2
             WHERE job_id IN (
                SELECT job_id FROM {t}
                WHERE due_at <= now() AND (leased_until IS NULL OR leased_until < now())
                ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING job_id, version, failures, waiting_for, waiting_since",
            t = self.table
        );
        sqlx::query_as(&sql)
            .bind(limit)
            .bind(holder)
            .bind(lease.as_millis() as i64)
            .fetch_all(pool)
            .await
    }

    /// Settles a leased job.
    pub async fn settle(
        &self,
        pool: &PgPool,
        job: &Leased,
        holder: &str,
        outcome: &Settle,
    ) -> Result<(), sqlx::Error> {
        let t = self.table;
        match outcome {
            Settle::Done => {
                // Gone unless an event woke it past the version leased.
                let sql = format!(
                    "WITH gone AS (DELETE FROM {t} WHERE job_id = $1 AND version <= $2 RETURNING 1)
                     UPDATE {t} SET leased_until = NULL, leased_by = NULL, failures = 0,
                        last_error = NULL, updated_at = now()
                     WHERE job_id = $1 AND leased_by = $3 AND NOT EXISTS (SELECT 1 FROM gone)"
                );
                sqlx::query(&sql)
                    .bind(&job.job_id)
                    .bind(job.version)
                    .bind(holder)
                    .execute(pool)
                    .await?;
            }
            Settle::Later {
                after,
                waiting_for,
                waiting_since,
            } => {
                // A wake during the run (due_at moved past the lease's
                // start) keeps the job due now.
                let sql = format!(
                    "UPDATE {t} SET leased_until = NULL, leased_by = NULL, failures = 0,
                        last_error = NULL, waiting_for = $3, waiting_since = $4,
                        due_at = CASE WHEN version > $5 THEN now()
                                      ELSE now() + $2 * interval '1 millisecond' END,
                        updated_at = now()
                     WHERE job_id = $1 AND leased_by = $6"
                );
                sqlx::query(&sql)
                    .bind(&job.job_id)
                    .bind(after.as_millis() as i64)
                    .bind(waiting_for)
                    .bind(waiting_since)
                    .bind(job.version)
                    .bind(holder)
                    .execute(pool)
                    .await?;
            }
            Settle::Failed(error) => {
                let retry = retry_after(job.failures + 1);
                let sql = format!(
                    "UPDATE {t} SET leased_until = NULL, leased_by = NULL,
                        failures = failures + 1, last_error = $2,
                        due_at = now() + $3 * interval '1 millisecond', updated_at = now()
                     WHERE job_id = $1 AND leased_by = $4"
                );
                sqlx::query(&sql)
                    .bind(&job.job_id)
                    .bind(error)
                    .bind(retry.as_millis() as i64)
                    .bind(holder)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Due jobs and jobs waiting, for metrics: (due now, all).
    pub async fn backlog(&self, pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE due_at <= now()), count(*) FROM {}",
            self.table
        );
        sqlx::query_as(&sql).fetch_one(pool).await
    }
}

/// How an executor works a queue.
#[derive(Debug, Clone)]
pub struct WorkOptions {
    /// Who holds the leases: unique per process.
    pub holder: String,
    /// Jobs worked at once.
    pub concurrency: usize,
    /// How long a lease lasts; renewed every third of it while the job runs.
    pub lease: Duration,
    /// How often to look for due jobs when nothing notifies.
    pub poll: Duration,
}

impl WorkOptions {
    /// Defaults for `worker`: 16 at a time, 30 s leases, 250 ms polls.
    pub fn new(worker: &str) -> Self {
        Self {
            holder: format!("{worker}-{}-{}", std::process::id(), uuid::Uuid::new_v4()),
            concurrency: 16,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(250),
        }
    }
}

impl Queue {
    async fn renew(&self, pool: &PgPool, job_id: &str, holder: &str, lease: Duration) {
        let sql = format!(
            "UPDATE {} SET leased_until = now() + $3 * interval '1 millisecond'
             WHERE job_id = $1 AND leased_by = $2",
            self.table
        );
        if let Err(e) = sqlx::query(&sql)
            .bind(job_id)
            .bind(holder)
            .bind(lease.as_millis() as i64)
            .execute(pool)
            .await
        {
            warn!(queue = self.table, job = job_id, error = %e, "cannot renew a job's lease");
        }
    }
}

/// Works `queue` until cancelled: leases due jobs (up to the concurrency),
/// runs `handler` on each with its lease renewed, and settles it; wakes on
/// the queue's notifications or every `poll`. On cancel, jobs in flight are
/// finished (a job cut off would only be taken over after its lease).
pub async fn work<F, Fut>(
    pool: PgPool,
    queue: Queue,
    options: WorkOptions,
    cancel: CancellationToken,
    handler: F,
) where
    F: Fn(Leased) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Settle> + Send + 'static,
{
    info!(queue = queue.table, holder = %options.holder, concurrency = options.concurrency, "job executor started");
    let mut listener = listen(&pool, queue.channel).await;
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let free = permits.available_permits();
        let mut full_batch = false;
        if free > 0 {
            match queue
                .lease(&pool, &options.holder, free as i64, options.lease)
                .await
            {
                Ok(jobs) => {
                    backoff = Duration::from_millis(100);
                    full_batch = jobs.len() == free;
                    for job in jobs {
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let (pool, handler, options) =
                            (pool.clone(), handler.clone(), options.clone());
                        tasks.spawn(async move {
                            let run = handler(job.clone());
                            tokio::pin!(run);
                            let mut renew = tokio::time::interval(options.lease / 3);
                            renew.tick().await;
                            let outcome = loop {
                                tokio::select! {
                                    outcome = &mut run => break outcome,
                                    _ = renew.tick() => queue.renew(&pool, &job.job_id, &options.holder, options.lease).await,
                                }
                            };
                            if let Settle::Failed(e) = &outcome {
                                warn!(queue = queue.table, job = %job.job_id, failures = job.failures + 1, error = %e, "job failed; retrying later");
                            }
                            if let Err(e) = queue.settle(&pool, &job, &options.holder, &outcome).await {
                                error!(queue = queue.table, job = %job.job_id, error = %e, "cannot settle a job; its lease will lapse");
                            }
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    error!(queue = queue.table, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot lease jobs");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        if full_batch {
            continue;
        }
        let notified = async {
            match listener.as_mut() {
                Some(l) => l.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = notified => {
                if let Err(e) = result {
                    warn!(queue = queue.table, error = %e, "job notifications lost; polling");
                    listener = None;
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::time::sleep(options.poll) => {
                if listener.is_none() {
                    listener = listen(&pool, queue.channel).await;
                }
            }
            _ = cancel.cancelled() => break,
        }
    }
    while tasks.join_next().await.is_some() {}
    info!(queue = queue.table, "job executor stopped");
}

async fn listen(pool: &PgPool, channel: &str) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    match listener.listen(channel).await {
        Ok(()) => Some(listener),
        Err(e) => {
            warn!(channel, error = %e, "cannot listen for jobs; polling instead");
            None
        }
    }
}

/// Backoff after `failures` failed runs: 1 s doubling, at most a minute.
pub fn retry_after(failures: i32) -> Duration {
    let exp = failures.clamp(1, 7) as u32 - 1;
    (Duration::from_secs(1) * 2u32.pow(exp)).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        assert_eq!(retry_after(1), Duration::from_secs(1));
        assert_eq!(retry_after(3), Duration::from_secs(4));
        assert_eq!(retry_after(50), MAX_RETRY);
    }
}
