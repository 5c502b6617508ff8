//! The grid sync worker: keeps the Node aggregates in step with the grid
//! proxy's catalog.
//!
//! Every interval it reads every node from the grid ([`GridCatalog`], a grid proxy in production),
//! turns each into a [`NodeSnapshot`] ([`snapshot_of`]) and compares it with
//! what the node catalog view last recorded ([`nodes::snapshots`]) and with
//! the status that record gives at `now`. Only a node that is **new**, whose
//! snapshot **changed**, or whose status **changed** with time gets a
//! `NodeCommand::Sync`; an unchanged node costs no command and no event, so
//! a quiet grid writes nothing.
//!
//! - **Nodes the proxy no longer lists.** A node the view knows but the
//!   proxy did not list is synced again with its stored snapshot once that
//!   snapshot's status at `now` differs from the stored one: its last report
//!   ages, so it decays to `down` by the 80-minute rule (or from `standby`
//!   to `down` after 24 h). It is never forgotten: the grid does not delete
//!   nodes, and a node that comes back is simply updated.
//! - **A stale view.** The view may lag the store. A command decided against
//!   a view that had not caught up is harmless: the aggregate compares with
//!   its own state and decides no event (counted in `commands`, not in
//!   `events`).
//! - **Errors.** A node whose command fails (database error, a conflict
//!   that a retry did not settle) is logged and counted in `failed`; the rest
//!   of the run goes on and the next run tries again. A failed read of the
//!   proxy or of the view fails the run; [`GridSync::run`] logs it and tries
//!   again later, backing off.
//! - **Time.** `now` comes from a [`Clock`]: the system clock in production,
//!   a [`ManualClock`] in tests. The worker knows nothing of the simulator.
//!
//! Commands run [`GridSyncOptions::concurrency`] at a time. Every event
//! carries actor `grid-sync` (role `system`), one correlation id per run
//! (also its request id) and causation `grid-proxy:<base url>`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use marketplace_app::grid::types::{Capacity, NodeCertification, PowerState};
use marketplace_app::grid::{GridCatalog, GridError, GridNode};
use marketplace_app::{store, CommandError, EventMetadata, Exec, Store};
use marketplace_domain::node::{
    Certification, Node, NodeCommand, NodeResources, NodeSnapshot, NodeStatus,
};
use marketplace_projections::nodes;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::runtime::{self, Round, Schedule};
use uuid::Uuid;

/// The actor every sync event is recorded under.
pub const ACTOR_SUBJECT: &str = "grid-sync";

// ---------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------

/// Where the worker reads "now" from.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: TimeDelta) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// ---------------------------------------------------------------------------
// Grid node -> snapshot
// ---------------------------------------------------------------------------

/// Why a grid node cannot become a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// `updatedAt` is not a representable instant.
    BadTimestamp(i64),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::BadTimestamp(t) => write!(f, "updatedAt {t} is not a valid instant"),
        }
    }
}

impl std::error::Error for SnapshotError {}

fn resources(c: &Capacity) -> NodeResources {
    // Bytes stay bytes; cru is a count of vCPUs.
    NodeResources {
        cru: c.cru,
        mru: c.mru,
        sru: c.sru,
        hru: c.hru,
    }
}

/// What the grid proxy's node item says, as the Node aggregate records it.
///
/// - Capacity: `cru` in vCPUs, `mru`, `sru`, `hru` in bytes, as the proxy
///   sends them.
/// - Certification: `Certified` only when the proxy says so; `Diy`
///   otherwise, an unknown future value included (the cheaper, weaker claim).
/// - `powered_up`: whether the node's reported power **state** is not
///   `Down`. This is the proxy's own status rule ([`NodeStatus`] on the wire
///   is derived from `power.state`): a node the farm's automation powered
///   down is standby; one never managed by it (power `""`) counts as powered
///   up; the **target** only says where the node is heading (a node waking
///   up, state `Down` target `Up`, is still standby until it reports up), so
///   the status derived here equals the proxy's for the same clock.
/// - `last_report` = `updatedAt`; `uptime_seconds` = `uptime` (negative
///   reads as 0).
/// - `gpus` = `num_gpu`, or the length of `gpus` when that is larger (a
///   proxy that omits `num_gpu`).
/// - `public_ipv4`/`public_ipv6`: the node has an address of its own in its
///   public config (the farm's IPs are not the node's).
pub fn snapshot_of(node: &GridNode) -> Result<NodeSnapshot, SnapshotError> {
    let last_report = DateTime::from_timestamp(node.updated_at, 0)
        .ok_or(SnapshotError::BadTimestamp(node.updated_at))?;
    let certification = match node.certification_type {
        NodeCertification::Certified => Certification::Certified,
        NodeCertification::Diy | NodeCertification::Unknown => Certification::Diy,
    };
    let gpus = node
        .num_gpu
        .max(u32::try_from(node.gpus.len()).unwrap_or(u32::MAX));
    Ok(NodeSnapshot {
        node_id: node.node_id,
        farm_id: node.farm_id,
        twin_id: node.twin_id,
        country: node.country.clone(),
        city: node.city.clone(),
        total: resources(&node.total_resources),
        used: resources(&node.used_resources),
        public_ipv4: node.public_config.has_ipv4(),
        farm_free_ips: node.farm_free_ips,
        public_ipv6: node.public_config.has_ipv6(),
        certification,
        dedicated: node.dedicated,
        rentable: node.rentable,
        rented: node.rented,
        gpus,
        extra_fee: node.extra_fee,
        powered_up: node.power.state != PowerState::Down,
        uptime_seconds: u64::try_from(node.uptime).unwrap_or(0),
        last_report,
    })
}

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

