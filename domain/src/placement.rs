//! Placement: which node a deployment goes on, and why, or why none.
//!
//! Pure ranking over a catalog the caller has read: [`rank`] filters the
//! [`Candidate`] nodes by a deployment's [`Placement`] criteria and the
//! resources its spec needs ([`Demand`]), then orders the survivors
//! cheapest first. When nothing survives, [`NoCandidate`] names the filter
//! that emptied the set, in words a user can act on. Capacity reservations
//! (so that two placements do not both count the same free vCPU) are the
//! caller's: it subtracts them from a node's free capacity before calling.
//!
//! Units follow the node catalog: `cru` in vCPUs, `mru`, `sru` and `hru` in
//! bytes. A spec's memory is in MiB (`MiB * 2^20` bytes) and its disks in
//! the grid's GB, which are GiB (TFChain's `cost.rs` divides bytes by 1024³,
//! and `projections::nodes::capacity_units` converts the same way), so
//! `GB * 2^30` bytes.
//!
//! The filters, always applied in this order ([`Filter::ALL`]):
//! 1. status `up` and not excluded (nodes a provisioning attempt already
//!    failed on);
//! 2. country, compared case-insensitively, when asked;
//! 3. farm, when asked;
//! 4. certification, when `certified_only`;
//! 5. dedication: a `dedicated` deployment needs a node that can be rented
//!    whole now (the grid's `rentable`: a dedicated-only node, or a shared
//!    one with nothing on it) and is not rented; the caller then reserves
//!    the whole node. Otherwise the node must be neither rented by someone
//!    nor dedicated-only;
//! 6. uptime: see [`availability_bps`];
//! 7. free capacity, one resource at a time: vCPUs, memory, SSD, HDD;
//! 8. free public IPv4 addresses of the node's farm, when the spec has any;
//! 9. no maintenance window overlapping the next
//!    [`MAINTENANCE_HORIZON_HOURS`] hours.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::deployment::{Placement, WorkloadSpec};
use crate::money::UNITS_PER_WHOLE;
use crate::node::NodeStatus;
use crate::pricing::{quote, MachineUsage, PricingPolicy, HOURS_PER_MONTH};
use crate::{TftPrice, UsdAmount};

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The period uptime is measured over: 30 days, in seconds.
pub const UPTIME_WINDOW_SECONDS: u64 = 30 * 24 * 3600;

/// How far ahead a scheduled maintenance window rules a node out.
pub const MAINTENANCE_HORIZON_HOURS: i64 = 24;

/// USD chain units in one mUSD, the unit of a farmer's extra fee.
const UNITS_PER_MUSD: u64 = UNITS_PER_WHOLE / 1_000;

/// What a deployment needs from the one node it is placed on: the sum of
/// its machines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Demand {
    /// Virtual CPUs.
    pub cru: u64,
    /// Memory in bytes.
    pub mru: u64,
    /// SSD storage in bytes.
    pub sru: u64,
    /// HDD storage in bytes.
    pub hru: u64,
    /// Public IPv4 addresses, taken from the node's farm.
    pub ipv4: u32,
    /// The machines themselves, which prices are computed from.
    pub machines: Vec<MachineUsage>,
}

impl Demand {
    /// What a spec needs on one node.
    pub fn of(spec: &WorkloadSpec) -> Self {
        Self::from_machines(spec.machines())
    }

    /// What these machines need together. Sums saturate: no validated spec
    /// comes near the limits.
    pub fn from_machines(machines: Vec<MachineUsage>) -> Self {
        let sum = |f: fn(&MachineUsage) -> u64| {
            machines
                .iter()
                .fold(0u64, |total, m| total.saturating_add(f(m)))
        };
        Self {
            cru: sum(|m| m.cru),
            mru: sum(|m| m.mru_mib.saturating_mul(MIB)),
            sru: sum(|m| m.sru_gb.saturating_mul(GIB)),
            hru: sum(|m| m.hru_gb.saturating_mul(GIB)),
            ipv4: u32::try_from(sum(|m| m.ipv4)).unwrap_or(u32::MAX),
            machines,
        }
    }
}

