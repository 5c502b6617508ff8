//! Group commit: many commands' events appended in one transaction.
//!
//! Each command is decided in memory by its caller ([`super::Exec`]); what
//! it appends (its events, and a snapshot when one is due) goes to the
//! committer, whose lanes each take every append waiting (up to
//! [`MAX_BATCH`]) and write them in one transaction: one multi-row insert
//! of all the events, one of the snapshots begun, one update of those
//! advanced, one commit and one WAL flush for the lot. Nothing waits for a
//! batch to fill: a lane takes what is there the moment it is free, so an
//! unloaded command commits alone, as soon as it arrives, and batches
//! form by themselves when commands arrive faster than a commit takes.
//!
//! Optimistic concurrency stays per row: the events' primary key
//! (aggregate type, id, sequence). The insert skips rows whose key is
//! taken (`ON CONFLICT DO NOTHING`) and answers the ones it wrote; an
//! append with any row skipped lost its race, its other rows are removed
//! in the same transaction, and it alone is answered with a conflict; its
//! batch-mates commit. Every caller is answered after the commit returns,
//! so an answered append is durable.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};

/// This process's group commits so far: transactions, appends committed,
/// appends that lost (a sequence or a key taken), transactions failed.
/// `/metrics` reports them; their ratio is the batch size.
pub static STATS: Stats = Stats {
    batches: AtomicU64::new(0),
    appends: AtomicU64::new(0),
    lost: AtomicU64::new(0),
    failed: AtomicU64::new(0),
};

/// Counters of the group commits (see [`STATS`]).
#[derive(Debug)]
pub struct Stats {
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Appends committed.
    pub appends: AtomicU64,
    /// Appends refused inside a batch.
    pub lost: AtomicU64,
    /// Transactions that failed.
    pub failed: AtomicU64,
}

/// The most appends one transaction carries.
pub const MAX_BATCH: usize = 128;

/// Transactions in flight at once: while one lane commits (waits for its
/// WAL flush), another gathers and writes the next batch.
pub const LANES: usize = 2;

/// One event row, serialised.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its sequence in the aggregate.
    pub sequence: i64,
    /// Its type.
    pub event_type: String,
    /// Its payload version.
    pub event_version: String,
    /// The payload.
    pub payload: Value,
    /// The metadata.
    pub metadata: Value,
}

/// A snapshot to write with the events.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The aggregate's state after its event `last_sequence`.
    pub payload: Value,
    /// The sequence it was folded through.
    pub last_sequence: i64,
    /// Its number: 1 is inserted, a later one replaces number - 1.
    pub number: i64,
}

/// An Idempotency-Key's claim and final answer, written in the same
/// transaction as the command's events: both or neither.
#[derive(Debug, Clone)]
pub struct KeyWrite {
    /// The caller's subject.
    pub subject: String,
    /// The key.
    pub key: String,
    /// The request's fingerprint.
    pub request_hash: Vec<u8>,
    /// The answer's status.
    pub status: i16,
    /// The answer's kept headers, `[[name, value], ...]`.
    pub headers: Value,
    /// The answer's body.
    pub body: Value,
}

/// What one command appends to one aggregate.
#[derive(Debug, Clone)]
pub struct Append {
    /// The aggregate type.
    pub aggregate_type: &'static str,
    /// The aggregate.
    pub aggregate_id: String,
    /// Its new events, in sequence order, following on from its version.
    pub rows: Vec<Row>,
    /// A snapshot, when one is due.
    pub snapshot: Option<Snapshot>,
    /// The request's Idempotency-Key and answer, when it has one.
    pub key: Option<KeyWrite>,
}

/// Why an append was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended at one of its sequences first.
    #[error("another command appended to this aggregate first")]
    Conflict,
    /// Its Idempotency-Key is already taken (a retry, or a concurrent
    /// request with the same key): nothing of it was written.
    #[error("the Idempotency-Key is already taken")]
    KeyTaken,
    /// The batch's transaction failed; nothing of it was committed unless
    /// the failure was the commit's own answer being lost.
    #[error("database: {0}")]
    Database(Arc<sqlx::Error>),
    /// The committer is gone (the process is stopping).
    #[error("the committer has stopped")]
    Stopped,
}

