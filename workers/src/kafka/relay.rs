//! The relay: publishes every committed event to Kafka in commit order.
//!
//! It reads the store exactly as a tailing projection does, by `(txid,
//! position)` below the snapshot's `xmin` (ARCHITECTURE.md, invariant 2),
//! sends a batch with an idempotent, `acks=all` producer, waits until Kafka
//! acknowledged every event of it, and only then moves its checkpoint. A crash
//! between the two republishes the batch: Kafka may hold duplicates, which
//! consumers drop by aggregate sequence; nothing is lost (invariant 1).
//!
//! Any number of relays may run. One publishes: the one holding a session
//! advisory lock on a connection of its own, through which it also writes its
//! checkpoint, so a relay that lost its session cannot move the checkpoint.
//! The others retry the lock every `takeover_interval` and take over when the
//! leader's session ends (it died, or lost its database connection).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use marketplace_projections::{tail, StoredEvent};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgListener;
use sqlx::{ConnectOptions, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{event_headers, KafkaConfig};

/// Tuning of a relay.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The relay's checkpoint and lock name; relays of one name share them.
    pub name: String,
    /// This process, as written next to the checkpoint (`host:pid`).
    pub holder: String,
    /// Events read and published per batch.
    pub batch_size: i64,
    /// How often to look for events when no notification arrives.
    pub poll_interval: Duration,
    /// How often a standby relay tries to take over.
    pub takeover_interval: Duration,
    /// The aggregate types whose topics are created up front (others are
    /// created when their first event is published).
    pub aggregate_types: Vec<String>,
}

impl RelayOptions {
    /// Defaults for a relay named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Self {
            name: name.into(),
            holder: format!("{host}:{}", std::process::id()),
            batch_size: 2000,
            poll_interval: Duration::from_millis(250),
            takeover_interval: Duration::from_secs(1),
            aggregate_types: Vec::new(),
        }
    }
}

/// Runs the relay until cancelled: waits to lead, publishes while leading,
/// and starts over after any failure (database or broker), from the stored
/// checkpoint.
pub async fn run(
    pool: PgPool,
    config: KafkaConfig,
    options: RelayOptions,
    cancel: CancellationToken,
) {
    info!(relay = %options.name, holder = %options.holder, brokers = %config.brokers, "relay started");
    let mut backoff = Duration::from_millis(200);
    while !cancel.is_cancelled() {
        match lead(&pool, &config, &options, &cancel).await {
            Ok(()) => break,
            Err(e) => {
                error!(relay = %options.name, error = format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "relay stopped leading");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    info!(relay = %options.name, "relay stopped");
}

/// Waits for the lock, then publishes until cancelled (`Ok`) or until
/// something fails (`Err`; the lock goes with the connection).
async fn lead(
    pool: &PgPool,
    config: &KafkaConfig,
    options: &RelayOptions,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    // A connection of its own: a session lock must not go back to a pool.
    let mut conn: PgConnection = pool
        .connect_options()
        .as_ref()
        .clone()
        .connect()
        .await
        .context("relay cannot connect to the database")?;
    let lock_key = format!("relay:{}", options.name);
    let mut waiting_logged = false;
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 7))")
            .bind(&lock_key)
            .fetch_one(&mut conn)
            .await?;
        if got {
            break;
        }
        if !waiting_logged {
            info!(relay = %options.name, "another relay is publishing; standing by");
            waiting_logged = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(options.takeover_interval) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
    }

    let (mut last_txid, mut last_position): (i64, i64) = sqlx::query_as(
        "INSERT INTO relay_checkpoints (relay, holder) VALUES ($1, $2)
         ON CONFLICT (relay) DO UPDATE SET holder = EXCLUDED.holder, updated_at = now()
         RETURNING last_txid, last_position",
    )
    .bind(&options.name)
    .bind(&options.holder)
    .fetch_one(&mut conn)
    .await?;
    info!(relay = %options.name, holder = %options.holder, last_txid, last_position, "relay leading");

    let producer: FutureProducer = config
        .client(&format!("marketplace-relay-{}", options.name))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Never give up on an event: while the broker is down the batch
        // waits, and the backlog waits in the store behind it.
        .set("message.timeout.ms", "0")
        .set("linger.ms", "2")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        // The placement Java clients use, so any client finds a key's partition.
        .set("partitioner", "murmur2_random")
        .create()
        .context("cannot create the Kafka producer")?;
    let mut known: HashSet<String> = HashSet::new();
    let upfront: Vec<String> = options
        .aggregate_types
        .iter()
        .map(|t| config.topic(t))
        .collect();
    config.ensure_topics(&upfront).await?;
    known.extend(options.aggregate_types.iter().cloned());

    let mut listener = listen(pool).await;
    let failpoint = std::env::var("MARKETPLACE_FAILPOINT").ok();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let events =
            tail::read_committed(&mut conn, (last_txid, last_position), options.batch_size).await?;
        let Some(last) = events.last() else {
            wait_for_events(&mut listener, pool, options.poll_interval, cancel).await;
            continue;
        };
        let (txid, position) = (last.txid, last.position);

        let new_types: Vec<String> = events
            .iter()
            .map(|e| e.aggregate_type.clone())
            .filter(|t| !known.contains(t))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !new_types.is_empty() {
            let topics: Vec<String> = new_types.iter().map(|t| config.topic(t)).collect();
            config.ensure_topics(&topics).await?;
            known.extend(new_types);
        }

        let started = Instant::now();
        let Some(heads) = publish(&producer, config, &events, cancel).await? else {
            return Ok(()); // cancelled
        };
        if failpoint.as_deref() == Some("relay-after-publish") {
            // Fault injection for the crash tests: die as `kill -9` would,
            // after Kafka acknowledged the batch and before the checkpoint.
            warn!("failpoint relay-after-publish: killing this process");
            kill_self();
        }
        // The partitions' ends, for the consumer-lag metric.
        let (topics, (partitions, ends)): (Vec<String>, (Vec<i32>, Vec<i64>)) = heads
            .into_iter()
            .map(|((topic, partition), end)| (topic, (partition, end)))
            .unzip();
        sqlx::query(
            "INSERT INTO kafka_partition_heads (topic, partition, next_offset)
             SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])
             ON CONFLICT (topic, partition) DO UPDATE
                SET next_offset = GREATEST(kafka_partition_heads.next_offset, EXCLUDED.next_offset),
                    updated_at = now()",
        )
        .bind(&topics)
        .bind(&partitions)
        .bind(&ends)
        .execute(&mut conn)
        .await?;
        sqlx::query(
            "UPDATE relay_checkpoints
                SET last_txid = $2, last_position = $3, holder = $4,
                    published = published + $5, updated_at = now()
              WHERE relay = $1",
        )
        .bind(&options.name)
        .bind(txid)
        .bind(position)
        .bind(&options.holder)
        .bind(events.len() as i64)
        .execute(&mut conn)
        .await?;
        (last_txid, last_position) = (txid, position);
        debug!(
            relay = %options.name,
            events = events.len(),
            ms = started.elapsed().as_millis() as u64,
            "batch published"
        );
    }
}

