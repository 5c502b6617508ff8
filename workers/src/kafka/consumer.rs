//! Projection workers fed by Kafka: one consumer group per projection.
//!
//! A batch's view change and its partitions' offsets commit in one PostgreSQL
//! transaction (ARCHITECTURE.md, invariant 3). When the group assigns a
//! partition, the worker starts it at the offset stored there, not at
//! Kafka's committed offset (which it also sets, after the database commit,
//! for tools to read). A message below the stored offset was applied already
//! and is skipped; within the views, each row also remembers the last
//! aggregate sequence applied, so a duplicate the relay published twice is a
//! no-op. An event a projection cannot apply is dead-lettered, in the table
//! (with the error) and on the dead-letter topic, and the worker goes on.
//!
//! Each batch holds the projection's runner lock in shared mode: workers of
//! one group run side by side, and a rebuild's swap (exclusive) waits for the
//! batch in flight and holds the next.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use marketplace_projections::{apply_events, Projection, StoredEvent};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::KafkaConfig;

/// Tuning of a projection worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker, as recorded next to the offsets it commits.
    pub worker_id: String,
    /// Most messages per transaction.
    pub batch_size: usize,
    /// How long to wait for more messages before applying a batch. Zero
    /// takes what is already fetched: under load, messages queue up while a
    /// batch commits, so batches grow by themselves.
    pub linger: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Self {
            worker_id: format!("{host}:{}", std::process::id()),
            batch_size: 500,
            linger: Duration::ZERO,
        }
    }
}

type Partitions = HashMap<(String, i32), i64>;

/// Seeks assigned partitions to the offsets stored in PostgreSQL and keeps
/// the partitions' high watermarks from the client's statistics.
struct OffsetsContext {
    pool: PgPool,
    group: String,
    projection: &'static str,
    worker_id: String,
    high_watermarks: Mutex<Partitions>,
    /// Partitions assigned since the last batch: a gap on one of them is
    /// answered with one seek back to the stored offset.
    fresh: Mutex<HashSet<(String, i32)>>,
}

