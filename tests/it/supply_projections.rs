//! The supply-side projections against a real PostgreSQL: provider
//! requests, the node catalog with its maintenance windows, and the pricing
//! policy's history. Every stored event is one the real aggregate decided;
//! the tests store them as `events` rows and run the store-tailing runner.
//!
//! - the views after each kind of event, and their read functions;
//! - invariant 3: a duplicate or stale delivery changes nothing, a gap is
//!   poison (invariant 7: dead-lettered, the runner goes on); the wallet
//!   view's redeliveries are checked here too, with the same helpers;
//! - the catalog's filters, orders and cursors over a generated catalog of
//!   10,000 nodes agree, id for id, with the same query evaluated in Rust;
//! - invariant 6: a rebuild of each projection equals what live processing
//!   built.
//!
//! The tests run one at a time, with `projection`'s, on a server of their
//! own (see [`serial`] and [`store_database`]): a snapshot's xmin is
//! cluster-wide, so one test's open transaction holds back every runner on
//! its server.

use std::collections::HashMap;

use crate::common::*;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use marketplace_domain::node::{
    Certification, Node, NodeCommand, NodeEvent, NodeResources, NodeSnapshot, NodeStatus,
};
use marketplace_domain::pricing::{
    quote, MachineUsage, PricingPolicy, PricingPolicyAggregate, PricingPolicyCommand,
    PricingPolicyEvent, AGGREGATE_ID,
};
use marketplace_domain::provider::{
    CompanyName, ContactEmail, Country, NodeIds, ProviderRequest, ProviderRequestCommand,
    ProviderRequestEvent, Status,
};
use marketplace_domain::wallet::{DebitId, StripeId, Wallet, WalletCommand, WalletEvent};
use marketplace_domain::{Actor, Role, TftAmount, TftPrice, UsdAmount};
use marketplace_projections::nodes::{self, CatalogQuery, NodeProjection, Sort};
use marketplace_projections::pricing::{self, PricingPolicyProjection};
use marketplace_projections::providers::{self, ProviderListQuery, ProviderRequestProjection};
use marketplace_projections::wallets::{self, WalletProjection};
use marketplace_projections::{tail, ApplyError, Projection, StoredEvent};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

// ---- events, decided by the real aggregates ----

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
        + TimeDelta::minutes(minutes)
}

fn ops() -> Actor {
    Actor::new("ops", Role::CloudOperator)
}

fn provider(name: &str) -> Actor {
    Actor::new(name, Role::CloudProvider)
}

/// What the tests need of an aggregate: decide and apply, and its type name.
trait Aggregate: Default {
    const TYPE: &'static str;
    type Command;
    type Event: Serialize;
    fn decide_(&self, command: Self::Command) -> Vec<Self::Event>;
    fn apply_(&mut self, event: &Self::Event);
}

impl Aggregate for ProviderRequest {
    const TYPE: &'static str = "provider_request";
    type Command = ProviderRequestCommand;
    type Event = ProviderRequestEvent;
    fn decide_(&self, command: Self::Command) -> Vec<Self::Event> {
        self.decide(command).expect("command accepted")
    }
    fn apply_(&mut self, event: &Self::Event) {
        self.apply_event(event)
    }
}

impl Aggregate for Node {
    const TYPE: &'static str = "node";
    type Command = NodeCommand;
    type Event = NodeEvent;
    fn decide_(&self, command: Self::Command) -> Vec<Self::Event> {
        self.decide(command).expect("command accepted")
    }
    fn apply_(&mut self, event: &Self::Event) {
        self.apply_event(event)
    }
}

impl Aggregate for PricingPolicyAggregate {
    const TYPE: &'static str = "pricing_policy";
    type Command = PricingPolicyCommand;
    type Event = PricingPolicyEvent;
    fn decide_(&self, command: Self::Command) -> Vec<Self::Event> {
        self.decide(command).expect("command accepted")
    }
    fn apply_(&mut self, event: &Self::Event) {
        self.apply_event(event)
    }
}

/// One aggregate as its writer sees it.
struct Stream<A: Aggregate> {
    id: String,
    aggregate: A,
    sequence: i64,
}

impl<A: Aggregate> Stream<A> {
    fn new(id: impl ToString) -> Self {
        Self {
            id: id.to_string(),
            aggregate: A::default(),
            sequence: 0,
        }
    }

    /// Decides `command`, stores its events (one transaction per event),
    /// and returns them with their sequences.
    async fn run(&mut self, pool: &PgPool, command: A::Command, by: &Actor) -> Vec<(i64, Value)> {
        let mut stored = Vec::new();
        for event in self.aggregate.decide_(command) {
            self.aggregate.apply_(&event);
            self.sequence += 1;
            let payload = serde_json::to_value(&event).expect("serialise event");
            insert_event(pool, A::TYPE, &self.id, self.sequence, payload.clone(), by).await;
            stored.push((self.sequence, payload));
        }
        stored
    }
}

fn event_type(payload: &Value) -> String {
    payload
        .as_object()
        .and_then(|tagged| tagged.keys().next())
        .expect("an externally tagged payload")
        .clone()
}

fn metadata(by: &Actor) -> Value {
    json!({
        "actor_subject": by.subject,
        "actor_role": by.role.as_str(),
        "correlation_id": Uuid::new_v4().to_string(),
        "causation_id": Uuid::new_v4().to_string(),
        "request_id": Uuid::new_v4().to_string(),
    })
}

/// Inserts one row into `events` as postgres-es writes it; returns its position.
async fn insert_event(
    pool: &PgPool,
    aggregate_type: &str,
    id: &str,
    sequence: i64,
    payload: Value,
    by: &Actor,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events
            (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ($1, $2, $3, $4, '1', $5, $6)
         RETURNING position",
    )
    .bind(aggregate_type)
    .bind(id)
    .bind(sequence)
    .bind(event_type(&payload))
    .bind(payload)
    .bind(metadata(by))
    .fetch_one(pool)
    .await
    .expect("insert event")
}

