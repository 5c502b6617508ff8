//! Ids derived from what caused them, so that a retry of the same cause
//! (the same Idempotency-Key, the same auto top-up attempt) targets the same
//! aggregate or entity, and the same Stripe object, instead of a new one.
//!
//! Each kind of id has its own namespace; the namespaces' values are part
//! of stored data (ids already handed out) and never change.

use uuid::Uuid;

/// Deployments created with an Idempotency-Key.
const DEPLOYMENT: Uuid = Uuid::from_u128(0x6d61_726b_6574_706c_6163_652d_6465_706c);
/// Wallet entities (link challenges, card top-ups) created with an
/// Idempotency-Key.
const WALLET: Uuid = Uuid::from_u128(0x7761_6c6c_6574_2d69_6473_2d76_3100_0000);
/// Automatic top-ups, one per wallet version at which one was decided.
const AUTO_TOP_UP: Uuid = Uuid::from_u128(0x6175_746f_2d74_6f70_2d75_7000_0000_0001);
/// The top-ups paid subscription invoices are recorded as, one per invoice.
const SUBSCRIPTION_INVOICE: Uuid = Uuid::from_u128(0x7375_6273_2d69_6e76_6f69_6365_0000_0001);

/// A new deployment's id: derived from the caller's Idempotency-Key when
/// there is one, random otherwise.
pub fn deployment(subject: &str, idempotency_key: Option<&str>) -> Uuid {
    match idempotency_key {
        Some(key) => Uuid::new_v5(&DEPLOYMENT, format!("{subject}\n{key}").as_bytes()),
        None => Uuid::new_v4(),
    }
}

/// A new wallet entity's id (`kind` is `link` or `top-up`): derived from
/// the caller's Idempotency-Key when there is one, random otherwise.
pub fn wallet_entity(kind: &str, subject: &str, idempotency_key: Option<&str>) -> Uuid {
    match idempotency_key {
        Some(key) => Uuid::new_v5(&WALLET, format!("{kind}\n{subject}\n{key}").as_bytes()),
        None => Uuid::new_v4(),
    }
}

/// The automatic top-up decided for `wallet_id` at wallet version
/// `version`: a worker that crashed after creating its PaymentIntent finds
/// the same one again.
pub fn auto_top_up(wallet_id: &str, version: usize) -> Uuid {
    Uuid::new_v5(&AUTO_TOP_UP, format!("{wallet_id}\n{version}").as_bytes())
}

/// The top-up a subscription's paid invoice is recorded as: the same
/// invoice reported again targets the same top-up.
pub fn subscription_invoice(wallet_id: &str, invoice_id: &str) -> Uuid {
    Uuid::new_v5(
        &SUBSCRIPTION_INVOICE,
        format!("{wallet_id}\n{invoice_id}").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gives_the_same_id_and_kinds_do_not_collide() {
        assert_eq!(
            deployment("alice", Some("k")),
            deployment("alice", Some("k"))
        );
        assert_ne!(deployment("alice", Some("k")), deployment("bob", Some("k")));
        assert_ne!(deployment("alice", None), deployment("alice", None));
        assert_ne!(
            wallet_entity("link", "alice", Some("k")),
            wallet_entity("top-up", "alice", Some("k"))
        );
        assert_eq!(auto_top_up("alice", 3), auto_top_up("alice", 3));
        assert_ne!(auto_top_up("alice", 3), auto_top_up("alice", 4));
        assert_eq!(
            subscription_invoice("alice", "in_1"),
            subscription_invoice("alice", "in_1")
        );
        assert_ne!(
            subscription_invoice("alice", "in_1"),
            subscription_invoice("alice", "in_2")
        );
    }
}