/// Why a node gets a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The view does not know the node.
    New,
    /// The grid reports something new of it.
    Changed,
    /// Same snapshot, but time moved its status.
    StatusChanged,
    /// The proxy no longer lists it, and time moved its stored status.
    Missing,
}

/// One command to issue.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Why.
    pub reason: Reason,
    /// The snapshot to sync.
    pub snapshot: NodeSnapshot,
}

/// What a comparison of the grid with the view decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The commands to issue, in node id order.
    pub commands: Vec<Planned>,
    /// Listed nodes that need nothing.
    pub unchanged: usize,
    /// Known nodes the proxy did not list (whether or not they need a command).
    pub missing: usize,
    /// Listed nodes that could not be read, with why.
    pub unreadable: Vec<(u32, SnapshotError)>,
}

/// Compares the grid's nodes with the view's record of them at `now`.
pub fn plan(
    grid: &[GridNode],
    known: &HashMap<u32, (NodeSnapshot, NodeStatus)>,
    now: DateTime<Utc>,
) -> Plan {
    let mut plan = Plan::default();
    let mut listed = std::collections::HashSet::with_capacity(grid.len());
    for node in grid {
        listed.insert(node.node_id);
        let snapshot = match snapshot_of(node) {
            Ok(s) => s,
            Err(e) => {
                plan.unreadable.push((node.node_id, e));
                continue;
            }
        };
        let reason = match known.get(&node.node_id) {
            None => Some(Reason::New),
            Some((stored, _)) if *stored != snapshot => Some(Reason::Changed),
            Some((_, status)) if *status != snapshot.status_at(now) => Some(Reason::StatusChanged),
            Some(_) => None,
        };
        match reason {
            Some(reason) => plan.commands.push(Planned { reason, snapshot }),
            None => plan.unchanged += 1,
        }
    }
    for (id, (stored, status)) in known {
        if listed.contains(id) {
            continue;
        }
        plan.missing += 1;
        if stored.status_at(now) != *status {
            plan.commands.push(Planned {
                reason: Reason::Missing,
                snapshot: stored.clone(),
            });
        }
    }
    plan.commands.sort_by_key(|p| p.snapshot.node_id);
    plan
}

// ---------------------------------------------------------------------------
// The worker
// ---------------------------------------------------------------------------

/// Tuning of the worker.
#[derive(Debug, Clone)]
pub struct GridSyncOptions {
    /// Time from the start of one run to the start of the next.
    pub interval: Duration,
    /// Commands in flight at once.
    pub concurrency: usize,
    /// The longest wait after failed runs (the wait doubles from `interval`
    /// with each failure in a row, up to this).
    pub max_backoff: Duration,
}

impl Default for GridSyncOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            concurrency: 8,
            max_backoff: Duration::from_secs(10 * 60),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Nodes the proxy listed.
    pub fetched: usize,
    /// Nodes the view knew before the run.
    pub known: usize,
    /// Commands for nodes the view did not know.
    pub new: usize,
    /// Commands for nodes whose snapshot changed.
    pub changed: usize,
    /// Commands for nodes whose status alone changed.
    pub status_changed: usize,
    /// Known nodes the proxy did not list.
    pub missing: usize,
    /// `Sync` commands issued.
    pub commands: usize,
    /// Events committed.
    pub events: usize,
    /// Listed nodes that needed no command.
    pub unchanged: usize,
    /// Nodes that could not be read or whose command failed.
    pub failed: usize,
    /// Reading the proxy.
    pub fetch: Duration,
    /// Reading the view (concurrently with the proxy).
    pub view: Duration,
    /// Comparing the two.
    pub compare: Duration,
    /// Issuing the commands.
    pub apply: Duration,
    /// The whole run.
    pub elapsed: Duration,
}

