//! The deployment projection and its store-tailing runner, against a real
//! PostgreSQL (ARCHITECTURE.md):
//!
//! - invariant 2, commit order: a writer that takes a lower position and
//!   commits late is not skipped (a reader tailing by position skips it);
//! - invariant 3, effectively once: a runner killed with SIGKILL mid-stream
//!   resumes from its checkpoint, and a duplicate or stale delivery of an
//!   event changes nothing;
//! - invariant 6, replay equals live: the tables the interrupted runner built
//!   equal a rebuild from the store;
//! - invariant 7, poison is isolated: an event the projection cannot read is
//!   dead-lettered with its error, the runner goes on, and an operator's
//!   retry applies it once the cause is fixed.
//!
//! The tests run one at a time, with `supply_projections`', on a server of
//! their own (see [`serial`] and [`store_database`]): a snapshot's xmin is
//! cluster-wide, so a transaction one test holds open, or a runner's batch
//! in flight, holds back the runners of every other database on its server.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{serial, store_database};
use chrono::{DateTime, TimeZone, Utc};
use marketplace_domain::deployment::{
    Deployment, DeploymentCommand, DeploymentEvent, DeploymentName, FlistImage, MachineSize,
    NodeAssignment, Placement, SshPublicKey, VmSpec, WorkloadSpec, WorkloadState, WorkloadStatus,
    EVENT_VERSION,
};
use marketplace_domain::{Actor, Role};
use marketplace_projections::deployments::{DeploymentProjection, NAME};
use marketplace_projections::tail;
use marketplace_projections::{Projection, StoredEvent};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgExecutor, PgPool};
use tokio::time::{timeout, Instant};
use uuid::Uuid;

// ---- events ----

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + chrono::TimeDelta::minutes(minutes)
}

fn owner(i: usize) -> Actor {
    Actor::new(format!("user{}", i % 7), Role::CloudUser)
}

fn ops() -> Actor {
    Actor::new("ops", Role::CloudOperator)
}

fn vm_spec() -> WorkloadSpec {
    let size = MachineSize::new(2, 4096, 20).expect("valid size");
    let image = FlistImage::new("https://hub.grid.tf/tf-official-apps/base:latest.flist")
        .expect("valid image");
    let key = SshPublicKey::new("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq alice@laptop")
        .expect("valid key");
    WorkloadSpec::Vm(VmSpec::new(size, vec![50], true, image, key).expect("valid vm"))
}

fn request(by: &Actor, name: &str, at: DateTime<Utc>) -> DeploymentCommand {
    DeploymentCommand::Request {
        owner: by.subject.clone(),
        name: DeploymentName::new(name).expect("valid name"),
        spec: vm_spec(),
        placement: Placement::default(),
        at,
    }
}

fn assign(node_id: u32, at: DateTime<Utc>) -> DeploymentCommand {
    DeploymentCommand::AssignNode {
        node: NodeAssignment {
            node_id,
            farm_id: 1,
        },
        reason: None,
        at,
    }
}

/// A deployment as its writer sees it: the aggregate decides each command,
/// so every stored event is one the domain really emits.
struct Tracked {
    id: Uuid,
    name: String,
    aggregate: Deployment,
    sequence: i64,
}

impl Tracked {
    fn new(name: &str) -> Self {
        Self {
            id: Uuid::new_v4(),
            name: name.to_string(),
            aggregate: Deployment::default(),
            sequence: 0,
        }
    }

    /// The events `command` produces, each with its aggregate sequence.
    fn decide(&mut self, command: DeploymentCommand) -> Vec<(i64, DeploymentEvent)> {
        let events = self.aggregate.decide(command).expect("command accepted");
        events
            .into_iter()
            .map(|e| {
                self.aggregate.apply_event(&e);
                self.sequence += 1;
                (self.sequence, e)
            })
            .collect()
    }