type Job = (Append, oneshot::Sender<Result<(), AppendError>>);

/// The committer's handle; clones share its lanes.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
    /// The lanes' pool and queue until the first append starts them (so a
    /// committer can be made outside a runtime).
    idle: Arc<std::sync::Mutex<Option<(PgPool, mpsc::UnboundedReceiver<Job>)>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// A committer over `pool` with [`LANES`] lanes, started by its first
    /// append. Its tasks end when the last handle is dropped, after the
    /// appends already sent.
    pub fn new(pool: PgPool) -> Self {
        let (jobs, receiver) = mpsc::unbounded_channel::<Job>();
        Self {
            jobs,
            idle: Arc::new(std::sync::Mutex::new(Some((pool, receiver)))),
        }
    }

    fn start(&self) {
        let Some((pool, receiver)) = self.idle.lock().ok().and_then(|mut idle| idle.take()) else {
            return;
        };
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..LANES {
            let (pool, receiver) = (pool.clone(), receiver.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut receiver = receiver.lock().await;
                        let Some(first) = receiver.recv().await else {
                            return;
                        };
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match receiver.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    commit_batch(&pool, batch).await;
                }
            });
        }
    }

    /// Appends, answered once the append's batch is durable.
    pub async fn append(&self, append: Append) -> Result<(), AppendError> {
        self.start();
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((append, reply))
            .map_err(|_| AppendError::Stopped)?;
        answer.await.map_err(|_| AppendError::Stopped)?
    }
}

async fn commit_batch(pool: &PgPool, batch: Vec<Job>) {
    let (appends, replies): (Vec<Append>, Vec<_>) = batch.into_iter().unzip();
    let answers = commit(pool, &appends).await;
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
    }
}

/// Commits `appends` as one batch, answering each. When the database
/// refuses the batch's transaction for what one append carries (a text it
/// cannot store, a check failing), each append is tried again on its own,
/// so that only the one at fault fails and its batch-mates commit. A
/// connection lost on the way is answered to every append as it is (the
/// commit's outcome is then unknown, and trying again could write twice).
pub async fn commit(pool: &PgPool, appends: &[Append]) -> Vec<Result<(), AppendError>> {
    let size = appends.len();
    match write_batch(pool, appends).await {
        Ok(lost) => {
            tracing::debug!(appends = size, lost = lost.len(), "group commit");
            STATS.batches.fetch_add(1, Ordering::Relaxed);
            STATS
                .appends
                .fetch_add((size - lost.len()) as u64, Ordering::Relaxed);
            STATS.lost.fetch_add(lost.len() as u64, Ordering::Relaxed);
            (0..size)
                .map(|i| match lost.get(&i) {
                    Some(why) => Err(why.clone()),
                    None => Ok(()),
                })
                .collect()
        }
        Err(e @ sqlx::Error::Database(_)) if size > 1 => {
            STATS.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, appends = size, "a group commit was refused; its appends are tried one by one");
            let mut answers = Vec::with_capacity(size);
            for one in appends {
                answers.extend(Box::pin(commit(pool, std::slice::from_ref(one))).await);
            }
            answers
        }
        Err(e) => {
            STATS.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, appends = size, "a group commit failed; every command in it is told");
            let e = Arc::new(e);
            (0..size)
                .map(|_| Err(AppendError::Database(e.clone())))
                .collect()
        }
    }
}

