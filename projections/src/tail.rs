//! Tailing the event store in commit order.
//!
//! Rows are read in `(txid, position)` order, and only rows whose writing
//! transaction id lies below the reader's snapshot `xmin`. Every transaction
//! below `xmin` has finished, so no row can later appear behind the
//! checkpoint; a transaction still running holds the reader back until it
//! ends instead of being skipped (ARCHITECTURE.md, invariant 2). The view
//! change and the checkpoint commit together (invariant 3).

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{Acquire, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{ApplyError, Projection, StoredEvent};

/// Tuning of a tailing runner.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Events read and applied per transaction.
    pub batch_size: i64,
    /// How often to look for events when no notification arrives.
    pub poll_interval: Duration,
}

impl Default for TailOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Another runner holds this projection; nothing was read.
    Busy,
    /// This many events were read (some may have been dead-lettered).
    Applied(usize),
}

/// Reads up to `batch_size` events past the checkpoint, applies them and
/// moves the checkpoint, all in one transaction.
///
/// A batch is first applied without savepoints (two round trips fewer per
/// event). If an event turns out to be poison, that attempt is rolled back and
/// the batch is applied again with a savepoint around each event, so the
/// poison is dead-lettered and the rest still applied.
pub async fn step<P: Projection>(
    pool: &PgPool,
    projection: &P,
    batch_size: i64,
) -> Result<Step, sqlx::Error> {
    Ok(step_on(
        pool,
        projection,
        batch_size,
        Target::Live,
        &mut Skip::default(),
        true,
    )
    .await?
    .0)
}

/// Where a runner has read past its stored checkpoint without writing it: a
/// batch with no event the projection handles changes no view, so the live
/// runner keeps that position in memory instead of committing a checkpoint
/// for every other aggregate's commit (several projections each wrote one
/// per command otherwise). It is stored at least every [`PERSIST_IDLE_EVERY`]
/// and with the next batch that changes a view; after a crash the skipped
/// events are only read again, never applied twice.
#[derive(Debug, Default, Clone, Copy)]
struct Skip {
    /// (the stored checkpoint it was read past, the position read to). It
    /// counts only while the stored checkpoint is still that one: a rebuild
    /// that swaps in another checkpoint voids it.
    ahead: Option<((i64, i64), (i64, i64))>,
}

/// How often an idle runner still stores the position it read to.
const PERSIST_IDLE_EVERY: Duration = Duration::from_secs(2);

/// Which copy of a projection's tables a step writes.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// The tables readers use.
    Live,
    /// A rebuild's tables, in this schema.
    Shadow(&'a str),
}

impl Target<'_> {
    /// The runner lock: the live runner and a rebuild's runner do not exclude each other.
    fn lock_key(self, name: &str) -> String {
        match self {
            Target::Live => name.to_string(),
            Target::Shadow(_) => format!("{name}#rebuild"),
        }
    }
}

/// A step; the flag says whether it stored its checkpoint.
async fn step_on<P: Projection>(
    pool: &PgPool,
    projection: &P,
    batch_size: i64,
    target: Target<'_>,
    skip: &mut Skip,
    persist_idle: bool,
) -> Result<(Step, bool), sqlx::Error> {
    match attempt(
        pool,
        projection,
        batch_size,
        false,
        target,
        skip,
        persist_idle,
    )
    .await?
    {
        Some(step) => Ok(step),
        None => Ok(attempt(
            pool,
            projection,
            batch_size,
            true,
            target,
            skip,
            persist_idle,
        )
        .await?
        .unwrap_or((Step::Applied(0), false))),
    }
}

