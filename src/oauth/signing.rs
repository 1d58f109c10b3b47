//! One signing key of the built-in authorization server: ES256 (P-256), its `kid` (the
//! RFC 7638 thumbprint), its public JWK for `jwks_uri` and the resource server's
//! verifier, so built-in tokens are checked by exactly the code that checks an external
//! server's. The set of keys and their rotation live in `keys.rs`, the keys themselves
//! in the state store; the key file older 2Bots kept (`oauth-signing-key.pem`) is read
//! here once, to move it in.

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde::Serialize;

use crate::auth::{JwtKey, KeyError};

/// The key file's name inside `TWOBOT_STATE_DIR`.
pub const KEY_FILE: &str = "oauth-signing-key.pem";

/// Why the signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The old key file exists but cannot be read.
    #[error("{path}: cannot be read: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no P-256 private key.
    #[error(
        "{path}: not a PKCS#8 PEM P-256 private key ({reason}); move it away to have a new key made"
    )]
    NotAKey {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        reason: PemError,
    },
    /// The key is group- or world-accessible.
    #[error("{path}: mode {mode:o} lets other users read the signing key; chmod 600 it")]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Signing failed (not expected with a key that loaded).
    #[error("cannot sign a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
    /// The key set holds no key that signs now.
    #[error("cannot sign a token: no signing key is loaded")]
    NoKey,
    /// A new key could not be made (not expected: the randomness or the encoder failed).
    #[error("cannot sign a token: {0}")]
    Key(#[source] PemError),
}

/// Why a PEM did not become a signing key, or a new one could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The text is not a PKCS#8 EC private key.
    #[error("{0}")]
    Parse(jsonwebtoken::errors::Error),
    /// Its public JWK, thumbprint or verifier could not be derived.
    #[error("{0}")]
    Public(jsonwebtoken::errors::Error),
    /// The resource server's verifier refused the public JWK.
    #[error("{0}")]
    Verify(#[from] KeyError),
    /// The operating system gave no randomness.
    #[error("{0}")]
    Random(getrandom::Error),
    /// A fresh key could not be written as PKCS#8 PEM.
    #[error("{0}")]
    Encode(p256::pkcs8::Error),
}

/// The private key, its `kid` and its public JWK.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    jwk: Jwk,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.kid)
    }
}

impl SigningKey {
    /// A new key, with its PKCS#8 PEM (for the store).
    pub fn generate() -> Result<(Self, String), SigningError> {
        let pem = new_pem().map_err(SigningError::Key)?;
        let key = Self::from_pem(&pem).map_err(SigningError::Key)?;
        Ok((key, pem))
    }

    /// The PEM of the key file an older 2Bot kept in `dir`, if there is one, refused if
    /// other users may read it (it was the signing key: whoever read it could mint
    /// tokens) or if it holds no key. Read once, to move the key into the store.
    pub fn read_legacy(dir: &Path) -> Result<Option<(PathBuf, String)>, SigningError> {
        let path = dir.join(KEY_FILE);
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SigningError::Read { path, source }),
        };
        let mode = std::fs::metadata(&path)
            .map_err(|source| SigningError::Read {
                path: path.clone(),
                source,
            })
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))?;
        if mode & 0o077 != 0 {
            return Err(SigningError::Exposed {
                path,
                mode: mode & 0o777,
            });
        }
        if let Err(reason) = Self::from_pem(&pem) {
            return Err(SigningError::NotAKey { path, reason });
        }
        Ok(Some((path, pem)))
    }

    /// A key from its PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<Self, PemError> {
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(PemError::Parse)?;
        let mut jwk =
            Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(PemError::Public)?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(PemError::Public)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(PemError::Public)?;
        Ok(Self {
            encoding,
            decoding,
            jwk,
            kid,
        })
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (with its `kid`; no private part).
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The public key as the resource server's verifier takes it.
    pub fn verification_key(&self) -> Result<JwtKey, KeyError> {
        JwtKey::from_jwk(&self.jwk)
    }

    /// Sign `claims` as an RFC 9068 access token (`typ: at+jwt`).
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, SigningError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(SigningError::Sign)
    }
}

impl SigningKey {
    /// The claims of an access token this key signed (`typ: at+jwt`, its `kid`), expired
    /// or not: what the revocation endpoint needs to find the token's grant. `None` for
    /// anything else.
    pub fn own_claims(&self, token: &str) -> Option<serde_json::Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::ES256
            || header.typ.as_deref() != Some("at+jwt")
            || header.kid.as_deref() != Some(self.kid.as_str())
        {
            return None;
        }
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        // Revoking an expired token is allowed (RFC 7009 §2.2); the signature is what counts.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// A fresh P-256 private key as PKCS#8 PEM, from the operating system's randomness.
fn new_pem() -> Result<String, PemError> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(PemError::Random)?;
        // A value of zero or beyond the group order is not a key (odds ~2^-32); draw again.
        if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
            return key
                .to_pkcs8_pem(LineEnding::LF)
                .map(|pem| pem.to_string())
                .map_err(PemError::Encode);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_generated_key_reads_back_from_its_pem_with_the_same_kid_and_publishes_no_private_part() {
        let (key, pem) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(key.kid(), again.kid());
        let jwk = serde_json::to_value(key.jwk()).unwrap();
        assert_eq!(jwk["kid"], key.kid());
        assert_eq!(jwk["crv"], "P-256");
        assert!(jwk.get("d").is_none(), "no private part");
        assert_ne!(SigningKey::generate().unwrap().0.kid(), key.kid());
    }

    #[test]
    fn an_old_key_file_is_read_only_when_private_and_a_key() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SigningKey::read_legacy(dir.path()).unwrap().is_none());
        let path = dir.path().join(KEY_FILE);
        let (key, pem) = SigningKey::generate().unwrap();
        std::fs::write(&path, &pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, read) = SigningKey::read_legacy(dir.path()).unwrap().unwrap();
        assert_eq!(SigningKey::from_pem(&read).unwrap().kid(), key.kid());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::read_legacy(dir.path()).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::write(&path, "junk").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = SigningKey::read_legacy(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a PKCS#8"), "{err}");
    }

    #[test]
    fn a_signed_token_verifies_with_the_published_key_and_says_at_jwt() {
        let (key, _) = SigningKey::generate().unwrap();
        let token = key
            .sign(&serde_json::json!({"sub": "operator", "aud": "r", "exp": 4_000_000_000u64}))
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["r"]);
        jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(key.jwk()).unwrap(),
            &validation,
        )
        .unwrap();
        assert!(key.verification_key().is_ok());
    }

    #[test]
    fn only_this_key_s_access_tokens_are_its_own_expired_or_not() {
        let (key, _) = SigningKey::generate().unwrap();
        let expired = key
            .sign(&serde_json::json!({"gid": "g_1", "exp": 1}))
            .unwrap();
        assert_eq!(key.own_claims(&expired).unwrap()["gid"], "g_1");
        let (other, _) = SigningKey::generate().unwrap();
        let foreign = other.sign(&serde_json::json!({"gid": "g_1"})).unwrap();
        assert!(key.own_claims(&foreign).is_none(), "another key's token");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid().to_owned());
        let untyped =
            jsonwebtoken::encode(&header, &serde_json::json!({"gid": "g_1"}), &key.encoding)
                .unwrap();
        assert!(key.own_claims(&untyped).is_none(), "not an at+jwt");
        assert!(key.own_claims("rt_not-a-jwt").is_none());
    }
}
