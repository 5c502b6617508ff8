//! The monthly settlement of every alliance, a process manager on the
//! chain's clock (the time the chain follower has reached, so that the
//! facts it reads are complete):
//!
//! 1. **Settle.** Once the follower is `settle_after` past a period's end
//!    (longer than the 80-minute rule needs to see the reports after it),
//!    the period is settled on its figures (`app::alliance::period_figures`):
//!    `Settle` → `AllianceSettled`. The aggregate settles each period once
//!    and in order, so a second worker, or this one after a crash, is
//!    refused or finds nothing to do.
//! 2. **Pay.** Each member's share is sent from the alliance's account to
//!    the member's linked payout account and recorded (`RecordPayout`);
//!    each user's credit is sent to the user's custodial account and
//!    credited to the user's wallet (`RecordSlaCredit`). A member without
//!    a payout account waits until it links one.
//!
//! Every transfer carries a remark naming it (alliance, period, recipient).
//! Before its first attempt the worker keeps the chain's best block
//! (`alliance_transfers`); any later attempt asks the chain for the remark
//! from that block on (`find_remark`) and sends only when it is not there.
//! A worker killed between the transfer and its record therefore finds the
//! transfer and records it: no one is paid twice, no payment is lost.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use marketplace_app::alliance::{chain_now, period_figures};
use marketplace_app::bus::load;
use marketplace_app::tfchain::{Chain, ChainError, Custody, EventId};
use marketplace_app::{EventMetadata, Exec, Stores};
use marketplace_domain::alliance::{
    Alliance, AllianceCommand, AllianceError, ChainAccount, Period, MAX_REPORT_GAP,
};
use marketplace_domain::wallet::{ChainEventRef, Wallet, WalletCommand};
use marketplace_domain::TftAmount;
use marketplace_projections::alliances;
use sqlx::PgPool;
use tracing::{info, warn};

use super::AllianceWorkError;
use crate::provisioning::remark_hash;

/// The worker's name in event metadata.
pub const WORKER: &str = "alliance-settlement";

/// How the settlement worker runs.
#[derive(Debug, Clone)]
pub struct SettlementOptions {
    /// How far past a period's end (chain time, seconds) the follower must
    /// be before the period is settled; at least the 80-minute rule's gap.
    pub settle_after: i64,
}

impl Default for SettlementOptions {
    fn default() -> Self {
        Self {
            settle_after: 2 * 3_600,
        }
    }
}

/// The settlement worker's round.
#[derive(Clone)]
pub struct SettlementWorker {
    pool: PgPool,
    stores: Arc<Stores>,
    chain: Arc<dyn Chain>,
    custody: Arc<Custody>,
    options: SettlementOptions,
}

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    /// Periods settled.
    pub settled: usize,
    /// Member payouts recorded.
    pub payouts: usize,
    /// User credits recorded.
    pub credits: usize,
}

/// The remark that tags one transfer of a settlement.
pub fn remark(alliance_id: &str, period: Period, recipient: &str) -> Vec<u8> {
    format!("marketplace:alliance:{alliance_id}:{period}:{recipient}").into_bytes()
}

fn event_text(id: EventId) -> String {
    format!("{}-{}", id.block_number, id.event_index)
}

fn parse_event(text: &str) -> Option<EventId> {
    let (b, i) = text.split_once('-')?;
    Some(EventId {
        block_number: b.parse().ok()?,
        event_index: i.parse().ok()?,
    })
}

impl SettlementWorker {
    /// A worker over these ports.
    pub fn new(
        pool: PgPool,
        chain: Arc<dyn Chain>,
        custody: Arc<Custody>,
        options: SettlementOptions,
    ) -> Self {
        Self {
            stores: Arc::new(Stores::new(&pool)),
            pool,
            chain,
            custody,
            options: SettlementOptions {
                settle_after: options.settle_after.max(MAX_REPORT_GAP),
            },
        }
    }

