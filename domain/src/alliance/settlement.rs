//! The monthly settlement of an alliance's income: a pure function of the
//! period's figures, in integer TFT base units (`u128`, as the chain bills).
//!
//! 1. **Income** is the sum of what the chain paid the alliance's farm for
//!    each counted node in the period; the remainder carried from the
//!    previous period is added to it: `total = income + carried_in`.
//! 2. **SLA credits.** A node below its SLA credits the harshest tier's
//!    `credit_bps` of *its own* income, rounded down
//!    ([`Sla::credit_bps`]). A node that met the target credits nothing.
//!    - To **users**: split among the users billed on the node, pro rata to
//!      what each was billed there, by largest remainder (they sum exactly
//!      to the credit). These credits are paid off the top:
//!      `distributable = total - credits to users`. A node nobody was
//!      billed on credits its members instead, as below.
//!    - To **members**: the node's contributor owes it as a penalty, taken
//!      from that member's share (at most the whole share, never more) and
//!      shared among the *other* members by the rule's weights. With no
//!      other member to receive it, it is not taken.
//! 3. **Shares.** The distributable is split among members by the rule's
//!    weights (see [`SharingRule`]), by largest remainder: each gets the
//!    floor of its exact share, and the base units left over go one each
//!    to the largest fractional parts, ties to the lower member id. Nothing
//!    is lost to rounding.
//! 4. **Carried.** When no member has any weight (no counted node, or no
//!    listed fixed member left), the whole distributable is carried to the
//!    next period. Otherwise nothing is carried.
//!
//! Invariant: `sum(shares) + sum(user credits) + carried == income +
//! carried_in`, exactly, and no share is negative (they are unsigned).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::values::{Capacity, CreditsTo, MemberId, SharingRule, Sla, UserId, BPS_WHOLE};

/// What one counted node brought in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// The grid node.
    pub node_id: u32,
    /// The member who contributed it.
    pub member: MemberId,
    /// Its contributed capacity.
    pub capacity: Capacity,
    /// Its measured uptime in the period (basis points, at most 10,000).
    pub uptime_bps: u16,
    /// What the chain paid the alliance's farm for it in the period.
    pub income: u128,
    /// What each user was billed on it in the period.
    pub billed: BTreeMap<UserId, u128>,
}

/// The SLA credit one node gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCredit {
    /// The tier's credit, basis points of the node's income.
    pub credit_bps: u16,
    /// The credit, base units.
    pub amount: u128,
    /// Where it went: users, or (as a penalty) the other members.
    pub to: CreditsTo,
}

/// A period's settlement.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Settlement {
    /// What the counted nodes brought.
    pub income: u128,
    /// The remainder carried from the previous period.
    pub carried_in: u128,
    /// The SLA credit of each node that gave one.
    pub node_credits: BTreeMap<u32, NodeCredit>,
    /// Credits per user, from nodes crediting users.
    pub user_credits: BTreeMap<UserId, u128>,
    /// The penalty taken from each penalised member's share and given to
    /// the other members (already reflected in `shares`).
    pub penalties: BTreeMap<MemberId, u128>,
    /// What each member is paid. Every member with a weight is listed,
    /// and every contributor, even at 0.
    pub shares: BTreeMap<MemberId, u128>,
    /// What is carried to the next period.
    pub carried: u128,
}

impl Settlement {
    /// Everything paid out: shares plus user credits.
    pub fn paid_out(&self) -> u128 {
        self.shares.values().sum::<u128>() + self.user_credits.values().sum::<u128>()
    }
}

/// Why a settlement cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    /// A node is listed twice.
    #[error("node {0} is listed twice")]
    DuplicateNode(u32),
    /// An uptime above 10,000 basis points.
    #[error("node {0} has an uptime above 10000 basis points")]
    UptimeOutOfRange(u32),
    /// The amounts do not fit in 128 bits.
    #[error("the amounts overflow")]
    Overflow,
}