/// One catalog node as placement sees it. Free capacity and the farm's free
/// IPs are already net of the capacity other placements reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Grid node id.
    pub node_id: u32,
    /// The node's farm.
    pub farm_id: u32,
    /// The node's country, as the grid reports it.
    pub country: String,
    /// Whether the node is certified.
    pub certified: bool,
    /// Whether the node is only rented whole.
    pub dedicated: bool,
    /// Whether the node can be rented whole now.
    pub rentable: bool,
    /// Whether someone rents the node whole.
    pub rented: bool,
    /// The node's status; only `up` nodes are eligible.
    pub status: NodeStatus,
    /// Uptime of the node's current boot, seconds.
    pub uptime_seconds: u64,
    /// Free vCPUs.
    pub free_cru: u64,
    /// Free memory, bytes.
    pub free_mru: u64,
    /// Free SSD, bytes.
    pub free_sru: u64,
    /// Free HDD, bytes.
    pub free_hru: u64,
    /// Free public IPv4 addresses of the node's farm.
    pub farm_free_ips: u32,
    /// Maintenance windows still scheduled, `(starts_at, ends_at)`.
    pub maintenance: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// What the demand costs an hour on this node ([`node_price`]).
    pub hourly_usd: UsdAmount,
}

/// A node placement would use, best first in [`rank`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// Grid node id.
    pub node_id: u32,
    /// The node's farm.
    pub farm_id: u32,
    /// What the demand costs an hour there, USD chain units.
    pub hourly_usd: UsdAmount,
    /// Why this node, in a sentence for the user.
    pub reason: String,
}

/// One of placement's filters, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Up, and not excluded.
    Status,
    /// In the country asked for.
    Country,
    /// In the farm asked for.
    Farm,
    /// Certified, when asked.
    Certification,
    /// Rentable whole for a dedicated deployment; shared otherwise.
    Dedication,
    /// Uptime at least the minimum asked for.
    Uptime,
    /// Enough free vCPUs.
    Cru,
    /// Enough free memory.
    Mru,
    /// Enough free SSD.
    Sru,
    /// Enough free HDD.
    Hru,
    /// Enough free public IPv4 addresses in the farm.
    Ipv4,
    /// No maintenance in the next 24 hours.
    Maintenance,
}

impl Filter {
    /// Every filter, in the order they are applied.
    pub const ALL: [Filter; 12] = [
        Filter::Status,
        Filter::Country,
        Filter::Farm,
        Filter::Certification,
        Filter::Dedication,
        Filter::Uptime,
        Filter::Cru,
        Filter::Mru,
        Filter::Sru,
        Filter::Hru,
        Filter::Ipv4,
        Filter::Maintenance,
    ];

    /// Whether the filter is about free capacity (resources or IPs), which
    /// frees up over time, rather than about the user's criteria.
    pub fn is_capacity(self) -> bool {
        matches!(
            self,
            Filter::Cru | Filter::Mru | Filter::Sru | Filter::Hru | Filter::Ipv4
        )
    }
}

/// No node satisfies the demand and the criteria.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{reason}")]
pub struct NoCandidate {
    /// The filter after which no node remained.
    pub filter: Filter,
    /// What a user is told: the criteria applied up to that filter, e.g.
    /// `no capacity: no node in Belgium with 8 free vCPUs`. Starts with
    /// `no capacity: ` exactly when the filter is a capacity one.
    pub reason: String,
}

impl NoCandidate {
    /// The refusal when `filter` is the first one after which nothing
    /// remained. Callers that filter part of the catalog elsewhere (in SQL)
    /// use it to phrase the same refusal [`rank`] would have.
    pub fn after(filter: Filter, demand: &Demand, criteria: &Placement, exclude: &[u32]) -> Self {
        let reason = if filter == Filter::Status {
            if exclude.is_empty() {
                "no node up".to_string()
            } else {
                format!("no node up besides {}", excluded(exclude))
            }
        } else {
            let nodes = Phrase::up_to(filter, demand, criteria).render(false);
            if filter.is_capacity() {
                format!("no capacity: no {nodes}")
            } else {
                format!("no {nodes}")
            }
        };
        Self { filter, reason }
    }
}