/// An aggregate's stored events, in sequence order.
async fn stored_events(pool: &PgPool, aggregate_type: &str, id: &str) -> Vec<StoredEvent> {
    sqlx::query_as(
        "SELECT position, txid, aggregate_type, aggregate_id, sequence, event_type, event_version,
                payload, metadata, recorded_at
           FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("read events")
}

async fn catch_up<P: Projection>(pool: &PgPool, projection: &P) {
    tail::catch_up(pool, projection, 500)
        .await
        .expect("catch up");
}

async fn dead_letters(pool: &PgPool, projection: &str) -> Vec<(String, i64, String)> {
    sqlx::query_as(
        "SELECT aggregate_id, sequence, error FROM projection_dead_letters
          WHERE projection = $1 AND resolved_at IS NULL ORDER BY event_position",
    )
    .bind(projection)
    .fetch_all(pool)
    .await
    .expect("dead letters")
}

/// Applies each event again in one transaction and asserts nothing changed.
async fn redeliver<P: Projection>(pool: &PgPool, projection: &P, events: &[StoredEvent]) {
    let before = dump_views(pool, projection).await;
    let mut tx = pool.begin().await.expect("begin");
    for event in events {
        projection
            .apply(&mut tx, event)
            .await
            .unwrap_or_else(|e| panic!("redelivery of {} failed: {e}", event.event_type));
    }
    tx.commit().await.expect("commit");
    assert_eq!(
        dump_views(pool, projection).await,
        before,
        "a duplicate or stale delivery changed the view"
    );
}

// ---- provider requests ----

fn submit(who: &str, farm_id: u32, at: DateTime<Utc>) -> ProviderRequestCommand {
    ProviderRequestCommand::Submit {
        provider: who.to_string(),
        company: CompanyName::new("Acme Farms").expect("valid company"),
        contact: ContactEmail::new("ops@acme.example").expect("valid contact"),
        farm_id,
        node_ids: NodeIds::new(vec![farm_id * 10 + 2, farm_id * 10 + 1]).expect("valid ids"),
        country: Country::new("Belgium").expect("valid country"),
        message: Some(format!("farm {farm_id} applies")),
        at,
    }
}

async fn queue(pool: &PgPool, query: ProviderListQuery) -> Vec<i64> {
    let mut query = query;
    let mut farms = Vec::new();
    loop {
        let (rows, next) = providers::list(pool, &query).await.expect("list");
        assert!(rows.len() as i64 <= query.limit);
        farms.extend(rows.iter().map(|r| r.farm_id));
        match next {
            Some(cursor) => {
                let text = cursor.encode();
                query.after = Some(providers::Cursor::decode(&text).expect("our cursor"));
            }
            None => return farms,
        }
    }
}

fn submitted_queue(limit: i64) -> ProviderListQuery {
    ProviderListQuery {
        status: Some(Status::Submitted),
        limit,
        ..Default::default()
    }
}

#[tokio::test]
async fn provider_requests_round_trip_and_queue_oldest_first() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let p = &ProviderRequestProjection;
    let mut farms: HashMap<u32, Stream<ProviderRequest>> = HashMap::new();
    for (farm, who, at) in [
        (12, "prov-a", t(1)),
        (10, "prov-a", t(0)),
        (13, "prov-c", t(2)),
        (11, "prov-b", t(1)),
    ] {
        let mut s = Stream::new(farm);
        s.run(&pool, submit(who, farm, at), &provider(who)).await;
        farms.insert(farm, s);
    }
    catch_up(&pool, p).await;
    // Oldest first, ties by farm id, across pages of two.
    assert_eq!(queue(&pool, submitted_queue(2)).await, [10, 11, 12, 13]);
    let first = providers::get(&pool, 10).await.expect("get").expect("row");
    assert_eq!(
        (first.round, first.status(), first.version),
        (1, Some(Status::Submitted), 1)
    );
    assert_eq!(first.node_ids, [102, 101]);
    assert_eq!(first.message.as_deref(), Some("farm 10 applies"));
    assert_eq!((first.submitted_at, first.updated_at), (t(0), t(0)));

    // Farm 10: a question, an answer, a rejection, then a second round.
    let f10 = farms.get_mut(&10).expect("farm 10");
    let a = provider("prov-a");
    f10.run(
        &pool,
        ProviderRequestCommand::RequestInformation {
            by: ops(),
            question: "Which data centre?".into(),
            at: t(3),
        },
        &ops(),
    )
    .await;
    catch_up(&pool, p).await;
    assert_eq!(queue(&pool, submitted_queue(10)).await, [11, 12, 13]);
    f10.run(
        &pool,
        ProviderRequestCommand::Answer {
            by: a.clone(),
            answer: "Ghent DC2".into(),
            at: t(4),
        },
        &a,
    )
    .await;
    catch_up(&pool, p).await;
    let row = providers::get(&pool, 10).await.expect("get").expect("row");
    assert_eq!(row.status(), Some(Status::Submitted));
    assert_eq!(row.last_question.as_deref(), Some("Which data centre?"));
    assert_eq!(row.last_answer.as_deref(), Some("Ghent DC2"));
    assert_eq!(row.submitted_at, t(0), "an answer keeps the queue position");
    f10.run(
        &pool,
        ProviderRequestCommand::Reject {
            by: ops(),
            reason: "no SLA yet".into(),
            at: t(5),
        },
        &ops(),
    )
    .await;
    f10.run(&pool, submit("prov-a", 10, t(10)), &a).await;
    catch_up(&pool, p).await;
    let row = providers::get(&pool, 10).await.expect("get").expect("row");
    assert_eq!(
        (row.round, row.status(), row.version),
        (2, Some(Status::Submitted), 5)
    );
    assert_eq!((row.submitted_at, row.updated_at), (t(10), t(10)));
    assert_eq!(row.last_reason.as_deref(), Some("no SLA yet"));
    assert_eq!(row.last_question.as_deref(), Some("Which data centre?"));
    assert_eq!(row.last_answer, None, "a new round clears the answer");
    // The new round queues behind everyone.
    assert_eq!(queue(&pool, submitted_queue(3)).await, [11, 12, 13, 10]);

    // Farm 11 approved; farm 12 withdrawn.
    farms
        .get_mut(&11)
        .expect("farm 11")
        .run(
            &pool,
            ProviderRequestCommand::Approve {
                by: ops(),
                note: None,
                at: t(11),
            },
            &ops(),
        )
        .await;
    let pa = provider("prov-a");
    farms
        .get_mut(&12)
        .expect("farm 12")
        .run(
            &pool,
            ProviderRequestCommand::Withdraw {
                by: pa.clone(),
                at: t(12),
            },
            &pa,
        )
        .await;
    catch_up(&pool, p).await;
    assert_eq!(queue(&pool, submitted_queue(1)).await, [13, 10]);
    assert_eq!(
        providers::farm_owner(&pool, 11).await.expect("owner"),
        Some("prov-b".to_string())
    );
    assert_eq!(providers::farm_owner(&pool, 10).await.expect("owner"), None);
    assert_eq!(providers::farm_owner(&pool, 99).await.expect("owner"), None);
    assert_eq!(
        providers::farms_of(&pool, "prov-b").await.expect("farms"),
        [11]
    );
    assert!(providers::farms_of(&pool, "prov-a")
        .await
        .expect("farms")
        .is_empty());
    let withdrawn = providers::get(&pool, 12).await.expect("get").expect("row");
    assert_eq!(withdrawn.status(), Some(Status::Withdrawn));
    // A provider's own list, every status, oldest first.
    let mine = ProviderListQuery {
        provider: Some("prov-a".into()),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(queue(&pool, mine).await, [12, 10]);
    let approved = ProviderListQuery {
        status: Some(Status::Approved),
        limit: 5,
        ..Default::default()
    };
    assert_eq!(queue(&pool, approved).await, [11]);
    assert_eq!(providers::get(&pool, 99).await.expect("get"), None);
    assert!(dead_letters(&pool, providers::NAME).await.is_empty());
}

#[tokio::test]
async fn duplicate_deliveries_change_nothing_and_gaps_are_poison() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;

    // Provider requests.
    let mut farm = Stream::<ProviderRequest>::new(5);
    let a = provider("prov-a");
    farm.run(&pool, submit("prov-a", 5, t(0)), &a).await;
    farm.run(
        &pool,
        ProviderRequestCommand::RequestInformation {
            by: ops(),
            question: "Why?".into(),
            at: t(1),
        },
        &ops(),
    )
    .await;
    // Nodes, maintenance included.
    let mut node = Stream::<Node>::new(77);
    node.run(&pool, sync(snapshot(77, 3), t(0)), &grid()).await;
    let window = Uuid::new_v4();
    node.run(&pool, schedule(window, t(60), t(120), Some("prov-a")), &a)
        .await;
    node.run(
        &pool,
        NodeCommand::CancelMaintenance {
            window_id: window,
            by: a.clone(),
            farm_owner: Some("prov-a".into()),
            now: t(2),
        },
        &a,
    )
    .await;
    // A changed snapshot, silence until the node is down, a fresh report:
    // a stale NodeUpdated or NodeStatusChanged would move the row back.
    let mut changed = snapshot(77, 3);
    changed.used.cru = 4;
    changed.last_report = t(3);
    let updated = node.run(&pool, sync(changed.clone(), t(3)), &grid()).await;
    let down = node
        .run(&pool, sync(changed.clone(), t(200)), &grid())
        .await;
    changed.last_report = t(201);
    let up = node.run(&pool, sync(changed, t(201)), &grid()).await;
    for (events, kind) in [
        (&updated, "NodeUpdated"),
        (&down, "NodeStatusChanged"),
        (&up, "NodeUpdated"),
    ] {
        assert_eq!(event_type(&events[0].1), kind);
    }
    // The pricing policy.
    let mut policy = Stream::<PricingPolicyAggregate>::new(AGGREGATE_ID);
    policy.run(&pool, set_policy(1, t(0)), &ops()).await;
    policy.run(&pool, set_policy(2, t(1)), &ops()).await;

    catch_up(&pool, &ProviderRequestProjection).await;
    catch_up(&pool, &NodeProjection).await;
    catch_up(&pool, &PricingPolicyProjection).await;

    // Every event again, newest first (each one stale after the newest), then in order.
    let farm_events = stored_events(&pool, "provider_request", "5").await;
    let node_events = stored_events(&pool, "node", "77").await;
    let policy_events = stored_events(&pool, "pricing_policy", AGGREGATE_ID).await;
    for events in [&farm_events, &node_events, &policy_events] {
        assert!(events.len() >= 2);
    }
    let reversed = |e: &[StoredEvent]| e.iter().rev().cloned().collect::<Vec<_>>();
    redeliver(&pool, &ProviderRequestProjection, &reversed(&farm_events)).await;
    redeliver(&pool, &ProviderRequestProjection, &farm_events).await;
    redeliver(&pool, &NodeProjection, &reversed(&node_events)).await;
    redeliver(&pool, &NodeProjection, &node_events).await;
    redeliver(&pool, &PricingPolicyProjection, &reversed(&policy_events)).await;
    redeliver(&pool, &PricingPolicyProjection, &policy_events).await;

    // A gap: the newest event again, as if it were two sequences further on.
    let gap = |e: StoredEvent| StoredEvent {
        sequence: e.sequence + 2,
        ..e
    };
    let newest = |e: &[StoredEvent]| e.last().cloned().expect("events");
    let mut conn = pool.acquire().await.expect("connection");
    for (result, what) in [
        (
            ProviderRequestProjection
                .apply(&mut conn, &gap(newest(&farm_events)))
                .await,
            "provider gap",
        ),
        (
            NodeProjection
                .apply(&mut conn, &gap(newest(&node_events)))
                .await,
            "node gap",
        ),
        (
            PricingPolicyProjection
                .apply(&mut conn, &gap(newest(&policy_events)))
                .await,
            "pricing gap",
        ),
    ] {
        assert!(
            matches!(result, Err(ApplyError::Poison(ref m)) if m.contains("gap")),
            "{what}: {result:?}"
        );
    }
    // An event for an aggregate the view does not have.
    let stranger = StoredEvent {
        aggregate_id: "6".into(),
        ..farm_events[1].clone()
    };
    assert!(matches!(
        ProviderRequestProjection.apply(&mut conn, &stranger).await,
        Err(ApplyError::Poison(_))
    ));
    drop(conn);

    // Through the runner: a gap is dead-lettered and the runner goes on.
    let payload = node_events[0].payload.clone();
    insert_event(&pool, "node", "77", 9, payload, &grid()).await;
    let mut other = Stream::<Node>::new(78);
    other.run(&pool, sync(snapshot(78, 3), t(0)), &grid()).await;
    catch_up(&pool, &NodeProjection).await;
    let letters = dead_letters(&pool, nodes::NAME).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0].0.as_str(), letters[0].1), ("77", 9));
    assert!(nodes::get(&pool, 78).await.expect("get").is_some());
    assert_eq!(
        nodes::get(&pool, 77).await.expect("get").map(|n| n.version),
        Some(6)
    );

    // A window the view does not have: poison, and the node's version move
    // in the same statement is undone with it.
    let unknown = NodeEvent::MaintenanceCancelled {
        window_id: Uuid::new_v4(),
        by: a.clone(),
        at: t(5),
    };
    let payload = serde_json::to_value(&unknown).expect("payload");
    insert_event(&pool, "node", "78", 2, payload, &a).await;
    catch_up(&pool, &NodeProjection).await;
    let letters = dead_letters(&pool, nodes::NAME).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!((letters[1].0.as_str(), letters[1].1), ("78", 2));
    assert!(letters[1].2.contains("not scheduled"), "{}", letters[1].2);
    assert_eq!(
        nodes::get(&pool, 78).await.expect("get").map(|n| n.version),
        Some(1)
    );
}

