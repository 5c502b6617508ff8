//! A real Apache Kafka broker for the tests, and the marketplace's own
//! processes (relay, projection workers) as children the tests can kill.
//!
//! The broker is `.ci/kafka/broker`: Apache Kafka from Maven Central, one
//! KRaft node on 127.0.0.1. `.ci/run` starts one and names it in
//! `MARKETPLACE_TEST_KAFKA`; without that, the first test that needs a
//! broker starts one for the test binary. Tests that stop the broker start
//! their own. Every test uses its own topic prefix, so tests share a broker
//! without seeing each other's topics or groups.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use marketplace_projections::deployments::DeploymentProjection;
use marketplace_projections::tail;
use marketplace_workers::kafka::consumer::WorkerOptions;
use marketplace_workers::kafka::relay::{self, RelayOptions};
use marketplace_workers::kafka::KafkaConfig;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{dump_views, spawn_app_with, AppOptions, TestApp};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use tokio::sync::OnceCell;

/// A broker this test binary started.
pub struct Broker {
    pub port: u16,
    controller: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Spawns `cmd` so that it is killed when this test binary ends.
async fn spawn_tied(mut cmd: Command) -> Child {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook makes only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    marketplace_dev::embedded_pg::spawn_tied(cmd)
        .await
        .expect("spawn child process")
}

impl Broker {
    /// Starts a broker with its own data directory and waits until it serves.
    pub async fn start() -> Broker {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = super::scratch::dir().join(format!("kafka-{}", N.fetch_add(1, Ordering::SeqCst)));
        let broker = Broker {
            port: free_port(),
            controller: free_port(),
            dir,
            child: Mutex::new(None),
        };
        broker.launch().await;
        broker
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn launch(&self) {
        std::fs::create_dir_all(&self.dir).expect("broker dir");
        let log_path = self.dir.join("broker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("broker log");
        let mut cmd = Command::new(repo().join(".ci/kafka/broker"));
        cmd.arg(self.port.to_string())
            .arg(self.controller.to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = spawn_tied(cmd).await;
        *self.child.lock().unwrap() = Some(child);
        let started = Instant::now();
        let marker = "Kafka Server started";
        let mut seen_before = std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches(marker)
            .count();
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.matches(marker).count() > seen_before {
                break;
            }
            if let Some(status) = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the Kafka broker exited ({status}); its log:\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the Kafka broker did not start within 2 minutes; its log:\n{text}"
            );
            seen_before = seen_before.min(text.matches(marker).count());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the broker (as a crash would; its data stays).
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub async fn restart(&self) {
        self.stop();
        self.launch().await;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SHARED: OnceCell<(String, Option<Broker>)> = OnceCell::const_new();

/// The broker tests share: `.ci/run`'s, or one started for this binary.
pub async fn shared_broker() -> String {
    SHARED
        .get_or_init(|| async {
            match std::env::var("MARKETPLACE_TEST_KAFKA") {
                Ok(addr) if !addr.is_empty() => (addr, None),
                _ => {
                    let broker = Broker::start().await;
                    (broker.addr(), Some(broker))
                }
            }
        })
        .await
        .0
        .clone()
}

/// A configuration with a topic prefix of its own.
pub fn config_for(brokers: &str) -> KafkaConfig {
    static N: AtomicUsize = AtomicUsize::new(0);
    KafkaConfig {
        brokers: brokers.to_string(),
        topic_prefix: format!(
            "t{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ),
        partitions: 4,
        replication: 1,
        session_timeout: Duration::from_secs(3),
    }
}

/// A `marketplace` child process (relay, project...) on `database_url`.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub async fn spawn(
        args: &[&str],
        database_url: &str,
        config: &KafkaConfig,
        env: &[(&str, &str)],
    ) -> Proc {
        static N: AtomicUsize = AtomicUsize::new(0);
        let log =
            super::scratch::dir().join(format!("child-{}.log", N.fetch_add(1, Ordering::SeqCst)));
        let file = std::fs::File::create(&log).expect("child log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_marketplace"));
        cmd.args(args)
            .env("DATABASE_URL", database_url)
            .env("DATABASE_MAX_CONNECTIONS", "8")
            .env("KAFKA_BROKERS", &config.brokers)
            .env("KAFKA_TOPIC_PREFIX", &config.topic_prefix)
            .env("KAFKA_PARTITIONS", config.partitions.to_string())
            .env(
                "KAFKA_SESSION_TIMEOUT_MS",
                config.session_timeout.as_millis().to_string(),
            )
            .env("RUST_LOG", "info,marketplace_workers=debug,librdkafka=warn")
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc {
            child: spawn_tied(cmd).await,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to end on its own; returns the signal that ended it, if one did.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.signal();
            }
            assert!(
                started.elapsed() < limit,
                "process did not exit; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message as read back from a topic.
#[derive(Debug, Clone)]
pub struct Published {
    pub partition: i32,
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Published {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every message in `topic`, partition by partition, in offset order.
pub fn read_topic(config: &KafkaConfig, topic: &str) -> Vec<Published> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut out = Vec::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        if high <= low {
            continue;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(low))
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut next = low;
        while next < high {
            assert!(
                Instant::now() < deadline,
                "reading {topic}[{partition}] timed out"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("message");
            next = message.offset() + 1;
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Published {
                partition,
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                headers,
                body: serde_json::from_slice(message.payload().unwrap_or_default())
                    .expect("JSON body"),
            });
        }
    }
    out
}

/// Messages in a topic (sum of the partitions' high minus low watermarks).
pub fn topic_size(config: &KafkaConfig, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()
        .expect("client");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum()
}

pub const LIMIT: Duration = Duration::from_secs(60);

/// Polls `check` until it holds, failing after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// The API without store-tailing runners: views come only through Kafka.
pub async fn kafka_app() -> TestApp {
    spawn_app_with(AppOptions {
        projections: false,
        ..AppOptions::default()
    })
    .await
}

pub fn spawn_relay(app: &TestApp, config: &KafkaConfig, cancel: &CancellationToken) {
    let mut options = RelayOptions::new("main");
    options.aggregate_types = vec!["deployment".into()];
    options.poll_interval = Duration::from_millis(100);
    tokio::spawn(relay::run(
        app.pool.clone(),
        config.clone(),
        options,
        cancel.clone(),
    ));
}

pub fn spawn_workers(app: &TestApp, config: &KafkaConfig, cancel: &CancellationToken) {
    marketplace::wiring::spawn_kafka_workers(
        &app.pool,
        config,
        &WorkerOptions::default(),
        vec![marketplace_projections::named("deployments").expect("registered")],
        cancel,
    );
}

/// Whether the relay's checkpoint is at the store's last committed event.
pub async fn relay_at_head(pool: &PgPool) -> bool {
    let behind = scalar(
        pool,
        "SELECT count(*) FROM events e
          WHERE (e.txid, e.position) > coalesce(
                (SELECT (last_txid, last_position) FROM relay_checkpoints WHERE relay = 'main'),
                (0::bigint, 0::bigint))",
    )
    .await;
    behind == 0
}

/// Whether every deployment's view row is at its last stored sequence.
pub async fn views_caught_up(pool: &PgPool) -> bool {
    scalar(
        pool,
        "SELECT count(*) FROM (SELECT aggregate_id, max(sequence) AS last FROM events
                                WHERE aggregate_type = 'deployment' GROUP BY aggregate_id) e
           LEFT JOIN deployment_views v ON v.id::text = e.aggregate_id
          WHERE v.version IS DISTINCT FROM e.last",
    )
    .await
        == 0
}

/// The Kafka-fed views equal, row by row, a from-scratch rebuild from the
/// store; every event is in the history exactly once.
pub async fn assert_views_exact(pool: &PgPool) {
    let events = scalar(
        pool,
        "SELECT count(*) FROM events WHERE aggregate_type = 'deployment'",
    )
    .await;
    let history = scalar(pool, "SELECT count(*) FROM deployment_history").await;
    assert_eq!(history, events, "each event applied exactly once");
    let dead = scalar(pool, "SELECT count(*) FROM projection_dead_letters").await;
    assert_eq!(
        dead, 0,
        "nothing dead-lettered (a gap in an aggregate's order would be)"
    );
    let live = dump_views(pool, &DeploymentProjection).await;
    tail::rebuild(pool, &DeploymentProjection, 500)
        .await
        .expect("rebuild from the store");
    let fresh = dump_views(pool, &DeploymentProjection).await;
    assert_eq!(
        live, fresh,
        "the Kafka-fed view equals a rebuild from the store"
    );
}
