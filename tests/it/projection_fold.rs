//! Replay equals live after the set-based projection's fold (issue 16): a
//! deployment whose request is in a batch is written once from its events
//! folded in memory, by `COPY`; a deployment already in the view goes the
//! guarded set-based updates. Over a stream holding every kind of
//! deployment event, the rows a rebuild (any batch size, so batches cut
//! through deployments' events) and the live set-based runner build are
//! the rows one event at a time builds; a redelivered prefix, a whole
//! stream delivered twice, and an event out of order give what they gave
//! before the fold.

use chrono::{DateTime, TimeZone, Utc};
use marketplace_domain::chain::{ChainEventRef, ContractBill};
use marketplace_domain::deployment::{
    DeletionCause, DeploymentEvent, DeploymentKind, DeploymentName, FlistImage, MachineSize,
    NodeAssignment, Placement, SshPublicKey, VmSpec, WorkloadSpec, WorkloadState, WorkloadStatus,
    ZdbEndpoint, EVENT_VERSION,
};
use marketplace_domain::pricing::DiscountLevel;
use marketplace_domain::{Actor, Role, TftAmount};
use marketplace_projections::deployments::DeploymentProjection;
use marketplace_projections::{apply_events, tail, Projection, StoredEvent};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::common::{serial, store_database};
use crate::projection::{dump, Tables};

/// A time with sub-microsecond digits, which the database cuts.
fn t(step: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + chrono::TimeDelta::seconds(step)
        + chrono::TimeDelta::nanoseconds(123_456_789)
}

fn node(node_id: u32) -> NodeAssignment {
    NodeAssignment {
        node_id,
        farm_id: node_id / 10,
    }
}

fn spec(cpu: u32) -> WorkloadSpec {
    let size = MachineSize::new(cpu, 4096, 20).expect("valid size");
    let image = FlistImage::new("https://hub.grid.tf/tf-official-apps/base:latest.flist")
        .expect("valid image");
    let key = SshPublicKey::new("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq alice@laptop")
        .expect("valid key");
    WorkloadSpec::Vm(VmSpec::new(size, vec![50], true, image, key).expect("valid vm"))
}

fn ok(name: &str) -> Vec<WorkloadStatus> {
    vec![WorkloadStatus::new(name, WorkloadState::Ok, None)]
}

fn bill(contract_id: u64, amount: u64, at: DateTime<Utc>) -> ContractBill {
    ContractBill {
        event: ChainEventRef {
            block_number: 7,
            event_index: amount as u32,
        },
        contract_id,
        amount: TftAmount::from_base_units(amount),
        discount_level: DiscountLevel::Bronze,
        billed_at: at,
    }
}

fn user() -> Actor {
    Actor::new("alice", Role::CloudUser)
}

