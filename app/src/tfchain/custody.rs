//! The accounts the marketplace holds: one per wallet, and the treasury.
//!
//! Every key is derived from one master secret (a 32-byte sr25519 mini
//! secret, the "secret seed" `subkey` prints) by Substrate's hard
//! derivation, so nothing but the master secret needs keeping: a wallet's
//! account is `<master>//marketplace//<wallet id>`, the treasury's is
//! `<master>//treasury`. The master secret is configuration; it is never
//! written to the database, and neither it nor a derived secret is ever
//! printed (`Debug` shows addresses only).
//!
//! Hard derivation, as `sp-core` does it: a junction's chain code is the
//! SCALE encoding of the junction's text (a compact length, then the
//! bytes), zero-padded to 32 bytes, or its BLAKE2b-256 when longer; the
//! child's mini secret is schnorrkel's `hard_derive_mini_secret_key` of
//! the parent's secret key under that chain code, expanded in ed25519 mode.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use schnorrkel::derive::ChainCode;
use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey};
use secrecy::{ExposeSecret, SecretString};

use super::{ss58_address, SS58_PREFIX};

/// Why a master secret is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustodyError {
    /// Not `0x` and 64 hex digits.
    #[error("the chain master secret must be 0x followed by 64 hex digits (32 bytes)")]
    BadSeed,
}

/// The marketplace's custodial keys.
pub struct Custody {
    root: Keypair,
}

impl std::fmt::Debug for Custody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custody")
            .field("treasury", &self.treasury().address())
            .finish_non_exhaustive()
    }
}

impl Custody {
    /// From the master secret, `0x` and 64 hex digits.
    pub fn from_seed(seed: &SecretString) -> Result<Custody, CustodyError> {
        let text = seed.expose_secret().trim();
        let hex_part = text.strip_prefix("0x").ok_or(CustodyError::BadSeed)?;
        let bytes = hex::decode(hex_part).map_err(|_| CustodyError::BadSeed)?;
        let mini = MiniSecretKey::from_bytes(&bytes).map_err(|_| CustodyError::BadSeed)?;
        Ok(Custody {
            root: mini.expand_to_keypair(ExpansionMode::Ed25519),
        })
    }

    /// The account the marketplace holds for one wallet.
    pub fn wallet(&self, wallet_id: &str) -> Signer {
        Signer::new(derive(&self.root, &["marketplace", wallet_id]))
    }

    /// The treasury: where the TFT bought for card top-ups comes from.
    pub fn treasury(&self) -> Signer {
        Signer::new(derive(&self.root, &["treasury"]))
    }

    /// The account of one alliance's farm twin: where the chain pays the
    /// farm's share of its nodes' bills, and what payouts are sent from.
    pub fn alliance(&self, alliance_id: &str) -> Signer {
        Signer::new(derive(&self.root, &["alliance", alliance_id]))
    }

    /// Any account under the master secret, by its junctions (hard ones).
    pub fn derived(&self, junctions: &[&str]) -> Signer {
        Signer::new(derive(&self.root, junctions))
    }
}

fn derive(root: &Keypair, junctions: &[&str]) -> Keypair {
    junctions.iter().fold(root.clone(), |key, junction| {
        let (mini, _) = key
            .secret
            .hard_derive_mini_secret_key(Some(ChainCode(chain_code(junction))), b"");
        mini.expand_to_keypair(ExpansionMode::Ed25519)
    })
}

/// A junction's chain code: SCALE(text), padded or hashed to 32 bytes.
fn chain_code(junction: &str) -> [u8; 32] {
    let mut encoded = compact_len(junction.len());
    encoded.extend_from_slice(junction.as_bytes());
    let mut code = [0u8; 32];
    if encoded.len() > 32 {
        code.copy_from_slice(&Blake2b::<U32>::digest(&encoded));
    } else {
        code[..encoded.len()].copy_from_slice(&encoded);
    }
    code
}

/// SCALE's compact encoding of a length.
fn compact_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x3f => vec![(n as u8) << 2],
        0x40..=0x3fff => ((n as u16) << 2 | 0b01).to_le_bytes().to_vec(),
        0x4000..=0x3fff_ffff => ((n as u32) << 2 | 0b10).to_le_bytes().to_vec(),
        _ => {
            let bytes = (n as u64).to_le_bytes();
            let used = 8 - (n as u64).leading_zeros() as usize / 8;
            let mut out = vec![(((used - 4) as u8) << 2) | 0b11];
            out.extend_from_slice(&bytes[..used]);
            out
        }
    }
}

/// One custodial account's key: signs extrinsics and deployments.
#[derive(Clone)]
pub struct Signer {
    keypair: Keypair,
    address: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Signer {
    fn new(keypair: Keypair) -> Signer {
        let address = ss58_address(&keypair.public.to_bytes(), SS58_PREFIX);
        Signer { keypair, address }
    }

    /// The account's SS58 address (TFChain's prefix 42).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The account's sr25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.keypair.public.to_bytes()
    }

    /// An sr25519 signature of `message` in Substrate's `substrate` context,
    /// as the chain checks extrinsics and ZOS checks deployments.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.keypair.sign_simple(b"substrate", message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfchain::verify;
    use marketplace_domain::wallet::KeyType;

    fn custody(seed: &str) -> Custody {
        Custody::from_seed(&SecretString::from(seed.to_string())).expect("seed")
    }

    /// `subkey inspect //Alice`: the dev phrase's seed, hard-derived by
    /// `Alice`, is Alice's well-known account.
    #[test]
    fn derives_substrate_alice_from_the_dev_seed() {
        let dev = custody("0xfac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e");
        assert_eq!(
            dev.derived(&["Alice"]).address(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
    }

    #[test]
    fn each_wallet_has_its_own_stable_account() {
        let a = custody("0x0101010101010101010101010101010101010101010101010101010101010101");
        let b = custody("0x0202020202020202020202020202020202020202020202020202020202020202");
        assert_eq!(a.wallet("alice").address(), a.wallet("alice").address());
        assert_ne!(a.wallet("alice").address(), a.wallet("bob").address());
        assert_ne!(a.wallet("alice").address(), b.wallet("alice").address());
        assert_ne!(a.wallet("treasury").address(), a.treasury().address());
    }

    #[test]
    fn signatures_verify_under_the_derived_key() {
        let signer = custody("0x0303030303030303030303030303030303030303030303030303030303030303")
            .wallet("carol");
        let sig = signer.sign(b"deployment");
        assert!(verify(
            KeyType::Sr25519,
            &signer.public_key(),
            "deployment",
            &sig
        ));
        assert!(!verify(
            KeyType::Sr25519,
            &signer.public_key(),
            "other",
            &sig
        ));
    }

    #[test]
    fn refuses_malformed_seeds_and_never_prints_them() {
        for bad in [
            "",
            "0x12",
            "deadbeef",
            "0xzz01010101010101010101010101010101010101010101010101010101010101",
        ] {
            assert_eq!(
                Custody::from_seed(&SecretString::from(bad.to_string())).err(),
                Some(CustodyError::BadSeed),
                "{bad}"
            );
        }
        let seed = "0x0404040404040404040404040404040404040404040404040404040404040404";
        let shown = format!("{:?} {:?}", custody(seed), custody(seed).wallet("dave"));
        assert!(!shown.contains("0404"), "{shown}");
    }

    #[test]
    fn compact_lengths_follow_scale() {
        assert_eq!(compact_len(5), vec![20]);
        assert_eq!(compact_len(64), vec![0x01, 0x01]);
        assert_eq!(compact_len(16384), vec![0x02, 0x00, 0x01, 0x00]);
    }
}