    /// Decides `command` and stores its events; returns their positions.
    async fn commit(
        &mut self,
        conn: &mut PgConnection,
        command: DeploymentCommand,
        by: &Actor,
    ) -> Vec<i64> {
        let mut positions = Vec::new();
        for (sequence, event) in self.decide(command) {
            positions.push(store_event(&mut *conn, self.id, sequence, &event, by).await);
        }
        positions
    }
}

/// Stores a deployment event the way postgres-es writes it (position, txid
/// and recorded_at from the column defaults); returns its position.
async fn store_event<'e>(
    executor: impl PgExecutor<'e>,
    id: Uuid,
    sequence: i64,
    event: &DeploymentEvent,
    by: &Actor,
) -> i64 {
    let payload = serde_json::to_value(event).expect("serialise event");
    insert_event(executor, id, sequence, EVENT_VERSION, payload, by).await
}

/// Inserts one row into `events`, in any payload version; the event type is
/// the payload's external tag. Returns its position.
async fn insert_event<'e>(
    executor: impl PgExecutor<'e>,
    id: Uuid,
    sequence: i64,
    version: &str,
    payload: Value,
    by: &Actor,
) -> i64 {
    let event_type = payload
        .as_object()
        .and_then(|tagged| tagged.keys().next())
        .expect("an externally tagged payload")
        .clone();
    let metadata = json!({
        "actor_subject": by.subject,
        "actor_role": by.role.as_str(),
        "correlation_id": Uuid::new_v4().to_string(),
        "causation_id": Uuid::new_v4().to_string(),
        "request_id": Uuid::new_v4().to_string(),
    });
    sqlx::query_scalar(
        "INSERT INTO events
            (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('deployment', $1, $2, $3, $4, $5, $6)
         RETURNING position",
    )
    .bind(id.to_string())
    .bind(sequence)
    .bind(event_type)
    .bind(version)
    .bind(payload)
    .bind(metadata)
    .fetch_one(executor)
    .await
    .expect("insert event")
}

// ---- reading the store and the views ----

/// The whole store, in commit order.
async fn stored_events(pool: &PgPool) -> Vec<StoredEvent> {
    sqlx::query_as(
        "SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type, event_version,
                payload, metadata, recorded_at
           FROM events ORDER BY txid, position",
    )
    .fetch_all(pool)
    .await
    .expect("read events")
}

/// The (txid, position) of an event.
async fn commit_key(pool: &PgPool, position: i64) -> (i64, i64) {
    sqlx::query_as("SELECT txid, position FROM events WHERE position = $1")
        .bind(position)
        .fetch_one(pool)
        .await
        .expect("event")
}

/// The newest (txid, position) in the store.
async fn store_head(pool: &PgPool) -> Option<(i64, i64)> {
    sqlx::query_as("SELECT txid, position FROM events ORDER BY txid DESC, position DESC LIMIT 1")
        .fetch_optional(pool)
        .await
        .expect("store head")
}

async fn checkpoint(pool: &PgPool) -> Option<(i64, i64)> {
    sqlx::query_as(
        "SELECT last_txid, last_position FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(NAME)
    .fetch_optional(pool)
    .await
    .expect("read checkpoint")
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// A deployment's (version, status), if the view has it.
async fn view_of(pool: &PgPool, id: Uuid) -> Option<(i64, String)> {
    sqlx::query_as("SELECT version, status FROM deployment_views WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("read view")
}

/// Both tables of the projection, every row as JSON, in key order.
#[derive(Debug, PartialEq)]
pub(crate) struct Tables {
    pub views: Vec<Value>,
    pub history: Vec<Value>,
}

pub(crate) async fn dump(conn: &mut PgConnection) -> Tables {
    let views = sqlx::query_scalar("SELECT to_jsonb(v) FROM deployment_views v ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .expect("dump views");
    let history = sqlx::query_scalar(
        "SELECT to_jsonb(h) FROM deployment_history h ORDER BY deployment_id, sequence",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("dump history");
    Tables { views, history }
}

async fn dump_pool(pool: &PgPool) -> Tables {
    dump(&mut pool.acquire().await.expect("connection")).await
}

/// Asserts two dumps are equal, naming the first row that differs.
#[track_caller]
fn assert_same_tables(live: &Tables, rebuilt: &Tables) {
    for (table, a, b) in [
        ("deployment_views", &live.views, &rebuilt.views),
        ("deployment_history", &live.history, &rebuilt.history),
    ] {
        assert_eq!(a.len(), b.len(), "{table}: live and rebuilt row counts");
        if let Some((i, (x, y))) = a.iter().zip(b).enumerate().find(|(_, (x, y))| x != y) {
            panic!("{table} row {i} differs:\n live:    {x}\n rebuilt: {y}");
        }
    }
}

/// Polls `condition` every few milliseconds until it holds; panics after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- invariant 2: commit order, not id order ----

/// A reader that tails by the identity column alone, as invariant 2 forbids:
/// everything past its checkpoint in position order, then checkpoint = the
/// highest position read.
#[derive(Default)]
struct PositionReader {
    last: i64,
    seen: Vec<String>,
}

impl PositionReader {
    async fn poll(&mut self, pool: &PgPool) {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT position, aggregate_id FROM events WHERE position > $1 ORDER BY position",
        )
        .bind(self.last)
        .fetch_all(pool)
        .await
        .expect("naive read");
        if let Some((position, _)) = rows.last() {
            self.last = *position;
        }
        self.seen.extend(rows.into_iter().map(|(_, id)| id));
    }
}

/// Tx A stores X first (the lower position) but commits after tx B, which
/// stores Y. With `b_takes_txid_first`, B also holds the lower transaction
/// id, so the runner may take Y (and move its checkpoint past X's position)
/// while A is still open; without, A's lower txid holds the runner back.
async fn late_writer_case(b_takes_txid_first: bool) {
    let (pool, _) = store_database().await;
    let mut x = Tracked::new("late");
    let mut y = Tracked::new("early");
    let mut a = pool.begin().await.expect("begin A");
    let mut b = pool.begin().await.expect("begin B");
    if b_takes_txid_first {
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut *b)
            .await
            .expect("B takes its txid");
    }
    let pos_x = x
        .commit(&mut a, request(&owner(0), "late", t(0)), &owner(0))
        .await[0];
    let pos_y = y
        .commit(&mut b, request(&owner(1), "early", t(1)), &owner(1))
        .await[0];
    assert!(pos_x < pos_y, "X must hold the lower position");
    b.commit().await.expect("commit B");

    let mut naive = PositionReader::default();
    naive.poll(&pool).await;
    tail::step(&pool, &DeploymentProjection, 100)
        .await
        .expect("step while A is open");
    assert_eq!(view_of(&pool, x.id).await, None, "X is not committed yet");
    // Y may be applied already (B's txid is older than A's) or wait for A.
    let y_while_a_open = view_of(&pool, y.id).await.is_some();

    a.commit().await.expect("commit A");
    naive.poll(&pool).await;
    assert_eq!(
        naive.seen,
        [y.id.to_string()],
        "the position-tailing reader checkpointed past X while A was open and never reads it"
    );

    tail::catch_up(&pool, &DeploymentProjection, 100)
        .await
        .expect("catch up");
    let case =
        format!("b_takes_txid_first={b_takes_txid_first}, Y applied while A open={y_while_a_open}");
    assert_eq!(
        view_of(&pool, x.id).await,
        Some((1, "requested".to_string())),
        "the late writer's X was skipped ({case})"
    );
    assert_eq!(
        view_of(&pool, y.id).await,
        Some((1, "requested".to_string())),
        "Y is missing ({case})"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM deployment_history").await,
        2,
        "{case}"
    );
    assert_eq!(checkpoint(&pool).await, store_head(&pool).await, "{case}");
}

#[tokio::test]
async fn late_committing_writer_is_not_skipped() {
    let _serial = serial().await;
    late_writer_case(false).await;
    late_writer_case(true).await;
}

// ---- invariants 3 and 6: a killed runner resumes, and equals a rebuild ----

/// Stores the lives of `count` new deployments from concurrent writers, so
/// position and commit order interleave, some transactions hold several
/// aggregates' events (more than a batch of 7), and each deployment gets 1
/// to 5 events. Returns how many events were stored.
async fn store_lives(pool: &PgPool, first: usize, count: usize) -> usize {
    const WRITERS: usize = 8;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let chunk = [1, 1, 1, 3, 3, 10, 10, 1][w];
            let mut mine: Vec<(usize, Tracked)> = (first..first + count)
                .filter(|i| i % WRITERS == w)
                .map(|i| (i, Tracked::new(&format!("web{i}"))))
                .collect();
            let mut stored = 0;
            for round in 0..5 {
                let mut due: Vec<&mut (usize, Tracked)> =
                    mine.iter_mut().filter(|(i, _)| round < 1 + i % 5).collect();
                for group in due.chunks_mut(chunk) {
                    let mut tx = pool.begin().await.expect("begin");
                    for (i, d) in group.iter_mut() {
                        let i = *i;
                        let at = t((i * 10 + round) as i64);
                        let (command, by) = match round {
                            0 => (request(&owner(i), &d.name.clone(), at), owner(i)),
                            1 => (assign(10 + i as u32, at), ops()),
                            2 => (
                                DeploymentCommand::RecordContractCreated {
                                    contract_id: 1000 + i as u64,
                                    rent_contract_id: None,
                                    at,
                                },
                                ops(),
                            ),
                            3 => (
                                DeploymentCommand::MarkRunning {
                                    workloads: vec![WorkloadStatus::new(
                                        d.name.clone(),
                                        WorkloadState::Ok,
                                        None,
                                    )],
                                    at,
                                },
                                ops(),
                            ),
                            _ if i % 2 == 0 => (
                                DeploymentCommand::Cancel {
                                    by: owner(i),
                                    reason: Some(format!("done with web{i}")),
                                    at,
                                },
                                owner(i),
                            ),
                            _ => (
                                DeploymentCommand::StartGracePeriod {
                                    contract_id: None,
                                    at,
                                },
                                ops(),
                            ),
                        };
                        stored += d.commit(&mut tx, command, &by).await.len();
                    }
                    tx.commit().await.expect("commit");
                }
            }
            stored
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("writer task");
    }
    total
}

/// A database URL with an application name, to find a runner's sessions by.
fn url_named(url: &str, application: &str) -> String {
    format!("{url}?application_name={application}")
}

#[tokio::test]
async fn killed_runner_resumes_and_matches_a_rebuild() {
    let _serial = serial().await;
    let (pool, url) = store_database().await;
    let exe = env!("CARGO_BIN_EXE_marketplace");
    let mut deployments = 0;
    let mut total = 0;
    let mut killed_mid_stream = false;

    // Each attempt adds lives to the store, starts a tailing runner and kills
    // it with SIGKILL as soon as it has made progress; a runner that finished
    // first (killed too late) calls for a bigger store.
    for attempt in 0..4 {
        let more = 150 << attempt;
        total += store_lives(&pool, deployments, more).await;
        deployments += more;
        assert_eq!(
            count(&pool, "SELECT count(*) FROM events").await,
            total as i64
        );

        let mut runner = tokio::process::Command::new(exe)
            .args(["project", "--batch-size", "7"])
            .env("DATABASE_URL", url_named(&url, "killed_runner"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the projection runner");
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill it once it is about half way, not at its first batch.
        let half = total as i64 / 2;
        loop {
            let applied = count(&pool, "SELECT count(*) FROM deployment_history").await;
            if applied >= half && checkpoint(&pool).await.is_some() {
                break;
            }
            if let Some(status) = runner.try_wait().expect("runner state") {
                panic!("the runner exited on its own: {status}");
            }
            assert!(Instant::now() < deadline, "the runner made no progress");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        runner.kill().await.expect("SIGKILL the runner");

        // The dead runner's sessions end (its open batch, if any, rolls back).
        wait_until(
            Duration::from_secs(10),
            "the killed runner's sessions end",
            || async {
                count(
                    &pool,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'killed_runner'",
                )
                .await
                    == 0
            },
        )
        .await;
        let applied = count(&pool, "SELECT count(*) FROM deployment_history").await;
        if applied < total as i64 {
            killed_mid_stream = true;
            break;
        }
    }
    assert!(
        killed_mid_stream,
        "the runner always finished before it could be killed"
    );

    // A new runner resumes from the checkpoint the dead one left.
    let once = timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(exe)
            .args(["project", "--once", "--batch-size", "7"])
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("`project --once` finished in time")
    .expect("run `project --once`");
    assert!(
        once.status.success(),
        "`project --once` failed: {}",
        String::from_utf8_lossy(&once.stderr)
    );

    assert_eq!(
        checkpoint(&pool).await,
        store_head(&pool).await,
        "the resumed runner stopped short of the store's head"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM projection_dead_letters").await,
        0
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM deployment_history").await,
        total as i64,
        "every event once in the history"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM deployment_views").await,
        deployments as i64
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM deployment_views v
               FULL JOIN (SELECT aggregate_id::uuid AS id, max(sequence) AS version
                            FROM events GROUP BY aggregate_id) e USING (id)
              WHERE v.version IS DISTINCT FROM e.version"
        )
        .await,
        0,
        "each row's version is its aggregate's last sequence"
    );

    let live = dump_pool(&pool).await;
    let replayed = tail::rebuild(&pool, &DeploymentProjection, 50)
        .await
        .expect("rebuild");
    assert_eq!(replayed, total, "the rebuild read the whole store");
    assert_eq!(checkpoint(&pool).await, store_head(&pool).await);
    assert_same_tables(&live, &dump_pool(&pool).await);
}

// ---- invariant 3: a duplicate delivery changes nothing ----

#[tokio::test]
async fn duplicate_delivery_changes_nothing() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let mut d = Tracked::new("web1");
    let mut conn = pool.acquire().await.expect("connection");
    d.commit(&mut conn, request(&owner(0), "web1", t(0)), &owner(0))
        .await;
    d.commit(&mut conn, assign(11, t(1)), &ops()).await;
    d.commit(
        &mut conn,
        DeploymentCommand::RecordContractCreated {
            contract_id: 42,
            rent_contract_id: None,
            at: t(2),
        },
        &ops(),
    )
    .await;
    drop(conn);
    let events = stored_events(&pool).await;
    assert_eq!(events.len(), 3);

    let projection = DeploymentProjection;
    let mut tx = pool.begin().await.expect("begin");
    for e in &events {
        projection.apply(&mut tx, e).await.expect("first delivery");
    }
    let once = dump(&mut tx).await;
    assert_eq!(once.views.len(), 1);
    assert_eq!(once.views[0]["version"], 3);
    assert_eq!(once.views[0]["status"], "provisioning");
    assert_eq!(once.history.len(), 3);

    // The newest event again, then older ones after it, in the same transaction.
    for e in std::iter::once(&events[2]).chain(events.iter().rev()) {
        projection
            .apply(&mut tx, e)
            .await
            .unwrap_or_else(|err| panic!("redelivering sequence {}: {err}", e.sequence));
        assert_eq!(
            dump(&mut tx).await,
            once,
            "redelivering sequence {} changed the tables",
            e.sequence
        );
    }
    tx.commit().await.expect("commit");

    // Redelivered later, in a transaction of its own.
    let mut tx = pool.begin().await.expect("begin");
    for e in events.iter().rev() {
        projection
            .apply(&mut tx, e)
            .await
            .unwrap_or_else(|err| panic!("redelivering sequence {}: {err}", e.sequence));
    }
    tx.commit().await.expect("commit");
    assert_eq!(dump_pool(&pool).await, once);

    // A runner with no checkpoint delivers every event again: nothing changes,
    // nothing is dead-lettered.
    let read = tail::catch_up(&pool, &projection, 100)
        .await
        .expect("catch up");
    assert_eq!(read, 3);
    assert_eq!(dump_pool(&pool).await, once);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM projection_dead_letters").await,
        0
    );
}

// ---- invariant 3: a batch's checkpoint commits with its view change ----

/// How many rows of each view table the transaction that last wrote the
/// projection's checkpoint also wrote (`xmin` is the id of the transaction
/// that wrote a row's current version): (views, history).
async fn rows_written_with_checkpoint(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM deployment_views WHERE xmin = c.xmin),
                (SELECT count(*) FROM deployment_history WHERE xmin = c.xmin)
           FROM projection_checkpoints c WHERE c.projection = $1",
    )
    .bind(NAME)
    .fetch_one(pool)
    .await
    .expect("rows written with the checkpoint")
}

#[tokio::test]
async fn a_batch_and_its_checkpoint_commit_in_one_transaction() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let mut conn = pool.acquire().await.expect("connection");
    let (mut d1, mut d2, mut d3) = (
        Tracked::new("one"),
        Tracked::new("two"),
        Tracked::new("three"),
    );
    // Each event in a transaction of its own: commit order is this order.
    d1.commit(&mut conn, request(&owner(1), "one", t(0)), &owner(1))
        .await;
    d2.commit(&mut conn, request(&owner(2), "two", t(1)), &owner(2))
        .await;
    d2.commit(&mut conn, assign(12, t(2)), &ops()).await;
    d3.commit(&mut conn, request(&owner(3), "three", t(3)), &owner(3))
        .await;
    drop(conn);

    // Batch one: one and two requested. A checkpoint written by a statement
    // of its own, even just before the batch commits, would share no row
    // with it: a crash between the two commits would apply the batch twice
    // or skip it.
    assert_eq!(
        tail::step(&pool, &DeploymentProjection, 2)
            .await
            .expect("first batch"),
        tail::Step::Applied(2)
    );
    assert_eq!(
        rows_written_with_checkpoint(&pool).await,
        (2, 2),
        "the first batch's view rows and its checkpoint were written by one transaction"
    );
    // Batch two: two placed (its view row written again), three requested.
    assert_eq!(
        tail::step(&pool, &DeploymentProjection, 2)
            .await
            .expect("second batch"),
        tail::Step::Applied(2)
    );
    assert_eq!(
        rows_written_with_checkpoint(&pool).await,
        (2, 2),
        "the second batch's view rows and its checkpoint were written by one transaction"
    );
    assert_eq!(view_of(&pool, d1.id).await, Some((1, "requested".into())));
    assert_eq!(view_of(&pool, d2.id).await, Some((2, "placed".into())));
    assert_eq!(view_of(&pool, d3.id).await, Some((1, "requested".into())));
    assert_eq!(checkpoint(&pool).await, store_head(&pool).await);
}

