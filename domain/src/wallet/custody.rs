//! The wallet's custodial side: its chain account and twin, and the
//! treasury's transfers of credited top-ups to that account.
//!
//! A transfer is started before it is submitted (recording the chain's best
//! block then) and completed once its tag event is seen on chain, so a
//! crash between the two is settled by looking for the tag from that block
//! on: it is sent once, or not at all and then sent.

use super::aggregate::WalletState;
use super::commands::WalletCommand;
use super::errors::WalletError;
use super::events::WalletEvent;
use super::values::*;
use crate::wallet::TopUpStatus;

/// Decides a custodial command (any other command decides nothing).
pub(super) fn decide(
    s: &WalletState,
    command: WalletCommand,
) -> Result<Vec<WalletEvent>, WalletError> {
    use WalletCommand as C;
    use WalletEvent as E;
    match command {
        C::RecordChainTwin {
            address,
            twin_id,
            at,
        } => match &s.chain_account {
            Some(a) if a.address == address && a.twin_id == twin_id => Ok(vec![]),
            Some(a) => Err(WalletError::ChainAccountConflict {
                recorded: format!("{} (twin {})", a.address, a.twin_id),
            }),
            None => Ok(vec![E::ChainTwinRecorded {
                address,
                twin_id,
                at,
            }]),
        },
        C::StartChainTransfer {
            top_up_id,
            to,
            from_block,
            at,
        } => {
            if s.chain_transfers.contains_key(&top_up_id) {
                return Ok(vec![]);
            }
            let Some(t) = s.top_ups.values().find(|t| t.top_up_id == top_up_id) else {
                return Err(WalletError::UnknownTopUp(top_up_id));
            };
            if t.status != TopUpStatus::Credited {
                return Err(WalletError::TopUpNotCredited(top_up_id));
            }
            Ok(vec![E::ChainTransferStarted {
                top_up_id,
                amount: t.tft_amount,
                to,
                from_block,
                at,
            }])
        }
        C::CompleteChainTransfer {
            top_up_id,
            event,
            at,
        } => match s.chain_transfers.get(&top_up_id) {
            None => Err(WalletError::ChainTransferNotStarted(top_up_id)),
            Some(t) if t.done.is_some() => Ok(vec![]),
            Some(_) => Ok(vec![E::ChainTransferCompleted {
                top_up_id,
                event,
                at,
            }]),
        },
        _ => Ok(vec![]),
    }
}

/// Applies a custodial event (any other event changes nothing here).
pub(super) fn apply(s: &mut WalletState, event: &WalletEvent) {
    use WalletEvent as E;
    match event {
        E::ChainTwinRecorded {
            address, twin_id, ..
        } => {
            s.chain_account = Some(ChainAccount {
                address: address.clone(),
                twin_id: *twin_id,
            });
        }
        E::ChainTransferStarted {
            top_up_id,
            amount,
            to,
            from_block,
            ..
        } => {
            s.chain_transfers.insert(
                *top_up_id,
                ChainTransfer {
                    top_up_id: *top_up_id,
                    amount: *amount,
                    to: to.clone(),
                    from_block: *from_block,
                    done: None,
                },
            );
        }
        E::ChainTransferCompleted {
            top_up_id, event, ..
        } => {
            if let Some(t) = s.chain_transfers.get_mut(top_up_id) {
                t.done = Some(*event);
            }
        }
        _ => {}
    }
}

impl WalletState {
    /// TFT credited to the ledger that the treasury has not yet delivered
    /// on chain (transfers not started or not seen on chain): what the
    /// ledger is ahead of the chain account by, when nothing else differs.
    pub fn undelivered(&self) -> u128 {
        self.top_ups
            .values()
            .filter(|t| t.status == TopUpStatus::Credited)
            .filter(|t| {
                self.chain_transfers
                    .get(&t.top_up_id)
                    .is_none_or(|c| c.done.is_none())
            })
            .map(|t| u128::from(t.tft_amount.base_units()))
            .sum()
    }
}
