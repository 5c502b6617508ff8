//! Given / when / then: every rule of the Node aggregate.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::actor::{Actor, Role};
use crate::testing::Scenario;

impl Scenario for Node {}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn mins(m: i64) -> Duration {
    Duration::minutes(m)
}

fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

const NODE: u32 = 11;

fn snapshot() -> NodeSnapshot {
    let gib = 1 << 30;
    NodeSnapshot {
        node_id: NODE,
        farm_id: 7,
        twin_id: 42,
        country: "Belgium".into(),
        city: "Ghent".into(),
        total: NodeResources {
            cru: 16,
            mru: 64 * gib,
            sru: 1024 * gib,
            hru: 4096 * gib,
        },
        used: NodeResources {
            cru: 2,
            mru: 4 * gib,
            sru: 100 * gib,
            hru: 0,
        },
        public_ipv4: true,
        public_ipv6: true,
        farm_free_ips: 0,
        certification: Certification::Certified,
        dedicated: false,
        rentable: true,
        rented: false,
        gpus: 0,
        extra_fee: 0,
        powered_up: true,
        uptime_seconds: 86_400,
        last_report: t0(),
    }
}

fn standby_snapshot() -> NodeSnapshot {
    NodeSnapshot {
        powered_up: false,
        ..snapshot()
    }
}

fn sync(snapshot: NodeSnapshot, now: DateTime<Utc>) -> NodeCommand {
    NodeCommand::Sync { snapshot, now }
}

fn discovered() -> NodeEvent {
    NodeEvent::NodeDiscovered {
        snapshot: snapshot(),
        status: NodeStatus::Up,
        at: t0(),
    }
}

fn farmer() -> Actor {
    Actor::new("farmer", Role::CloudProvider)
}

