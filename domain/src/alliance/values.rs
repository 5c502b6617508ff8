//! Value objects of an alliance. Constructors validate; deserialisation does
//! not validate again: events are facts and must load even if a limit later
//! changes.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub use crate::deployment::SpecError;

/// Basis points in a whole (100%).
pub const BPS_WHOLE: u16 = 10_000;
/// Longest alliance name, in characters.
pub const MAX_NAME: usize = 80;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2_000;

/// A member of an alliance: the provider's subject (the token's `sub`).
pub type MemberId = String;
/// A cloud user credited under an SLA: the user's subject.
pub type UserId = String;

/// A UTC calendar month, the alliance's accounting period ("2026-12").
/// Ordered by time. Serialised as its `YYYY-MM` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period {
    year: u16,
    month: u8,
}

impl Period {
    /// A month; years 1970 to 9999 (unix seconds stay positive), months 1 to 12.
    pub fn new(year: u16, month: u8) -> Result<Self, SpecError> {
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(SpecError::new(
                "period",
                "must be a month from 1970-01 to 9999-12",
            ));
        }
        Ok(Self { year, month })
    }

    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::new("period", "must be a month written YYYY-MM");
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        Self::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?)
    }

    /// The month a unix timestamp (seconds, UTC) falls in.
    pub fn of(unix_seconds: i64) -> Result<Self, SpecError> {
        let at = Utc
            .timestamp_opt(unix_seconds, 0)
            .single()
            .ok_or_else(|| SpecError::new("period", "timestamp out of range"))?;
        let year = u16::try_from(at.year())
            .map_err(|_| SpecError::new("period", "timestamp out of range"))?;
        Self::new(year, at.month() as u8)
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The month after. The month after 9999-12 is 10000-01, which
    /// [`Period::new`] refuses; it is still ordered and its start computed.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The month before (1970-01 has none and answers itself).
    pub fn previous(self) -> Self {
        match (self.year, self.month) {
            (1970, 1) => self,
            (y, 1) => Self {
                year: y - 1,
                month: 12,
            },
            (y, m) => Self {
                year: y,
                month: m - 1,
            },
        }
    }

    /// The first second of the month, unix seconds UTC.
    pub fn start(self) -> i64 {
        NaiveDate::from_ymd_opt(i32::from(self.year), u32::from(self.month), 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
            // Unreachable for months built by `new` or `next`.
            .unwrap_or(i64::MAX)
    }

    /// The first second after the month (the next month's start).
    pub fn end(self) -> i64 {
        self.next().start()
    }

    /// Whether a unix timestamp falls in the month: `start <= t < end`.
    pub fn contains(self, unix_seconds: i64) -> bool {
        (self.start()..self.end()).contains(&unix_seconds)
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl From<Period> for String {
    fn from(p: Period) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for Period {
    type Error = SpecError;
    fn try_from(text: String) -> Result<Self, SpecError> {
        Period::parse(&text)
    }
}

/// An alliance's name: 1 to 80 characters once trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AllianceName(String);

impl AllianceName {
    /// Validates a name; surrounding whitespace is dropped.
    pub fn new(name: &str) -> Result<Self, SpecError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(SpecError::new(
                "name",
                format!("must be 1 to {MAX_NAME} characters, not blank"),
            ));
        }
        Ok(Self(name.to_string()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a description: at most [`MAX_DESCRIPTION`] characters.
pub fn check_description(text: &str) -> Result<(), SpecError> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(SpecError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

/// A TFChain account address (SS58), as text. Only its shape is checked
/// (base58 characters, 46 to 48 of them); that the member holds its key is
/// proven by a signed challenge in the app.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChainAccount(String);

impl ChainAccount {
    /// Validates an address's shape.
    pub fn new(address: &str) -> Result<Self, SpecError> {
        const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        if !(46..=48).contains(&address.len()) || !address.chars().all(|c| BASE58.contains(c)) {
            return Err(SpecError::new(
                "account",
                "must be an SS58 address (46 to 48 base58 characters)",
            ));
        }
        Ok(Self(address.to_string()))
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A node's capacity in whole resource units, as the grid computes them
/// from its total resources (CU from cru and mru, SU from sru and hru),
/// rounded down by the app. Capacity weights add CU and SU as equals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    /// Compute units.
    pub cu: u64,
    /// Storage units.
    pub su: u64,
}

impl Capacity {
    /// A capacity; at least one unit of either kind (a node with none
    /// contributes nothing to share).
    pub fn new(cu: u64, su: u64) -> Result<Self, SpecError> {
        if cu == 0 && su == 0 {
            return Err(SpecError::new("capacity", "a node must have some CU or SU"));
        }
        if cu.checked_add(su).is_none() {
            return Err(SpecError::new("capacity", "too large"));
        }
        Ok(Self { cu, su })
    }

    /// CU + SU, the weight the capacity rules use.
    pub fn units(self) -> u128 {
        u128::from(self.cu) + u128::from(self.su)
    }
}

/// How an alliance shares its income among members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SharingRule {
    /// The same share for every member with at least one node counted in
    /// the period; a member without one gets nothing.
    Equal,
    /// In proportion to the CU + SU of the member's counted nodes.
    Capacity,
    /// In proportion to each counted node's CU + SU times its measured
    /// uptime (basis points), summed per member.
    UptimeWeightedCapacity,
    /// Fixed basis points per member, summing to exactly 10,000. A listed
    /// member who is no longer a member in a period drops out and the
    /// others share in proportion to their points.
    Fixed {
        /// Basis points per member.
        shares: BTreeMap<MemberId, u16>,
    },
}

impl SharingRule {
    /// Checks a rule on its own: fixed shares sum to exactly 10,000 and
    /// none is zero. (That its members are members is the aggregate's check.)
    pub fn validate(&self) -> Result<(), SpecError> {
        if let SharingRule::Fixed { shares } = self {
            let sum: u32 = shares.values().map(|&b| u32::from(b)).sum();
            if sum != u32::from(BPS_WHOLE) {
                return Err(SpecError::across(
                    "rule.shares",
                    "shares-must-sum-to-whole",
                    format!("must sum to exactly 10000 basis points, got {sum}"),
                ));
            }
            if shares.values().any(|&b| b == 0) {
                return Err(SpecError::new(
                    "rule.shares",
                    "a listed share must not be 0",
                ));
            }
        }
        Ok(())
    }

    /// The rule's name, for views.
    pub fn as_str(&self) -> &'static str {
        match self {
            SharingRule::Equal => "equal",
            SharingRule::Capacity => "capacity",
            SharingRule::UptimeWeightedCapacity => "uptime_weighted_capacity",
            SharingRule::Fixed { .. } => "fixed",
        }
    }
}

/// Who receives an SLA credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditsTo {
    /// The users whose contracts ran on the node, pro rata to what they
    /// were billed there (to the members when nobody was billed).
    Users,
    /// The other members: the penalised member's share goes to them.
    Members,
}

/// One step of an SLA: a node whose uptime is below `below_bps` credits
/// `credit_bps` of its period income.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTier {
    /// Uptime (basis points) under which the tier applies.
    pub below_bps: u16,
    /// Part of the node's income credited (basis points).
    pub credit_bps: u16,
}

/// An alliance's service level: a monthly uptime target per node and the
/// credits a shortfall costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sla {
    /// The uptime each node is expected to reach (basis points).
    pub target_bps: u16,
    /// From the mildest (highest `below_bps`) to the harshest.
    pub tiers: Vec<SlaTier>,
    /// Who receives the credits.
    pub credits_to: CreditsTo,
}

impl Sla {
    /// Validates an SLA: every figure at most 10,000 basis points; tiers
    /// with strictly falling `below_bps`, none above the target (a node
    /// that met the target is never penalised), and credits that never
    /// fall as uptime falls.
    pub fn new(
        target_bps: u16,
        tiers: Vec<SlaTier>,
        credits_to: CreditsTo,
    ) -> Result<Self, SpecError> {
        if target_bps > BPS_WHOLE {
            return Err(SpecError::new("sla.target_bps", "must be at most 10000"));
        }
        for (i, t) in tiers.iter().enumerate() {
            if t.below_bps > target_bps {
                return Err(SpecError::across(
                    "sla.tiers",
                    "sla-tiers-out-of-order",
                    "a tier must not start above the target",
                ));
            }
            if t.credit_bps > BPS_WHOLE {
                return Err(SpecError::new(
                    "sla.tiers",
                    "a credit must be at most 10000",
                ));
            }
            if i > 0 {
                let before = tiers[i - 1];
                if t.below_bps >= before.below_bps || t.credit_bps < before.credit_bps {
                    return Err(SpecError::across(
                        "sla.tiers",
                        "sla-tiers-out-of-order",
                        "tiers must go from the highest threshold down, credits never falling",
                    ));
                }
            }
        }
        Ok(Self {
            target_bps,
            tiers,
            credits_to,
        })
    }

    /// No target and no credits.
    pub fn none() -> Self {
        Self {
            target_bps: 0,
            tiers: vec![],
            credits_to: CreditsTo::Members,
        }
    }

    /// The credit (basis points of the node's income) an uptime costs: the
    /// harshest tier it is below, 0 when it meets every tier.
    pub fn credit_bps(&self, uptime_bps: u16) -> u16 {
        if uptime_bps >= self.target_bps {
            return 0;
        }
        self.tiers
            .iter()
            .filter(|t| uptime_bps < t.below_bps)
            .min_by_key(|t| t.below_bps)
            .map_or(0, |t| t.credit_bps)
    }
}

/// How an alliance changes its sharing rule and its SLA. Under either,
/// the founder alone invites and dissolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Governance {
    /// The founder changes them.
    #[default]
    Founder,
    /// Any member proposes a change; it passes when members holding more
    /// than half the contributed capacity (CU + SU of the nodes contributed
    /// and not withdrawn) approve, and fails once half or more reject.
    /// Votes are weighed by each voter's capacity when the vote is cast
    /// that decides. While no capacity is contributed, each member weighs one.
    CapacityMajority,
}

/// A change put to the members' vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum ProposedChange {
    /// A new sharing rule.
    SharingRule(SharingRule),
    /// A new SLA.
    Sla(Sla),
}

/// A maintenance window of a node, unix seconds UTC, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    /// When it begins.
    pub start: i64,
    /// When it ends.
    pub end: i64,
    /// When it was announced.
    pub announced_at: i64,
}

