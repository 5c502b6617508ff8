//! The node's state, its decisions and how events change it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::NodeCommand;
use super::events::NodeEvent;
use super::values::*;
use crate::actor::{Actor, Role};

/// Everything a decision about a known node needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// The grid's latest view of the node.
    pub snapshot: NodeSnapshot,
    /// The status derived at the latest sync.
    pub status: NodeStatus,
    /// Scheduled maintenance windows not cancelled, past ones included, in
    /// the order scheduled.
    pub windows: Vec<MaintenanceWindow>,
    /// Ids of cancelled windows, kept so an id is never used twice.
    pub cancelled_window_ids: Vec<Uuid>,
}

impl NodeState {
    /// Windows that have not ended by `now`, earliest first.
    pub fn upcoming_windows(&self, now: DateTime<Utc>) -> Vec<&MaintenanceWindow> {
        let mut windows: Vec<_> = self.windows.iter().filter(|w| w.end > now).collect();
        windows.sort_by_key(|w| w.start);
        windows
    }

    fn window(&self, id: Uuid) -> Option<&MaintenanceWindow> {
        self.windows.iter().find(|w| w.id == id)
    }
}

/// The Node aggregate: `None` until the grid first reports the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    state: Option<NodeState>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeError {
    /// Maintenance for a node the grid never reported.
    #[error("no such node")]
    NotFound,
    /// A snapshot of another node than the aggregate's.
    #[error("snapshot of node {got} sent to node {expected}")]
    NodeMismatch {
        /// The aggregate's node.
        expected: u32,
        /// The snapshot's node.
        got: u32,
    },
    /// Only the approved provider of the node's farm may plan its maintenance.
    #[error("only the node's provider may do this")]
    NotPermitted,
    /// A field is out of range or blank.
    #[error("invalid maintenance: {0}")]
    Invalid(#[from] SpecError),
    /// A window must start in the future.
    #[error("a maintenance window must start in the future")]
    MaintenanceInThePast,
    /// A window must end after it starts.
    #[error("a maintenance window must end after it starts")]
    MaintenanceEndsBeforeStart,
    /// A window may last at most [`MAX_MAINTENANCE`].
    #[error("a maintenance window may last at most {max_days} days")]
    MaintenanceTooLong {
        /// The limit, in days.
        max_days: i64,
    },
    /// The window would overlap another that has not ended.
    #[error("the window overlaps maintenance window {with}")]
    MaintenanceOverlap {
        /// The window it overlaps.
        with: Uuid,
    },
    /// A window with this id was already scheduled (and maybe cancelled).
    #[error("a maintenance window with this id already exists")]
    MaintenanceExists,
    /// No such window, or it was cancelled.
    #[error("no such maintenance window")]
    MaintenanceNotFound,
    /// The window has begun; it can no longer be moved or cancelled.
    #[error("the maintenance window has already started")]
    MaintenanceStarted,
}

impl Node {
    /// The current state, once the grid has reported the node.
    pub fn state(&self) -> Option<&NodeState> {
        self.state.as_ref()
    }

    /// Decides what a command does: the events (none when nothing changed),
    /// or why not.
    pub fn decide(&self, command: NodeCommand) -> Result<Vec<NodeEvent>, NodeError> {
        use NodeCommand as C;
        use NodeEvent as E;

        if let C::Sync { snapshot, now } = command {
            return self.sync(snapshot, now);
        }
        let Some(s) = &self.state else {
            return Err(NodeError::NotFound);
        };
        match command {
            // Decided above, before the state was needed.
            C::Sync { snapshot, now } => self.sync(snapshot, now),
            C::ScheduleMaintenance {
                window_id,
                start,
                end,
                reason,
                by,
                farm_owner,
                now,
            } => {
                check_owner(&by, farm_owner.as_deref())?;
                if s.window(window_id).is_some() || s.cancelled_window_ids.contains(&window_id) {
                    return Err(NodeError::MaintenanceExists);
                }
                check_maintenance_reason(&reason)?;
                check_period(s, window_id, start, end, now)?;
                let window = MaintenanceWindow {
                    id: window_id,
                    start,
                    end,
                    reason,
                };
                Ok(vec![E::MaintenanceScheduled {
                    window,
                    by,
                    at: now,
                }])
            }
            C::RescheduleMaintenance {
                window_id,
                start,
                end,
                by,
                farm_owner,
                now,
            } => {
                check_owner(&by, farm_owner.as_deref())?;
                let window = s.window(window_id).ok_or(NodeError::MaintenanceNotFound)?;
                if window.start <= now {
                    return Err(NodeError::MaintenanceStarted);
                }
                if window.start == start && window.end == end {
                    // A retry of a reschedule already made: nothing to tell anyone.
                    return Ok(vec![]);
                }
                check_period(s, window_id, start, end, now)?;
                Ok(vec![E::MaintenanceRescheduled {
                    window_id,
                    start,
                    end,
                    by,
                    at: now,
                }])
            }
            C::CancelMaintenance {
                window_id,
                by,
                farm_owner,
                now,
            } => {
                check_owner(&by, farm_owner.as_deref())?;
                let window = s.window(window_id).ok_or(NodeError::MaintenanceNotFound)?;
                if window.start <= now {
                    return Err(NodeError::MaintenanceStarted);
                }
                Ok(vec![E::MaintenanceCancelled {
                    window_id,
                    by,
                    at: now,
                }])
            }
        }
    }

