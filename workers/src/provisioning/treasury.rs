//! The treasury worker: each credited card top-up's TFT goes from the
//! marketplace's treasury account to the user's custodial account, once.
//!
//! The wallet records the transfer as started (with the chain's best block)
//! before it is submitted, and as completed with the chain's reference of
//! its tag. The transfer is `utility.batchAll([transferKeepAlive,
//! remarkWithEvent(tag)])`, the tag naming the top-up; after a crash between
//! submitting and recording, the tag is looked for from the recorded block
//! on, so the transfer is found instead of sent twice. A transfer is only
//! ever submitted when no tag is found.

use std::sync::Arc;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use chrono::Utc;
use marketplace_app::bus::{load, Exec, Stores};
use marketplace_app::tfchain::{Chain, Custody, EventId};
use marketplace_app::EventMetadata;
use marketplace_domain::wallet::{ChainEventRef, Wallet, WalletCommand};
use sqlx::PgPool;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use crate::jobs::{Leased, Settle};

const WORKER: &str = "treasury";

/// The treasury worker.
#[derive(Clone)]
pub struct Treasury {
    stores: Arc<Stores>,
    chain: Arc<dyn Chain>,
    custody: Arc<Custody>,
}

/// The remark that tags a top-up's transfer.
pub fn tag(top_up_id: Uuid) -> Vec<u8> {
    format!("marketplace:top-up:{top_up_id}").into_bytes()
}

/// `system.Remarked`'s hash of a remark.
pub fn remark_hash(remark: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(remark).into()
}

impl Treasury {
    /// A worker paying from `custody`'s treasury.
    pub fn new(pool: &PgPool, chain: Arc<dyn Chain>, custody: Arc<Custody>) -> Self {
        Self {
            stores: Arc::new(Stores::new(pool)),
            chain,
            custody,
        }
    }

    /// Works one job (`<wallet id>/<top-up id>`).
    pub async fn handle(&self, job: Leased) -> Settle {
        let Some((wallet_id, top_up)) = job
            .job_id
            .rsplit_once('/')
            .and_then(|(w, t)| Some((w.to_string(), Uuid::parse_str(t).ok()?)))
        else {
            warn!(job = %job.job_id, "malformed chain transfer job; dropped");
            return Settle::Done;
        };
        let span = tracing::info_span!("treasury", wallet = %wallet_id, top_up = %top_up);
        match self.transfer(&wallet_id, top_up).instrument(span).await {
            Ok(()) => Settle::Done,
            Err(e) => Settle::Failed(e),
        }
    }

    async fn transfer(&self, wallet_id: &str, top_up_id: Uuid) -> Result<(), String> {
        let cause = format!("{WORKER}/{top_up_id}");
        let exec = || {
            Exec::<Wallet>::new(
                &self.stores.wallets,
                wallet_id,
                EventMetadata::for_worker(WORKER, &cause),
            )
        };
        let (wallet, _) = load(&self.stores.wallets, wallet_id)
            .await
            .map_err(|e| e.to_string())?;
        let Some(state) = wallet.state() else {
            return Err("no such wallet".into());
        };
        let transfer = match state.chain_transfers.get(&top_up_id) {
            Some(t) if t.done.is_some() => return Ok(()),
            Some(t) => t.clone(),
            None => {
                let block = self.chain.latest_block().await.map_err(|e| e.to_string())?;
                let to = self.custody.wallet(wallet_id).address().to_string();
                let done = exec()
                    .run(|_| {
                        Ok(WalletCommand::StartChainTransfer {
                            top_up_id,
                            to: to.clone(),
                            from_block: block.number,
                            at: Utc::now(),
                        })
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                done.aggregate
                    .state()
                    .and_then(|s| s.chain_transfers.get(&top_up_id).cloned())
                    .ok_or("the transfer did not start")?
            }
        };
        let treasury = self.custody.treasury();
        let remark = tag(top_up_id);
        let seen = self
            .chain
            .find_remark(
                treasury.address(),
                remark_hash(&remark),
                transfer.from_block,
            )
            .await
            .map_err(|e| e.to_string())?;
        let event = match seen {
            Some(event) => {
                info!(
                    block = event.block_number,
                    "the transfer was already on chain"
                );
                event
            }
            None => {
                let amount = u128::from(transfer.amount.base_units());
                let receipt = self
                    .chain
                    .transfer_with_remark(&treasury, &transfer.to, amount, &remark)
                    .await
                    .map_err(|e| format!("treasury transfer of {amount} units: {e}"))?;
                let remarked = receipt
                    .event("system", "Remarked")
                    .ok_or("the transfer emitted no Remarked event")?;
                info!(amount, to = %transfer.to, block = receipt.block.number, "treasury transfer on chain");
                remarked.id
            }
        };
        let EventId {
            block_number,
            event_index,
        } = event;
        exec()
            .run(|_| {
                Ok(WalletCommand::CompleteChainTransfer {
                    top_up_id,
                    event: ChainEventRef {
                        block_number,
                        event_index,
                    },
                    at: Utc::now(),
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}