fn owner() -> Option<String> {
    Some("farmer".into())
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn window(n: u128, start: DateTime<Utc>, end: DateTime<Utc>) -> MaintenanceWindow {
    MaintenanceWindow {
        id: id(n),
        start,
        end,
        reason: "disk swap".into(),
    }
}

fn scheduled(w: MaintenanceWindow) -> NodeEvent {
    NodeEvent::MaintenanceScheduled {
        window: w,
        by: farmer(),
        at: t0(),
    }
}

fn schedule_as(
    n: u128,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    by: Actor,
    farm_owner: Option<String>,
) -> NodeCommand {
    NodeCommand::ScheduleMaintenance {
        window_id: id(n),
        start,
        end,
        reason: "disk swap".into(),
        by,
        farm_owner,
        now: t0(),
    }
}

fn schedule(n: u128, start: DateTime<Utc>, end: DateTime<Utc>) -> NodeCommand {
    schedule_as(n, start, end, farmer(), owner())
}

fn reschedule(
    n: u128,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> NodeCommand {
    NodeCommand::RescheduleMaintenance {
        window_id: id(n),
        start,
        end,
        by: farmer(),
        farm_owner: owner(),
        now,
    }
}

fn cancel(n: u128, now: DateTime<Utc>) -> NodeCommand {
    NodeCommand::CancelMaintenance {
        window_id: id(n),
        by: farmer(),
        farm_owner: owner(),
        now,
    }
}

// ---- status ----

#[test]
fn status_follows_the_80_minute_and_24_hour_rules() {
    let at = |m: i64, powered_up: bool| node_status(t0(), powered_up, t0() + mins(m));
    assert_eq!(at(0, true), NodeStatus::Up);
    assert_eq!(at(80, true), NodeStatus::Up);
    assert_eq!(at(81, true), NodeStatus::Down);
    assert_eq!(at(-5, true), NodeStatus::Up, "a report from a fast clock");
    assert_eq!(at(0, false), NodeStatus::Standby);
    assert_eq!(at(24 * 60, false), NodeStatus::Standby);
    assert_eq!(at(24 * 60 + 1, false), NodeStatus::Down);
    assert_eq!(UP_WITHIN, mins(80));
    assert_eq!(STANDBY_WITHIN, hours(24));
}

#[test]
fn statuses_round_trip_by_name() {
    for s in NodeStatus::ALL {
        assert_eq!(NodeStatus::parse(s.as_str()), Some(s));
        assert_eq!(
            serde_json::to_value(s).expect("serialises"),
            serde_json::Value::String(s.as_str().into())
        );
    }
    assert_eq!(NodeStatus::parse("offline"), None);
}

// ---- sync ----

#[test]
fn an_unknown_node_is_discovered() {
    Node::given(vec![])
        .when(sync(snapshot(), t0()))
        .then_expect_events(vec![discovered()]);
    let n = Node::given(vec![discovered()]);
    let s = n.state().expect("known");
    assert_eq!(s.snapshot, snapshot());
    assert_eq!(s.status, NodeStatus::Up);
    assert!(s.windows.is_empty());
}

#[test]
fn a_node_discovered_long_after_its_last_report_is_down() {
    Node::given(vec![])
        .when(sync(snapshot(), t0() + hours(2)))
        .then_expect_events(vec![NodeEvent::NodeDiscovered {
            snapshot: snapshot(),
            status: NodeStatus::Down,
            at: t0() + hours(2),
        }]);
}

#[test]
fn an_unchanged_sync_emits_nothing() {
    let n = Node::given(vec![discovered()]);
    n.when(sync(snapshot(), t0())).then_expect_events(vec![]);
    n.when(sync(snapshot(), t0() + mins(80)))
        .then_expect_events(vec![]);
}

#[test]
fn a_changed_snapshot_updates_the_node() {
    let newer = NodeSnapshot {
        last_report: t0() + mins(40),
        uptime_seconds: 86_400 + 2_400,
        rented: true,
        ..snapshot()
    };
    let now = t0() + mins(41);
    let updated = NodeEvent::NodeUpdated {
        snapshot: newer.clone(),
        status: NodeStatus::Up,
        at: now,
    };
    Node::given(vec![discovered()])
        .when(sync(newer.clone(), now))
        .then_expect_events(vec![updated.clone()]);
    let n = Node::given(vec![discovered(), updated]);
    assert_eq!(n.state().expect("known").snapshot, newer);
}

#[test]
fn a_node_that_stopped_reporting_goes_down() {
    let now = t0() + mins(81);
    let down = NodeEvent::NodeStatusChanged {
        status: NodeStatus::Down,
        at: now,
    };
    Node::given(vec![discovered()])
        .when(sync(snapshot(), now))
        .then_expect_events(vec![down.clone()]);
    let n = Node::given(vec![discovered(), down]);
    assert_eq!(n.state().expect("known").status, NodeStatus::Down);
    n.when(sync(snapshot(), now + hours(5)))
        .then_expect_events(vec![]);
}

#[test]
fn a_node_powered_down_by_its_farm_is_standby_for_24_hours() {
    let standby = NodeEvent::NodeDiscovered {
        snapshot: standby_snapshot(),
        status: NodeStatus::Standby,
        at: t0(),
    };
    Node::given(vec![])
        .when(sync(standby_snapshot(), t0()))
        .then_expect_events(vec![standby.clone()]);
    let n = Node::given(vec![standby]);
    n.when(sync(standby_snapshot(), t0() + hours(23)))
        .then_expect_events(vec![]);
    n.when(sync(standby_snapshot(), t0() + hours(24)))
        .then_expect_events(vec![]);
    n.when(sync(standby_snapshot(), t0() + hours(24) + mins(1)))
        .then_expect_events(vec![NodeEvent::NodeStatusChanged {
            status: NodeStatus::Down,
            at: t0() + hours(24) + mins(1),
        }]);
}

#[test]
fn a_node_coming_back_is_up_again() {
    let now = t0() + hours(3);
    let down = NodeEvent::NodeStatusChanged {
        status: NodeStatus::Down,
        at: now,
    };
    let fresh = NodeSnapshot {
        last_report: now,
        uptime_seconds: 60,
        ..snapshot()
    };
    Node::given(vec![discovered(), down])
        .when(sync(fresh.clone(), now))
        .then_expect_events(vec![NodeEvent::NodeUpdated {
            snapshot: fresh,
            status: NodeStatus::Up,
            at: now,
        }]);
}

#[test]
fn a_snapshot_of_another_node_is_refused() {
    let other = NodeSnapshot {
        node_id: NODE + 1,
        ..snapshot()
    };
    Node::given(vec![discovered()])
        .when(sync(other, t0()))
        .then_expect_error(NodeError::NodeMismatch {
            expected: NODE,
            got: NODE + 1,
        });
}

// ---- maintenance: who ----

#[test]
fn maintenance_needs_a_known_node() {
    Node::given(vec![])
        .when(schedule(1, t0() + hours(1), t0() + hours(2)))
        .then_expect_error(NodeError::NotFound);
}

#[test]
fn only_the_farms_provider_plans_maintenance() {
    let n = Node::given(vec![discovered()]);
    let (start, end) = (t0() + hours(1), t0() + hours(2));
    let cases = [
        (Actor::new("stranger", Role::CloudProvider), owner()),
        (farmer(), None),
        (Actor::new("farmer", Role::CloudUser), owner()),
        (Actor::new("ops", Role::CloudOperator), Some("ops".into())),
    ];
    for (by, farm_owner) in cases {
        n.when(schedule_as(1, start, end, by, farm_owner))
            .then_expect_error(NodeError::NotPermitted);
    }
    let n = Node::given(vec![discovered(), scheduled(window(1, start, end))]);
    let stranger = Actor::new("stranger", Role::CloudProvider);
    n.when(NodeCommand::CancelMaintenance {
        window_id: id(1),
        by: stranger.clone(),
        farm_owner: owner(),
        now: t0(),
    })
    .then_expect_error(NodeError::NotPermitted);
    n.when(NodeCommand::RescheduleMaintenance {
        window_id: id(1),
        start,
        end: end + hours(1),
        by: stranger,
        farm_owner: owner(),
        now: t0(),
    })
    .then_expect_error(NodeError::NotPermitted);
}

// ---- maintenance: schedule ----

#[test]
fn the_provider_schedules_a_future_window() {
    let w = window(1, t0() + hours(1), t0() + hours(3));
    Node::given(vec![discovered()])
        .when(schedule(1, w.start, w.end))
        .then_expect_events(vec![scheduled(w.clone())]);
    let n = Node::given(vec![discovered(), scheduled(w.clone())]);
    assert_eq!(n.state().expect("known").windows, vec![w]);
}

#[test]
fn a_window_must_start_in_the_future() {
    let n = Node::given(vec![discovered()]);
    n.when(schedule(1, t0(), t0() + hours(1)))
        .then_expect_error(NodeError::MaintenanceInThePast);
    n.when(schedule(1, t0() - hours(1), t0() + hours(1)))
        .then_expect_error(NodeError::MaintenanceInThePast);
}

#[test]
fn a_window_ends_after_it_starts_and_lasts_at_most_14_days() {
    let n = Node::given(vec![discovered()]);
    let start = t0() + hours(1);
    n.when(schedule(1, start, start))
        .then_expect_error(NodeError::MaintenanceEndsBeforeStart);
    n.when(schedule(1, start, start - mins(1)))
        .then_expect_error(NodeError::MaintenanceEndsBeforeStart);
    n.when(schedule(1, start, start + Duration::days(14) + mins(1)))
        .then_expect_error(NodeError::MaintenanceTooLong { max_days: 14 });
    assert!(n
        .decide(schedule(1, start, start + Duration::days(14)))
        .is_ok());
}

#[test]
fn a_window_needs_a_short_reason() {
    let n = Node::given(vec![discovered()]);
    for reason in [" ".to_string(), "x".repeat(501)] {
        let cmd = NodeCommand::ScheduleMaintenance {
            window_id: id(1),
            start: t0() + hours(1),
            end: t0() + hours(2),
            reason,
            by: farmer(),
            farm_owner: owner(),
            now: t0(),
        };
        match n.decide(cmd) {
            Err(NodeError::Invalid(e)) => assert_eq!(e.field, "reason"),
            other => panic!("expected an invalid reason, got {other:?}"),
        }
    }
}

#[test]
fn overlapping_windows_are_refused() {
    let first = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(first)]);
    let overlap = NodeError::MaintenanceOverlap { with: id(1) };
    n.when(schedule(2, t0() + hours(3), t0() + hours(5)))
        .then_expect_error(overlap.clone());
    n.when(schedule(2, t0() + hours(1), t0() + hours(3)))
        .then_expect_error(overlap.clone());
    n.when(schedule(2, t0() + hours(1), t0() + hours(5)))
        .then_expect_error(overlap.clone());
    n.when(schedule(2, t0() + mins(150), t0() + mins(170)))
        .then_expect_error(overlap);
}