// ---- wallets ----

impl Aggregate for Wallet {
    const TYPE: &'static str = "wallet";
    type Command = WalletCommand;
    type Event = WalletEvent;
    fn decide_(&self, command: Self::Command) -> Vec<Self::Event> {
        self.decide(command).expect("command accepted")
    }
    fn apply_(&mut self, event: &Self::Event) {
        self.apply_event(event)
    }
}

fn stripe_id(field: &str, id: &str) -> StripeId {
    StripeId::new(field, id).expect("valid Stripe id")
}

/// The wallet view's guard is `version = sequence - 1`, as the supply
/// views' are: a card payment's `TopUpCredited` delivered again (Kafka
/// redelivers, a runner re-reads after a crash) must not credit twice, nor
/// a debit take twice.
#[tokio::test]
async fn wallet_redeliveries_change_nothing() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let p = &WalletProjection;
    let owner = Actor::new("walt", Role::CloudUser);
    let mut wallet = Stream::<Wallet>::new("walt");
    wallet
        .run(
            &pool,
            WalletCommand::Open {
                owner: "walt".into(),
                at: t(0),
            },
            &owner,
        )
        .await;
    wallet
        .run(
            &pool,
            WalletCommand::CreateTopUp {
                top_up_id: Uuid::new_v4(),
                payment_intent_id: stripe_id("payment_intent_id", "pi_walt1"),
                usd_cents: 1_000,
                tft_price: TftPrice::from_usd_units(100_000).expect("price"),
                quote_expires_at: t(15),
                at: t(1),
            },
            &owner,
        )
        .await;
    let credited = wallet
        .run(
            &pool,
            WalletCommand::RecordPaymentSucceeded {
                payment_intent_id: stripe_id("payment_intent_id", "pi_walt1"),
                amount_received_cents: 1_000,
                charge_id: stripe_id("charge_id", "ch_walt1"),
                receipt_url: None,
                at: t(2),
            },
            &ops(),
        )
        .await;
    assert_eq!(event_type(&credited[0].1), "TopUpCredited");
    wallet
        .run(
            &pool,
            WalletCommand::Debit {
                debit_id: DebitId::new("bill-1").expect("debit id"),
                amount: TftAmount::from_base_units(10_000_000),
                reason: "an hour of web1".into(),
                at: t(3),
            },
            &ops(),
        )
        .await;
    catch_up(&pool, p).await;
    // $10 at $0.01 a TFT is 1,000 TFT, less the 1 TFT debit.
    let balance = 999 * 10_000_000;
    assert_eq!(wallet.aggregate.balance(), balance);
    let row = wallets::find(&pool, "walt")
        .await
        .expect("find")
        .expect("row");
    assert_eq!((row.version, row.wallet.balance()), (4, balance));

    // The credit alone again, then every event again, newest first (each
    // one stale after the newest), then in order.
    let events = stored_events(&pool, "wallet", "walt").await;
    assert_eq!(events.len(), 4);
    assert_eq!(events[2].event_type, "TopUpCredited");
    redeliver(&pool, p, &events[2..3]).await;
    let reversed: Vec<StoredEvent> = events.iter().rev().cloned().collect();
    redeliver(&pool, p, &reversed).await;
    redeliver(&pool, p, &events).await;
    let row = wallets::find(&pool, "walt")
        .await
        .expect("find")
        .expect("row");
    assert_eq!(
        (row.version, row.wallet.balance()),
        (4, balance),
        "credited and debited once"
    );
    assert!(dead_letters(&pool, wallets::NAME).await.is_empty());
}