// ---- invariant 7: poison is isolated ----

#[derive(Debug, sqlx::FromRow)]
struct DeadLetter {
    event_position: i64,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    error: String,
    resolved_at: Option<DateTime<Utc>>,
}

async fn dead_letters(pool: &PgPool) -> Vec<DeadLetter> {
    sqlx::query_as(
        "SELECT event_position, aggregate_id, sequence, event_type, error, resolved_at
           FROM projection_dead_letters WHERE projection = $1 ORDER BY event_position",
    )
    .bind(NAME)
    .fetch_all(pool)
    .await
    .expect("read dead letters")
}

#[tokio::test]
async fn poison_event_is_dead_lettered_and_retry_works_once_fixed() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let projection = DeploymentProjection;
    let mut conn = pool.acquire().await.expect("connection");
    let mut p = Tracked::new("poisoned");
    let mut q = Tracked::new("healthy");

    p.commit(&mut conn, request(&owner(0), "poisoned", t(0)), &owner(0))
        .await;
    // P's second event in a payload version no deployed code can read.
    let (sequence, fixed) = p.decide(assign(11, t(1))).remove(0);
    let v99 = json!({ "NodeAssigned": { "node": { "id": 11, "farm": 1 }, "at": t(1) } });
    let poison = insert_event(&mut *conn, p.id, sequence, "99", v99, &ops()).await;
    // Another deployment's events come after it.
    q.commit(&mut conn, request(&owner(1), "healthy", t(2)), &owner(1))
        .await;
    q.commit(&mut conn, assign(12, t(3)), &ops()).await;
    drop(conn);

    tail::catch_up(&pool, &projection, 100)
        .await
        .expect("catch up past the poison");
    assert_eq!(
        view_of(&pool, q.id).await,
        Some((2, "placed".to_string())),
        "the runner went on after the poison"
    );
    assert_eq!(
        view_of(&pool, p.id).await,
        Some((1, "requested".to_string()))
    );
    let letters = dead_letters(&pool).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        (
            letter.event_position,
            letter.aggregate_id.as_str(),
            letter.sequence,
            letter.event_type.as_str()
        ),
        (poison, p.id.to_string().as_str(), 2, "NodeAssigned")
    );
    assert!(letter.error.contains("99"), "error: {}", letter.error);
    assert!(letter.resolved_at.is_none());
    let past = checkpoint(&pool).await.expect("a checkpoint");
    assert!(
        past > commit_key(&pool, poison).await,
        "checkpoint is past the poison"
    );
    assert_eq!(Some(past), store_head(&pool).await);

    // Retried before the cause is fixed: still failing, the record stays.
    assert_eq!(
        tail::retry_dead_letters(&pool, &projection)
            .await
            .expect("retry"),
        (0, 1)
    );
    let letters = dead_letters(&pool).await;
    assert_eq!(letters.len(), 1);
    assert!(letters[0].error.contains("99") && letters[0].resolved_at.is_none());
    assert_eq!(
        view_of(&pool, p.id).await,
        Some((1, "requested".to_string()))
    );

    // A rebuild meets the poison too (on whichever of its lanes): the event
    // is dead-lettered again and everything else is applied as before.
    let before = dump_pool(&pool).await;
    tail::rebuild(&pool, &projection, 100)
        .await
        .expect("rebuild past the poison");
    assert_same_tables(&before, &dump_pool(&pool).await);
    let letters = dead_letters(&pool).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].error.contains("99") && letters[0].resolved_at.is_none());

    // The cause is fixed (as an upcaster for version 99 would read it).
    sqlx::query("UPDATE events SET event_version = $2, payload = $3 WHERE position = $1")
        .bind(poison)
        .bind(EVENT_VERSION)
        .bind(serde_json::to_value(&fixed).expect("serialise"))
        .execute(&pool)
        .await
        .expect("fix the stored event");
    assert_eq!(
        tail::retry_dead_letters(&pool, &projection)
            .await
            .expect("retry"),
        (1, 0)
    );
    assert_eq!(view_of(&pool, p.id).await, Some((2, "placed".to_string())));
    let node: Option<i64> =
        sqlx::query_scalar("SELECT node_id FROM deployment_views WHERE id = $1")
            .bind(p.id)
            .fetch_one(&pool)
            .await
            .expect("node");
    assert_eq!(node, Some(11));
    let history: Vec<(i64, String)> = sqlx::query_as(
        "SELECT sequence, status FROM deployment_history WHERE deployment_id = $1 ORDER BY sequence",
    )
    .bind(p.id)
    .fetch_all(&pool)
    .await
    .expect("history");
    assert_eq!(
        history,
        [(1, "requested".to_string()), (2, "placed".to_string())]
    );
    let letters = dead_letters(&pool).await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].resolved_at.is_some(),
        "the dead letter is resolved"
    );

    // Nothing is left to retry, and the runner has nothing to redo.
    assert_eq!(
        tail::retry_dead_letters(&pool, &projection)
            .await
            .expect("retry"),
        (0, 0)
    );
    let live = dump_pool(&pool).await;
    assert_eq!(
        tail::catch_up(&pool, &projection, 100)
            .await
            .expect("catch up"),
        0
    );
    assert_eq!(dump_pool(&pool).await, live);
    // And a replay of the fixed store gives the same tables.
    tail::rebuild(&pool, &projection, 100)
        .await
        .expect("rebuild");
    assert_same_tables(&live, &dump_pool(&pool).await);
}

