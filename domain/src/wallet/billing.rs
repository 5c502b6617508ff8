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

/// Decides `RecordSlaCredit`: an alliance's SLA credit to this user, once
/// per credit id (any other command decides nothing).
pub(super) fn decide_sla_credit(
    s: &WalletState,
    command: WalletCommand,
) -> Result<Vec<WalletEvent>, WalletError> {
    let WalletCommand::RecordSlaCredit {
        credit_id,
        amount,
        transfer,
        at,
    } = command
    else {
        return Ok(vec![]);
    };
    if s.sla_credits.contains(&credit_id) || amount.base_units() == 0 {
        return Ok(vec![]);
    }
    if credit_id.trim().is_empty() || credit_id.len() > super::values::MAX_REASON {
        return Err(
            crate::deployment::SpecError::new("credit_id", "must be 1 to 500 characters").into(),
        );
    }
    Ok(vec![WalletEvent::SlaCreditReceived {
        credit_id,
        amount,
        transfer,
        at,
    }])
}

/// Applies `SlaCreditReceived`: a credit line on the ledger.
pub(super) fn apply_sla_credit(s: &mut WalletState, event: &WalletEvent) {
    let WalletEvent::SlaCreditReceived {
        credit_id,
        amount,
        at,
        ..
    } = event
    else {
        return;
    };
    s.sla_credits.insert(credit_id.clone());
    s.post(
        super::values::EntryKind::SlaCredit,
        i128::from(amount.base_units()),
        credit_id,
        *at,
    );
}