impl ClientContext for OffsetsContext {
    fn stats(&self, statistics: Statistics) {
        let mut high = self.high_watermarks.lock().expect("watermarks");
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                if partition >= 0 && p.hi_offset >= 0 {
                    high.insert((name.clone(), partition), p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for OffsetsContext {
    fn rebalance(
        &self,
        base: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                let stored = self.stored_offsets();
                if let Some(s) = &stored {
                    let new: Vec<&(String, i32)> =
                        partitions.iter().filter(|p| !s.contains_key(*p)).collect();
                    self.record_start(&new);
                }
                for (topic, partition) in &partitions {
                    let offset = match &stored {
                        Some(s) => s
                            .get(&(topic.clone(), *partition))
                            .map_or(Offset::Beginning, |o| Offset::Offset(*o)),
                        // Kafka's committed offsets never run ahead of ours.
                        None => Offset::Stored,
                    };
                    let _ = tpl.set_partition_offset(topic, *partition, offset);
                }
                if let Err(e) = base.assign(tpl) {
                    error!(projection = self.projection, error = %e, "cannot take the assigned partitions");
                }
                self.fresh
                    .lock()
                    .expect("fresh")
                    .extend(partitions.iter().cloned());
                info!(
                    projection = self.projection,
                    worker = %self.worker_id,
                    partitions = %describe(&partitions),
                    "partitions assigned"
                );
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(projection = self.projection, worker = %self.worker_id, "partitions revoked");
                let _ = base.unassign();
            }
            other => {
                error!(projection = self.projection, error = ?other, "rebalance failed");
                let _ = base.unassign();
            }
        }
    }
}

impl OffsetsContext {
    /// The offsets stored for this group, read synchronously: librdkafka
    /// calls the rebalance hook from inside a poll and the assignment must be
    /// complete when it returns. `None` when they cannot be read.
    fn stored_offsets(&self) -> Option<Partitions> {
        let query = sqlx::query_as::<_, (String, i32, i64)>(
            "SELECT topic, partition, next_offset FROM kafka_offsets WHERE consumer_group = $1",
        )
        .bind(&self.group)
        .fetch_all(&self.pool);
        match block_on_db(query) {
            Ok(rows) => Some(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect()),
            Err(e) => {
                warn!(error = %e, "cannot read stored offsets; using Kafka's committed offsets");
                None
            }
        }
    }

    /// Records partitions the group starts on from their beginning (offset
    /// 0), so the lag metric counts what waits in them before the first
    /// batch. Best effort: a batch records them anyway.
    fn record_start(&self, partitions: &[&(String, i32)]) {
        if partitions.is_empty() {
            return;
        }
        let (topics, numbers): (Vec<String>, Vec<i32>) =
            partitions.iter().map(|(t, p)| (t.clone(), *p)).unzip();
        let insert = sqlx::query(
            "INSERT INTO kafka_offsets (consumer_group, topic, partition, next_offset, worker)
             SELECT $1, t, p, 0, $4 FROM unnest($2::text[], $3::int[]) AS u(t, p)
             ON CONFLICT (consumer_group, topic, partition) DO NOTHING",
        )
        .bind(&self.group)
        .bind(&topics)
        .bind(&numbers)
        .bind(&self.worker_id)
        .execute(&self.pool);
        if let Err(e) = block_on_db(insert) {
            warn!(projection = self.projection, error = %e, "cannot record the new partitions' start");
        }
    }
}

/// Runs a database call to completion from librdkafka's rebalance hook, a
/// synchronous callback inside a poll whose assignment must be complete
/// when it returns. Needs the multi-threaded runtime; bounded to 10 s.
fn block_on_db<T>(
    call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, String> {
    let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err("not on a multi-threaded runtime".into());
    }
    match tokio::task::block_in_place(|| {
        handle.block_on(tokio::time::timeout(Duration::from_secs(10), call))
    }) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("timed out after 10 s".into()),
    }
}

fn describe(partitions: &[(String, i32)]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    by_topic
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            format!("{t}{ps:?}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message taken off the consumer.
#[derive(Debug)]
struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    event: Result<StoredEvent, String>,
}

impl Received {
    fn from(message: &BorrowedMessage<'_>) -> Self {
        let event = match message.payload() {
            Some(body) => serde_json::from_slice::<StoredEvent>(body)
                .map_err(|e| format!("not an event envelope: {e}")),
            None => Err("empty message".to_string()),
        };
        Self {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            event,
        }
    }
}

/// What a committed batch did.
#[derive(Debug, Default)]
struct Outcome {
    applied: usize,
    duplicates: usize,
    dead: Vec<(StoredEvent, String)>,
    /// Partitions to seek back to their stored offset.
    seek: Vec<(String, i32, i64)>,
    /// Offsets committed: (topic, partition) -> next offset.
    committed: Vec<(String, i32, i64)>,
}

/// Runs a projection's worker until cancelled, starting over after any
/// failure.
pub async fn run<P: Projection>(
    pool: PgPool,
    config: KafkaConfig,
    projection: P,
    options: WorkerOptions,
    cancel: CancellationToken,
) {
    let projection = Arc::new(projection);
    let mut backoff = Duration::from_millis(200);
    while !cancel.is_cancelled() {
        match consume(&pool, &config, projection.as_ref(), &options, &cancel).await {
            Ok(()) => break,
            Err(e) => {
                error!(
                    projection = projection.name(),
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "projection worker failed; restarting"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    info!(projection = projection.name(), "projection worker stopped");
}

async fn consume<P: Projection>(
    pool: &PgPool,
    config: &KafkaConfig,
    projection: &P,
    options: &WorkerOptions,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let name = projection.name();
    let group = config.group(name);
    let topics: Vec<String> = projection
        .aggregate_types()
        .iter()
        .map(|t| config.topic(t))
        .collect();
    let mut needed = topics.clone();
    needed.push(config.dead_letter_topic());
    config.ensure_topics(&needed).await?;
    let session_ms = config.session_timeout.as_millis().max(1000);
    let context = OffsetsContext {
        pool: pool.clone(),
        group: group.clone(),
        projection: name,
        worker_id: options.worker_id.clone(),
        high_watermarks: Mutex::new(HashMap::new()),
        fresh: Mutex::new(HashSet::new()),
    };
    let consumer: StreamConsumer<OffsetsContext> = config
        .client(&format!("marketplace-projection-{name}"))
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session_ms.to_string())
        .set("heartbeat.interval.ms", (session_ms / 4).to_string())
        .set("statistics.interval.ms", "1000")
        .create_with_context(context)
        .context("cannot create the Kafka consumer")?;
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs)?;
    let dead_letters: FutureProducer = config
        .client(&format!("marketplace-dead-letters-{name}"))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .context("cannot create the dead-letter producer")?;
    info!(projection = name, group = %group, worker = %options.worker_id, topics = %topics.join(","), "projection worker started (Kafka consumer group)");

    // Consumer errors since the last message received.
    let mut errors_in_a_row = 0u32;
    loop {
        let first = tokio::select! {
            m = consumer.recv() => m,
            _ = cancel.cancelled() => return Ok(()),
        };
        let mut batch = Vec::with_capacity(options.batch_size);
        match first {
            Ok(m) => {
                errors_in_a_row = 0;
                batch.push(Received::from(&m));
            }
            Err(e) => {
                errors_in_a_row = errors_in_a_row.saturating_add(1);
                transient(name, &e, errors_in_a_row);
                tokio::select! {
                    _ = tokio::time::sleep(error_backoff(errors_in_a_row)) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
                continue;
            }
        }
        while batch.len() < options.batch_size {
            match tokio::time::timeout(options.linger, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(Received::from(&m)),
                Ok(Err(e)) => {
                    transient(name, &e, 1);
                    break;
                }
                Err(_) => break,
            }
        }

        let fresh: HashSet<(String, i32)> =
            std::mem::take(&mut *consumer.context().fresh.lock().expect("fresh"));
        let high = consumer
            .context()
            .high_watermarks
            .lock()
            .expect("watermarks")
            .clone();
        // The database may be away: keep the batch and try again until it
        // commits (or the worker is stopped).
        let mut retry = Duration::from_millis(100);
        let outcome = loop {
            match apply_batch(
                pool,
                projection,
                &group,
                &options.worker_id,
                &batch,
                &fresh,
                &high,
            )
            .await
            {
                Ok(outcome) => break outcome,
                Err(e) => {
                    error!(projection = name, error = %e, retry_in_ms = retry.as_millis() as u64, "batch failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = cancel.cancelled() => return Ok(()),
                    }
                    retry = (retry * 2).min(Duration::from_secs(5));
                }
            }
        };
        for (topic, partition, offset) in &outcome.seek {
            warn!(
                projection = name,
                topic, partition, offset, "partition ahead of the stored offset; seeking back"
            );
            if let Err(e) = consumer.seek(
                topic,
                *partition,
                Offset::Offset(*offset),
                Duration::from_secs(5),
            ) {
                // Starting over re-reads the stored offsets on assignment.
                anyhow::bail!("cannot seek {topic}[{partition}] back to {offset}: {e}");
            }
        }
        for (event, reason) in &outcome.dead {
            publish_dead_letter(&dead_letters, config, name, event, reason).await;
        }
        if !outcome.committed.is_empty() {
            // A hint for Kafka's own tools; the stored offsets are the truth.
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, next) in &outcome.committed {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                debug!(projection = name, error = %e, "offset hint not committed to Kafka");
            }
        }
        debug!(
            projection = name,
            applied = outcome.applied,
            duplicates = outcome.duplicates,
            dead_lettered = outcome.dead.len(),
            "batch committed"
        );
    }
}

/// The wait after the second consumer error in a row; doubled for each
/// further one, up to [`ERROR_BACKOFF_MAX`].
const ERROR_BACKOFF_BASE: Duration = Duration::from_millis(5);

/// The longest wait between consumer errors. librdkafka queues an error
/// per failed reconnect of each of a consumer's connections (measured
/// through a 30 s outage, `reconnect.backoff.max.ms` at 1 s: 1.5 to 6.5 a
/// second per consumer). A wait longer than their pace piles them up, and
/// once the broker is back the group waits while the pile is worked
/// through: at a constant 500 ms, 100 errors were still queued and two
/// groups had not taken their partitions 50 s later. The wait only guards
/// against a tight loop of errors; librdkafka reconnects by itself.
const ERROR_BACKOFF_MAX: Duration = Duration::from_millis(50);

/// How long a worker waits after the `consecutive`-th consumer error since
/// its last message (1 for the first): not at all after one error, then a
/// wait that doubles with each error in a row, capped.
fn error_backoff(consecutive: u32) -> Duration {
    match consecutive {
        0 | 1 => Duration::ZERO,
        n => ERROR_BACKOFF_BASE
            .saturating_mul(1u32 << (n - 2).min(16))
            .min(ERROR_BACKOFF_MAX),
    }
}

/// Logs a consumer error, the `in_a_row`-th since the last message. With
/// no wait between them, an outage reports several a second: the first and
/// then every power of two are warnings, the rest debug lines.
fn transient(projection: &str, e: &KafkaError, in_a_row: u32) {
    if in_a_row.is_power_of_two() {
        warn!(projection, error = %e, errors_in_a_row = in_a_row, "Kafka consumer error");
    } else {
        debug!(projection, error = %e, errors_in_a_row = in_a_row, "Kafka consumer error");
    }
}

/// One transaction: the batch's new messages applied, dead letters recorded,
/// offsets moved.
async fn apply_batch<P: Projection>(
    pool: &PgPool,
    projection: &P,
    group: &str,
    worker: &str,
    batch: &[Received],
    fresh: &HashSet<(String, i32)>,
    high: &Partitions,
) -> Result<Outcome, sqlx::Error> {
    let events_of = |accepted: &[&Received]| -> Vec<StoredEvent> {
        accepted
            .iter()
            .filter_map(|r| r.event.as_ref().ok().cloned())
            .collect()
    };
    // The fast path first; on poison, again with each event isolated.
    for isolate in [false, true] {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 7))")
            .bind(projection.name())
            .execute(&mut *tx)
            .await?;
        let mut outcome = Outcome::default();
        let accepted = accept(&mut tx, group, batch, fresh, &mut outcome).await?;
        outcome.duplicates = batch.len() - accepted.len();
        for r in &accepted {
            if let Err(reason) = &r.event {
                error!(projection = projection.name(), topic = %r.topic, partition = r.partition, offset = r.offset, error = %reason, "unreadable message skipped");
            }
        }
        let events = events_of(&accepted);
        let Some(dead) = apply_events(&mut tx, projection, &events, isolate).await? else {
            continue; // rolled back by the drop
        };
        outcome.applied = events.len() - dead.len();
        outcome.dead = dead
            .into_iter()
            .map(|(i, reason)| (events[i].clone(), reason))
            .collect();

        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for r in &accepted {
            let e = next.entry((r.topic.as_str(), r.partition)).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        for ((topic, partition), next_offset) in next {
            let hw = high
                .get(&(topic.to_string(), partition))
                .copied()
                .unwrap_or(next_offset)
                .max(next_offset);
            sqlx::query(
                "INSERT INTO kafka_offsets (consumer_group, topic, partition, next_offset, high_watermark, worker, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, now())
                 ON CONFLICT (consumer_group, topic, partition) DO UPDATE
                    SET next_offset = GREATEST(kafka_offsets.next_offset, EXCLUDED.next_offset),
                        high_watermark = EXCLUDED.high_watermark,
                        worker = EXCLUDED.worker, updated_at = now()",
            )
            .bind(group)
            .bind(topic)
            .bind(partition)
            .bind(next_offset)
            .bind(hw)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
            outcome
                .committed
                .push((topic.to_string(), partition, next_offset));
        }
        sqlx::query("SELECT pg_notify('views', $1)")
            .bind(projection.name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(outcome);
    }
    unreachable!("the isolated attempt never stops at poison")
}

/// The messages not applied yet, with the partitions' offset rows locked
/// until commit (two workers briefly owning one partition during a
/// rebalance take turns, and the second skips what the first applied).
async fn accept<'b>(
    tx: &mut PgConnection,
    group: &str,
    batch: &'b [Received],
    fresh: &HashSet<(String, i32)>,
    outcome: &mut Outcome,
) -> Result<Vec<&'b Received>, sqlx::Error> {
    let mut partitions: Vec<(&str, i32)> = batch
        .iter()
        .map(|r| (r.topic.as_str(), r.partition))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    partitions.sort_unstable();
    let mut stored: HashMap<(&str, i32), i64> = HashMap::new();
    for (topic, partition) in &partitions {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_offset FROM kafka_offsets
              WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
        )
        .bind(group)
        .bind(topic)
        .bind(partition)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(next) = next {
            stored.insert((topic, *partition), next);
        }
    }
    let mut gaps: HashSet<(&str, i32)> = HashSet::new();
    for (topic, partition) in &partitions {
        let Some(next) = stored.get(&(*topic, *partition)) else {
            continue;
        };
        let first = batch
            .iter()
            .filter(|r| r.topic == *topic && r.partition == *partition)
            .map(|r| r.offset)
            .min()
            .unwrap_or(*next);
        // Messages past a hole: Kafka started this partition after the
        // stored offset. Seek back once per assignment (offsets can skip
        // legitimately, e.g. after compaction, so never more).
        if first > *next && fresh.contains(&(topic.to_string(), *partition)) {
            gaps.insert((topic, *partition));
            outcome.seek.push((topic.to_string(), *partition, *next));
        }
    }
    Ok(batch
        .iter()
        .filter(|r| {
            let key = (r.topic.as_str(), r.partition);
            !gaps.contains(&key) && stored.get(&key).is_none_or(|next| r.offset >= *next)
        })
        .collect())
}

async fn publish_dead_letter(
    producer: &FutureProducer,
    config: &KafkaConfig,
    projection: &str,
    event: &StoredEvent,
    reason: &str,
) {
    let body = serde_json::json!({
        "projection": projection,
        "error": reason,
        "event": event,
    })
    .to_string();
    let topic = config.dead_letter_topic();
    let record = FutureRecord::to(&topic)
        .key(event.aggregate_id.as_str())
        .payload(&body)
        .headers(super::event_headers(event));
    // The table is the record of truth; the topic is for whoever watches it.
    match producer.send(record, Duration::from_secs(5)).await {
        Ok(_) => {}
        Err((e, _)) => warn!(projection, error = %e, "dead letter not published to {topic}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_is_not_waited_on() {
        assert_eq!(error_backoff(1), Duration::ZERO);
    }

    #[test]
    fn errors_in_a_row_wait_longer_each_time_up_to_a_cap() {
        let waits: Vec<Duration> = (1..=40).map(error_backoff).collect();
        for pair in waits.windows(2) {
            assert!(pair[1] >= pair[0], "never shorter: {waits:?}");
        }
        assert!(
            waits[1] > waits[0] && waits[2] > waits[1],
            "grows: {waits:?}"
        );
        assert_eq!(waits[39], ERROR_BACKOFF_MAX, "capped: {waits:?}");
        assert_eq!(error_backoff(u32::MAX), ERROR_BACKOFF_MAX);
    }

    #[test]
    fn a_backlog_of_queued_errors_drains_in_seconds() {
        // librdkafka queues an error per failed reconnect of each of a
        // consumer's connections, up to several a second through an
        // outage. Waiting longer than their pace piles them up, and once the
        // broker is back the group waits while the pile is worked through
        // (at 500 ms an error: 100 queued errors, 50 s).
        assert!(
            ERROR_BACKOFF_MAX <= Duration::from_millis(100),
            "at least 10 a second"
        );
        let backlog: Duration = (1..=100).map(error_backoff).sum();
        assert!(backlog < Duration::from_secs(6), "{backlog:?}");
    }
}
