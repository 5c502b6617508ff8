//! The scale-out path on a real Apache Kafka broker and real PostgreSQL:
//! store -> relay -> Kafka -> projection workers -> views, through crashes
//! of the relay, a second relay taking over, the broker going away under
//! load, two workers sharing a group, poison, and a rebuild during writes.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::kafka::*;
use crate::common::*;
use marketplace_projections::deployments::DeploymentProjection;
use marketplace_projections::tail;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn read_eventually(app: &TestApp, id: &str, version: u64) -> Value {
    let started = Instant::now();
    loop {
        let r = app
            .get(
                &format!("/v1/deployments/{id}?min_version={version}"),
                &alice(),
            )
            .await;
        if r.status() == 200 {
            return r.json().await.expect("json");
        }
        assert_eq!(r.status(), 503, "only 'not caught up yet' is expected");
        assert!(
            started.elapsed() < LIMIT,
            "{id} never reached version {version}"
        );
    }
}

async fn place(app: &TestApp, id: &str, node: u32) -> u64 {
    let r = app
        .post(
            &format!("/v1/deployments/{id}/node"),
            &operator(),
            &json!({ "node_id": node, "farm_id": 1 }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    r.json::<Value>().await.expect("json")["version"]
        .as_u64()
        .expect("version")
}

/// The positions of the deployments' events (those the deployment topic
/// carries; the users opened by the requests have a topic of their own).
async fn positions(pool: &PgPool) -> BTreeSet<String> {
    sqlx::query_scalar::<_, i64>("SELECT position FROM events WHERE aggregate_type = 'deployment'")
        .fetch_all(pool)
        .await
        .expect("positions")
        .into_iter()
        .map(|p| p.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_travels_store_relay_kafka_worker_view_and_reads_back() {
    let brokers = shared_broker().await;
    let app = kafka_app().await;
    let config = config_for(&brokers);
    spawn_relay(&app, &config, &app.cancel);
    spawn_workers(&app, &config, &app.cancel);

    let (id, v1) = app.request(&alice(), &vm_body("throughkafka")).await;
    let seen = read_eventually(&app, &id, v1).await;
    assert_eq!(seen["name"], "throughkafka");
    assert_eq!(seen["status"], "requested");
    let v2 = place(&app, &id, 11).await;
    let seen = read_eventually(&app, &id, v2).await;
    assert_eq!(seen["status"], "placed");
    assert_eq!(seen["version"], 2);

    // The wire format: keyed by aggregate id, the envelope in headers.
    let messages = read_topic(&config, &config.topic("deployment"));
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages
        .iter()
        .all(|m| m.key == id && m.partition == messages[0].partition));
    let stored: Vec<(i64, String, String, Value)> = sqlx::query_as(
        "SELECT position, event_type, event_version, metadata FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .expect("events");
    for (i, (m, (position, event_type, version, metadata))) in
        messages.iter().zip(&stored).enumerate()
    {
        assert_eq!(m.header("event-id"), Some(position.to_string().as_str()));
        assert_eq!(m.header("event-type"), Some(event_type.as_str()));
        assert_eq!(m.header("event-version"), Some(version.as_str()));
        assert_eq!(
            m.header("aggregate-sequence"),
            Some((i + 1).to_string().as_str())
        );
        assert_eq!(
            m.header("correlation-id"),
            metadata["correlation_id"].as_str()
        );
        assert_eq!(m.body["aggregate_id"], id.as_str());
        assert_eq!(m.body["sequence"], (i + 1) as i64);
        assert_eq!(m.body["event_type"], event_type.as_str());
    }

    // What operators watch: the relay's backlog and the group's lag.
    let metrics = app
        .get("/metrics", &alice())
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("marketplace_relay_backlog_events{relay=\"main\"} 0"),
        "{metrics}"
    );
    let group = config.group("deployments");
    let lag_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("marketplace_kafka_consumer_lag_messages") && l.contains(&group))
        .collect();
    assert!(!lag_lines.is_empty(), "{metrics}");
    assert!(lag_lines.iter().all(|l| l.ends_with(" 0")), "{lag_lines:?}");
}

/// The group's lag summed over partitions, from `/metrics`.
async fn group_lag(app: &TestApp, group: &str) -> i64 {
    let metrics = app
        .get("/metrics", &alice())
        .await
        .text()
        .await
        .expect("metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("marketplace_kafka_consumer_lag_messages") && l.contains(group))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                .expect("a number")
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_lag_grows_while_the_workers_are_down_and_drains_when_they_return() {
    let brokers = shared_broker().await;
    let app = kafka_app().await;
    let config = config_for(&brokers);
    let group = config.group("deployments");
    spawn_relay(&app, &config, &app.cancel);
    let workers = CancellationToken::new();
    spawn_workers(&app, &config, &workers);
    for i in 0..5 {
        app.request(&alice(), &vm_body(&format!("lag{i}"))).await;
    }
    wait_until("the views caught up", LIMIT, || views_caught_up(&app.pool)).await;
    assert_eq!(group_lag(&app, &group).await, 0);

    workers.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..7 {
        app.request(&alice(), &vm_body(&format!("down{i}"))).await;
    }
    wait_until("the relay published them", LIMIT, || {
        relay_at_head(&app.pool)
    })
    .await;
    assert_eq!(
        group_lag(&app, &group).await,
        7,
        "seven events wait for the group"
    );

    spawn_workers(&app, &config, &app.cancel);
    wait_until("the views caught up", LIMIT, || views_caught_up(&app.pool)).await;
    wait_until("the lag drained", LIMIT, || async {
        group_lag(&app, &group).await == 0
    })
    .await;
    assert_views_exact(&app.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_between_publish_and_checkpoint_leaves_duplicates_and_exact_views() {
    let brokers = shared_broker().await;
    let app = kafka_app().await;
    let config = config_for(&brokers);
    for i in 0..20 {
        app.request(&alice(), &vm_body(&format!("crash{i}"))).await;
    }

    let mut doomed = Proc::spawn(
        &["relay"],
        &app.database_url,
        &config,
        &[("MARKETPLACE_FAILPOINT", "relay-after-publish")],
    )
    .await;
    let signal = doomed.wait_exit(LIMIT).await;
    assert_eq!(signal, Some(libc::SIGKILL), "{}", doomed.log_text());
    let topic = config.topic("deployment");
    assert_eq!(
        topic_size(&config, &topic),
        20,
        "Kafka acknowledged the batch"
    );
    let checkpoint = scalar(
        &app.pool,
        "SELECT coalesce((SELECT last_position FROM relay_checkpoints WHERE relay = 'main'), 0)",
    )
    .await;
    assert_eq!(checkpoint, 0, "the relay died before its checkpoint moved");

    spawn_relay(&app, &config, &app.cancel);
    wait_until("the new relay caught up", LIMIT, || {
        relay_at_head(&app.pool)
    })
    .await;
    assert_eq!(
        topic_size(&config, &topic),
        40,
        "the batch was published again"
    );

    spawn_workers(&app, &config, &app.cancel);
    wait_until("the views caught up", LIMIT, || views_caught_up(&app.pool)).await;
    assert_views_exact(&app.pool).await;
}

fn holder_pid(holder: &str) -> u32 {
    holder
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("host:pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_relays_one_publishes_and_the_other_takes_over_when_it_dies() {
    let brokers = shared_broker().await;
    let app = kafka_app().await;
    let config = config_for(&brokers);
    let mut a = Proc::spawn(&["relay"], &app.database_url, &config, &[]).await;
    let mut b = Proc::spawn(&["relay"], &app.database_url, &config, &[]).await;
    for i in 0..10 {
        app.request(&alice(), &vm_body(&format!("first{i}"))).await;
    }
    wait_until("a relay published everything", LIMIT, || {
        relay_at_head(&app.pool)
    })
    .await;
    let topic = config.topic("deployment");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(topic_size(&config, &topic), 10, "only one relay published");

    let holder: String =
        sqlx::query_scalar("SELECT holder FROM relay_checkpoints WHERE relay = 'main'")
            .fetch_one(&app.pool)
            .await
            .expect("holder");
    let leader = holder_pid(&holder);
    let (dead, survivor) = if leader == a.pid() {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(leader, dead.pid(), "the holder is one of ours");
    assert!(
        survivor.log_text().contains("standing by"),
        "{}",
        survivor.log_text()
    );
    dead.kill();
    let killed_at = Instant::now();

    for i in 0..10 {
        app.request(&alice(), &vm_body(&format!("second{i}"))).await;
    }
    wait_until("the other relay took over", LIMIT, || {
        relay_at_head(&app.pool)
    })
    .await;
    let took = killed_at.elapsed();
    let holder: String =
        sqlx::query_scalar("SELECT holder FROM relay_checkpoints WHERE relay = 'main'")
            .fetch_one(&app.pool)
            .await
            .expect("holder");
    assert_eq!(holder_pid(&holder), survivor.pid());
    assert!(took < Duration::from_secs(15), "took over in {took:?}");

    let published: BTreeSet<String> = read_topic(&config, &topic)
        .iter()
        .map(|m| m.header("event-id").expect("event-id").to_string())
        .collect();
    assert_eq!(published, positions(&app.pool).await, "nothing lost");

    spawn_workers(&app, &config, &app.cancel);
    wait_until("the views caught up", LIMIT, || views_caught_up(&app.pool)).await;
    assert_views_exact(&app.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_broker_stopped_under_load_and_restarted_loses_and_doubles_nothing() {
    let broker = Broker::start().await;
    let app = Arc::new(kafka_app().await);
    let config = config_for(&broker.addr());
    spawn_relay(&app, &config, &app.cancel);
    spawn_workers(&app, &config, &app.cancel);

    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (app, written) = (app.clone(), written.clone());
        tokio::spawn(async move {
            for i in 0..150 {
                let (id, _) = app.request(&alice(), &vm_body(&format!("load{i}"))).await;
                if i % 3 == 0 {
                    place(&app, &id, 20 + i).await;
                }
                written.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    wait_until("some load went through", LIMIT, || async {
        written.load(Ordering::SeqCst) >= 30
    })
    .await;
    broker.stop();
    let during = written.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        written.load(Ordering::SeqCst) > during,
        "commands are accepted while the broker is down"
    );
    let backlog = scalar(
        &app.pool,
        "SELECT count(*) FROM events e WHERE (e.txid, e.position) >
            (SELECT last_txid, last_position FROM relay_checkpoints WHERE relay = 'main')",
    )
    .await;
    assert!(backlog > 0, "the backlog waits in the store");
    broker.restart().await;
    writer.await.expect("writer");

    wait_until("the relay drained the backlog", LIMIT, || {
        relay_at_head(&app.pool)
    })
    .await;
    wait_until("the views caught up", LIMIT, || views_caught_up(&app.pool)).await;
    let published: HashSet<String> = read_topic(&config, &config.topic("deployment"))
        .iter()
        .map(|m| m.header("event-id").expect("event-id").to_string())
        .collect();
    assert_eq!(
        published.len(),
        positions(&app.pool).await.len(),
        "every event reached Kafka"
    );
    assert_views_exact(&app.pool).await;
}

/// The partitions a worker's log says it was given last.
fn last_assignment(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find(|l| l.contains("partitions assigned"))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_split_the_partitions_and_one_takes_over_when_the_other_dies() {
    let brokers = shared_broker().await;
    let app = kafka_app().await;
    let config = config_for(&brokers);
    spawn_relay(&app, &config, &app.cancel);
    let args = ["project", "--source", "kafka", "--only", "deployments"];
    let mut w1 = Proc::spawn(&args, &app.database_url, &config, &[("HOSTNAME", "w1")]).await;
    let w2 = Proc::spawn(&args, &app.database_url, &config, &[("HOSTNAME", "w2")]).await;
    wait_until("both workers hold two partitions each", LIMIT, || async {
        [&w1, &w2]
            .iter()
            .all(|w| last_assignment(&w.log_text()).is_some_and(|l| l.matches(", ").count() == 1))
    })
    .await;

    let mut ids = Vec::new();
    for i in 0..40 {
        let (id, _) = app.request(&alice(), &vm_body(&format!("split{i}"))).await;
        place(&app, &id, 100 + i).await;
        ids.push(id);
    }
    wait_until("the views caught up", LIMIT, || views_caught_up(&app.pool)).await;
    let workers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT worker FROM kafka_offsets WHERE consumer_group = $1 ORDER BY 1",
    )
    .bind(config.group("deployments"))
    .fetch_all(&app.pool)
    .await
    .expect("workers");
    assert_eq!(
        workers,
        vec![format!("w1:{}", w1.pid()), format!("w2:{}", w2.pid())],
        "both workers applied batches"
    );
    // Per-aggregate order: every deployment's history is 1, 2.
    let orders: Vec<Vec<i64>> = sqlx::query_scalar(
        "SELECT array_agg(sequence ORDER BY sequence) FROM deployment_history GROUP BY deployment_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("histories");
    assert_eq!(orders.len(), 40);
    assert!(orders.iter().all(|o| o == &vec![1, 2]), "{orders:?}");

    w1.kill();
    let killed = chrono::Utc::now();
    for i in 0..20 {
        let (id, _) = app.request(&alice(), &vm_body(&format!("after{i}"))).await;
        place(&app, &id, 200 + i).await;
    }
    wait_until("the survivor applied everything", LIMIT, || {
        views_caught_up(&app.pool)
    })
    .await;
    let since: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT worker FROM kafka_offsets WHERE consumer_group = $1 AND updated_at > $2",
    )
    .bind(config.group("deployments"))
    .bind(killed)
    .fetch_all(&app.pool)
    .await
    .expect("workers");
    assert_eq!(since, vec![format!("w2:{}", w2.pid())]);
    let partitions_moved = scalar(
        &app.pool,
        &format!(
            "SELECT count(*) FROM kafka_offsets WHERE consumer_group = '{}' AND worker LIKE 'w2:%'",
            config.group("deployments")
        ),
    )
    .await;
    assert!(
        partitions_moved >= 3,
        "the survivor took the dead worker's partitions"
    );
    assert_views_exact(&app.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_event_is_dead_lettered_later_events_apply_and_an_operator_retries_it() {
    let brokers = shared_broker().await;
    let app = kafka_app().await;
    let config = config_for(&brokers);

    let (sick, _) = app.request(&alice(), &vm_body("sick")).await;
    place(&app, &sick, 7).await;
    // Its second event in a payload version no deployed code can read.
    let version: String = sqlx::query_scalar(
        "UPDATE events SET event_version = '99' WHERE aggregate_id = $1 AND sequence = 2
         RETURNING (SELECT event_version FROM events WHERE aggregate_id = $1 AND sequence = 1)",
    )
    .bind(&sick)
    .fetch_one(&app.pool)
    .await
    .expect("poison the event");
    let (healthy, _) = app.request(&alice(), &vm_body("healthy")).await;
    let v = place(&app, &healthy, 8).await;

    spawn_relay(&app, &config, &app.cancel);
    spawn_workers(&app, &config, &app.cancel);
    let seen = read_eventually(&app, &healthy, v).await;
    assert_eq!(seen["status"], "placed", "later events still apply");
    let sick_view = read_eventually(&app, &sick, 1).await;
    assert_eq!(sick_view["status"], "requested");

    // Operators see it, with the error; users may not.
    let r = app.get("/v1/operator/dead-letters", &operator()).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.expect("json");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["aggregate_id"], sick.as_str());
    assert_eq!(items[0]["sequence"], 2);
    assert_eq!(items[0]["projection"], "deployments");
    assert!(
        items[0]["error"].as_str().is_some_and(|e| e.contains("99")),
        "{page}"
    );
    expect_problem(app.get("/v1/operator/dead-letters", &alice()).await, 403).await;
    expect_problem(
        app.get("/v1/operator/dead-letters?projection=nope", &operator())
            .await,
        422,
    )
    .await;
    // And on the dead-letter topic.
    let dlq = config.dead_letter_topic();
    wait_until("the dead letter is on its topic", LIMIT, || async {
        topic_size(&config, &dlq) == 1
    })
    .await;
    let letter = &read_topic(&config, &dlq)[0];
    assert_eq!(letter.key, sick);
    assert!(letter.body["error"]
        .as_str()
        .is_some_and(|e| e.contains("99")));

    // The CLI lists it too, one JSON object per line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_marketplace"))
        .args(["dead-letters", "list", "--projection", "deployments"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("run the CLI");
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["aggregate_id"], sick.as_str());

    // A retry before the cause is fixed fails again (the CLI says so).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_marketplace"))
        .args(["dead-letters", "retry", "deployments"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("run the CLI");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 resolved, 1 still failing"),
        "{out:?}"
    );

    // Fixed (as an upcaster for version 99 would read it), then retried.
    sqlx::query("UPDATE events SET event_version = $2 WHERE aggregate_id = $1 AND sequence = 2")
        .bind(&sick)
        .bind(&version)
        .execute(&app.pool)
        .await
        .expect("fix");
    let r = app
        .post(
            "/v1/operator/dead-letters/retry",
            &operator(),
            &json!({ "projection": "deployments" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let outcome: Value = r.json().await.expect("json");
    assert_eq!(outcome["resolved"], 1, "{outcome}");
    assert_eq!(outcome["still_failing"], 0);
    let fixed = read_eventually(&app, &sick, 2).await;
    assert_eq!(fixed["status"], "placed");
    let open: Value = app
        .get("/v1/operator/dead-letters", &operator())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(open["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_during_live_kafka_writes_never_fails_a_read_and_equals_a_fresh_one() {
    let brokers = shared_broker().await;
    let app = Arc::new(kafka_app().await);
    let config = config_for(&brokers);
    spawn_relay(&app, &config, &app.cancel);
    spawn_workers(&app, &config, &app.cancel);
    let mut seeded = Vec::new();
    for i in 0..100 {
        seeded.push(app.request(&alice(), &vm_body(&format!("seed{i}"))).await);
    }
    let (last, v) = seeded.last().cloned().expect("seeded");
    read_eventually(&app, &last, v).await;

    let stop = CancellationToken::new();
    let (reads, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for w in 0..2 {
        let (app, stop) = (app.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.is_cancelled() {
                let (id, _) = app
                    .request(&alice(), &vm_body(&format!("live{w}x{i}")))
                    .await;
                if i.is_multiple_of(2) {
                    place(&app, &id, i).await;
                }
                i += 1;
            }
        }));
    }
    for r in 0..2 {
        let (app, stop, reads, failed) = (app.clone(), stop.clone(), reads.clone(), failed.clone());
        let id = seeded[r * 50].0.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                for path in [
                    "/v1/deployments?limit=20".to_string(),
                    format!("/v1/deployments/{id}"),
                ] {
                    reads.fetch_add(1, Ordering::SeqCst);
                    if app.get(&path, &alice()).await.status() != 200 {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replayed = tail::rebuild(&app.pool, &DeploymentProjection, 25)
        .await
        .expect("rebuild");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for t in tasks {
        t.await.expect("task");
    }
    assert!(replayed >= 100, "the rebuild read the store ({replayed})");
    assert!(reads.load(Ordering::SeqCst) > 0);
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no read failed during the rebuild"
    );

    wait_until("the relay caught up", LIMIT, || relay_at_head(&app.pool)).await;
    wait_until("the views caught up", LIMIT, || views_caught_up(&app.pool)).await;
    assert_views_exact(&app.pool).await;
}
