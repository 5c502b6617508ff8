//! Proving control of a TFChain account: SS58 addresses decoded to their
//! 32-byte public key (checksum checked), and sr25519 / ed25519 signatures
//! verified as Substrate wallets make them.

use blake2::{Blake2b512, Digest};
use marketplace_domain::wallet::KeyType;

/// Why an address is not a usable SS58 account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ss58Error {
    /// Not base58.
    #[error("not base58")]
    NotBase58,
    /// Not a prefix, 32-byte key and 2-byte checksum.
    #[error("not an SS58 account address of a 32-byte key")]
    BadLength,
    /// The checksum does not match.
    #[error("SS58 checksum mismatch")]
    BadChecksum,
}

/// The public key an SS58 address encodes: base58 of
/// `prefix (1 or 2 bytes) ‖ key (32) ‖ blake2b-512("SS58PRE" ‖ prefix ‖ key)[..2]`.
pub fn ss58_public_key(address: &str) -> Result<[u8; 32], Ss58Error> {
    let bytes = bs58::decode(address)
        .into_vec()
        .map_err(|_| Ss58Error::NotBase58)?;
    let prefix_len = match bytes.first() {
        Some(b) if *b < 64 => 1,
        Some(b) if *b < 128 => 2,
        _ => return Err(Ss58Error::BadLength),
    };
    if bytes.len() != prefix_len + 32 + 2 {
        return Err(Ss58Error::BadLength);
    }
    let (body, checksum) = bytes.split_at(prefix_len + 32);
    let mut hasher = Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(body);
    if hasher.finalize()[..2] != *checksum {
        return Err(Ss58Error::BadChecksum);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&body[prefix_len..]);
    Ok(key)
}

/// Encodes a public key as an SS58 address under `prefix` (< 64; TFChain uses 42).
pub fn ss58_address(key: &[u8; 32], prefix: u8) -> String {
    let mut body = vec![prefix & 0x3f];
    body.extend_from_slice(key);
    let mut hasher = Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(&body);
    let hash = hasher.finalize();
    body.extend_from_slice(&hash[..2]);
    bs58::encode(body).into_string()
}

/// Reads a signature given as hex, with or without `0x`.
pub fn parse_signature(text: &str) -> Option<[u8; 64]> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// Whether `signature` signs `message` under the account's key. Substrate
/// wallets (polkadot.js `signRaw`) sign `<Bytes>message</Bytes>`; either
/// form is accepted. sr25519 uses Substrate's signing context `substrate`.
pub fn verify(
    key_type: KeyType,
    public_key: &[u8; 32],
    message: &str,
    signature: &[u8; 64],
) -> bool {
    let wrapped = format!("<Bytes>{message}</Bytes>");
    let candidates = [message.as_bytes(), wrapped.as_bytes()];
    match key_type {
        KeyType::Sr25519 => {
            let (Ok(key), Ok(sig)) = (
                schnorrkel::PublicKey::from_bytes(public_key),
                schnorrkel::Signature::from_bytes(signature),
            ) else {
                return false;
            };
            candidates
                .iter()
                .any(|m| key.verify_simple(b"substrate", m, &sig).is_ok())
        }
        KeyType::Ed25519 => {
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
                return false;
            };
            let sig = ed25519_dalek::Signature::from_bytes(signature);
            candidates
                .iter()
                .any(|m| key.verify_strict(m, &sig).is_ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alice_well_known_address_decodes_to_her_key() {
        // Substrate's dev account //Alice (sr25519), generic prefix 42.
        let key =
            ss58_public_key("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY").expect("valid");
        assert_eq!(
            hex::encode(key),
            "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
        );
        assert_eq!(
            ss58_address(&key, 42),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        assert_eq!(
            ss58_public_key("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ"),
            Err(Ss58Error::BadChecksum)
        );
    }

    #[test]
    fn signatures_verify_only_under_their_key_and_message() {
        let kp = schnorrkel::Keypair::generate();
        let msg = "link me";
        let sig = kp.sign_simple(b"substrate", msg.as_bytes()).to_bytes();
        let pk = kp.public.to_bytes();
        assert!(verify(KeyType::Sr25519, &pk, msg, &sig));
        assert!(!verify(KeyType::Sr25519, &pk, "link you", &sig));
        assert!(!verify(KeyType::Ed25519, &pk, msg, &sig));
        let wrapped = kp
            .sign_simple(b"substrate", format!("<Bytes>{msg}</Bytes>").as_bytes())
            .to_bytes();
        assert!(verify(KeyType::Sr25519, &pk, msg, &wrapped));

        let ed = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        use ed25519_dalek::Signer;
        let sig = ed.sign(msg.as_bytes()).to_bytes();
        let pk = ed.verifying_key().to_bytes();
        assert!(verify(KeyType::Ed25519, &pk, msg, &sig));
        assert!(!verify(KeyType::Ed25519, &pk, "other", &sig));
        assert_eq!(
            parse_signature(&format!("0x{}", hex::encode(sig))),
            Some(sig)
        );
    }
}