/// Sends every event, then waits until Kafka acknowledged each one, and
/// returns each partition's end after the batch (`None` if cancelled). An
/// error leaves the checkpoint where it was: the batch is sent again.
async fn publish(
    producer: &FutureProducer,
    config: &KafkaConfig,
    events: &[StoredEvent],
    cancel: &CancellationToken,
) -> anyhow::Result<Option<HashMap<(String, i32), i64>>> {
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        let topic = config.topic(&event.aggregate_type);
        let body = serde_json::to_vec(event)?;
        let mut record = FutureRecord::to(&topic)
            .key(event.aggregate_id.as_str())
            .payload(&body)
            .headers(event_headers(event));
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push((event.aggregate_type.as_str(), delivery));
                    break;
                }
                Err((e, back)) => {
                    // The local queue is full: let it drain a little.
                    debug!(error = %e, "producer queue full; waiting");
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    let all = async {
        let mut heads: HashMap<(String, i32), i64> = HashMap::new();
        for (aggregate_type, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(d)) => {
                    let end = heads
                        .entry((config.topic(aggregate_type), d.partition))
                        .or_insert(0);
                    *end = (*end).max(d.offset + 1);
                }
                Ok(Err((e, _))) => anyhow::bail!("Kafka refused an event: {e}"),
                Err(_) => anyhow::bail!("the producer went away before delivery"),
            }
        }
        Ok(heads)
    };
    tokio::select! {
        result = all => result.map(Some),
        _ = cancel.cancelled() => Ok(None),
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen("events").await.ok()?;
    Some(listener)
}

async fn wait_for_events(
    listener: &mut Option<PgListener>,
    pool: &PgPool,
    poll: Duration,
    cancel: &CancellationToken,
) {
    if listener.is_none() {
        *listener = listen(pool).await;
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
                warn!(error = %e, "event notifications lost; polling until reconnected");
                *listener = None;
            }
        }
        _ = tokio::time::sleep(poll) => {}
        _ = cancel.cancelled() => {}
    }
}

fn kill_self() -> ! {
    // SAFETY: sending a signal to our own process has no memory effects.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL is not survivable")
}