/// Three lives that together hold every kind of deployment event (and the
/// edge cases of their SQL: a worker's or a backend's change for an entry
/// that is not there, a standby's change with no standby, grace periods
/// with and without a contract), numbered from the request.
fn life(template: usize, name: &str) -> Vec<DeploymentEvent> {
    use DeploymentEvent as E;
    let requested = E::DeploymentRequested {
        owner: "alice".into(),
        name: DeploymentName::new(name).expect("valid name"),
        kind: DeploymentKind::Vm,
        spec: spec(2),
        placement: Placement::default(),
        at: t(0),
    };
    let mut events = vec![requested];
    match template {
        // A VM with a standby that takes over, grace periods and bills.
        0 => events.extend([
            E::NodeAssigned {
                node: node(11),
                reason: Some("cheapest".into()),
                at: t(1),
            },
            E::ContractCreated {
                contract_id: 100,
                rent_contract_id: Some(200),
                at: t(2),
            },
            E::StandbyAssigned {
                node: node(21),
                reason: Some("other farm".into()),
                at: t(3),
            },
            E::StandbyContractCreated {
                contract_id: 101,
                at: t(4),
            },
            E::StandbyReady { at: t(5) },
            E::DeploymentRunning {
                workloads: ok(name),
                at: t(6),
            },
            E::FailedOver {
                from_node: 11,
                from_contract_id: Some(100),
                to_node: node(21),
                to_contract_id: 101,
                reason: "node down".into(),
                at: t(7),
            },
            E::StandbyAssigned {
                node: node(31),
                reason: None,
                at: t(8),
            },
            E::StandbyAbandoned {
                node_id: 31,
                reason: "no capacity".into(),
                at: t(9),
            },
            E::DeploymentResized {
                spec: spec(4),
                by: user(),
                at: t(10),
            },
            E::DeploymentRunning {
                workloads: ok(name),
                at: t(11),
            },
            E::GracePeriodStarted {
                at: t(12),
                contract_id: Some(101),
            },
            E::GracePeriodStarted {
                at: t(13),
                contract_id: Some(102),
            },
            E::GracePeriodEnded {
                at: t(14),
                contract_id: Some(101),
            },
            E::GracePeriodEnded {
                at: t(15),
                contract_id: Some(102),
            },
            E::DeploymentBilled {
                bill: bill(101, 1_000, t(16)),
                at: t(16),
            },
            E::DeploymentBilled {
                bill: bill(101, 2_500, t(17)),
                at: t(17),
            },
            E::GracePeriodStarted {
                at: t(18),
                contract_id: None,
            },
            E::GracePeriodEnded {
                at: t(19),
                contract_id: None,
            },
            E::DeploymentCancelled {
                by: user(),
                reason: Some("done".into()),
                at: t(20),
            },
            E::DeploymentDeleted {
                cause: DeletionCause::CanceledByUser,
                at: t(21),
            },
        ]),
        // A spread cluster's workers, a failed attempt, then a failure.
        1 => events.extend([
            E::NodeAssigned {
                node: node(12),
                reason: None,
                at: t(1),
            },
            E::ContractCreated {
                contract_id: 110,
                rent_contract_id: None,
                at: t(2),
            },
            E::ProvisioningAttemptFailed {
                node_id: 12,
                contract_id: Some(110),
                reason: "timeout".into(),
                at: t(3),
            },
            E::NodeAssigned {
                node: node(13),
                reason: None,
                at: t(4),
            },
            E::ContractCreated {
                contract_id: 111,
                rent_contract_id: None,
                at: t(5),
            },
            E::WorkerAssigned {
                index: 0,
                node: node(14),
                at: t(6),
            },
            E::WorkerAssigned {
                index: 1,
                node: node(15),
                at: t(7),
            },
            E::WorkerContractCreated {
                index: 0,
                contract_id: 112,
                at: t(8),
            },
            E::WorkerContractCreated {
                index: 1,
                contract_id: 113,
                at: t(9),
            },
            E::WorkerRunning {
                index: 0,
                workload: WorkloadStatus::new("w0", WorkloadState::Ok, Some("up".into())),
                at: t(10),
            },
            E::WorkerReleased {
                index: 1,
                node_id: 15,
                failure: Some("lost".into()),
                at: t(11),
            },
            E::WorkerContractCreated {
                index: 5,
                contract_id: 114,
                at: t(12),
            },
            E::WorkerRunning {
                index: 6,
                workload: WorkloadStatus::new("w6", WorkloadState::Ok, None),
                at: t(13),
            },
            E::WorkerReleased {
                index: 0,
                node_id: 14,
                failure: None,
                at: t(14),
            },
            E::DeploymentRunning {
                workloads: ok(name),
                at: t(15),
            },
            E::DeploymentFailed {
                workloads: vec![WorkloadStatus::new(
                    name,
                    WorkloadState::Error,
                    Some("crash".into()),
                )],
                reason: "crashed".into(),
                at: t(16),
            },
        ]),
        // QSFS backends, a standby's changes with no standby, a deletion
        // for running out of funds.
        _ => events.extend([
            E::NodeAssigned {
                node: node(16),
                reason: None,
                at: t(1),
            },
            E::ZdbAssigned {
                disk: 0,
                index: 0,
                node: node(17),
                at: t(2),
            },
            E::ZdbAssigned {
                disk: 0,
                index: 1,
                node: node(18),
                at: t(3),
            },
            E::ZdbContractCreated {
                disk: 0,
                index: 0,
                contract_id: 120,
                at: t(4),
            },
            E::ZdbReady {
                disk: 0,
                index: 0,
                endpoint: ZdbEndpoint {
                    address: "[2a02::1]:9900".into(),
                    data_namespace: "data\\0\ttab".into(),
                    meta_namespace: "meta \"0\"".into(),
                },
                at: t(5),
            },
            E::ZdbAbandoned {
                disk: 0,
                index: 1,
                node_id: 18,
                reason: "full".into(),
                at: t(6),
            },
            E::ZdbContractCreated {
                disk: 1,
                index: 1,
                contract_id: 121,
                at: t(7),
            },
            E::StandbyContractCreated {
                contract_id: 122,
                at: t(8),
            },
            E::StandbyReady { at: t(9) },
            E::ContractCreated {
                contract_id: 123,
                rent_contract_id: None,
                at: t(10),
            },
            E::DeploymentRunning {
                workloads: ok(name),
                at: t(11),
            },
            E::GracePeriodStarted {
                at: t(12),
                contract_id: Some(123),
            },
            E::DeploymentCancelled {
                by: user(),
                reason: None,
                at: t(13),
            },
            E::DeploymentDeleted {
                cause: DeletionCause::OutOfFunds,
                at: t(14),
            },
        ]),
    }
    events
}