/// Why a run failed as a whole.
#[derive(Debug)]
pub enum SyncError {
    /// The grid proxy could not be read.
    Fetch(GridError),
    /// The node catalog view could not be read.
    View(sqlx::Error),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Fetch(e) => write!(f, "reading the grid proxy: {e}"),
            SyncError::View(e) => write!(f, "reading the node catalog view: {e}"),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyncError::Fetch(e) => Some(e),
            SyncError::View(e) => Some(e),
        }
    }
}

/// Result of a run.
pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// Keeps the Node aggregates in step with the grid proxy (module docs).
pub struct GridSync {
    catalog: Arc<dyn GridCatalog>,
    pool: PgPool,
    store: Arc<Store<Node>>,
    clock: Arc<dyn Clock>,
    options: GridSyncOptions,
    causation: String,
}

impl GridSync {
    /// A worker reading `catalog` and writing through `pool`.
    pub fn new(
        catalog: impl GridCatalog,
        pool: PgPool,
        clock: Arc<dyn Clock>,
        options: GridSyncOptions,
    ) -> Self {
        let causation = catalog.source();
        Self {
            store: Arc::new(store(pool.clone())),
            catalog: Arc::new(catalog),
            pool,
            clock,
            options,
            causation,
        }
    }

    /// The tuning in force.
    pub fn options(&self) -> &GridSyncOptions {
        &self.options
    }