#[test]
fn adjacent_windows_are_fine() {
    let first = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(first)]);
    assert!(n
        .decide(schedule(2, t0() + hours(4), t0() + hours(6)))
        .is_ok());
    assert!(n
        .decide(schedule(2, t0() + hours(1), t0() + hours(2)))
        .is_ok());
}

#[test]
fn cancelled_windows_do_not_block() {
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let cancelled = NodeEvent::MaintenanceCancelled {
        window_id: id(1),
        by: farmer(),
        at: t0(),
    };
    let n = Node::given(vec![discovered(), scheduled(w), cancelled]);
    assert!(n
        .decide(schedule(2, t0() + hours(2), t0() + hours(4)))
        .is_ok());
}

#[test]
fn a_window_id_is_used_once() {
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(w.clone())]);
    n.when(schedule(1, t0() + hours(10), t0() + hours(11)))
        .then_expect_error(NodeError::MaintenanceExists);
    let cancelled = NodeEvent::MaintenanceCancelled {
        window_id: id(1),
        by: farmer(),
        at: t0(),
    };
    let n = Node::given(vec![discovered(), scheduled(w), cancelled]);
    n.when(schedule(1, t0() + hours(10), t0() + hours(11)))
        .then_expect_error(NodeError::MaintenanceExists);
}