/// Writes a batch in one transaction, as a lane does; answers the appends
/// that lost (by index, with why: a sequence or their key was taken), of
/// which nothing is written.
pub async fn write_batch(
    pool: &PgPool,
    appends: &[Append],
) -> Result<HashMap<usize, AppendError>, sqlx::Error> {
    let mut types = Vec::new();
    let mut ids = Vec::new();
    let mut sequences = Vec::new();
    let mut event_types = Vec::new();
    let mut versions = Vec::new();
    let mut payloads = Vec::new();
    let mut metadata = Vec::new();
    for a in appends {
        for r in &a.rows {
            types.push(a.aggregate_type);
            ids.push(a.aggregate_id.as_str());
            sequences.push(r.sequence);
            event_types.push(r.event_type.as_str());
            versions.push(r.event_version.as_str());
            payloads.push(&r.payload);
            metadata.push(&r.metadata);
        }
    }
    let mut tx = pool.begin().await?;
    // In the given order, so each row's hash (a trigger reading the
    // aggregate's previous row) sees the rows before it.
    let written: Vec<(String, String, i64)> = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT t, i, s, et, v, p, m
           FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
                WITH ORDINALITY AS r(t, i, s, et, v, p, m, n)
          ORDER BY n
         ON CONFLICT DO NOTHING
         RETURNING aggregate_type, aggregate_id, sequence",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(&event_types)
    .bind(&versions)
    .bind(&payloads)
    .bind(&metadata)
    .fetch_all(&mut *tx)
    .await?;
    let written: HashSet<(String, String, i64)> = written.into_iter().collect();
    let mut lost = HashSet::new();
    let mut seen = HashSet::new();
    for (i, a) in appends.iter().enumerate() {
        let key = (a.aggregate_type, a.aggregate_id.as_str());
        // Two appends to one aggregate in a batch were decided from the
        // same version: the first wins.
        let whole = a.rows.iter().all(|r| {
            written.contains(&(
                a.aggregate_type.to_string(),
                a.aggregate_id.clone(),
                r.sequence,
            ))
        });
        if !whole || !seen.insert(key) {
            lost.insert(i);
        }
    }
    let keys_taken = write_keys(&mut tx, appends, &lost).await?;
    lost.extend(keys_taken.iter().copied());
    if !lost.is_empty() {
        // A loser's rows that did go in (a later sequence than the one it
        // lost on) come out again, in this transaction.
        let (mut t, mut id, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for &i in &lost {
            let a = &appends[i];
            for r in &a.rows {
                let key = (
                    a.aggregate_type.to_string(),
                    a.aggregate_id.clone(),
                    r.sequence,
                );
                if written.contains(&key) && !won_by_other(appends, &lost, i, &key) {
                    t.push(a.aggregate_type);
                    id.push(a.aggregate_id.as_str());
                    s.push(r.sequence);
                }
            }
        }
        if !t.is_empty() {
            sqlx::query(
                "DELETE FROM events e USING UNNEST($1::text[], $2::text[], $3::bigint[]) AS r(t, i, s)
                  WHERE e.aggregate_type = r.t AND e.aggregate_id = r.i AND e.sequence = r.s",
            )
            .bind(&t)
            .bind(&id)
            .bind(&s)
            .execute(&mut *tx)
            .await?;
        }
    }
    write_snapshots(&mut tx, appends, &lost).await?;
    tx.commit().await?;
    Ok(lost
        .into_iter()
        .map(|i| {
            let why = if keys_taken.contains(&i) {
                AppendError::KeyTaken
            } else {
                AppendError::Conflict
            };
            (i, why)
        })
        .collect())
}

/// Claims the winners' Idempotency-Keys with their answers; answers the
/// appends whose key was already taken (a key's row is unique).
async fn write_keys(
    tx: &mut sqlx::PgConnection,
    appends: &[Append],
    lost: &HashSet<usize>,
) -> Result<HashSet<usize>, sqlx::Error> {
    let keyed: Vec<(usize, &Append, &KeyWrite)> = appends
        .iter()
        .enumerate()
        .filter(|(i, _)| !lost.contains(i))
        .filter_map(|(i, a)| a.key.as_ref().map(|k| (i, a, k)))
        .collect();
    if keyed.is_empty() {
        return Ok(HashSet::new());
    }
    let subjects: Vec<&str> = keyed.iter().map(|(_, _, k)| k.subject.as_str()).collect();
    let keys: Vec<&str> = keyed.iter().map(|(_, _, k)| k.key.as_str()).collect();
    let hashes: Vec<&[u8]> = keyed
        .iter()
        .map(|(_, _, k)| k.request_hash.as_slice())
        .collect();
    let ids: Vec<&str> = keyed
        .iter()
        .map(|(_, a, _)| a.aggregate_id.as_str())
        .collect();
    let statuses: Vec<i16> = keyed.iter().map(|(_, _, k)| k.status).collect();
    let headers: Vec<&Value> = keyed.iter().map(|(_, _, k)| &k.headers).collect();
    let bodies: Vec<&Value> = keyed.iter().map(|(_, _, k)| &k.body).collect();
    let claimed: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO idempotency_keys
            (subject, key, request_hash, aggregate_id, state, status_code, response_headers, response_body)
         SELECT s, k, h, i, 'done', st, hd, b
           FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::text[], $5::smallint[], $6::jsonb[], $7::jsonb[])
                WITH ORDINALITY AS r(s, k, h, i, st, hd, b, n)
          ORDER BY n
         ON CONFLICT (subject, key) DO NOTHING
         RETURNING subject, key",
    )
    .bind(&subjects)
    .bind(&keys)
    .bind(&hashes)
    .bind(&ids)
    .bind(&statuses)
    .bind(&headers)
    .bind(&bodies)
    .fetch_all(&mut *tx)
    .await?;
    let claimed: HashSet<(String, String)> = claimed.into_iter().collect();
    let mut seen = HashSet::new();
    Ok(keyed
        .into_iter()
        .filter(|(_, _, k)| {
            let pair = (k.subject.clone(), k.key.clone());
            // One key twice in a batch: the first claims it.
            !claimed.contains(&pair) || !seen.insert(pair)
        })
        .map(|(i, _, _)| i)
        .collect())
}

