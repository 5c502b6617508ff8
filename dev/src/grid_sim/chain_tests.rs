//! The TFChain SIMULATOR's ledger, without HTTP.

use super::*;
use marketplace_app::tfchain::http::wire::AccountData;

fn ledger() -> Ledger {
    Ledger::new(1_000)
}

#[test]
fn blocks_are_six_seconds_of_the_clock_from_genesis() {
    let chain = ledger();
    assert_eq!(
        chain.block_at(1_000),
        Block {
            number: 0,
            timestamp: 1_000
        }
    );
    assert_eq!(
        chain.block_at(1_000 + 81 * 60),
        Block {
            number: 810,
            timestamp: 1_000 + 81 * 60
        }
    );
    assert_eq!(chain.block_at(1_013).number, 2);
    assert_eq!(chain.block_at(1_013).timestamp, 1_012);
}

#[test]
fn events_number_within_their_block_and_page_after_an_id() {
    let mut chain = ledger();
    let a = chain.block_at(1_000);
    let b = chain.block_at(1_060);
    let pending = || {
        vec![
            event("system", "Remarked", json!({})),
            event("x", "Y", json!({})),
        ]
    };
    let first = chain.record(a, pending());
    let second = chain.record(a, pending());
    let third = chain.record(b, pending());
    let ids: Vec<(u32, u32)> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|e| (e.id.block_number, e.id.event_index))
        .collect();
    assert_eq!(ids, [(0, 0), (0, 1), (0, 2), (0, 3), (10, 0), (10, 1)]);

    let after = chain
        .events(Some(second[0].id), 0, None, None, 100)
        .expect("kept");
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].id, second[1].id);
    let remarks = chain
        .events(None, 0, Some("system"), Some("Remarked"), 100)
        .expect("kept");
    assert_eq!(remarks.len(), 3);
    assert_eq!(
        chain
            .events(None, 0, Some("x"), None, 100)
            .expect("kept")
            .len(),
        3
    );
    assert_eq!(
        chain.events(None, 10, None, None, 100).expect("kept").len(),
        2
    );
    assert_eq!(chain.events(None, 0, None, None, 2).expect("kept").len(), 2);
}

#[test]
fn the_remark_hash_is_blake2b_256() {
    // BLAKE2b-256 of the empty input.
    assert_eq!(
        hex::encode(remark_hash(b"")),
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
    );
}

#[test]
fn a_transfer_needs_the_balance() {
    let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    let bob = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
    let mut accounts = BTreeMap::new();
    accounts.insert(
        alice.to_owned(),
        AccountInfo {
            nonce: 0,
            data: AccountData {
                free: 10,
                ..AccountData::default()
            },
        },
    );
    let call = |value: &str| {
        Call::new(
            "balances",
            "transferKeepAlive",
            json!({"dest": bob, "value": value}),
        )
    };
    assert_eq!(
        transfer(&mut accounts, alice, &call("11")).err(),
        Some(module("balances", "InsufficientBalance"))
    );
    let done = transfer(&mut accounts, alice, &call("4")).expect("transfer");
    assert_eq!(done.data["amount"], "4");
    assert_eq!(accounts[alice].data.free, 6);
    assert_eq!(accounts[bob].data.free, 4);
    assert!(matches!(
        transfer(
            &mut accounts,
            alice,
            &Call::new(
                "balances",
                "transferKeepAlive",
                json!({"dest": "nope", "value": "1"})
            )
        ),
        Err(Refusal::BadCall(_))
    ));
}