/// One try at a batch; `None` when the fast path met poison.
async fn attempt<P: Projection>(
    pool: &PgPool,
    projection: &P,
    batch_size: i64,
    isolate_each_event: bool,
    target: Target<'_>,
    skip: &mut Skip,
    persist_idle: bool,
) -> Result<Option<(Step, bool)>, sqlx::Error> {
    let name = projection.name();
    let mut tx = pool.begin().await?;
    if let Target::Shadow(schema) = target {
        shadow_session(&mut tx, schema).await?;
    }
    // One runner per projection at a time; an advisory lock takes no
    // transaction id, so it does not hold back any reader's xmin.
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(target.lock_key(name))
            .fetch_one(&mut *tx)
            .await?;
    if !locked {
        return Ok(Some((Step::Busy, false)));
    }
    let checkpoint: Option<(i64, i64)> = sqlx::query_as(
        "SELECT last_txid, last_position FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let stored = checkpoint.unwrap_or((0, 0));
    let (last_txid, last_position) = match skip.ahead {
        Some((base, ahead)) if base == stored => ahead,
        _ => stored,
    };

    let events = read_committed(&mut tx, (last_txid, last_position), batch_size).await?;

    let Some(last) = events.last() else {
        if persist_idle && (last_txid, last_position) > stored {
            // Idle, with a skipped position not yet stored: store it now.
            store_checkpoint(&mut tx, name, last_txid, last_position).await?;
            tx.commit().await?;
            skip.ahead = None;
            return Ok(Some((Step::Applied(0), true)));
        }
        return Ok(Some((Step::Applied(0), false)));
    };
    let (new_txid, new_position) = (last.txid, last.position);
    if !persist_idle && !events.iter().any(|e| projection.handles(&e.aggregate_type)) {
        // Nothing here for this projection: remember the position, write nothing.
        skip.ahead = Some((stored, (new_txid, new_position)));
        return Ok(Some((Step::Applied(events.len()), false)));
    }

    let applied = match target {
        Target::Live => crate::apply_events(&mut tx, projection, &events, isolate_each_event)
            .await?
            .is_some(),
        Target::Shadow(schema) => {
            apply_in_two_lanes(
                pool,
                &mut tx,
                schema,
                projection,
                &events,
                isolate_each_event,
            )
            .await?
        }
    };
    if !applied {
        // Dropping the transaction rolls the attempt back.
        return Ok(None);
    }

    store_checkpoint(&mut tx, name, new_txid, new_position).await?;
    // Readers waiting for their own writes listen on this channel.
    sqlx::query("SELECT pg_notify('views', $1)")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    debug!(projection = name, events = events.len(), "batch applied");
    skip.ahead = None;
    Ok(Some((Step::Applied(events.len()), true)))
}

/// Sets a rebuild's transaction up: unqualified names (views, checkpoint,
/// dead letters) mean the shadow copies, and its commit does not wait for
/// the WAL flush. A crash may lose the last batches of a rebuild, but a
/// rebuild's tables are never used unless it completes, and its swap
/// commits durably: WAL is flushed in order, so the swap's flush carries
/// every batch before it.
async fn shadow_session(conn: &mut sqlx::PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('search_path', $1, true), set_config('synchronous_commit', 'off', true)",
    )
    .bind(format!("{schema}, public"))
    .execute(conn)
    .await?;
    Ok(())
}

/// A rebuild's batch, applied on two connections at once: the events split
/// by aggregate, so each aggregate's events stay in order on one lane, and
/// the projections' rows are per aggregate, so the lanes touch different
/// rows. A rebuild is bound by round trips to PostgreSQL; two lanes keep
/// the client and the server busy at the same time. The second lane commits
/// just before the caller's transaction: a crash between the two leaves a
/// shadow copy that is never swapped in (a rebuild starts over from scratch),
/// so it costs nothing. Returns false when the fast path met poison (the
/// caller retries with each event isolated).
async fn apply_in_two_lanes<P: Projection>(
    pool: &PgPool,
    tx: &mut sqlx::PgConnection,
    schema: &str,
    projection: &P,
    events: &[StoredEvent],
    isolate_each_event: bool,
) -> Result<bool, sqlx::Error> {
    use std::hash::{Hash, Hasher};
    let (mut first, mut second): (Vec<&StoredEvent>, Vec<&StoredEvent>) = (Vec::new(), Vec::new());
    for event in events {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&event.aggregate_type, &event.aggregate_id).hash(&mut hasher);
        if hasher.finish().is_multiple_of(2) {
            first.push(event);
        } else {
            second.push(event);
        }
    }
    let mut other = pool.begin().await?;
    shadow_session(&mut other, schema).await?;
    let (a, b) = tokio::join!(
        crate::apply_events(tx, projection, &first, isolate_each_event),
        crate::apply_events(&mut other, projection, &second, isolate_each_event),
    );
    if a?.is_none() || b?.is_none() {
        return Ok(false);
    }
    other.commit().await?;
    Ok(true)
}