/// Settles a period: see the module's documentation for the rules.
/// `members` are the alliance's members in the period (they matter to the
/// fixed rule; the other rules weigh contributors through their nodes).
pub fn settle(
    rule: &SharingRule,
    sla: &Sla,
    members: &BTreeSet<MemberId>,
    nodes: &[NodeFigures],
    carried_in: u128,
) -> Result<Settlement, SettlementError> {
    let mut seen = BTreeSet::new();
    let mut income: u128 = 0;
    for n in nodes {
        if !seen.insert(n.node_id) {
            return Err(SettlementError::DuplicateNode(n.node_id));
        }
        if n.uptime_bps > BPS_WHOLE {
            return Err(SettlementError::UptimeOutOfRange(n.node_id));
        }
        income = income
            .checked_add(n.income)
            .ok_or(SettlementError::Overflow)?;
        n.billed
            .values()
            .try_fold(0u128, |sum, &b| sum.checked_add(b))
            .ok_or(SettlementError::Overflow)?;
    }
    let total = income
        .checked_add(carried_in)
        .ok_or(SettlementError::Overflow)?;

    let mut out = Settlement {
        income,
        carried_in,
        ..Settlement::default()
    };

    // SLA credits, node by node.
    let mut owed: BTreeMap<MemberId, u128> = BTreeMap::new();
    let mut to_users: u128 = 0;
    for n in nodes {
        let credit_bps = sla.credit_bps(n.uptime_bps);
        let amount = mul_div(n.income, u128::from(credit_bps), u128::from(BPS_WHOLE)).0;
        if amount == 0 {
            continue;
        }
        let billed_total: u128 = n.billed.values().sum();
        let to = if sla.credits_to == CreditsTo::Users && billed_total > 0 {
            for (user, part) in largest_remainder(amount, &n.billed) {
                *out.user_credits.entry(user).or_default() += part;
            }
            to_users += amount;
            CreditsTo::Users
        } else {
            *owed.entry(n.member.clone()).or_default() += amount;
            CreditsTo::Members
        };
        out.node_credits.insert(
            n.node_id,
            NodeCredit {
                credit_bps,
                amount,
                to,
            },
        );
    }
    out.user_credits.retain(|_, v| *v > 0);
    // Credits are at most each node's income, so this never underflows.
    let distributable = total - to_users;

    // Shares by the rule.
    let weights = weights(rule, members, nodes);
    for n in nodes {
        out.shares.entry(n.member.clone()).or_default();
    }
    if weights.values().all(|&w| w == 0) {
        out.carried = distributable;
        return Ok(out);
    }
    let base = largest_remainder(distributable, &weights);
    for (m, s) in &base {
        *out.shares.entry(m.clone()).or_default() += s;
    }

    // Penalties owed to the other members, each capped at the share the
    // penalised member had before any penalty moved.
    for (member, owes) in owed {
        let had = base.get(&member).copied().unwrap_or(0);
        let take = owes.min(had);
        let others: BTreeMap<MemberId, u128> = weights
            .iter()
            .filter(|(m, &w)| **m != member && w > 0)
            .map(|(m, &w)| (m.clone(), w))
            .collect();
        if take == 0 || others.is_empty() {
            continue;
        }
        *out.shares.entry(member.clone()).or_default() -= take;
        for (m, part) in largest_remainder(take, &others) {
            *out.shares.entry(m).or_default() += part;
        }
        out.penalties.insert(member, take);
    }
    Ok(out)
}

/// Each member's weight under a rule.
fn weights(
    rule: &SharingRule,
    members: &BTreeSet<MemberId>,
    nodes: &[NodeFigures],
) -> BTreeMap<MemberId, u128> {
    let mut w: BTreeMap<MemberId, u128> = BTreeMap::new();
    match rule {
        SharingRule::Equal => {
            for n in nodes {
                w.insert(n.member.clone(), 1);
            }
        }
        SharingRule::Capacity => {
            for n in nodes {
                *w.entry(n.member.clone()).or_default() += n.capacity.units();
            }
        }
        SharingRule::UptimeWeightedCapacity => {
            for n in nodes {
                *w.entry(n.member.clone()).or_default() +=
                    n.capacity.units() * u128::from(n.uptime_bps);
            }
        }
        SharingRule::Fixed { shares } => {
            for (m, &bps) in shares {
                if members.contains(m) {
                    w.insert(m.clone(), u128::from(bps));
                }
            }
        }
    }
    w
}

