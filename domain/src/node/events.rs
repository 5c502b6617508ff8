//! What happened to a node. Event payloads are versioned by
//! [`EVENT_VERSION`]; an old payload is upcast on read, never rewritten.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::*;
use crate::actor::Actor;

/// The payload version every node event is written with today.
pub const EVENT_VERSION: &str = "1";

/// An event of the Node aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeEvent {
    /// The grid reported a node the marketplace did not know.
    NodeDiscovered {
        /// What the grid said.
        snapshot: NodeSnapshot,
        /// The status derived from it.
        status: NodeStatus,
        /// When the sync ran.
        at: DateTime<Utc>,
    },
    /// The grid reported something new of a known node.
    NodeUpdated {
        /// What the grid said.
        snapshot: NodeSnapshot,
        /// The status derived from it.
        status: NodeStatus,
        /// When the sync ran.
        at: DateTime<Utc>,
    },
    /// Nothing new was reported, but time moved the node's status
    /// (a node that stopped reporting goes down).
    NodeStatusChanged {
        /// The new status.
        status: NodeStatus,
        /// When the sync ran.
        at: DateTime<Utc>,
    },
    /// The provider planned a maintenance window.
    MaintenanceScheduled {
        /// The window.
        window: MaintenanceWindow,
        /// Who planned it.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider moved a maintenance window.
    MaintenanceRescheduled {
        /// The window.
        window_id: Uuid,
        /// Its new start.
        start: DateTime<Utc>,
        /// Its new end.
        end: DateTime<Utc>,
        /// Who moved it.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider called off a maintenance window.
    MaintenanceCancelled {
        /// The window.
        window_id: Uuid,
        /// Who called it off.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
}

impl NodeEvent {
    /// When the event happened, by the clock of whoever issued the command.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            NodeEvent::NodeDiscovered { at, .. }
            | NodeEvent::NodeUpdated { at, .. }
            | NodeEvent::NodeStatusChanged { at, .. }
            | NodeEvent::MaintenanceScheduled { at, .. }
            | NodeEvent::MaintenanceRescheduled { at, .. }
            | NodeEvent::MaintenanceCancelled { at, .. } => *at,
        }
    }
}

impl DomainEvent for NodeEvent {
    fn event_type(&self) -> String {
        match self {
            NodeEvent::NodeDiscovered { .. } => "NodeDiscovered",
            NodeEvent::NodeUpdated { .. } => "NodeUpdated",
            NodeEvent::NodeStatusChanged { .. } => "NodeStatusChanged",
            NodeEvent::MaintenanceScheduled { .. } => "MaintenanceScheduled",
            NodeEvent::MaintenanceRescheduled { .. } => "MaintenanceRescheduled",
            NodeEvent::MaintenanceCancelled { .. } => "MaintenanceCancelled",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