// ---- maintenance: reschedule ----

#[test]
fn the_provider_moves_a_window_that_has_not_begun() {
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(w)]);
    let moved = NodeEvent::MaintenanceRescheduled {
        window_id: id(1),
        start: t0() + hours(3),
        end: t0() + hours(6),
        by: farmer(),
        at: t0(),
    };
    n.when(reschedule(1, t0() + hours(3), t0() + hours(6), t0()))
        .then_expect_events(vec![moved.clone()]);
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(w), moved]);
    assert_eq!(
        n.state().expect("known").windows,
        vec![window(1, t0() + hours(3), t0() + hours(6))]
    );
}

#[test]
fn a_window_may_overlap_its_own_old_period_but_not_another() {
    let a = window(1, t0() + hours(2), t0() + hours(4));
    let b = window(2, t0() + hours(6), t0() + hours(8));
    let n = Node::given(vec![discovered(), scheduled(a), scheduled(b)]);
    assert!(n
        .decide(reschedule(1, t0() + hours(3), t0() + hours(5), t0()))
        .is_ok());
    assert!(n
        .decide(reschedule(1, t0() + hours(4), t0() + hours(6), t0()))
        .is_ok());
    n.when(reschedule(1, t0() + hours(5), t0() + hours(7), t0()))
        .then_expect_error(NodeError::MaintenanceOverlap { with: id(2) });
}