/// Splits `total` in proportion to `weights` (not all zero, unless `total`
/// is zero), exactly: floors first, then one base unit each to the largest
/// remainders, ties to the lower key. Every key is answered, zeros too.
pub fn largest_remainder<K: Ord + Clone>(
    total: u128,
    weights: &BTreeMap<K, u128>,
) -> BTreeMap<K, u128> {
    // Weights summing past u128 are scaled down until they fit, keeping
    // their order (never met with capacities and basis points).
    let mut shift = 0;
    let (weights, sum) = loop {
        let scaled: BTreeMap<K, u128> = weights
            .iter()
            .map(|(k, &w)| (k.clone(), w >> shift))
            .collect();
        match scaled.values().try_fold(0u128, |s, &w| s.checked_add(w)) {
            Some(sum) => break (scaled, sum),
            None => shift += 1,
        }
    };
    if sum == 0 {
        return weights.keys().map(|k| (k.clone(), 0)).collect();
    }
    let mut parts: BTreeMap<K, u128> = BTreeMap::new();
    let mut remainders: Vec<(u128, K)> = Vec::with_capacity(weights.len());
    let mut given: u128 = 0;
    for (k, &w) in &weights {
        let (q, r) = mul_div(total, w, sum);
        given += q;
        parts.insert(k.clone(), q);
        remainders.push((r, k.clone()));
    }
    // Stable: equal remainders keep the keys' ascending order.
    remainders.sort_by_key(|r| std::cmp::Reverse(r.0));
    let left = total - given; // fewer than the number of keys
    for (_, k) in remainders
        .into_iter()
        .take(usize::try_from(left).unwrap_or(usize::MAX))
    {
        if let Some(p) = parts.get_mut(&k) {
            *p += 1;
        }
    }
    parts
}

/// `(a * b / d, a * b % d)` with a 256-bit product, for `d > 0` and a
/// quotient that fits in 128 bits (here always `b <= d`).
fn mul_div(a: u128, b: u128, d: u128) -> (u128, u128) {
    let (hi, lo) = mul_wide(a, b);
    let (mut q, mut rem) = (0u128, 0u128);
    for i in (0..256u32).rev() {
        let bit = if i >= 128 {
            (hi >> (i - 128)) & 1
        } else {
            (lo >> i) & 1
        };
        let overflowed = rem >> 127 == 1;
        rem = (rem << 1) | bit;
        if overflowed || rem >= d {
            rem = rem.wrapping_sub(d);
            if i < 128 {
                q |= 1 << i;
            }
        }
    }
    (q, rem)
}

/// The 256-bit product of two 128-bit numbers, as (high, low) halves.
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a0, a1) = (a & MASK, a >> 64);
    let (b0, b1) = (b & MASK, b >> 64);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
    let lo = (p00 & MASK) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

#[cfg(test)]
mod arithmetic_tests {
    use super::*;

    #[test]
    fn wide_division_matches_narrow_division() {
        for (a, b, d) in [
            (7u128, 3u128, 2u128),
            (0, 5, 3),
            (1_000_000, 9_999, 10_000),
            (u64::MAX as u128, u64::MAX as u128, 3),
        ] {
            assert_eq!(mul_div(a, b, d), (a * b / d, a * b % d));
        }
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), (u128::MAX, 0));
        assert_eq!(mul_div(u128::MAX, 2, 3), (u128::MAX / 3 * 2, 0));
        assert_eq!(mul_div(u128::MAX, 1, 2), (u128::MAX / 2, 1));
    }

    #[test]
    fn largest_remainder_is_exact_and_breaks_ties_by_key() {
        let w: BTreeMap<&str, u128> = [("a", 1), ("b", 1), ("c", 1)].into();
        let parts = largest_remainder(10, &w);
        assert_eq!(parts, [("a", 4), ("b", 3), ("c", 3)].into());
        let w: BTreeMap<&str, u128> = [("a", 1), ("b", 2)].into();
        assert_eq!(largest_remainder(10, &w), [("a", 3), ("b", 7)].into());
        let w: BTreeMap<&str, u128> = [("a", 0), ("b", 0)].into();
        assert_eq!(largest_remainder(10, &w), [("a", 0), ("b", 0)].into());
        let w: BTreeMap<&str, u128> = [("a", u128::MAX), ("b", u128::MAX)].into();
        assert_eq!(
            largest_remainder(u128::MAX, &w).values().sum::<u128>(),
            u128::MAX
        );
    }
}