// ---- nodes ----

const GIB: u64 = 1 << 30;

fn grid() -> Actor {
    Actor::new("grid-sync", Role::CloudOperator)
}

fn snapshot(node_id: u32, farm_id: u32) -> NodeSnapshot {
    NodeSnapshot {
        node_id,
        farm_id,
        twin_id: node_id + 1000,
        country: "Belgium".into(),
        city: "Ghent".into(),
        total: NodeResources {
            cru: 16,
            mru: 64 * GIB,
            sru: 1024 * GIB,
            hru: 4096 * GIB,
        },
        used: NodeResources {
            cru: 2,
            mru: 4 * GIB,
            sru: 100 * GIB,
            hru: 0,
        },
        public_ipv4: true,
        public_ipv6: false,
        farm_free_ips: 2,
        certification: Certification::Certified,
        dedicated: false,
        rentable: true,
        rented: false,
        gpus: 0,
        extra_fee: 0,
        powered_up: true,
        uptime_seconds: 86_400,
        last_report: t(0),
    }
}

fn sync(snapshot: NodeSnapshot, now: DateTime<Utc>) -> NodeCommand {
    NodeCommand::Sync { snapshot, now }
}

fn schedule(
    window_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    owner: Option<&str>,
) -> NodeCommand {
    NodeCommand::ScheduleMaintenance {
        window_id,
        start,
        end,
        reason: "disk swap".into(),
        by: provider(owner.unwrap_or("nobody")),
        farm_owner: owner.map(str::to_string),
        now: t(1),
    }
}