/// "excluded node 3", "excluded nodes 3, 7 and 9", at most five listed.
fn excluded(exclude: &[u32]) -> String {
    let mut ids: Vec<u32> = exclude.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let shown: Vec<String> = ids.iter().take(5).map(u32::to_string).collect();
    let more = ids.len().saturating_sub(shown.len());
    let list = if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        join_and(&shown)
    };
    let noun = if ids.len() == 1 { "node" } else { "nodes" };
    format!("excluded {noun} {list}")
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The criteria applied so far, as words: "certified node(s) in Belgium
/// that can be rented whole with 8 free vCPUs, free of maintenance…".
struct Phrase {
    certified: bool,
    places: Vec<String>,
    rentable_whole: bool,
    /// Said only when sharing is what emptied the set: every later phrase
    /// would carry it for nothing.
    shared: bool,
    with: Vec<String>,
    free_of_maintenance: bool,
}

impl Phrase {
    /// Every criterion up to and including `last`.
    fn up_to(last: Filter, demand: &Demand, criteria: &Placement) -> Self {
        let applies = |f: Filter| f <= last;
        let mut places = Vec::new();
        if let Some(country) = criteria
            .country
            .as_ref()
            .filter(|_| applies(Filter::Country))
        {
            places.push(format!("in {}", country.as_str()));
        }
        if let Some(farm) = criteria.farm_id.filter(|_| applies(Filter::Farm)) {
            places.push(format!("in farm {farm}"));
        }
        let mut with = Vec::new();
        if applies(Filter::Uptime) && criteria.min_uptime_bps > 0 {
            with.push(format!(
                "at least {} uptime",
                percent_of_bps(criteria.min_uptime_bps)
            ));
        }
        if applies(Filter::Cru) && demand.cru > 0 {
            let unit = if demand.cru == 1 { "vCPU" } else { "vCPUs" };
            with.push(format!("{} free {unit}", demand.cru));
        }
        if applies(Filter::Mru) && demand.mru > 0 {
            with.push(format!("{} free memory", bytes_text(demand.mru, "GiB")));
        }
        if applies(Filter::Sru) && demand.sru > 0 {
            with.push(format!("{} free SSD", bytes_text(demand.sru, "GB")));
        }
        if applies(Filter::Hru) && demand.hru > 0 {
            with.push(format!("{} free HDD", bytes_text(demand.hru, "GB")));
        }
        if applies(Filter::Ipv4) && demand.ipv4 > 0 {
            with.push(if demand.ipv4 == 1 {
                "a free public IPv4".to_string()
            } else {
                format!("{} free public IPv4 addresses", demand.ipv4)
            });
        }
        Self {
            certified: criteria.certified_only && applies(Filter::Certification),
            places,
            rentable_whole: criteria.dedicated && applies(Filter::Dedication),
            shared: !criteria.dedicated && last == Filter::Dedication,
            with,
            free_of_maintenance: applies(Filter::Maintenance),
        }
    }

    fn render(&self, plural: bool) -> String {
        let mut text = String::new();
        if self.certified {
            text.push_str("certified ");
        }
        text.push_str(if plural { "nodes" } else { "node" });
        for place in &self.places {
            text.push(' ');
            text.push_str(place);
        }
        if self.rentable_whole {
            text.push_str(" that can be rented whole");
        }
        if self.shared {
            text.push_str(" that is neither rented nor dedicated");
        }
        if !self.with.is_empty() {
            text.push_str(" with ");
            text.push_str(&join_and(&self.with));
        }
        if self.free_of_maintenance {
            if !self.with.is_empty() {
                text.push(',');
            }
            text.push_str(" free of maintenance in the next 24 hours");
        }
        text
    }
}