/// Stores `lives` (id, events): the first half one deployment after the
/// other, the rest interleaved one event each in turn, every event in a
/// transaction of its own.
async fn store(pool: &PgPool, lives: &[(Uuid, Vec<DeploymentEvent>)]) {
    let mut order: Vec<(Uuid, i64, &DeploymentEvent)> = Vec::new();
    let half = lives.len() / 2;
    for (id, events) in &lives[..half] {
        for (i, e) in events.iter().enumerate() {
            order.push((*id, i as i64 + 1, e));
        }
    }
    let longest = lives.iter().map(|(_, e)| e.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (id, events) in &lives[half..] {
            if let Some(e) = events.get(i) {
                order.push((*id, i as i64 + 1, e));
            }
        }
    }
    for (id, sequence, event) in order {
        let payload = serde_json::to_value(event).expect("serialise event");
        let event_type = payload
            .as_object()
            .and_then(|tagged| tagged.keys().next())
            .expect("an externally tagged payload")
            .clone();
        sqlx::query(
            "INSERT INTO events
                (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('deployment', $1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(sequence)
        .bind(event_type)
        .bind(EVENT_VERSION)
        .bind(payload)
        .bind(json!({ "actor_subject": "ops\\1", "actor_role": "cloud-operator" }))
        .execute(pool)
        .await
        .expect("insert event");
    }
}

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

async fn dump_pool(pool: &PgPool) -> Tables {
    dump(&mut pool.acquire().await.expect("connection")).await
}

#[track_caller]
fn assert_same(what: &str, live: &Tables, other: &Tables) {
    for (table, a, b) in [
        ("deployment_views", &live.views, &other.views),
        ("deployment_history", &live.history, &other.history),
    ] {
        assert_eq!(a.len(), b.len(), "{what}: {table} row counts");
        if let Some((i, (x, y))) = a.iter().zip(b).enumerate().find(|(_, (x, y))| x != y) {
            panic!("{what}: {table} row {i} differs:\n one at a time: {x}\n {what}: {y}");
        }
    }
}

async fn dead_letters(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT aggregate_id, sequence FROM projection_dead_letters
          WHERE resolved_at IS NULL ORDER BY event_position",
    )
    .fetch_all(pool)
    .await
    .expect("dead letters")
}

/// The rows one event at a time builds (the projection's `apply`, each
/// event in commit order), rolled back.
async fn one_at_a_time(pool: &PgPool, events: &[StoredEvent]) -> Tables {
    let mut tx = pool.begin().await.expect("begin");
    for e in events {
        DeploymentProjection
            .apply(&mut tx, e)
            .await
            .unwrap_or_else(|err| panic!("{} at {}: {err}", e.event_type, e.sequence));
    }
    let tables = dump(&mut tx).await;
    tx.rollback().await.expect("rollback");
    tables
}

/// One batch on the fast path: how many were dead-lettered, `None` when
/// it met poison (the runner would then isolate each event).
async fn batch(conn: &mut PgConnection, events: Vec<StoredEvent>) -> Option<usize> {
    apply_events(conn, &DeploymentProjection, &events, false)
        .await
        .expect("batch")
        .map(|dead| dead.len())
}

fn lives(n: usize) -> Vec<(Uuid, Vec<DeploymentEvent>)> {
    (0..n)
        .map(|i| (Uuid::new_v4(), life(i % 3, &format!("web{i}"))))
        .collect()
}

#[tokio::test]
async fn a_folded_rebuild_and_the_live_runner_build_what_one_event_at_a_time_builds() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    store(&pool, &lives(12)).await;
    let events = stored_events(&pool).await;
    let live = one_at_a_time(&pool, &events).await;
    assert_eq!(live.views.len(), 12);
    assert_eq!(live.history.len(), events.len());
    // The lives end deleted, failed and deleted; the first one's standby
    // took over (revision 1, then resized: 2).
    let statuses: Vec<&str> = live
        .views
        .iter()
        .map(|v| v["status"].as_str().unwrap_or(""))
        .collect();
    assert!(
        statuses.iter().all(|s| ["deleted", "failed"].contains(s)),
        "{statuses:?}"
    );

    let indexes = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT regexp_replace(indexdef, '^.* USING ', '') FROM pg_indexes
              WHERE schemaname = 'public' AND tablename IN ('deployment_views', 'deployment_history')
              ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .expect("indexes")
    };
    let indexed = indexes(pool.clone()).await;
    assert_eq!(indexed.len(), 4, "{indexed:?}");

    // Batches of one event, of a few (cutting through every deployment's
    // events, a request in one batch and its followers in the next), and
    // of the whole store (every deployment folded whole).
    for batch in [1, 4, 7, 19, 1_000] {
        let read = tail::rebuild(&pool, &DeploymentProjection, batch)
            .await
            .expect("rebuild");
        assert_eq!(read, events.len());
        assert_same(
            &format!("rebuilt in batches of {batch}"),
            &live,
            &dump_pool(&pool).await,
        );
        assert_eq!(dead_letters(&pool).await, vec![], "batches of {batch}");
        // The indexes the rebuild built after its rows are all there.
        assert_eq!(indexes(pool.clone()).await, indexed, "batches of {batch}");
    }

    // The live runner (set-based, folding too) from an empty view.
    for sql in [
        "TRUNCATE deployment_views, deployment_history",
        "DELETE FROM projection_checkpoints",
    ] {
        sqlx::query(sql)
            .execute(&pool)
            .await
            .expect("empty the views");
    }
    tail::catch_up(&pool, &DeploymentProjection, 9)
        .await
        .expect("catch up");
    assert_same("the live runner", &live, &dump_pool(&pool).await);
    assert_eq!(dead_letters(&pool).await, vec![]);
}

