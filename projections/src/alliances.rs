//! The alliance views: one row per alliance (`alliance_views`, which keeps
//! the folded aggregate itself), its members and invitations
//! (`alliance_members`), each node's latest contribution (`alliance_nodes`),
//! settled periods (`alliance_settlements`) and each member's share and
//! payout (`alliance_shares`).
//!
//! Each event folds into the aggregate kept in the row (the domain's own
//! `apply_event`, so the view cannot disagree with the write side), guarded
//! by the row's version (`sequence - 1`, a duplicate is a no-op); members
//! and nodes are then rewritten from the folded state in the same
//! transaction. Nothing comes from the clock: a rebuild reproduces every
//! table exactly.

use chrono::{DateTime, Utc};
use marketplace_domain::alliance::{Alliance, AllianceEvent, AllianceState, EVENT_VERSION};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::{ApplyError, Projection, StoredEvent};

/// Builds the alliance views.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllianceProjection;

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "alliances";

/// The aggregate type it reads.
pub const AGGREGATE_TYPE: &str = "alliance";

fn poison(what: impl std::fmt::Display) -> ApplyError {
    ApplyError::Poison(what.to_string())
}

#[async_trait::async_trait]
impl Projection for AllianceProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    async fn apply(&self, conn: &mut PgConnection, stored: &StoredEvent) -> Result<(), ApplyError> {
        let event: AllianceEvent = crate::decode_event(stored, EVENT_VERSION)?;
        let id = stored.aggregate_id.as_str();
        let seq = stored.sequence;
        let row: Option<(i64, Value)> = sqlx::query_as(
            "SELECT version, aggregate FROM alliance_views WHERE alliance_id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let mut aggregate = match row {
            None if seq == 1 => Alliance::default(),
            None => return Err(poison(format!("alliance {id}: no row for sequence {seq}"))),
            Some((v, _)) if v >= seq => return Ok(()),
            Some((v, a)) if v == seq - 1 => serde_json::from_value::<Alliance>(a)
                .map_err(|e| poison(format!("alliance {id}: stored aggregate: {e}")))?,
            Some((v, _)) => {
                return Err(poison(format!(
                    "alliance {id}: at version {v}, event {seq} leaves a gap"
                )))
            }
        };
        aggregate.apply_event(&event);
        let Some(s) = aggregate.state() else {
            return Err(poison(format!(
                "alliance {id}: {} before founding",
                stored.event_type
            )));
        };
        let folded = serde_json::to_value(&aggregate).map_err(poison)?;
        let at = event.at();
        sqlx::query(
            "INSERT INTO alliance_views
                (alliance_id, name, description, founder, governance, founded_in, rules, slas,
                 farm_id, twin_id, account, dissolved_from, aggregate, founded_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)
             ON CONFLICT (alliance_id) DO UPDATE SET
                name = $2, description = $3, rules = $7, slas = $8, farm_id = $9, twin_id = $10,
                account = $11, dissolved_from = $12, aggregate = $13, updated_at = $14, version = $15",
        )
        .bind(id)
        .bind(s.name.as_str())
        .bind(&s.description)
        .bind(&s.founder)
        .bind(governance(s))
        .bind(s.founded_in.to_string())
        .bind(serde_json::to_value(&s.rules).map_err(poison)?)
        .bind(serde_json::to_value(&s.slas).map_err(poison)?)
        .bind(s.farm.as_ref().map(|f| i64::from(f.farm_id)))
        .bind(s.farm.as_ref().map(|f| i64::from(f.twin_id)))
        .bind(s.farm.as_ref().map(|f| f.account.as_str().to_string()))
        .bind(s.dissolved_from.map(|p| p.to_string()))
        .bind(folded)
        .bind(at)
        .bind(seq)
        .execute(&mut *conn)
        .await?;
        rewrite_members(conn, id, s).await?;
        rewrite_nodes(conn, id, s).await?;
        match &event {
            AllianceEvent::AllianceSettled {
                period,
                nodes,
                settlement,
                at,
            } => {
                let credits: u128 = settlement.user_credits.values().sum();
                sqlx::query(
                    "INSERT INTO alliance_settlements
                        (alliance_id, period, income, carried_in, carried, user_credits,
                         settlement, nodes, settled_at)
                     VALUES ($1, $2, $3::numeric, $4::numeric, $5::numeric, $6::numeric, $7, $8, $9)
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(period.to_string())
                .bind(settlement.income.to_string())
                .bind(settlement.carried_in.to_string())
                .bind(settlement.carried.to_string())
                .bind(credits.to_string())
                .bind(serde_json::to_value(settlement).map_err(poison)?)
                .bind(serde_json::to_value(nodes).map_err(poison)?)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                let members: std::collections::BTreeSet<&String> = settlement
                    .shares
                    .keys()
                    .chain(settlement.penalties.keys())
                    .collect();
                for m in members {
                    let share = settlement.shares.get(m).copied().unwrap_or(0);
                    let penalty = settlement.penalties.get(m).copied().unwrap_or(0);
                    sqlx::query(
                        "INSERT INTO alliance_shares (alliance_id, period, member, share, penalty)
                         VALUES ($1, $2, $3, $4::numeric, $5::numeric) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(period.to_string())
                    .bind(m)
                    .bind(share.to_string())
                    .bind(penalty.to_string())
                    .execute(&mut *conn)
                    .await?;
                }
            }
            AllianceEvent::PayoutSent {
                period,
                member,
                amount,
                to,
                transfer,
                ..
            } => {
                sqlx::query(
                    "UPDATE alliance_shares SET paid = $4::numeric, paid_to = $5, transfer = $6
                      WHERE alliance_id = $1 AND period = $2 AND member = $3",
                )
                .bind(id)
                .bind(period.to_string())
                .bind(member)
                .bind(amount.to_string())
                .bind(to.as_str())
                .bind(transfer)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "alliance_views",
            "alliance_members",
            "alliance_nodes",
            "alliance_settlements",
            "alliance_shares",
        ]
    }
}

fn governance(s: &AllianceState) -> &'static str {
    match s.governance {
        marketplace_domain::alliance::Governance::Founder => "founder",
        marketplace_domain::alliance::Governance::CapacityMajority => "capacity_majority",
    }
}

async fn rewrite_members(
    conn: &mut PgConnection,
    id: &str,
    s: &AllianceState,
) -> Result<(), ApplyError> {
    sqlx::query("DELETE FROM alliance_members WHERE alliance_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (member, m) in &s.members {
        let (status, since, until) = match m.stints.last() {
            Some(stint) => (
                if stint.until.is_none() {
                    "member"
                } else {
                    "left"
                },
                Some(stint.from.to_string()),
                stint.until.map(|p| p.to_string()),
            ),
            None => ("left", None, None),
        };
        // An invitation after leaving shows as the invitation.
        let status = if s.invitations.contains(member) {
            "invited"
        } else {
            status
        };
        sqlx::query(
            "INSERT INTO alliance_members (alliance_id, member, status, since, until, payout_account)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(member)
        .bind(status)
        .bind(since)
        .bind(until)
        .bind(m.payout_account.as_ref().map(|a| a.as_str().to_string()))
        .execute(&mut *conn)
        .await?;
    }
    for invitee in s.invitations.iter().filter(|i| !s.members.contains_key(*i)) {
        sqlx::query(
            "INSERT INTO alliance_members (alliance_id, member, status) VALUES ($1, $2, 'invited')",
        )
        .bind(id)
        .bind(invitee)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn rewrite_nodes(
    conn: &mut PgConnection,
    id: &str,
    s: &AllianceState,
) -> Result<(), ApplyError> {
    sqlx::query("DELETE FROM alliance_nodes WHERE alliance_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (node, contributions) in &s.nodes {
        let Some(c) = contributions.last() else {
            continue;
        };
        sqlx::query(
            "INSERT INTO alliance_nodes
                (alliance_id, node_id, member, farm_id, cu, su, counted_from, counted_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(i64::from(*node))
        .bind(&c.member)
        .bind(i64::from(c.farm_id))
        .bind(c.capacity.cu as i64)
        .bind(c.capacity.su as i64)
        .bind(c.stint.from.to_string())
        .bind(c.stint.until.map(|p| p.to_string()))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One alliance as its view holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AllianceRow {
    /// The alliance.
    pub alliance_id: String,
    /// Its name.
    pub name: String,
    /// What it offers.
    pub description: String,
    /// The founder's subject.
    pub founder: String,
    /// `founder` or `capacity_majority`.
    pub governance: String,
    /// Its first period.
    pub founded_in: String,
    /// `[[period, rule], ...]`, oldest first.
    pub rules: Value,
    /// `[[period, sla], ...]`, oldest first.
    pub slas: Value,
    /// Its chain farm, once created.
    pub farm_id: Option<i64>,
    /// The farm's twin.
    pub twin_id: Option<i64>,
    /// The farm's account.
    pub account: Option<String>,
    /// The first period it no longer counts, once dissolved.
    pub dissolved_from: Option<String>,
    /// The folded aggregate.
    pub aggregate: Value,
    /// When it was founded.
    pub founded_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The aggregate's version the view is at.
    pub version: i64,
}

impl AllianceRow {
    /// The folded aggregate.
    pub fn alliance(&self) -> Option<Alliance> {
        serde_json::from_value(self.aggregate.clone()).ok()
    }
}

const ROW: &str = "SELECT alliance_id, name, description, founder, governance, founded_in, rules,
        slas, farm_id, twin_id, account, dissolved_from, aggregate, founded_at, updated_at,
        version FROM alliance_views";

/// One alliance.
pub async fn get(pool: &PgPool, id: &str) -> Result<Option<AllianceRow>, sqlx::Error> {
    sqlx::query_as(&format!("{ROW} WHERE alliance_id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Alliances by founding time; only those `member` belongs to or is
/// invited to, when given (a provider's own), else all (operators).
pub async fn list(
    pool: &PgPool,
    member: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AllianceRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{ROW} WHERE ($1::text IS NULL OR alliance_id IN
                 (SELECT alliance_id FROM alliance_members WHERE member = $1))
            AND ($2::text IS NULL OR alliance_id > $2)
          ORDER BY alliance_id LIMIT $3"
    ))
    .bind(member)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every alliance whose chain farm is not created yet (the farm worker's queue).
pub async fn without_farm(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT alliance_id FROM alliance_views WHERE farm_id IS NULL AND dissolved_from IS NULL
          ORDER BY alliance_id",
    )
    .fetch_all(pool)
    .await
}

/// Every alliance with a farm (the settlement worker's list).
pub async fn with_farm(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT alliance_id FROM alliance_views WHERE farm_id IS NOT NULL ORDER BY alliance_id",
    )
    .fetch_all(pool)
    .await
}

/// The alliance a node counts in now (contributed and not withdrawn), if any.
pub async fn alliance_of_node(pool: &PgPool, node_id: u32) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT alliance_id FROM alliance_nodes WHERE node_id = $1 AND counted_until IS NULL
          LIMIT 1",
    )
    .bind(i64::from(node_id))
    .fetch_optional(pool)
    .await
}

/// The alliance a node counts in now, as the catalog shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeAlliance {
    /// The node.
    pub node_id: i64,
    /// The alliance.
    pub alliance_id: String,
    /// Its name.
    pub name: String,
    /// The target of its latest SLA (basis points).
    pub sla_target_bps: Option<i32>,
}

/// The alliances `nodes` count in now.
pub async fn alliances_of_nodes(
    pool: &PgPool,
    nodes: &[i64],
) -> Result<Vec<NodeAlliance>, sqlx::Error> {
    sqlx::query_as(
        "SELECT an.node_id, av.alliance_id, av.name,
                (av.slas -> -1 -> 1 ->> 'target_bps')::int AS sla_target_bps
           FROM alliance_nodes an JOIN alliance_views av ON av.alliance_id = an.alliance_id
          WHERE an.node_id = ANY($1) AND an.counted_until IS NULL",
    )
    .bind(nodes)
    .fetch_all(pool)
    .await
}

/// A member's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    /// The provider's subject.
    pub member: String,
    /// `invited`, `member` or `left`.
    pub status: String,
    /// Its first period.
    pub since: Option<String>,
    /// The first period it is no longer a member in.
    pub until: Option<String>,
    /// Where its payouts go.
    pub payout_account: Option<String>,
}

/// The alliance's members and invitees.
pub async fn members(pool: &PgPool, id: &str) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT member, status, since, until, payout_account FROM alliance_members
          WHERE alliance_id = $1 ORDER BY member",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// A node's contribution.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    /// The node.
    pub node_id: i64,
    /// Its contributor.
    pub member: String,
    /// The member's farm it came from.
    pub farm_id: i64,
    /// Compute units.
    pub cu: i64,
    /// Storage units.
    pub su: i64,
    /// Its first period.
    pub counted_from: String,
    /// The first period it no longer counts in.
    pub counted_until: Option<String>,
}

/// The alliance's nodes, each with its latest contribution.
pub async fn nodes(pool: &PgPool, id: &str) -> Result<Vec<NodeRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT node_id, member, farm_id, cu, su, counted_from, counted_until FROM alliance_nodes
          WHERE alliance_id = $1 ORDER BY node_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// A settled period.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettlementRow {
    /// The period.
    pub period: String,
    /// Income (base units, decimal).
    pub income: String,
    /// Carried in.
    pub carried_in: String,
    /// Carried to the next period.
    pub carried: String,
    /// Credited to users.
    pub user_credits: String,
    /// The settlement as recorded.
    pub settlement: Value,
    /// Per-node figures.
    pub nodes: Value,
    /// When.
    pub settled_at: DateTime<Utc>,
}

/// Settled periods, oldest first.
pub async fn settlements(pool: &PgPool, id: &str) -> Result<Vec<SettlementRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT period, income::text AS income, carried_in::text AS carried_in,
                carried::text AS carried, user_credits::text AS user_credits, settlement, nodes,
                settled_at
           FROM alliance_settlements WHERE alliance_id = $1 ORDER BY period",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// A member's share of a period.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareRow {
    /// The period.
    pub period: String,
    /// The member.
    pub member: String,
    /// Its share.
    pub share: String,
    /// The penalty taken from it.
    pub penalty: String,
    /// What was paid, once.
    pub paid: Option<String>,
    /// Where.
    pub paid_to: Option<String>,
    /// The chain transfer.
    pub transfer: Option<String>,
}

/// Shares of the alliance, by period then member; one member's when given.
pub async fn shares(
    pool: &PgPool,
    id: &str,
    member: Option<&str>,
) -> Result<Vec<ShareRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT period, member, share::text AS share, penalty::text AS penalty,
                paid::text AS paid, paid_to, transfer
           FROM alliance_shares WHERE alliance_id = $1 AND ($2::text IS NULL OR member = $2)
          ORDER BY period, member",
    )
    .bind(id)
    .bind(member)
    .fetch_all(pool)
    .await
}
