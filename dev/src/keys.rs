//! The signing key of `marketplace dev`: it mints tokens for local use and
//! publishes the matching JWKS. Only dev mode loads it; `serve` trusts only
//! its configured JWKS URL, issuer and audience.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::json;
use sha2::{Digest, Sha256};

/// What dev tokens carry: the API knows the issuer, to refuse it outside
/// dev mode.
pub use marketplace_api::auth::{DEV_AUDIENCE, DEV_ISSUER, DEV_ROLES_CLAIM};

/// An RSA key pair with its key id.
pub struct SigningKey {
    kid: String,
    private: RsaPrivateKey,
    encoding: EncodingKey,
}

impl SigningKey {
    /// A fresh 2048-bit key.
    pub fn generate() -> anyhow::Result<Self> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?;
        Self::from_private(private)
    }

    /// The key stored at `path`, created (mode 0600) if missing. Processes
    /// that start together (API replicas sharing a volume) end with one
    /// key: each writes its own to a private file and links it into place,
    /// which only the first one's link does; the others read the winner's.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if let Some(found) = Self::load(path)? {
            return Ok(found);
        }
        let key = Self::generate()?;
        let pem = key.private.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let own = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&own, pem.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o600))?;
        }
        let linked = std::fs::hard_link(&own, path);
        let _ = std::fs::remove_file(&own);
        match linked {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path)?
                .ok_or_else(|| anyhow::anyhow!("{} vanished while it was read", path.display())),
            Err(e) => Err(e.into()),
        }
    }

    fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let private = RsaPrivateKey::from_pkcs1_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("{} is not an RSA key: {e}", path.display()))?;
                Ok(Some(Self::from_private(private)?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn from_private(private: RsaPrivateKey) -> anyhow::Result<Self> {
        let pem = private.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        // The key id is a digest of the public modulus: stable across restarts.
        let digest = Sha256::digest(private.n().to_bytes_be());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..12]);
        Ok(Self {
            kid,
            private,
            encoding,
        })
    }

    /// The key id tokens carry in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWKS document.
    pub fn jwks(&self) -> JwkSet {
        let n = URL_SAFE_NO_PAD.encode(self.private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(self.private.e().to_bytes_be());
        let doc = json!({ "keys": [{ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": n, "e": e }] });
        serde_json::from_value(doc).unwrap_or(JwkSet { keys: Vec::new() })
    }

    /// Signs arbitrary claims with RS256 under this key's id.
    pub fn sign(&self, claims: &serde_json::Value) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// A dev token for `sub` with the given roles, valid for `ttl_secs`.
    pub fn mint_dev_token(
        &self,
        sub: &str,
        roles: &[&str],
        ttl_secs: i64,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        self.sign(&json!({
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_secs,
            DEV_ROLES_CLAIM: roles,
        }))
    }

    /// The public key in PEM (for tests that forge HS256 tokens with it).
    pub fn public_pem(&self) -> anyhow::Result<String> {
        use rsa::pkcs8::EncodePublicKey;
        Ok(self
            .private
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)?)
    }
}

/// The console's "sign in as" page mints its tokens with this key.
impl marketplace_api::console::DevTokens for SigningKey {
    fn mint(&self, sub: &str, roles: &[&str], ttl_secs: i64) -> anyhow::Result<String> {
        self.mint_dev_token(sub, roles, ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_creating_the_key_together_end_with_one_key() {
        let dir = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4()));
        let path = dir.join("dev-signing-key.pem");
        let kids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| SigningKey::load_or_create(&path).unwrap().kid().to_string()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let stored = SigningKey::load_or_create(&path).unwrap();
        assert!(kids.iter().all(|k| k == stored.kid()), "{kids:?}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary files stay behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