#[tokio::test]
async fn a_redelivered_or_out_of_order_batch_gives_what_it_gave_before_the_fold() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    store(&pool, &lives(6)).await;
    let events = stored_events(&pool).await;
    let live = one_at_a_time(&pool, &events).await;
    let first = events[0].aggregate_id.clone();
    let of_first: Vec<StoredEvent> = events
        .iter()
        .filter(|e| e.aggregate_id == first)
        .cloned()
        .collect();
    // A prefix folded, then the whole store, the prefix again within it:
    // the first deployment's row is in the view, so its events go the
    // guarded way and skip what is applied.
    let mut tx = pool.begin().await.expect("begin");
    assert_eq!(batch(&mut tx, of_first[..5].to_vec()).await, Some(0));
    assert_eq!(batch(&mut tx, events.clone()).await, Some(0));
    assert_same("a prefix, then everything", &live, &dump(&mut tx).await);
    // Everything again, twice in one batch: nothing changes.
    let twice: Vec<StoredEvent> = events.iter().chain(events.iter()).cloned().collect();
    assert_eq!(batch(&mut tx, twice.clone()).await, Some(0));
    assert_same("everything redelivered", &live, &dump(&mut tx).await);
    tx.rollback().await.expect("rollback");

    // Everything twice in one batch on an empty view: folded once.
    let mut tx = pool.begin().await.expect("begin");
    assert_eq!(batch(&mut tx, twice).await, Some(0));
    assert_same("everything twice in one batch", &live, &dump(&mut tx).await);
    tx.rollback().await.expect("rollback");

    // The first deployment's third event delivered after its fourth: the
    // fold stops at the second, and the fourth is a gap, as it was
    // before the fold (poison: the runner isolates the batch).
    let mut swapped: Vec<StoredEvent> = events.clone();
    let third = swapped
        .iter()
        .position(|e| e.aggregate_id == first && e.sequence == 3)
        .expect("third event");
    let fourth = swapped
        .iter()
        .position(|e| e.aggregate_id == first && e.sequence == 4)
        .expect("fourth event");
    swapped.swap(third, fourth);
    let mut tx = pool.begin().await.expect("begin");
    assert_eq!(
        batch(&mut tx, swapped.clone()).await,
        None,
        "out of order is poison"
    );
    tx.rollback().await.expect("rollback");
    // Isolated, the fourth is dead-lettered and the others applied.
    let mut tx = pool.begin().await.expect("begin");
    let dead = apply_events(&mut tx, &DeploymentProjection, &swapped, true)
        .await
        .expect("isolated")
        .expect("applied");
    let dead_at: Vec<i64> = dead.iter().map(|(i, _)| swapped[*i].sequence).collect();
    assert_eq!(dead_at.first(), Some(&4), "{dead:?}");
    let views = dump(&mut tx).await.views;
    assert_eq!(views.len(), 6);
    tx.rollback().await.expect("rollback");

    // The first deployment at version 2 in the view (applied one at a
    // time), then a batch holding its whole life: its request is a
    // duplicate, its second event skipped, the rest applied.
    let mut tx = pool.begin().await.expect("begin");
    for e in &of_first[..2] {
        DeploymentProjection.apply(&mut tx, e).await.expect("apply");
    }
    assert_eq!(batch(&mut tx, events.clone()).await, Some(0));
    assert_same(
        "a batch over a row at version 2",
        &live,
        &dump(&mut tx).await,
    );
    tx.rollback().await.expect("rollback");
}