/// The chain farm, twin and account the marketplace created for the alliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllianceFarm {
    /// The farm id on TFChain.
    pub farm_id: u32,
    /// The farm's twin.
    pub twin_id: u32,
    /// The account the chain pays the farm's share to.
    pub account: ChainAccount,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_order_and_step() {
        let dec = Period::parse("2026-12").expect("valid");
        assert_eq!((dec.year(), dec.month()), (2026, 12));
        assert_eq!(dec.next().to_string(), "2027-01");
        assert_eq!(dec.next().previous(), dec);
        assert!(dec < dec.next());
        assert_eq!(
            Period::parse("2026-02")
                .expect("valid")
                .next()
                .previous()
                .month(),
            2
        );
        for bad in [
            "2026-13", "2026-00", "26-01", "2026-1", "2026_01", "", "1969-12", "abcd-ef",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_know_their_seconds() {
        let jan = Period::new(1970, 1).expect("valid");
        assert_eq!(jan.start(), 0);
        assert_eq!(jan.end(), 31 * 86_400);
        let feb24 = Period::new(2024, 2).expect("valid");
        assert_eq!(feb24.end() - feb24.start(), 29 * 86_400);
        let dec = Period::new(2026, 12).expect("valid");
        assert_eq!(dec.start(), 1_796_083_200);
        assert!(dec.contains(dec.start()));
        assert!(!dec.contains(dec.end()));
        assert!(!dec.contains(dec.start() - 1));
        assert_eq!(Period::of(dec.end() - 1), Ok(dec));
        assert_eq!(Period::of(dec.end()), Ok(dec.next()));
    }

    #[test]
    fn periods_serialise_as_text() {
        let p = Period::new(2026, 3).expect("valid");
        assert_eq!(serde_json::to_string(&p).expect("json"), "\"2026-03\"");
        assert_eq!(
            serde_json::from_str::<Period>("\"2026-03\"").expect("json"),
            p
        );
        assert!(serde_json::from_str::<Period>("\"2026-3\"").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            AllianceName::new(" Ghent ").map(|n| n.as_str().to_string()),
            Ok("Ghent".into())
        );
        assert!(AllianceName::new("  ").is_err());
        assert!(AllianceName::new(&"é".repeat(80)).is_ok());
        assert!(AllianceName::new(&"é".repeat(81)).is_err());
    }

    #[test]
    fn fixed_shares_sum_to_a_whole() {
        let fixed = |v: &[(&str, u16)]| SharingRule::Fixed {
            shares: v.iter().map(|(m, b)| (m.to_string(), *b)).collect(),
        };
        assert!(fixed(&[("a", 6_000), ("b", 4_000)]).validate().is_ok());
        assert!(fixed(&[("a", 6_000), ("b", 3_999)]).validate().is_err());
        assert!(fixed(&[("a", 10_000), ("b", 0)]).validate().is_err());
        assert!(fixed(&[]).validate().is_err());
        assert!(SharingRule::Equal.validate().is_ok());
    }

    #[test]
    fn sla_tiers_are_ordered_and_the_harshest_match_applies() {
        let tier = |below_bps, credit_bps| SlaTier {
            below_bps,
            credit_bps,
        };
        let sla = Sla::new(
            9_800,
            vec![tier(9_800, 1_000), tier(9_500, 2_500), tier(9_000, 5_000)],
            CreditsTo::Users,
        )
        .expect("valid");
        assert_eq!(sla.credit_bps(10_000), 0);
        assert_eq!(sla.credit_bps(9_800), 0);
        assert_eq!(sla.credit_bps(9_799), 1_000);
        assert_eq!(sla.credit_bps(9_500), 1_000);
        assert_eq!(sla.credit_bps(9_499), 2_500);
        assert_eq!(sla.credit_bps(0), 5_000);
        assert!(Sla::new(10_001, vec![], CreditsTo::Users).is_err());
        assert!(Sla::new(9_800, vec![tier(9_900, 1_000)], CreditsTo::Users).is_err());
        assert!(Sla::new(9_800, vec![tier(9_000, 10_001)], CreditsTo::Users).is_err());
        assert!(Sla::new(
            9_800,
            vec![tier(9_000, 1_000), tier(9_500, 2_000)],
            CreditsTo::Users
        )
        .is_err());
        assert!(Sla::new(
            9_800,
            vec![tier(9_500, 2_000), tier(9_500, 3_000)],
            CreditsTo::Users
        )
        .is_err());
        assert!(Sla::new(
            9_800,
            vec![tier(9_500, 2_000), tier(9_000, 1_000)],
            CreditsTo::Users
        )
        .is_err());
    }

    #[test]
    fn accounts_and_capacities_are_checked() {
        assert!(ChainAccount::new("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY").is_ok());
        assert!(ChainAccount::new("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQ0").is_err());
        assert!(ChainAccount::new("short").is_err());
        assert!(Capacity::new(0, 0).is_err());
        assert_eq!(Capacity::new(3, 4).map(Capacity::units), Ok(7));
    }
}