#[test]
fn a_reschedule_checks_the_new_period() {
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(w)]);
    n.when(reschedule(1, t0() - hours(1), t0() + hours(4), t0()))
        .then_expect_error(NodeError::MaintenanceInThePast);
    n.when(reschedule(1, t0() + hours(4), t0() + hours(3), t0()))
        .then_expect_error(NodeError::MaintenanceEndsBeforeStart);
    n.when(reschedule(
        1,
        t0() + hours(2),
        t0() + Duration::days(15),
        t0(),
    ))
    .then_expect_error(NodeError::MaintenanceTooLong { max_days: 14 });
}

#[test]
fn rescheduling_to_the_same_period_changes_nothing() {
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(w)]);
    n.when(reschedule(1, t0() + hours(2), t0() + hours(4), t0()))
        .then_expect_events(vec![]);
}

#[test]
fn a_started_window_cannot_be_moved_or_cancelled() {
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(w)]);
    let now = t0() + hours(2);
    n.when(reschedule(1, now + hours(1), now + hours(2), now))
        .then_expect_error(NodeError::MaintenanceStarted);
    n.when(cancel(1, now))
        .then_expect_error(NodeError::MaintenanceStarted);
    n.when(cancel(1, now + hours(5)))
        .then_expect_error(NodeError::MaintenanceStarted);
}

#[test]
fn an_unknown_or_cancelled_window_is_not_found() {
    let n = Node::given(vec![discovered()]);
    n.when(reschedule(9, t0() + hours(1), t0() + hours(2), t0()))
        .then_expect_error(NodeError::MaintenanceNotFound);
    n.when(cancel(9, t0()))
        .then_expect_error(NodeError::MaintenanceNotFound);
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let cancelled = NodeEvent::MaintenanceCancelled {
        window_id: id(1),
        by: farmer(),
        at: t0(),
    };
    let n = Node::given(vec![discovered(), scheduled(w), cancelled]);
    n.when(cancel(1, t0()))
        .then_expect_error(NodeError::MaintenanceNotFound);
    n.when(reschedule(1, t0() + hours(5), t0() + hours(6), t0()))
        .then_expect_error(NodeError::MaintenanceNotFound);
}

// ---- maintenance: cancel ----

#[test]
fn the_provider_cancels_a_window_that_has_not_begun() {
    let w = window(1, t0() + hours(2), t0() + hours(4));
    let n = Node::given(vec![discovered(), scheduled(w.clone())]);
    let cancelled = NodeEvent::MaintenanceCancelled {
        window_id: id(1),
        by: farmer(),
        at: t0() + hours(1),
    };
    n.when(cancel(1, t0() + hours(1)))
        .then_expect_events(vec![cancelled.clone()]);
    let n = Node::given(vec![discovered(), scheduled(w), cancelled]);
    let s = n.state().expect("known");
    assert!(s.windows.is_empty());
    assert_eq!(s.cancelled_window_ids, vec![id(1)]);
}

#[test]
fn upcoming_windows_leave_out_ended_ones() {
    let a = window(1, t0() + hours(5), t0() + hours(6));
    let b = window(2, t0() + hours(1), t0() + hours(2));
    let n = Node::given(vec![
        discovered(),
        scheduled(a.clone()),
        scheduled(b.clone()),
    ]);
    let s = n.state().expect("known");
    assert_eq!(s.upcoming_windows(t0()), vec![&b, &a]);
    assert_eq!(s.upcoming_windows(t0() + hours(2)), vec![&a]);
}

#[test]
fn events_are_named_versioned_and_round_trip() {
    use cqrs_es::DomainEvent;
    let events = vec![
        discovered(),
        scheduled(window(1, t0() + hours(1), t0() + hours(2))),
        NodeEvent::NodeStatusChanged {
            status: NodeStatus::Down,
            at: t0(),
        },
    ];
    for e in events {
        assert_eq!(e.event_version(), EVENT_VERSION);
        assert_eq!(e.at(), t0());
        let json = serde_json::to_string(&e).expect("serialises");
        let back: NodeEvent = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, e);
    }
    assert_eq!(discovered().event_type(), "NodeDiscovered");
}