#[tokio::test]
async fn nodes_are_discovered_updated_and_change_status() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let p = &NodeProjection;
    let mut node = Stream::<Node>::new(11);
    let first = snapshot(11, 7);
    node.run(&pool, sync(first.clone(), t(0)), &grid()).await;
    catch_up(&pool, p).await;
    let row = nodes::get(&pool, 11).await.expect("get").expect("row");
    assert_eq!((row.farm_id, row.twin_id), (7, 1011));
    assert_eq!((row.status.as_str(), row.version), ("up", 1));
    assert_eq!(
        [row.total_cru, row.total_mru, row.total_sru, row.total_hru],
        [16, 64 * GIB as i64, 1024 * GIB as i64, 4096 * GIB as i64]
    );
    assert_eq!(
        [row.free_cru, row.free_mru, row.free_sru, row.free_hru],
        [14, 60 * GIB as i64, 924 * GIB as i64, 4096 * GIB as i64]
    );
    // CU = min(max(64/4, 16/2), max(64/8, 16), max(64/2, 16/4)) = 16;
    // SU = 4096/1200 + 1024/200 = 8.5333.
    assert_eq!((row.cu_milli, row.su_milli), (16_000, 8_533));
    assert!(row.certified && row.public_ipv4 && !row.public_ipv6 && row.rentable);
    assert_eq!(row.snapshot().expect("snapshot"), first);
    assert_eq!(row.updated_at, t(0));
    // (16 CU * 0.01 + 8.533 SU * 0.005) * 1.25 = 0.253331.. USD an hour
    assert_eq!(
        row.hourly_usd(&PricingPolicy::default()),
        UsdAmount::from_units(2_533_313)
    );

    // More used than there is: free saturates at zero.
    let mut second = first.clone();
    second.used.cru = 20;
    second.used.mru = 64 * GIB;
    second.uptime_seconds = 90_000;
    second.last_report = t(40);
    node.run(&pool, sync(second.clone(), t(41)), &grid()).await;
    catch_up(&pool, p).await;
    let row = nodes::get(&pool, 11).await.expect("get").expect("row");
    assert_eq!((row.free_cru, row.free_mru), (0, 0));
    assert_eq!(
        (row.version, row.uptime_seconds, row.updated_at),
        (2, 90_000, t(41))
    );
    assert_eq!(row.last_report, t(40));
    assert_eq!(row.snapshot().expect("snapshot"), second);

    // The same snapshot two hours later: the node went down.
    let events = node.run(&pool, sync(second.clone(), t(160)), &grid()).await;
    assert_eq!(event_type(&events[0].1), "NodeStatusChanged");
    catch_up(&pool, p).await;
    let row = nodes::get(&pool, 11).await.expect("get").expect("row");
    assert_eq!(
        (row.status(), row.version, row.updated_at),
        (Some(NodeStatus::Down), 3, t(160))
    );
    assert_eq!(row.snapshot().expect("snapshot"), second);

    let mut other = Stream::<Node>::new(12);
    let mut standby = snapshot(12, 8);
    standby.powered_up = false;
    other.run(&pool, sync(standby.clone(), t(5)), &grid()).await;
    catch_up(&pool, p).await;
    let all = nodes::snapshots(&pool).await.expect("snapshots");
    assert_eq!(all.len(), 2);
    assert_eq!(all[&11], (second, NodeStatus::Down));
    assert_eq!(all[&12], (standby, NodeStatus::Standby));
    assert_eq!(nodes::get(&pool, 13).await.expect("get"), None);
    assert!(dead_letters(&pool, nodes::NAME).await.is_empty());
}