/// Whether a row key was written for a winning append of the batch (two
/// appends of one aggregate: the winner's rows stay).
fn won_by_other(
    appends: &[Append],
    lost: &HashSet<usize>,
    loser: usize,
    key: &(String, String, i64),
) -> bool {
    appends.iter().enumerate().any(|(j, a)| {
        j != loser
            && !lost.contains(&j)
            && a.aggregate_type == key.0
            && a.aggregate_id == key.1
            && a.rows.iter().any(|r| r.sequence == key.2)
    })
}

async fn write_snapshots(
    tx: &mut sqlx::PgConnection,
    appends: &[Append],
    lost: &HashSet<usize>,
) -> Result<(), sqlx::Error> {
    let (mut new_t, mut new_i, mut new_s, mut new_p) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut up_t, mut up_i, mut up_s, mut up_n, mut up_p) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, a) in appends.iter().enumerate() {
        let Some(s) = a.snapshot.as_ref().filter(|_| !lost.contains(&i)) else {
            continue;
        };
        if s.number == 1 {
            new_t.push(a.aggregate_type);
            new_i.push(a.aggregate_id.as_str());
            new_s.push(s.last_sequence);
            new_p.push(&s.payload);
        } else {
            up_t.push(a.aggregate_type);
            up_i.push(a.aggregate_id.as_str());
            up_s.push(s.last_sequence);
            up_n.push(s.number);
            up_p.push(&s.payload);
        }
    }
    if !new_t.is_empty() {
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
             SELECT t, i, s, 1, p FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::jsonb[]) AS r(t, i, s, p)
             ON CONFLICT DO NOTHING",
        )
        .bind(&new_t)
        .bind(&new_i)
        .bind(&new_s)
        .bind(&new_p)
        .execute(&mut *tx)
        .await?;
    }
    if !up_t.is_empty() {
        // Guarded by the snapshot's number, as postgres-es guards it; a
        // snapshot not replaced stays valid (loads apply the events after
        // it), so a miss only costs a longer load.
        sqlx::query(
            "UPDATE snapshots o SET last_sequence = r.s, current_snapshot = r.n, payload = r.p
               FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::jsonb[]) AS r(t, i, s, n, p)
              WHERE o.aggregate_type = r.t AND o.aggregate_id = r.i AND o.current_snapshot = r.n - 1",
        )
        .bind(&up_t)
        .bind(&up_i)
        .bind(&up_s)
        .bind(&up_n)
        .bind(&up_p)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
