//! Value objects of a node: the grid's snapshot, the derived status and
//! maintenance windows.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

pub use crate::deployment::SpecError;

/// A node that reported within this long, and is powered up, is up (nodes
/// report about every 40 minutes; two missed reports make it down).
pub const UP_WITHIN: TimeDelta = TimeDelta::minutes(80);
/// A node powered down by its farm's automation stays standby, not down,
/// while it reported within this long.
pub const STANDBY_WITHIN: TimeDelta = TimeDelta::hours(24);
/// The longest maintenance window (ours, not the grid's).
pub const MAX_MAINTENANCE: TimeDelta = TimeDelta::days(14);
/// The longest maintenance reason, in characters.
pub const MAX_MAINTENANCE_REASON: usize = 500;

/// Resource units of a node: vCPUs and bytes of memory, SSD and HDD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeResources {
    /// Virtual CPUs.
    pub cru: u64,
    /// Memory, bytes.
    pub mru: u64,
    /// SSD storage, bytes.
    pub sru: u64,
    /// HDD storage, bytes.
    pub hru: u64,
}

/// A node's certification, as the grid names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Certification {
    /// Self-built hardware (expected at 95% uptime).
    Diy,
    /// Certified hardware (expected at 98% uptime; priced x1.25).
    Certified,
}

/// What the grid proxy says of a node at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// Grid node id (the aggregate id).
    pub node_id: u32,
    /// The node's farm.
    pub farm_id: u32,
    /// The node's twin on TFChain.
    pub twin_id: u32,
    /// Country, as the grid reports it.
    pub country: String,
    /// City, as the grid reports it.
    pub city: String,
    /// Capacity.
    pub total: NodeResources,
    /// Capacity reserved by contracts.
    pub used: NodeResources,
    /// Whether the node has a public IPv4 address.
    pub public_ipv4: bool,
    /// Whether the node has a public IPv6 address.
    pub public_ipv6: bool,
    /// Free public IPv4 addresses of the node's farm (what a deployment's
    /// public IPv4 is taken from). Absent in snapshots recorded before it was kept.
    #[serde(default)]
    pub farm_free_ips: u32,
    /// DIY or certified.
    pub certification: Certification,
    /// Whether the node is only rented whole.
    pub dedicated: bool,
    /// Whether the node can be rented whole now.
    pub rentable: bool,
    /// Whether someone rents it whole.
    pub rented: bool,
    /// Number of GPUs.
    pub gpus: u32,
    /// The farmer's extra monthly fee for a dedicated node, USD chain units.
    pub extra_fee: u64,
    /// Whether the farm's power target is up.
    pub powered_up: bool,
    /// Uptime of the node's current boot, seconds.
    pub uptime_seconds: u64,
    /// When the node last reported (the grid's `updatedAt`).
    pub last_report: DateTime<Utc>,
}

impl NodeSnapshot {
    /// The node's status at `now`, from this snapshot.
    pub fn status_at(&self, now: DateTime<Utc>) -> NodeStatus {
        node_status(self.last_report, self.powered_up, now)
    }
}

/// A node's status as users filter on it (DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Reported within 80 minutes and powered up.
    Up,
    /// Powered down by the farm and reported within 24 hours.
    Standby,
    /// Otherwise.
    Down,
}

impl NodeStatus {
    /// The status name as stored in views and filtered on.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Up => "up",
            NodeStatus::Standby => "standby",
            NodeStatus::Down => "down",
        }
    }

    /// Every status, for validating filters.
    pub const ALL: [NodeStatus; 3] = [NodeStatus::Up, NodeStatus::Standby, NodeStatus::Down];

    /// Parses a status name.
    pub fn parse(name: &str) -> Option<NodeStatus> {
        NodeStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's status at `now`: up when it reported within [`UP_WITHIN`] and
/// is powered up; standby when powered down and it reported within
/// [`STANDBY_WITHIN`]; down otherwise. A report stamped after `now` (clock
/// skew) counts as just made.
pub fn node_status(last_report: DateTime<Utc>, powered_up: bool, now: DateTime<Utc>) -> NodeStatus {
    let age = now - last_report;
    if powered_up && age <= UP_WITHIN {
        NodeStatus::Up
    } else if !powered_up && age <= STANDBY_WITHIN {
        NodeStatus::Standby
    } else {
        NodeStatus::Down
    }
}

/// A period a provider takes a node down for maintenance: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    /// Chosen by the caller, so a retried command is recognised.
    pub id: uuid::Uuid,
    /// When it begins.
    pub start: DateTime<Utc>,
    /// When it ends (exclusive).
    pub end: DateTime<Utc>,
    /// Why, for the users told about it; 1 to 500 characters.
    pub reason: String,
}

impl MaintenanceWindow {
    /// Whether two windows share a moment; adjacent windows do not.
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.start < end && start < self.end
    }
}

/// Checks a maintenance reason: not blank, at most 500 characters.
pub fn check_maintenance_reason(reason: &str) -> Result<(), SpecError> {
    if reason.trim().is_empty() || reason.chars().count() > MAX_MAINTENANCE_REASON {
        return Err(SpecError::new(
            "reason",
            format!("must be 1 to {MAX_MAINTENANCE_REASON} characters, not blank"),
        ));
    }
    Ok(())
}