/// Up to `limit` events past `after` (a `(txid, position)` commit key), in
/// commit order, from transactions that have all ended (below the snapshot's
/// xmin): nothing can later commit behind the last one returned. The one
/// read of the store that tailing runners and the Kafka relay share.
pub async fn read_committed(
    conn: &mut sqlx::PgConnection,
    after: (i64, i64),
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type, event_version,
                payload, metadata, recorded_at
           FROM events
          WHERE (txid, position) > ($1, $2)
            AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
          ORDER BY txid, position
          LIMIT $3",
    )
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(conn)
    .await
}

async fn store_checkpoint(
    conn: &mut sqlx::PgConnection,
    projection: &str,
    txid: i64,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, last_txid, last_position, updated_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (projection) DO UPDATE
            SET last_txid = EXCLUDED.last_txid, last_position = EXCLUDED.last_position, updated_at = now()",
    )
    .bind(projection)
    .bind(txid)
    .bind(position)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records (or re-records) an event a projection could not apply.
pub async fn dead_letter(
    conn: &mut sqlx::PgConnection,
    projection: &str,
    event: &StoredEvent,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_dead_letters
            (projection, event_position, aggregate_type, aggregate_id, sequence, event_type, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (projection, event_position)
            DO UPDATE SET error = EXCLUDED.error, failed_at = now(), resolved_at = NULL",
    )
    .bind(projection)
    .bind(event.position)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.sequence)
    .bind(&event.event_type)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies everything committed before the call and returns how many events
/// were read. A step can read nothing while an older transaction anywhere on
/// the server is still open (it holds the snapshot xmin back), so "nothing
/// read" is not "done": done is when every transaction that existed at the
/// call has ended and a step then reads nothing.
pub async fn catch_up<P: Projection>(
    pool: &PgPool,
    projection: &P,
    batch_size: i64,
) -> Result<usize, sqlx::Error> {
    catch_up_on(pool, projection, batch_size, Target::Live).await
}

