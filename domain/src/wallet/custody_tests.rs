//! The custodial side: the chain twin and the treasury's transfers.

use super::*;

fn twin(address: &str, twin_id: u32) -> WalletCommand {
    WalletCommand::RecordChainTwin {
        address: address.into(),
        twin_id,
        at: t0(),
    }
}

fn start(n: u32) -> WalletCommand {
    WalletCommand::StartChainTransfer {
        top_up_id: top_up_id(n),
        to: "5Custodial".into(),
        from_block: 7,
        at: t0(),
    }
}

fn started(n: u32, amount: TftAmount) -> WalletEvent {
    WalletEvent::ChainTransferStarted {
        top_up_id: top_up_id(n),
        amount,
        to: "5Custodial".into(),
        from_block: 7,
        at: t0(),
    }
}

fn seen(block_number: u32, event_index: u32) -> ChainEventRef {
    ChainEventRef {
        block_number,
        event_index,
    }
}

#[test]
fn the_chain_twin_is_recorded_once_and_never_replaced() {
    let w = Wallet::given(vec![opened()]);
    let recorded = w.when(twin("5Custodial", 10_001)).then_accepted();
    assert_eq!(
        recorded.state().and_then(|s| s.chain_account.clone()),
        Some(ChainAccount {
            address: "5Custodial".into(),
            twin_id: 10_001
        })
    );
    recorded
        .when(twin("5Custodial", 10_001))
        .then_expect_no_events();
    assert!(matches!(
        recorded.decide(twin("5Other", 10_002)),
        Err(WalletError::ChainAccountConflict { .. })
    ));
}

#[test]
fn a_credited_top_up_is_transferred_once() {
    let amount = tft(500);
    let w = Wallet::given(vec![
        opened(),
        created(1, 500, cent_price(), amount),
        credited(1, amount),
    ]);
    assert_eq!(w.decide(start(1)), Ok(vec![started(1, amount)]));
    let started_once = w.when(start(1)).then_accepted();
    started_once.when(start(1)).then_expect_no_events();
    let done = started_once
        .when(WalletCommand::CompleteChainTransfer {
            top_up_id: top_up_id(1),
            event: seen(8, 2),
            at: t0(),
        })
        .then_accepted();
    let transfer = done
        .state()
        .and_then(|s| s.chain_transfers.get(&top_up_id(1)).cloned());
    assert_eq!(transfer.and_then(|t| t.done), Some(seen(8, 2)));
    done.when(WalletCommand::CompleteChainTransfer {
        top_up_id: top_up_id(1),
        event: seen(9, 0),
        at: t0(),
    })
    .then_expect_no_events();
}

#[test]
fn only_a_credited_top_up_is_transferred() {
    let w = Wallet::given(vec![opened(), created(1, 500, cent_price(), tft(500))]);
    w.when(start(1))
        .then_expect_error(WalletError::TopUpNotCredited(top_up_id(1)));
    w.when(start(2))
        .then_expect_error(WalletError::UnknownTopUp(top_up_id(2)));
    w.when(WalletCommand::CompleteChainTransfer {
        top_up_id: top_up_id(1),
        event: seen(1, 0),
        at: t0(),
    })
    .then_expect_error(WalletError::ChainTransferNotStarted(top_up_id(1)));
}