#[tokio::test]
async fn maintenance_windows_are_scheduled_moved_and_cancelled() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let p = &NodeProjection;
    let a = provider("prov-a");
    let b = provider("prov-b");
    let mut n501 = Stream::<Node>::new(501);
    let mut n502 = Stream::<Node>::new(502);
    let mut n503 = Stream::<Node>::new(503);
    n501.run(&pool, sync(snapshot(501, 7), t(0)), &grid()).await;
    n502.run(&pool, sync(snapshot(502, 7), t(0)), &grid()).await;
    n503.run(&pool, sync(snapshot(503, 8), t(0)), &grid()).await;

    let (w1, w2, w3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    n501.run(&pool, schedule(w1, t(60), t(120), Some("prov-a")), &a)
        .await;
    n501.run(&pool, schedule(w2, t(300), t(360), Some("prov-a")), &a)
        .await;
    // The same window id on another node: ids are unique per node only.
    n502.run(&pool, schedule(w1, t(90), t(100), Some("prov-a")), &a)
        .await;
    n503.run(&pool, schedule(w3, t(30), t(45), Some("prov-b")), &b)
        .await;
    catch_up(&pool, p).await;
    let ids = |rows: Vec<nodes::WindowRow>| {
        rows.into_iter()
            .map(|w| (w.node_id, w.window_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(nodes::windows_for_node(&pool, 501, t(0))
            .await
            .expect("windows")),
        [(501, w1), (501, w2)]
    );

    // Move w1 after w2; cancel w2.
    n501.run(
        &pool,
        NodeCommand::RescheduleMaintenance {
            window_id: w1,
            start: t(400),
            end: t(460),
            by: a.clone(),
            farm_owner: Some("prov-a".into()),
            now: t(2),
        },
        &a,
    )
    .await;
    n501.run(
        &pool,
        NodeCommand::CancelMaintenance {
            window_id: w2,
            by: a.clone(),
            farm_owner: Some("prov-a".into()),
            now: t(3),
        },
        &a,
    )
    .await;
    catch_up(&pool, p).await;

    let windows = nodes::windows_for_node(&pool, 501, t(0))
        .await
        .expect("windows");
    assert_eq!(
        windows.len(),
        1,
        "the cancelled window is gone: {windows:?}"
    );
    let moved = &windows[0];
    assert_eq!(
        (moved.window_id, moved.starts_at, moved.ends_at),
        (w1, t(400), t(460))
    );
    assert_eq!(
        (moved.status.as_str(), moved.version, moved.farm_id),
        ("rescheduled", 4, 7)
    );
    assert_eq!(
        (
            moved.scheduled_by.as_str(),
            moved.scheduled_at,
            moved.updated_at
        ),
        ("prov-a", t(1), t(2))
    );
    assert_eq!(moved.reason, "disk swap");
    let cancelled: (String, i64, DateTime<Utc>) = sqlx::query_as(
        "SELECT status, version, updated_at FROM maintenance_windows
          WHERE node_id = 501 AND window_id = $1",
    )
    .bind(w2)
    .fetch_one(&pool)
    .await
    .expect("cancelled window");
    assert_eq!(cancelled, ("cancelled".to_string(), 5, t(3)));
    // The node's row carries the whole aggregate's version line.
    let node = nodes::get(&pool, 501).await.expect("get").expect("row");
    assert_eq!((node.version, node.updated_at), (5, t(0)));

    // A provider's calendar: both farm-7 nodes, earliest first.
    assert_eq!(
        ids(nodes::windows_for_farms(&pool, &[7], t(0))
            .await
            .expect("calendar")),
        [(502, w1), (501, w1)]
    );
    assert_eq!(
        ids(nodes::windows_for_farms(&pool, &[7, 8], t(0))
            .await
            .expect("calendar")),
        [(503, w3), (502, w1), (501, w1)]
    );
    assert_eq!(
        ids(nodes::windows_for_nodes(&pool, &[503, 501], t(0))
            .await
            .expect("windows")),
        [(503, w3), (501, w1)]
    );
    // Windows that ended by `after` are past.
    assert_eq!(
        ids(nodes::windows_for_farms(&pool, &[7, 8], t(100))
            .await
            .expect("calendar")),
        [(501, w1)]
    );
    assert!(nodes::windows_for_farms(&pool, &[], t(0))
        .await
        .expect("calendar")
        .is_empty());
    assert!(dead_letters(&pool, nodes::NAME).await.is_empty());
}

// ---- the catalog, against the same query in Rust ----

/// SplitMix64: a small deterministic generator, so the catalog is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const PLACES: [(&str, [&str; 3]); 6] = [
    ("Belgium", ["Ghent", "Brussels", "Antwerp"]),
    ("Egypt", ["Cairo", "Giza", "Luxor"]),
    ("Germany", ["Berlin", "Munich", "Hamburg"]),
    ("United States", ["Dallas", "Denver", "Boston"]),
    ("Netherlands", ["Amsterdam", "Utrecht", "Delft"]),
    ("Tanzania", ["Arusha", "Dodoma", "Moshi"]),
];

const NOW_MINUTES: i64 = 3_000;

fn generate_snapshot(rng: &mut Rng, node_id: u32) -> NodeSnapshot {
    let (country, cities) = rng.pick(&PLACES);
    let city = rng.pick(cities);
    let cru = *rng.pick(&[1u64, 2, 4, 8, 12, 16, 24, 32, 48, 64]);
    let mru = *rng.pick(&[2u64, 4, 8, 16, 32, 64, 128, 256]) * GIB + rng.below(GIB);
    let sru = rng.below(4_000) * GIB + rng.below(GIB);
    let hru = if rng.chance(40) {
        rng.below(20_000) * GIB
    } else {
        0
    };
    // Used may exceed total now and then (the grid is not always consistent).
    let used = NodeResources {
        cru: rng.below(cru + 2),
        mru: rng.below(mru + mru / 8),
        sru: rng.below(sru / 2 + 1),
        hru: rng.below(hru / 2 + 1),
    };
    let rented = rng.chance(10);
    NodeSnapshot {
        node_id,
        farm_id: 1 + rng.below(60) as u32,
        twin_id: 100_000 + node_id,
        country: country.to_string(),
        city: city.to_string(),
        total: NodeResources { cru, mru, sru, hru },
        used,
        public_ipv4: rng.chance(30),
        public_ipv6: rng.chance(50),
        farm_free_ips: if rng.chance(40) {
            1 + rng.below(8) as u32
        } else {
            0
        },
        certification: if rng.chance(25) {
            Certification::Certified
        } else {
            Certification::Diy
        },
        dedicated: rng.chance(10),
        rentable: !rented && rng.chance(60),
        rented,
        gpus: if rng.chance(5) {
            1 + rng.below(4) as u32
        } else {
            0
        },
        extra_fee: rng.below(3) * 10_000_000,
        powered_up: rng.chance(85),
        uptime_seconds: rng.below(90 * 86_400),
        // Up to 50 hours ago: up, standby and down nodes.
        last_report: t(NOW_MINUTES - rng.below(3_000) as i64),
    }
}

/// A generated node and what the catalog should know of it, computed here.
struct Model {
    snapshot: NodeSnapshot,
    status: NodeStatus,
    free: [u64; 4],
    cu_milli: u64,
    su_milli: u64,
}

impl Model {
    fn new(snapshot: NodeSnapshot, status: NodeStatus) -> Self {
        let (total, used) = (snapshot.total, snapshot.used);
        let usage = MachineUsage {
            cru: total.cru,
            mru_mib: total.mru / (1 << 20),
            sru_gb: total.sru / GIB,
            hru_gb: total.hru / GIB,
            ipv4: 0,
        };
        let q = quote(
            &[usage],
            false,
            &PricingPolicy::default(),
            TftPrice::from_usd_units(1).expect("price"),
            None,
        );
        Self {
            free: [
                total.cru.saturating_sub(used.cru),
                total.mru.saturating_sub(used.mru),
                total.sru.saturating_sub(used.sru),
                total.hru.saturating_sub(used.hru),
            ],
            cu_milli: q.cu_milli,
            su_milli: q.su_milli,
            snapshot,
            status,
        }
    }

    fn certified(&self) -> bool {
        self.snapshot.certification == Certification::Certified
    }

    /// The whole node's hourly price: (cu + su) * certified * markup, half up.
    fn price(&self, policy: &PricingPolicy) -> u64 {
        let cert = if self.certified() {
            policy.certified_multiplier_bps
        } else {
            10_000
        } as u128;
        let num = (self.cu_milli as u128 * policy.cu_per_hour.units() as u128
            + self.su_milli as u128 * policy.su_per_hour.units() as u128)
            * cert
            * (10_000 + policy.markup_bps as u128);
        ((num + 50_000_000_000) / 100_000_000_000) as u64
    }

    fn matches(&self, q: &CatalogQuery) -> bool {
        let s = &self.snapshot;
        let at_least = |min: Option<u64>, value: u64| min.is_none_or(|m| value >= m);
        let is = |wanted: Option<bool>, value: bool| wanted.is_none_or(|w| w == value);
        let price = self.price(&q.policy);
        at_least(q.min_free_cru, self.free[0])
            && at_least(q.min_free_mru, self.free[1])
            && at_least(q.min_free_sru, self.free[2])
            && at_least(q.min_free_hru, self.free[3])
            && at_least(q.min_uptime_seconds, s.uptime_seconds)
            && q.country
                .as_ref()
                .is_none_or(|c| c.to_lowercase() == s.country.to_lowercase())
            && q.city
                .as_ref()
                .is_none_or(|c| c.to_lowercase() == s.city.to_lowercase())
            && (q.farm_ids.is_empty() || q.farm_ids.contains(&s.farm_id))
            && is(q.certified, self.certified())
            && is(q.dedicated, s.dedicated)
            && is(q.rentable, s.rentable)
            && is(q.rented, s.rented)
            && is(q.has_ipv4, s.farm_free_ips > 0)
            && is(q.has_gpu, s.gpus > 0)
            && (q.status.is_empty() || q.status.contains(&self.status))
            && q.min_price.is_none_or(|m| price >= m.units())
            && q.max_price.is_none_or(|m| price <= m.units())
    }

    /// The sort key, ascending (descending orders negate it).
    fn key(&self, q: &CatalogQuery) -> i128 {
        match q.sort {
            Sort::NodeId => 0,
            Sort::FreeCruDesc => -(self.free[0] as i128),
            Sort::FreeMruDesc => -(self.free[1] as i128),
            Sort::PriceAsc => self.price(&q.policy) as i128,
            Sort::UptimeDesc => -(self.snapshot.uptime_seconds as i128),
        }
    }
}

fn expected(models: &[Model], q: &CatalogQuery) -> Vec<i64> {
    let mut hits: Vec<&Model> = models.iter().filter(|m| m.matches(q)).collect();
    hits.sort_by_key(|m| (m.key(q), m.snapshot.node_id));
    hits.iter().map(|m| i64::from(m.snapshot.node_id)).collect()
}

/// Every page of a catalog query, through the cursors' text form.
async fn walk(pool: &PgPool, query: &CatalogQuery) -> (Vec<i64>, usize) {
    let mut q = query.clone();
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let (rows, next) = nodes::catalog(pool, &q).await.expect("catalog");
        pages += 1;
        assert!(rows.len() as i64 <= q.limit, "page larger than its limit");
        ids.extend(rows.iter().map(|r| r.node_id));
        match next {
            Some(cursor) => {
                assert_eq!(rows.len() as i64, q.limit, "a short page before the end");
                q.after = Some(nodes::Cursor::decode(&cursor.encode()).expect("our cursor"));
            }
            None => return (ids, pages),
        }
    }
}