// ---- the set-based batch path ----

/// A batch carrying several events of each deployment, of several kinds of
/// change (a grace period's timestamp, an absent contract id and reason
/// among them), every event delivered twice in it, builds on the set-based
/// path exactly what one event at a time builds; delivered again in a later
/// batch it changes nothing; a batch with a gap in one deployment's events
/// is refused as poison (the runner then isolates and dead-letters it).
#[tokio::test]
async fn a_batch_with_many_changes_per_deployment_builds_what_one_at_a_time_builds() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let mut conn = pool.acquire().await.expect("connection");
    for i in 0..6usize {
        let mut d = Tracked::new(&format!("web{i}"));
        let name = d.name.clone();
        d.commit(&mut conn, request(&owner(i), &name, t(0)), &owner(i))
            .await;
        d.commit(&mut conn, assign(10 + i as u32, t(1)), &ops())
            .await;
        d.commit(
            &mut conn,
            DeploymentCommand::RecordContractCreated {
                contract_id: 100 + i as u64,
                rent_contract_id: None,
                at: t(2),
            },
            &ops(),
        )
        .await;
        if i % 2 == 0 {
            d.commit(
                &mut conn,
                DeploymentCommand::MarkRunning {
                    workloads: vec![WorkloadStatus::new(name.clone(), WorkloadState::Ok, None)],
                    at: t(3),
                },
                &ops(),
            )
            .await;
            let at = t(3) + chrono::TimeDelta::nanoseconds(123_456_789);
            let contract_id = (i % 4 == 0).then_some(100 + i as u64);
            d.commit(
                &mut conn,
                DeploymentCommand::StartGracePeriod { contract_id, at },
                &ops(),
            )
            .await;
        }
        if i % 3 == 0 {
            d.commit(
                &mut conn,
                DeploymentCommand::Cancel {
                    by: owner(i),
                    reason: None,
                    at: t(4),
                },
                &owner(i),
            )
            .await;
        }
    }
    drop(conn);
    let events = stored_events(&pool).await;
    let projection = DeploymentProjection;

    let mut tx = pool.begin().await.expect("begin");
    for e in &events {
        projection.apply(&mut tx, e).await.expect("one at a time");
    }
    let one_by_one = dump(&mut tx).await;
    tx.rollback().await.expect("rollback");
    assert_eq!(one_by_one.views.len(), 6);
    assert_eq!(one_by_one.history.len(), events.len());

    let twice: Vec<StoredEvent> = events.iter().chain(events.iter()).cloned().collect();
    let mut tx = pool.begin().await.expect("begin");
    let applied = marketplace_projections::apply_events(&mut tx, &projection, &twice, false)
        .await
        .expect("batch");
    assert_eq!(
        applied.map(|dead| dead.len()),
        Some(0),
        "applied as a batch"
    );
    assert_same_tables(&one_by_one, &dump(&mut tx).await);
    let again = marketplace_projections::apply_events(&mut tx, &projection, &events, false)
        .await
        .expect("batch again");
    assert_eq!(
        again.map(|dead| dead.len()),
        Some(0),
        "a redelivered batch is not poison"
    );
    assert_same_tables(&one_by_one, &dump(&mut tx).await);
    tx.rollback().await.expect("rollback");

    // The first deployment's third event missing: its fourth is a gap.
    let first = &events[0].aggregate_id;
    let gapped: Vec<StoredEvent> = events
        .iter()
        .filter(|e| !(&e.aggregate_id == first && e.sequence == 3))
        .cloned()
        .collect();
    let mut tx = pool.begin().await.expect("begin");
    let refused = marketplace_projections::apply_events(&mut tx, &projection, &gapped, false)
        .await
        .expect("batch with a gap");
    assert!(refused.is_none(), "a gap in a batch is poison");
}
