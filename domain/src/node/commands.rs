//! What may be asked of a node. Each command carries everything its decision
//! needs, "now" and the farm's owner included.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::values::*;
use crate::actor::Actor;

/// A command to the Node aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeCommand {
    /// Record what the grid proxy says of the node now.
    Sync {
        /// The grid's view of the node.
        snapshot: NodeSnapshot,
        /// The sync's clock, which the status is computed against.
        now: DateTime<Utc>,
    },
    /// The provider plans a maintenance window.
    ScheduleMaintenance {
        /// The window's id, chosen by the caller.
        window_id: Uuid,
        /// When it begins; must be in the future.
        start: DateTime<Utc>,
        /// When it ends; after the start, at most 14 days later.
        end: DateTime<Utc>,
        /// Why, 1 to 500 characters.
        reason: String,
        /// Who asks.
        by: Actor,
        /// The approved provider of the node's farm, as the caller found it.
        farm_owner: Option<String>,
        /// When.
        now: DateTime<Utc>,
    },
    /// The provider moves a window that has not begun.
    RescheduleMaintenance {
        /// The window.
        window_id: Uuid,
        /// The new start; must be in the future.
        start: DateTime<Utc>,
        /// The new end; after the start, at most 14 days later.
        end: DateTime<Utc>,
        /// Who asks.
        by: Actor,
        /// The approved provider of the node's farm, as the caller found it.
        farm_owner: Option<String>,
        /// When.
        now: DateTime<Utc>,
    },
    /// The provider calls off a window that has not begun.
    CancelMaintenance {
        /// The window.
        window_id: Uuid,
        /// Who asks.
        by: Actor,
        /// The approved provider of the node's farm, as the caller found it.
        farm_owner: Option<String>,
        /// When.
        now: DateTime<Utc>,
    },
}

impl NodeCommand {
    /// The command's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            NodeCommand::Sync { .. } => "sync",
            NodeCommand::ScheduleMaintenance { .. } => "schedule_maintenance",
            NodeCommand::RescheduleMaintenance { .. } => "reschedule_maintenance",
            NodeCommand::CancelMaintenance { .. } => "cancel_maintenance",
        }
    }
}