    /// A snapshot becomes an event only if it, or the status time gives it,
    /// differs from what is known.
    fn sync(
        &self,
        snapshot: NodeSnapshot,
        now: DateTime<Utc>,
    ) -> Result<Vec<NodeEvent>, NodeError> {
        use NodeEvent as E;
        let status = snapshot.status_at(now);
        let Some(s) = &self.state else {
            return Ok(vec![E::NodeDiscovered {
                snapshot,
                status,
                at: now,
            }]);
        };
        if snapshot.node_id != s.snapshot.node_id {
            return Err(NodeError::NodeMismatch {
                expected: s.snapshot.node_id,
                got: snapshot.node_id,
            });
        }
        if snapshot != s.snapshot {
            Ok(vec![E::NodeUpdated {
                snapshot,
                status,
                at: now,
            }])
        } else if status != s.status {
            Ok(vec![E::NodeStatusChanged { status, at: now }])
        } else {
            Ok(vec![])
        }
    }

    /// Changes the state by one event. Never fails: events are facts.
    pub fn apply_event(&mut self, event: &NodeEvent) {
        use NodeEvent as E;
        match (event, &mut self.state) {
            (
                E::NodeDiscovered {
                    snapshot, status, ..
                },
                None,
            ) => {
                self.state = Some(NodeState {
                    snapshot: snapshot.clone(),
                    status: *status,
                    windows: Vec::new(),
                    cancelled_window_ids: Vec::new(),
                });
            }
            (
                E::NodeDiscovered {
                    snapshot, status, ..
                }
                | E::NodeUpdated {
                    snapshot, status, ..
                },
                Some(s),
            ) => {
                s.snapshot = snapshot.clone();
                s.status = *status;
            }
            (E::NodeStatusChanged { status, .. }, Some(s)) => s.status = *status,
            (E::MaintenanceScheduled { window, .. }, Some(s)) => s.windows.push(window.clone()),
            (
                E::MaintenanceRescheduled {
                    window_id,
                    start,
                    end,
                    ..
                },
                Some(s),
            ) => {
                if let Some(w) = s.windows.iter_mut().find(|w| w.id == *window_id) {
                    w.start = *start;
                    w.end = *end;
                }
            }
            (E::MaintenanceCancelled { window_id, .. }, Some(s)) => {
                s.windows.retain(|w| w.id != *window_id);
                s.cancelled_window_ids.push(*window_id);
            }
            // Only a discovery can come first; anything else before it is ignored.
            (_, None) => {}
        }
    }
}

/// Only the approved provider of the node's farm, acting as a provider.
fn check_owner(by: &Actor, farm_owner: Option<&str>) -> Result<(), NodeError> {
    if by.role == Role::CloudProvider && farm_owner == Some(by.subject.as_str()) {
        Ok(())
    } else {
        Err(NodeError::NotPermitted)
    }
}

/// A window's period: in the future, ending after it starts, not too long,
/// and clear of every other window that has not ended.
fn check_period(
    s: &NodeState,
    window_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), NodeError> {
    if start <= now {
        return Err(NodeError::MaintenanceInThePast);
    }
    if end <= start {
        return Err(NodeError::MaintenanceEndsBeforeStart);
    }
    if end - start > MAX_MAINTENANCE {
        return Err(NodeError::MaintenanceTooLong {
            max_days: MAX_MAINTENANCE.num_days(),
        });
    }
    let clash = s
        .windows
        .iter()
        .filter(|w| w.id != window_id && w.end > now)
        .find(|w| w.overlaps(start, end));
    match clash {
        Some(w) => Err(NodeError::MaintenanceOverlap { with: w.id }),
        None => Ok(()),
    }
}

crate::event_sourced!(Node, "node", NodeCommand, NodeEvent, NodeError);
