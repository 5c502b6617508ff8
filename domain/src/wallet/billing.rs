//! The chain's bills on the wallet's twin's contracts. The chain takes the
//! TFT from the custodial account itself (`ContractBilled`); the wallet
//! records what it took so that its ledger keeps mirroring that account.
//! Bills arrive in chain order: one whose event is not newer than the last
//! recorded was already recorded.

use super::aggregate::WalletState;
use super::commands::WalletCommand;
use super::errors::WalletError;
use super::events::WalletEvent;
use super::values::LastBill;
use crate::chain::is_new;

/// Decides `RecordBill` (any other command decides nothing).
pub(super) fn decide(
    s: &WalletState,
    command: WalletCommand,
) -> Result<Vec<WalletEvent>, WalletError> {
    let WalletCommand::RecordBill {
        bill,
        deployment_id,
        at,
    } = command
    else {
        return Ok(vec![]);
    };
    if !is_new(s.last_bill.map(|b| b.event), bill.event) || bill.amount.base_units() == 0 {
        return Ok(vec![]);
    }
    Ok(vec![WalletEvent::BillPaid {
        bill,
        deployment_id,
        at,
    }])
}

/// Applies `BillPaid` (any other event changes nothing here).
pub(super) fn apply(s: &mut WalletState, event: &WalletEvent) {
    let WalletEvent::BillPaid {
        bill,
        deployment_id,
        ..
    } = event
    else {
        return;
    };
    let reference = deployment_id
        .clone()
        .unwrap_or_else(|| format!("contract-{}", bill.contract_id));
    s.post_bill(
        -i128::from(bill.amount.base_units()),
        &reference,
        bill.contract_id,
        bill.billed_at,
    );
    s.last_bill = Some(LastBill {
        event: bill.event,
        discount_level: bill.discount_level,
        billed_at: bill.billed_at,
    });
}