/// Stores the discovery of each node, many per statement.
async fn store_discoveries(pool: &PgPool, events: &[(u32, Value)]) {
    let metadata = metadata(&grid());
    for chunk in events.chunks(1_000) {
        let mut sql = sqlx::QueryBuilder::new(
            "INSERT INTO events
                (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) ",
        );
        sql.push_values(chunk, |mut row, (node_id, payload)| {
            row.push_bind("node")
                .push_bind(node_id.to_string())
                .push_bind(1_i64)
                .push_bind(event_type(payload))
                .push_bind("1")
                .push_bind(payload.clone())
                .push_bind(metadata.clone());
        });
        sql.build().execute(pool).await.expect("insert events");
    }
}

#[tokio::test]
async fn catalog_filters_orders_and_pages_agree_with_rust_over_10000_nodes() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let mut rng = Rng(0x5EED_CAFE);
    let now = t(NOW_MINUTES);
    // Node ids with gaps, stored in a shuffled order.
    let mut ids: Vec<u32> = (1..=10_000).map(|i| i * 3 + (i % 2)).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut models = Vec::with_capacity(ids.len());
    let mut events = Vec::with_capacity(ids.len());
    for &id in &ids {
        let snapshot = generate_snapshot(&mut rng, id);
        let decided = Node::default()
            .decide(sync(snapshot.clone(), now))
            .expect("discovered");
        let [NodeEvent::NodeDiscovered { status, .. }] = decided.as_slice() else {
            panic!("a discovery: {decided:?}");
        };
        models.push(Model::new(snapshot, *status));
        events.push((id, serde_json::to_value(&decided[0]).expect("payload")));
    }
    store_discoveries(&pool, &events).await;
    catch_up(&pool, &NodeProjection).await;
    assert!(dead_letters(&pool, nodes::NAME).await.is_empty());

    // The stored snapshots are the generated ones.
    let stored = nodes::snapshots(&pool).await.expect("snapshots");
    assert_eq!(stored.len(), models.len());
    for m in &models {
        assert_eq!(
            stored.get(&m.snapshot.node_id),
            Some(&(m.snapshot.clone(), m.status)),
            "node {}",
            m.snapshot.node_id
        );
    }
    let statuses: Vec<NodeStatus> = models.iter().map(|m| m.status).collect();
    for s in NodeStatus::ALL {
        assert!(statuses.contains(&s), "the catalog has {s} nodes");
    }
    let sample = &models[17];
    let row = nodes::get(&pool, sample.snapshot.node_id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        [row.free_cru, row.free_mru, row.free_sru, row.free_hru],
        sample.free.map(|f| f as i64)
    );
    assert_eq!(
        (row.cu_milli, row.su_milli),
        (sample.cu_milli as i64, sample.su_milli as i64)
    );

    // Price bounds taken from the generated prices, so they bind.
    let default_policy = PricingPolicy::default();
    let custom = PricingPolicy {
        cu_per_hour: UsdAmount::from_units(120_000),
        su_per_hour: UsdAmount::from_units(70_000),
        certified_multiplier_bps: 15_000,
        markup_bps: 750,
        ..Default::default()
    };
    let mut prices: Vec<u64> = models.iter().map(|m| m.price(&default_policy)).collect();
    prices.sort_unstable();
    let (p30, p60) = (prices[3_000], prices[6_000]);
    let mut custom_prices: Vec<u64> = models.iter().map(|m| m.price(&custom)).collect();
    custom_prices.sort_unstable();
    let c20 = custom_prices[2_000];

    let base = |limit: i64| CatalogQuery {
        limit,
        ..Default::default()
    };
    let cases: Vec<(&str, CatalogQuery)> = vec![
        ("everything by node id", base(1_000)),
        (
            "most free vCPUs, at least 16",
            CatalogQuery {
                min_free_cru: Some(16),
                sort: Sort::FreeCruDesc,
                ..base(97)
            },
        ),
        (
            "most free memory in belgium (any case)",
            CatalogQuery {
                country: Some("belgium".into()),
                min_free_mru: Some(8 * GIB),
                sort: Sort::FreeMruDesc,
                ..base(50)
            },
        ),
        (
            "certified nodes of some farms",
            CatalogQuery {
                farm_ids: vec![1, 2, 3, 5, 8, 13, 21, 34, 55],
                certified: Some(true),
                ..base(40)
            },
        ),
        (
            "up or standby with IPv4, longest uptime first",
            CatalogQuery {
                status: vec![NodeStatus::Up, NodeStatus::Standby],
                has_ipv4: Some(true),
                sort: Sort::UptimeDesc,
                ..base(64)
            },
        ),
        (
            "a price range, cheapest first",
            CatalogQuery {
                min_price: Some(UsdAmount::from_units(p30)),
                max_price: Some(UsdAmount::from_units(p60)),
                sort: Sort::PriceAsc,
                ..base(333)
            },
        ),
        (
            "cheapest under another policy, with a ceiling",
            CatalogQuery {
                policy: custom.clone(),
                max_price: Some(UsdAmount::from_units(c20)),
                sort: Sort::PriceAsc,
                ..base(128)
            },
        ),
        (
            "a city, rentable and not dedicated",
            CatalogQuery {
                country: Some("Germany".into()),
                city: Some("BERLIN".into()),
                dedicated: Some(false),
                rentable: Some(true),
                ..base(7)
            },
        ),
        (
            "GPU nodes, cheapest first",
            CatalogQuery {
                has_gpu: Some(true),
                sort: Sort::PriceAsc,
                ..base(9)
            },
        ),
        (
            "not rented, long up, with disks free",
            CatalogQuery {
                rented: Some(false),
                min_uptime_seconds: Some(30 * 86_400),
                min_free_sru: Some(500 * GIB),
                min_free_hru: Some(1_000 * GIB),
                sort: Sort::FreeCruDesc,
                ..base(25)
            },
        ),
        (
            "down nodes without GPU, most memory first",
            CatalogQuery {
                status: vec![NodeStatus::Down],
                has_gpu: Some(false),
                certified: Some(false),
                sort: Sort::FreeMruDesc,
                ..base(211)
            },
        ),
        (
            "everything at once",
            CatalogQuery {
                min_free_cru: Some(2),
                min_free_mru: Some(2 * GIB),
                country: Some("United States".into()),
                farm_ids: (1..=40).collect(),
                rented: Some(false),
                has_ipv4: Some(false),
                status: vec![NodeStatus::Up],
                min_price: Some(UsdAmount::from_units(p30 / 2)),
                policy: custom.clone(),
                sort: Sort::UptimeDesc,
                ..base(3)
            },
        ),
        (
            "nothing matches",
            CatalogQuery {
                farm_ids: vec![999],
                ..base(10)
            },
        ),
    ];
    for (name, query) in &cases {
        let want = expected(&models, query);
        if *name != "nothing matches" {
            assert!(!want.is_empty(), "{name}: the case selects something");
        }
        let (got, pages) = walk(&pool, query).await;
        assert_eq!(got.len(), want.len(), "{name}: how many nodes");
        if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
            panic!(
                "{name}: position {i} differs: catalog {} vs Rust {}",
                got[i], want[i]
            );
        }
        let expected_pages = want.len().div_ceil(query.limit as usize).max(1);
        assert!(
            pages == expected_pages || pages == expected_pages + 1,
            "{name}: {pages} pages for {} rows of {}",
            want.len(),
            query.limit
        );
    }

    // A cursor continues only the order it came from.
    let (_, next) = nodes::catalog(&pool, &base(5)).await.expect("catalog");
    let wrong = CatalogQuery {
        sort: Sort::PriceAsc,
        after: next,
        ..base(5)
    };
    assert!(matches!(
        nodes::catalog(&pool, &wrong).await,
        Err(sqlx::Error::InvalidArgument(_))
    ));
}