    /// Settles what is due and pays what is owed, for every alliance.
    pub async fn round(&self) -> Result<RoundReport, AllianceWorkError> {
        let mut report = RoundReport::default();
        let now = chain_now(&self.pool).await?;
        for id in alliances::with_farm(&self.pool).await? {
            if let Some(now) = now {
                report.settled += self.settle_due(&id, now).await?;
            }
            let (payouts, credits) = self.pay(&id).await?;
            report.payouts += payouts;
            report.credits += credits;
        }
        Ok(report)
    }

    fn meta(&self, id: &str, period: Period) -> EventMetadata {
        EventMetadata::for_worker(WORKER, &format!("{WORKER}/{id}/{period}"))
    }

    /// Settles every period of alliance `id` that ended `settle_after`
    /// before `now` (chain time); how many.
    pub async fn settle_due(&self, id: &str, now: i64) -> Result<usize, AllianceWorkError> {
        let mut settled = 0;
        loop {
            let (alliance, _) = load(&self.stores.alliances, id).await?;
            let Some(state) = alliance.state() else {
                return Ok(settled);
            };
            let period = state.next_to_settle();
            if !state.active_in(period) || now < period.end() + self.options.settle_after {
                return Ok(settled);
            }
            let nodes = period_figures(&self.pool, state, period, period.end()).await?;
            let at = DateTime::<Utc>::from_timestamp(now, 0).unwrap_or_else(Utc::now);
            let done = Exec::<Alliance>::new(&self.stores.alliances, id, self.meta(id, period))
                .run(|_| {
                    Ok(AllianceCommand::Settle {
                        period,
                        nodes: nodes.clone(),
                        now: at,
                    })
                })
                .await;
            match done {
                Ok(_) => {
                    info!(alliance = %id, %period, "alliance period settled");
                    settled += 1;
                }
                // Another worker settled it first: look again.
                Err(marketplace_app::CommandError::Exists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Pays every share and credit of alliance `id` not yet recorded;
    /// (payouts, credits) recorded.
    pub async fn pay(&self, id: &str) -> Result<(usize, usize), AllianceWorkError> {
        let (alliance, _) = load(&self.stores.alliances, id).await?;
        let Some(state) = alliance.state() else {
            return Ok((0, 0));
        };
        let (mut payouts, mut credits) = (0, 0);
        for (period, settlement) in &state.settlements {
            for (user, amount) in &settlement.user_credits {
                if *amount > 0 && self.credit_user(id, *period, user, *amount).await? {
                    credits += 1;
                }
            }
            let paid = state.payouts.get(period);
            for (member, share) in &settlement.shares {
                if *share == 0 || paid.is_some_and(|p| p.contains_key(member)) {
                    continue;
                }
                let Some(account) = state
                    .members
                    .get(member)
                    .and_then(|m| m.payout_account.clone())
                else {
                    warn!(alliance = %id, %period, member = %member, "no payout account linked yet; the share waits");
                    continue;
                };
                let recipient = format!("member:{member}");
                let event = self
                    .transfer(id, *period, &recipient, account.as_str(), *share)
                    .await?;
                self.record_payout(id, *period, member, *share, &account, event)
                    .await?;
                payouts += 1;
            }
        }
        Ok((payouts, credits))
    }

    async fn record_payout(
        &self,
        id: &str,
        period: Period,
        member: &str,
        amount: u128,
        to: &ChainAccount,
        event: EventId,
    ) -> Result<(), AllianceWorkError> {
        let done = Exec::<Alliance>::new(&self.stores.alliances, id, self.meta(id, period))
            .run(|_| {
                Ok(AllianceCommand::RecordPayout {
                    period,
                    member: member.to_string(),
                    amount,
                    to: to.clone(),
                    transfer: event_text(event),
                    at: Utc::now(),
                })
            })
            .await;
        match done {
            Ok(_) => {
                info!(alliance = %id, %period, member, amount, "payout recorded");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends and records one user's credit; whether it recorded it now.
    async fn credit_user(
        &self,
        id: &str,
        period: Period,
        user: &str,
        amount: u128,
    ) -> Result<bool, AllianceWorkError> {
        let credit_id = format!("alliance:{id}:{period}");
        let (wallet, _) = load(&self.stores.wallets, user).await?;
        let Some(ws) = wallet.state() else {
            warn!(alliance = %id, %period, user, "a credited user has no wallet; the credit waits");
            return Ok(false);
        };
        if ws.sla_credits.contains(&credit_id) {
            return Ok(false);
        }
        let units = u64::try_from(amount)
            .map_err(|_| AllianceWorkError::Command(AllianceError::AmountTooLarge.into()))?;
        let dest = self.custody.wallet(user).address().to_string();
        let event = self
            .transfer(id, period, &format!("user:{user}"), &dest, amount)
            .await?;
        Exec::<Wallet>::new(&self.stores.wallets, user, self.meta(id, period))
            .run(|_| {
                Ok(WalletCommand::RecordSlaCredit {
                    credit_id: credit_id.clone(),
                    amount: TftAmount::from_base_units(units),
                    transfer: ChainEventRef {
                        block_number: event.block_number,
                        event_index: event.event_index,
                    },
                    at: Utc::now(),
                })
            })
            .await?;
        info!(alliance = %id, %period, user, amount, "SLA credit sent");
        Ok(true)
    }

    /// Sends `amount` from the alliance's account to `dest`, tagged for
    /// (`period`, `recipient`), unless the chain already has it; the
    /// remark's event. Public so that a test can leave a transfer made and
    /// not recorded, as a worker killed at the worst moment would.
    pub async fn transfer(
        &self,
        id: &str,
        period: Period,
        recipient: &str,
        dest: &str,
        amount: u128,
    ) -> Result<EventId, AllianceWorkError> {
        let key = (id, period.to_string(), recipient);
        let known: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT from_block, transfer FROM alliance_transfers
              WHERE alliance_id = $1 AND period = $2 AND recipient = $3",
        )
        .bind(key.0)
        .bind(&key.1)
        .bind(key.2)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(done) = known
            .as_ref()
            .and_then(|(_, t)| t.as_deref())
            .and_then(parse_event)
        {
            return Ok(done);
        }
        let from_block = match known {
            Some((from, _)) => u32::try_from(from).unwrap_or(0),
            None => {
                let best = self.chain.latest_block().await?.number;
                sqlx::query(
                    "INSERT INTO alliance_transfers
                        (alliance_id, period, recipient, amount, dest, from_block, started_at)
                     VALUES ($1, $2, $3, $4::numeric, $5, $6, now()) ON CONFLICT DO NOTHING",
                )
                .bind(key.0)
                .bind(&key.1)
                .bind(key.2)
                .bind(amount.to_string())
                .bind(dest)
                .bind(i64::from(best))
                .execute(&self.pool)
                .await?;
                sqlx::query_scalar::<_, i64>(
                    "SELECT from_block FROM alliance_transfers
                      WHERE alliance_id = $1 AND period = $2 AND recipient = $3",
                )
                .bind(key.0)
                .bind(&key.1)
                .bind(key.2)
                .fetch_one(&self.pool)
                .await
                .map(|b| u32::try_from(b).unwrap_or(0))?
            }
        };
        let signer = self.custody.alliance(id);
        let tag = remark(id, period, recipient);
        let event = match self
            .chain
            .find_remark(signer.address(), remark_hash(&tag), from_block)
            .await?
        {
            Some(seen) => {
                info!(alliance = %id, %period, recipient, "the transfer was already on chain");
                seen
            }
            None => {
                let receipt = self
                    .chain
                    .transfer_with_remark(&signer, dest, amount, &tag)
                    .await?;
                receipt
                    .event("system", "Remarked")
                    .map(|e| e.id)
                    .ok_or_else(|| {
                        ChainError::Unavailable("the transfer emitted no Remarked event".into())
                    })?
            }
        };
        sqlx::query(
            "UPDATE alliance_transfers SET transfer = $4
              WHERE alliance_id = $1 AND period = $2 AND recipient = $3",
        )
        .bind(key.0)
        .bind(&key.1)
        .bind(key.2)
        .bind(event_text(event))
        .execute(&self.pool)
        .await?;
        Ok(event)
    }
}