/// "95%", "99.5%", "99.95%".
fn percent_of_bps(bps: u16) -> String {
    let (whole, frac) = (bps / 100, bps % 100);
    match frac {
        0 => format!("{whole}%"),
        f if f.is_multiple_of(10) => format!("{whole}.{}%", f / 10),
        f => format!("{whole}.{f:02}%"),
    }
}

/// Bytes in the largest unit that divides them: `unit` (a 2^30 multiple,
/// named GiB for memory and GB for the grid's disks), MiB, or bytes.
fn bytes_text(bytes: u64, unit: &str) -> String {
    if bytes.is_multiple_of(GIB) {
        format!("{} {unit}", bytes / GIB)
    } else if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// A node's availability in basis points: the uptime of its current boot,
/// capped at [`UPTIME_WINDOW_SECONDS`] (30 days), as a share of 30 days,
/// rounded down. The catalog keeps no uptime history, only how long the
/// node has been up since it last booted, so this reads "up without a break
/// for the last 30 days" as 100%: a node rebooted 3 days ago has 1,000 bps
/// (10%) and meets no criterion above that. `min_uptime_bps` is compared
/// with this figure.
pub fn availability_bps(uptime_seconds: u64) -> u16 {
    let capped = uptime_seconds.min(UPTIME_WINDOW_SECONDS);
    // capped * 10,000 / window is at most 10,000.
    u16::try_from(capped * 10_000 / UPTIME_WINDOW_SECONDS).unwrap_or(10_000)
}

/// What these machines cost an hour under `policy`, USD chain units: the
/// undiscounted hourly figure of [`quote`] (the certified multiplier and
/// the markup included, public IPv4 too; no staking discount, which
/// depends on the user's balance, not on the node).
pub fn price_for(machines: &[MachineUsage], certified: bool, policy: &PricingPolicy) -> UsdAmount {
    // The USD figures of a quote do not depend on the TFT price it is
    // given; one USD per TFT is as good as any (and never zero).
    TftPrice::from_usd_units(UNITS_PER_WHOLE)
        .map(|price| quote(machines, certified, policy, price, None).hourly_usd)
        .unwrap_or_default()
}

/// A farmer's extra fee for a dedicated node, pro-rated to an hour: the fee
/// is mUSD per 30-day month (as the chain and the grid proxy hold it, and
/// as `node_catalog.extra_fee` keeps it), so `fee * 10,000 / 720` USD chain
/// units, rounded half up.
pub fn extra_fee_per_hour(monthly_fee_musd: u64) -> UsdAmount {
    let units = u128::from(monthly_fee_musd) * u128::from(UNITS_PER_MUSD);
    let hours = u128::from(HOURS_PER_MONTH);
    UsdAmount::from_units(u64::try_from((units + hours / 2) / hours).unwrap_or(u64::MAX))
}

/// What the demand costs an hour on a node: [`price_for`] its machines at
/// the node's certification, plus the node's extra fee pro-rated to an hour
/// when the deployment asks for a dedicated node (the fee is the farmer's
/// price for renting that node whole).
pub fn node_price(
    demand: &Demand,
    certified: bool,
    extra_fee_musd: u64,
    criteria: &Placement,
    policy: &PricingPolicy,
) -> UsdAmount {
    let base = price_for(&demand.machines, certified, policy);
    if criteria.dedicated {
        UsdAmount::from_units(
            base.units()
                .saturating_add(extra_fee_per_hour(extra_fee_musd).units()),
        )
    } else {
        base
    }
}

/// Whether `country` (a user's) names the same country as `node` (the
/// grid's), ignoring case.
fn same_country(country: &str, node: &str) -> bool {
    country.eq_ignore_ascii_case(node) || country.to_lowercase() == node.to_lowercase()
}

/// Whether a candidate passes one filter.
fn passes(
    filter: Filter,
    demand: &Demand,
    criteria: &Placement,
    c: &Candidate,
    now: DateTime<Utc>,
    exclude: &[u32],
) -> bool {
    match filter {
        Filter::Status => c.status == NodeStatus::Up && !exclude.contains(&c.node_id),
        Filter::Country => criteria
            .country
            .as_ref()
            .is_none_or(|k| same_country(k.as_str(), &c.country)),
        Filter::Farm => criteria.farm_id.is_none_or(|f| f == c.farm_id),
        Filter::Certification => !criteria.certified_only || c.certified,
        Filter::Dedication => {
            if criteria.dedicated {
                c.rentable && !c.rented
            } else {
                !c.rented && !c.dedicated
            }
        }
        Filter::Uptime => availability_bps(c.uptime_seconds) >= criteria.min_uptime_bps,
        Filter::Cru => c.free_cru >= demand.cru,
        Filter::Mru => c.free_mru >= demand.mru,
        Filter::Sru => c.free_sru >= demand.sru,
        Filter::Hru => c.free_hru >= demand.hru,
        Filter::Ipv4 => c.farm_free_ips >= demand.ipv4,
        Filter::Maintenance => {
            let horizon = now + Duration::hours(MAINTENANCE_HORIZON_HOURS);
            !c.maintenance
                .iter()
                .any(|(starts, ends)| *starts < horizon && *ends > now)
        }
    }
}

/// The first filter a candidate fails, or `None` when it is eligible.
pub fn first_failure(
    demand: &Demand,
    criteria: &Placement,
    candidate: &Candidate,
    now: DateTime<Utc>,
    exclude: &[u32],
) -> Option<Filter> {
    Filter::ALL
        .into_iter()
        .find(|f| !passes(*f, demand, criteria, candidate, now, exclude))
}

/// Every eligible candidate, best first: cheapest, then most free vCPUs,
/// then most free memory, then lowest node id (so the answer does not
/// depend on the order of `candidates`). `exclude` lists nodes not to use
/// (say, ones a provisioning attempt already failed on). When none is
/// eligible, the refusal names the first filter after which none remained.
pub fn rank(
    demand: &Demand,
    criteria: &Placement,
    candidates: &[Candidate],
    now: DateTime<Utc>,
    exclude: &[u32],
) -> Result<Vec<Choice>, NoCandidate> {
    // The survivors of filter k are the candidates whose first failure comes
    // after k, so the first filter with no survivor is the furthest any
    // candidate got.
    let mut furthest = Filter::Status;
    let mut eligible: Vec<&Candidate> = Vec::new();
    for c in candidates {
        match first_failure(demand, criteria, c, now, exclude) {
            None => eligible.push(c),
            Some(f) => furthest = furthest.max(f),
        }
    }
    if eligible.is_empty() {
        return Err(NoCandidate::after(furthest, demand, criteria, exclude));
    }
    eligible.sort_unstable_by(|a, b| {
        a.hourly_usd
            .cmp(&b.hourly_usd)
            .then(b.free_cru.cmp(&a.free_cru))
            .then(b.free_mru.cmp(&a.free_mru))
            .then(a.node_id.cmp(&b.node_id))
    });
    let count = eligible.len();
    // Every survivor is free of maintenance; saying so adds nothing.
    let nodes = Phrase::up_to(Filter::Ipv4, demand, criteria).render(count > 1);
    Ok(eligible
        .into_iter()
        .enumerate()
        .map(|(i, c)| Choice {
            node_id: c.node_id,
            farm_id: c.farm_id,
            hourly_usd: c.hourly_usd,
            reason: match (count, i) {
                (1, _) => format!("only {nodes}: {} USD/h", c.hourly_usd),
                (_, 0) => format!("cheapest of {count} {nodes}: {} USD/h", c.hourly_usd),
                _ => format!(
                    "{} by price of {count} {nodes}: {} USD/h",
                    ordinal(i + 1),
                    c.hourly_usd
                ),
            },
        })
        .collect())
}

/// "2nd", "3rd", "11th", "21st".
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}