// ---- the pricing policy ----

fn set_policy(n: u64, at: DateTime<Utc>) -> PricingPolicyCommand {
    PricingPolicyCommand::SetPolicy {
        policy: PricingPolicy {
            cu_per_hour: UsdAmount::from_units(100_000 + n * 1_000),
            markup_bps: n as u32 * 100,
            ..Default::default()
        },
        by: ops(),
        at,
    }
}

#[tokio::test]
async fn pricing_policy_history_keeps_every_change() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let p = &PricingPolicyProjection;
    catch_up(&pool, p).await;
    assert_eq!(pricing::current(&pool).await.expect("current"), None);
    assert!(pricing::history(&pool, 10, None)
        .await
        .expect("history")
        .is_empty());

    let mut policy = Stream::<PricingPolicyAggregate>::new(AGGREGATE_ID);
    for n in 1..=3 {
        policy.run(&pool, set_policy(n, t(n as i64)), &ops()).await;
    }
    catch_up(&pool, p).await;
    let (version, current, by, at) = pricing::current(&pool)
        .await
        .expect("current")
        .expect("a policy");
    assert_eq!((version, by.as_str(), at), (3, "ops", t(3)));
    assert_eq!(&current, policy.aggregate.policy());
    assert_eq!(current.markup_bps, 300);

    let page = pricing::history(&pool, 2, None).await.expect("history");
    assert_eq!(page.iter().map(|c| c.version).collect::<Vec<_>>(), [3, 2]);
    assert_eq!(page[1].policy.cu_per_hour, UsdAmount::from_units(102_000));
    assert_eq!(page[1].changed_at, t(2));
    let rest = pricing::history(&pool, 2, Some(2)).await.expect("history");
    assert_eq!(rest.iter().map(|c| c.version).collect::<Vec<_>>(), [1]);
    assert_eq!(rest[0].changed_by, "ops");
    assert!(dead_letters(&pool, pricing::NAME).await.is_empty());
}

// ---- invariant 6: replay equals live ----

#[tokio::test]
async fn a_rebuild_of_each_projection_equals_live() {
    let _serial = serial().await;
    let (pool, _) = store_database().await;
    let a = provider("prov-a");
    let mut rng = Rng(42);
    for farm in 1..=20u32 {
        let mut s = Stream::<ProviderRequest>::new(farm);
        s.run(&pool, submit("prov-a", farm, t(farm as i64)), &a)
            .await;
        if farm % 3 == 0 {
            s.run(
                &pool,
                ProviderRequestCommand::Reject {
                    by: ops(),
                    reason: "not yet".into(),
                    at: t(30),
                },
                &ops(),
            )
            .await;
            s.run(&pool, submit("prov-a", farm, t(40)), &a).await;
        }
        if farm % 2 == 0 {
            s.run(
                &pool,
                ProviderRequestCommand::Approve {
                    by: ops(),
                    note: Some("welcome".into()),
                    at: t(50),
                },
                &ops(),
            )
            .await;
        }
    }
    for id in 1..=60u32 {
        let mut node = Stream::<Node>::new(id);
        let mut snap = generate_snapshot(&mut rng, id);
        node.run(&pool, sync(snap.clone(), t(NOW_MINUTES)), &grid())
            .await;
        snap.used.cru = snap.total.cru / 2;
        node.run(&pool, sync(snap.clone(), t(NOW_MINUTES + 1)), &grid())
            .await;
        node.run(&pool, sync(snap, t(NOW_MINUTES + 3_000)), &grid())
            .await;
        let owner = Some("prov-a".to_string());
        let w = Uuid::new_v4();
        node.run(
            &pool,
            NodeCommand::ScheduleMaintenance {
                window_id: w,
                start: t(NOW_MINUTES + 3_100),
                end: t(NOW_MINUTES + 3_200),
                reason: "firmware".into(),
                by: a.clone(),
                farm_owner: owner.clone(),
                now: t(NOW_MINUTES + 3_000),
            },
            &a,
        )
        .await;
        if id % 2 == 0 {
            node.run(
                &pool,
                NodeCommand::CancelMaintenance {
                    window_id: w,
                    by: a.clone(),
                    farm_owner: owner,
                    now: t(NOW_MINUTES + 3_001),
                },
                &a,
            )
            .await;
        }
    }
    let mut policy = Stream::<PricingPolicyAggregate>::new(AGGREGATE_ID);
    for n in 1..=4 {
        policy.run(&pool, set_policy(n, t(n as i64)), &ops()).await;
    }

    async fn check<P: Projection>(pool: &PgPool, projection: &P) {
        catch_up(pool, projection).await;
        let live = dump_views(pool, projection).await;
        assert!(
            live.iter()
                .all(|t| t["rows"].as_array().is_some_and(|r| !r.is_empty())),
            "{}: every table has rows",
            projection.name()
        );
        let replayed = tail::rebuild(pool, projection, 37).await.expect("rebuild");
        assert!(replayed > 0);
        catch_up(pool, projection).await;
        assert_eq!(
            dump_views(pool, projection).await,
            live,
            "{}: replay equals live",
            projection.name()
        );
        assert!(dead_letters(pool, projection.name()).await.is_empty());
    }
    check(&pool, &ProviderRequestProjection).await;
    check(&pool, &NodeProjection).await;
    check(&pool, &PricingPolicyProjection).await;
}