    /// One run: read the proxy and the view, compare, issue the commands.
    /// Fails only when the proxy or the view cannot be read; a node whose
    /// command fails is logged and counted in [`SyncStats::failed`].
    pub async fn sync_once(&self) -> Result<SyncStats> {
        let started = Instant::now();
        let correlation = Uuid::new_v4().to_string();

        // The proxy's nodes and farms and the view are read at the same time.
        let (grid, farms, known) = tokio::join!(
            async {
                let t = Instant::now();
                (self.catalog.nodes().await, t.elapsed())
            },
            self.catalog.farms(),
            async {
                let t = Instant::now();
                (nodes::snapshots(&self.pool).await, t.elapsed())
            }
        );
        let (grid, fetch) = grid;
        let (known, view) = known;
        let mut grid = grid.map_err(SyncError::Fetch)?;
        let known = known.map_err(SyncError::View)?;
        // A farm's free public IPv4 addresses, counted from /farms (the
        // authority for them); the figure on each node item is the fallback.
        match farms {
            Ok(farms) => {
                let free: HashMap<u32, u32> = farms
                    .iter()
                    .map(|f| (f.farm_id, u32::try_from(f.free_ips()).unwrap_or(u32::MAX)))
                    .collect();
                for node in &mut grid {
                    if let Some(ips) = free.get(&node.farm_id) {
                        node.farm_free_ips = *ips;
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "grid sync: farms unreadable; using the nodes' own farm IP counts")
            }
        }
        let now = self.clock.now();

        let t = Instant::now();
        let plan = plan(&grid, &known, now);
        let compare = t.elapsed();
        for (node_id, e) in &plan.unreadable {
            warn!(node_id, error = %e, "grid sync: node skipped");
        }

        let mut stats = SyncStats {
            fetched: grid.len(),
            known: known.len(),
            missing: plan.missing,
            unchanged: plan.unchanged,
            failed: plan.unreadable.len(),
            commands: plan.commands.len(),
            fetch,
            view,
            compare,
            ..SyncStats::default()
        };
        drop(known);
        drop(grid);
        for p in &plan.commands {
            match p.reason {
                Reason::New => stats.new += 1,
                Reason::Changed => stats.changed += 1,
                Reason::StatusChanged | Reason::Missing => stats.status_changed += 1,
            }
        }

        let t = Instant::now();
        let (events, failed) = self.apply(plan.commands, now, &correlation).await;
        stats.apply = t.elapsed();
        stats.events = events;
        stats.failed += failed;
        stats.elapsed = started.elapsed();
        info!(
            correlation_id = %correlation,
            fetched = stats.fetched,
            known = stats.known,
            commands = stats.commands,
            events = stats.events,
            new = stats.new,
            changed = stats.changed,
            status_changed = stats.status_changed,
            missing = stats.missing,
            unchanged = stats.unchanged,
            failed = stats.failed,
            fetch_ms = stats.fetch.as_millis() as u64,
            view_ms = stats.view.as_millis() as u64,
            compare_ms = stats.compare.as_millis() as u64,
            apply_ms = stats.apply.as_millis() as u64,
            elapsed_ms = stats.elapsed.as_millis() as u64,
            "grid sync run"
        );
        Ok(stats)
    }

    /// Issues the commands, `concurrency` at a time. Returns the events
    /// committed and the commands that failed.
    async fn apply(
        &self,
        commands: Vec<Planned>,
        now: DateTime<Utc>,
        correlation: &str,
    ) -> (usize, usize) {
        let limit = self.options.concurrency.max(1);
        let mut running = JoinSet::new();
        let (mut events, mut failed) = (0, 0);
        let mut settle = |outcome: Result<
            (u32, Result<usize, CommandError>),
            tokio::task::JoinError,
        >| {
            match outcome {
                Ok((_, Ok(n))) => events += n,
                Ok((node_id, Err(e))) => {
                    failed += 1;
                    warn!(node_id, error = %e, "grid sync: node command failed; the next run retries");
                }
                Err(e) => {
                    failed += 1;
                    error!(error = %e, "grid sync: node command task died");
                }
            }
        };
        for planned in commands {
            if running.len() >= limit {
                if let Some(outcome) = running.join_next().await {
                    settle(outcome);
                }
            }
            let store = self.store.clone();
            let metadata = self.metadata(correlation);
            let node_id = planned.snapshot.node_id;
            debug!(node_id, reason = ?planned.reason, "grid sync: syncing node");
            running.spawn(async move {
                let result = sync_node(&store, planned.snapshot, now, metadata).await;
                (node_id, result)
            });
        }
        while let Some(outcome) = running.join_next().await {
            settle(outcome);
        }
        (events, failed)
    }

    fn metadata(&self, correlation: &str) -> EventMetadata {
        EventMetadata::for_worker_run(ACTOR_SUBJECT, correlation, &self.causation, correlation)
    }

    /// Runs a sync at once and then every interval until `cancel`. A failed
    /// run is logged and tried again after `interval`, doubled with each
    /// failure in a row up to `max_backoff`. A run in progress when `cancel`
    /// fires is abandoned; each command commits atomically, so at worst some
    /// nodes wait for the next start.
    pub async fn run(self, cancel: CancellationToken) {
        info!(
            catalog = %self.catalog.source(),
            concurrency = self.options.concurrency,
            "grid sync worker started"
        );
        let schedule = Schedule::every("grid-sync", self.options.interval)
            .backing_off_to(self.options.max_backoff);
        runtime::run(&self.pool, schedule, cancel, || async {
            self.sync_once().await.map(|_| Round::Idle)
        })
        .await;
    }
}

/// The wait after `failures` failed runs in a row: the interval, doubled
/// for each failure after the first, at most `max_backoff` (but never less
/// than the interval).
pub fn backoff(options: &GridSyncOptions, failures: u32) -> Duration {
    runtime::backoff(options.interval, options.max_backoff, failures)
}

/// Decides the node's sync against its current state and commits what it
/// decided (nothing when it decided nothing); the bus decides again after
/// a lost race.
async fn sync_node(
    store: &Store<Node>,
    snapshot: NodeSnapshot,
    now: DateTime<Utc>,
    metadata: EventMetadata,
) -> Result<usize, CommandError> {
    let done = Exec::new(store, snapshot.node_id.to_string(), metadata)
        .run(|_| {
            Ok(NodeCommand::Sync {
                snapshot: snapshot.clone(),
                now,
            })
        })
        .await?;
    Ok(done.events.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_app::grid::types::{NodePower, NodeStatus as WireStatus};
    use marketplace_dev::grid_sim::Seed;

    fn sample() -> GridNode {
        Seed::dev()
            .nodes
            .into_iter()
            .find(|n| n.node_id == 1)
            .expect("dev node 1")
    }

    #[test]
    fn converts_a_grid_node_keeping_bytes_and_flags() {
        let node = sample();
        let s = snapshot_of(&node).expect("converts");
        assert_eq!(s.node_id, 1);
        assert_eq!(s.farm_id, node.farm_id);
        assert_eq!(s.total.mru, node.total_resources.mru, "bytes stay bytes");
        assert_eq!(s.total.sru, node.total_resources.sru);
        assert_eq!(s.used.cru, node.used_resources.cru);
        assert_eq!(s.certification, Certification::Certified);
        assert!(s.public_ipv4, "node 1 has its own IPv4");
        assert!(s.powered_up);
        assert_eq!(s.last_report.timestamp(), node.updated_at);
        assert_eq!(s.uptime_seconds, node.uptime as u64);
    }

    #[test]
    fn gpus_fall_back_to_the_list_and_unknown_certification_is_diy() {
        let mut node = Seed::dev()
            .nodes
            .into_iter()
            .find(|n| n.node_id == 7)
            .expect("dev node 7 has a GPU");
        assert_eq!(snapshot_of(&node).expect("converts").gpus, 1);
        node.num_gpu = 0;
        assert_eq!(snapshot_of(&node).expect("converts").gpus, 1);
        node.certification_type = NodeCertification::Unknown;
        node.uptime = -5;
        let s = snapshot_of(&node).expect("converts");
        assert_eq!(s.certification, Certification::Diy);
        assert_eq!(s.uptime_seconds, 0);
        node.updated_at = i64::MAX;
        assert_eq!(
            snapshot_of(&node),
            Err(SnapshotError::BadTimestamp(i64::MAX))
        );
    }

    #[test]
    fn derived_status_agrees_with_the_proxy_rule() {
        let now = 1_735_689_600;
        let states = [PowerState::Up, PowerState::Down, PowerState::Unknown];
        for state in states {
            for target in states {
                for age_min in [0, 79, 80, 81, 23 * 60, 24 * 60 + 1] {
                    let mut node = sample();
                    node.power = NodePower { state, target };
                    node.updated_at = now - age_min * 60;
                    let ours = snapshot_of(&node)
                        .expect("converts")
                        .status_at(DateTime::from_timestamp(now, 0).expect("instant"));
                    let proxy = WireStatus::derive(node.updated_at, state, now);
                    assert_eq!(
                        ours.as_str(),
                        proxy.as_str(),
                        "{state:?}/{target:?} {age_min} min"
                    );
                }
            }
        }
    }

    #[test]
    fn plans_only_new_changed_and_status_changed_nodes() {
        let grid = Seed::dev().nodes;
        let now = DateTime::from_timestamp(grid[0].updated_at, 0).expect("instant");
        let empty = HashMap::new();
        let first = plan(&grid, &empty, now);
        assert_eq!(first.commands.len(), grid.len());
        assert!(first.commands.iter().all(|p| p.reason == Reason::New));

        let mut known: HashMap<u32, (NodeSnapshot, NodeStatus)> = first
            .commands
            .iter()
            .map(|p| {
                let s = p.snapshot.clone();
                (s.node_id, (s.clone(), s.status_at(now)))
            })
            .collect();
        let same = plan(&grid, &known, now);
        assert!(same.commands.is_empty());
        assert_eq!(same.unchanged, grid.len());

        // Node 2 filled, node 1 gone from the proxy, 81 minutes later.
        let later = now + TimeDelta::minutes(81);
        let mut changed = grid.clone();
        changed.retain(|n| n.node_id != 1);
        let two = changed.iter_mut().find(|n| n.node_id == 2).expect("node 2");
        two.used_resources = two.total_resources;
        // Pretend the view already saw every other node at `later`.
        for (_, (s, status)) in known.iter_mut() {
            *status = s.status_at(later);
        }
        known.get_mut(&1).expect("node 1").1 = NodeStatus::Up;
        let p = plan(&changed, &known, later);
        let reasons: Vec<(u32, Reason)> = p
            .commands
            .iter()
            .map(|c| (c.snapshot.node_id, c.reason))
            .collect();
        assert_eq!(reasons, vec![(1, Reason::Missing), (2, Reason::Changed)]);
        assert_eq!(p.missing, 1);
    }

    #[test]
    fn backoff_doubles_from_the_interval_up_to_the_cap() {
        let options = GridSyncOptions {
            interval: Duration::from_secs(60),
            concurrency: 8,
            max_backoff: Duration::from_secs(300),
        };
        let waits: Vec<u64> = (1..=5).map(|f| backoff(&options, f).as_secs()).collect();
        assert_eq!(waits, vec![60, 120, 240, 300, 300]);
        let fast = GridSyncOptions {
            interval: Duration::from_secs(600),
            ..options
        };
        assert_eq!(backoff(&fast, 3), Duration::from_secs(600));
    }
}