async fn catch_up_on<P: Projection>(
    pool: &PgPool,
    projection: &P,
    batch_size: i64,
    into: Target<'_>,
) -> Result<usize, sqlx::Error> {
    let target: i64 =
        sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
            .fetch_one(pool)
            .await?;
    let mut total = 0;
    loop {
        match step_once(pool, projection, batch_size, into).await? {
            Step::Applied(0) => {
                let horizon: i64 = sqlx::query_scalar(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                )
                .fetch_one(pool)
                .await?;
                if horizon >= target {
                    // Everything before `target` has ended; one more step takes what it committed.
                    if let Step::Applied(n) = step_once(pool, projection, batch_size, into).await? {
                        if n == 0 {
                            return Ok(total);
                        }
                        total += n;
                    }
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Step::Applied(n) => total += n,
            Step::Busy => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// One step on `target`, checkpoint stored.
async fn step_once<P: Projection>(
    pool: &PgPool,
    projection: &P,
    batch_size: i64,
    target: Target<'_>,
) -> Result<Step, sqlx::Error> {
    Ok(step_on(
        pool,
        projection,
        batch_size,
        target,
        &mut Skip::default(),
        true,
    )
    .await?
    .0)
}

/// Rebuilds a projection from the whole store without taking reads down
/// (ARCHITECTURE.md, invariant 6): the views are built aside, in a schema of
/// their own, in commit order, then swapped in while the live runner is held
/// between batches; the live runner then goes on from the rebuild's
/// checkpoint. Progress (events done, rate, time left) is logged. Returns the
/// number of events the rebuild read.
pub async fn rebuild<P: Projection>(
    pool: &PgPool,
    projection: &P,
    batch_size: i64,
) -> Result<usize, sqlx::Error> {
    let name = projection.name();
    let shadow = schema_name("rebuild", name);
    let retired = schema_name("retired", name);
    let mut tables: Vec<&str> = projection.tables().to_vec();
    let bookkeeping = ["projection_checkpoints", "projection_dead_letters"];

    let mut tx = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {shadow} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {shadow}"))
        .execute(&mut *tx)
        .await?;
    for table in tables.iter().chain(bookkeeping.iter()) {
        sqlx::query(&format!(
            "CREATE TABLE {shadow}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
        // LIKE copies columns, defaults and indexes, not storage
        // parameters: a view's fillfactor (room for in-place updates) too.
        let options: Option<Vec<String>> = sqlx::query_scalar(
            "SELECT reloptions FROM pg_class WHERE oid = to_regclass('public.' || quote_ident($1))",
        )
        .bind(table)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        if let Some(options) = options.filter(|o| !o.is_empty()) {
            sqlx::query(&format!(
                "ALTER TABLE {shadow}.{table} SET ({})",
                options.join(", ")
            ))
            .execute(&mut *tx)
            .await?;
        }
    }
    // Indexes that only serve reads (not unique, no constraint behind
    // them) are built once the rows are in, by one sort each, instead of
    // taking every row on the way, when the projection looks rows up by
    // their keys only.
    let deferred: Vec<(String, String)> = if !projection.rebuild_indexes_after_rows() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
          WHERE t.relnamespace = $1::regnamespace AND t.relname = ANY($2)
            AND NOT i.indisunique
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        )
        .bind(&shadow)
        .bind(&tables)
        .fetch_all(&mut *tx)
        .await?
    };
    for (index, _) in &deferred {
        sqlx::query(&format!("DROP INDEX {index}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;

    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let started = std::time::Instant::now();
    let mut last_report = started;
    let mut done = 0usize;
    info!(
        projection = name,
        events = total,
        "rebuild started, building aside in {shadow}"
    );
    loop {
        let mut skip = Skip::default();
        let step = step_on(
            pool,
            projection,
            batch_size,
            Target::Shadow(&shadow),
            &mut skip,
            true,
        );
        match step.await?.0 {
            Step::Busy => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Step::Applied(n) => {
                done += n;
                if last_report.elapsed() >= Duration::from_secs(2) || (n as i64) < batch_size {
                    last_report = std::time::Instant::now();
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    let rate = done as f64 / secs;
                    let left = (total as f64 - done as f64).max(0.0) / rate.max(1.0);
                    info!(
                        projection = name,
                        done,
                        total,
                        rate_per_s = rate as u64,
                        seconds_left = left as u64,
                        "rebuild progress"
                    );
                }
                if (n as i64) < batch_size {
                    break;
                }
            }
        }
    }

    for (_, definition) in &deferred {
        sqlx::query(definition).execute(pool).await?;
    }

    // Swap: hold the live runners between batches (the tailing runner, or
    // every Kafka worker of this projection), take the rebuild up to
    // everything committed, so it holds every event the live tables hold
    // whatever fed them, move the live tables out and the rebuilt ones in,
    // and hand the rebuild's checkpoint and dead letters to the live runner.
    // A live runner then goes on from its own position: events the rebuild
    // already holds are duplicates, which every view ignores by sequence.
    // Readers wait only for the moment the swap takes.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    // The lock takes no transaction id, so this waits on nobody but writers.
    done += catch_up_on(pool, projection, batch_size, Target::Shadow(&shadow)).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {retired}"))
        .execute(&mut *tx)
        .await?;
    tables.sort_unstable();
    for table in &tables {
        sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {retired}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE {shadow}.{table} SET SCHEMA public"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM public.projection_checkpoints WHERE projection = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO public.projection_checkpoints SELECT * FROM {shadow}.projection_checkpoints WHERE projection = $1"
    ))
    .bind(name)
    .execute(&mut *tx)
    .await?;
    // Unresolved dead letters are replaced by what the rebuild met; resolved
    // ones stay for the audit trail.
    sqlx::query(
        "DELETE FROM public.projection_dead_letters WHERE projection = $1 AND resolved_at IS NULL",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO public.projection_dead_letters
            (projection, event_position, aggregate_type, aggregate_id, sequence, event_type, error, failed_at)
         SELECT projection, event_position, aggregate_type, aggregate_id, sequence, event_type, error, failed_at
           FROM {shadow}.projection_dead_letters WHERE projection = $1
         ON CONFLICT (projection, event_position)
            DO UPDATE SET error = EXCLUDED.error, failed_at = EXCLUDED.failed_at, resolved_at = NULL"
    ))
    .bind(name)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify('views', $1)")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    for schema in [&retired, &shadow] {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(pool)
            .await?;
    }
    info!(
        projection = name,
        events = done,
        seconds = started.elapsed().as_secs(),
        "rebuild swapped in"
    );
    Ok(done)
}

/// A schema name for a projection's rebuild; projection names are ours and
/// plain, but keep only identifier characters all the same.
fn schema_name(prefix: &str, projection: &str) -> String {
    let clean: String = projection
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}_{clean}")
}

/// Retries a projection's unresolved dead letters in store order. Each one
/// that applies now is marked resolved; one that still fails keeps its
/// record with the new error. Returns (resolved, still failing).
pub async fn retry_dead_letters<P: Projection>(
    pool: &PgPool,
    projection: &P,
) -> Result<(usize, usize), sqlx::Error> {
    let letters: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, event_position FROM projection_dead_letters
          WHERE projection = $1 AND resolved_at IS NULL ORDER BY event_position",
    )
    .bind(projection.name())
    .fetch_all(pool)
    .await?;
    let (mut resolved, mut failing) = (0, 0);
    for (id, position) in letters {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(projection.name())
            .execute(&mut *tx)
            .await?;
        let event: StoredEvent = sqlx::query_as(
            "SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type, event_version,
                    payload, metadata, recorded_at
               FROM events WHERE position = $1",
        )
        .bind(position)
        .fetch_one(&mut *tx)
        .await?;
        let mut savepoint = tx.begin().await?;
        match projection.apply(&mut savepoint, &event).await {
            Ok(()) => {
                savepoint.commit().await?;
                sqlx::query("UPDATE projection_dead_letters SET resolved_at = now() WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                resolved += 1;
            }
            Err(ApplyError::Poison(reason)) => {
                savepoint.rollback().await?;
                dead_letter(&mut tx, projection.name(), &event, &reason).await?;
                failing += 1;
            }
            Err(ApplyError::Database(e)) => return Err(e),
        }
        tx.commit().await?;
    }
    Ok((resolved, failing))
}

/// Runs a projection until cancelled: applies batches while there are any,
/// then waits for a commit notification or the poll interval. Database
/// errors are logged and retried with backoff; the runner never gives up.
pub async fn run<P: Projection>(
    pool: PgPool,
    projection: P,
    options: TailOptions,
    cancel: CancellationToken,
) {
    let name = projection.name();
    info!(
        projection = name,
        "projection runner started (tailing the event store)"
    );
    let mut listener = connect_listener(&pool).await;
    let mut backoff = Duration::from_millis(100);
    let mut skip = Skip::default();
    let mut persisted = std::time::Instant::now();
    while !cancel.is_cancelled() {
        let persist_idle = persisted.elapsed() >= PERSIST_IDLE_EVERY;
        let result = step_on(
            &pool,
            &projection,
            options.batch_size,
            Target::Live,
            &mut skip,
            persist_idle,
        )
        .await
        .map(|(step, stored)| {
            if stored {
                persisted = std::time::Instant::now();
            }
            step
        });
        match result {
            Ok(Step::Applied(n)) if n as i64 >= options.batch_size => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(_) => backoff = Duration::from_millis(100),
            Err(e) => {
                error!(projection = name, error = %e, retry_in_ms = backoff.as_millis() as u64, "projection step failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if listener.is_none() {
                    listener = connect_listener(&pool).await;
                }
                continue;
            }
        }
        // Wake for a commit of an aggregate type this projection handles
        // (the payload names it); others wait for the poll.
        let notified = async {
            match listener.as_mut() {
                Some(l) => loop {
                    match l.recv().await {
                        Ok(n) if n.payload().is_empty() || projection.handles(n.payload()) => {
                            return Ok(());
                        }
                        Ok(_) => continue,
                        Err(e) => return Err(e),
                    }
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = notified => {
                if let Err(e) = result {
                    warn!(projection = name, error = %e, "event notifications lost; polling until reconnected");
                    listener = None;
                }
            }
            _ = tokio::time::sleep(options.poll_interval) => {}
            _ = cancel.cancelled() => break,
        }
    }
    info!(projection = name, "projection runner stopped");
}

async fn connect_listener(pool: &PgPool) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot listen for event notifications; polling instead");
            return None;
        }
    };
    match listener.listen("events").await {
        Ok(()) => Some(listener),
        Err(e) => {
            warn!(error = %e, "cannot listen for event notifications; polling instead");
            None
        }
    }
}
