//! Settling an alliance's periods: in order, each once, after it ended,
//! from the chain's figures for exactly the nodes counted in it.
//!
//! Amounts are `u128` as the chain bills, but every amount an event
//! records must fit in `u64` (1.8 trillion TFT): the event store writes
//! payloads through `serde_json::Value`, which holds no larger integer.
//! A settlement whose income plus carried remainder fits does, as every
//! amount in it is at most that total.

use chrono::{DateTime, Utc};

use super::commands::NodeIncome;
use super::errors::AllianceError;
use super::events::AllianceEvent;
use super::settlement::{settle, NodeFigures};
use super::state::AllianceState;
use super::values::Period;

/// Settles a period, in order, once it is over, from figures for exactly
/// the nodes counted in it.
pub(super) fn settle_period(
    s: &AllianceState,
    period: Period,
    nodes: Vec<NodeIncome>,
    now: DateTime<Utc>,
) -> Result<Vec<AllianceEvent>, AllianceError> {
    if s.settlements.contains_key(&period) {
        return Err(AllianceError::AlreadySettled(period));
    }
    if !s.active_in(period) {
        return Err(AllianceError::NotActive(period));
    }
    let expected = s.next_to_settle();
    if period != expected {
        return Err(AllianceError::OutOfOrder { expected });
    }
    if now.timestamp() < period.end() {
        return Err(AllianceError::PeriodNotOver(period));
    }
    let counted = s.nodes_in(period);
    let mut figures = Vec::with_capacity(nodes.len());
    for n in nodes {
        let Some(c) = counted.get(&n.node_id) else {
            return Err(AllianceError::NodeNotCounted(n.node_id));
        };
        figures.push(NodeFigures {
            node_id: n.node_id,
            member: c.member.clone(),
            capacity: c.capacity,
            uptime_bps: n.uptime_bps,
            income: n.income,
            billed: n.billed,
        });
    }
    if let Some(missing) = counted
        .keys()
        .find(|id| !figures.iter().any(|f| f.node_id == **id))
    {
        return Err(AllianceError::MissingNode(*missing));
    }
    figures.sort_by_key(|f| f.node_id);
    let carried_in = s
        .last_settled()
        .and_then(|p| s.settlements.get(&p))
        .map_or(0, |x| x.carried);
    let (Some(rule), Some(sla)) = (s.rule_for(period), s.sla_for(period)) else {
        // Every alliance has a rule and an SLA from its founding period.
        return Err(AllianceError::NotActive(period));
    };
    let fits = |v: u128| u64::try_from(v).is_ok();
    let income = figures
        .iter()
        .try_fold(carried_in, |sum, f| sum.checked_add(f.income));
    if !income.is_some_and(fits) || figures.iter().any(|f| !f.billed.values().all(|&b| fits(b))) {
        return Err(AllianceError::AmountTooLarge);
    }
    let settlement = settle(rule, sla, &s.members_in(period), &figures, carried_in)?;
    Ok(vec![AllianceEvent::AllianceSettled {
        period,
        nodes: figures,
        settlement,
        at: now,
    }])
}
