//! Credentials 2Bot accepts: static bearer tokens and JWT verification keys.
//!
//! A JWT key carries the algorithms it admits, pinned to its type: an HMAC secret
//! admits HS256/384/512 only, an RSA key RS*/PS* only, an EC key ES256/384, an Ed25519
//! key EdDSA. `alg: none` and HS-signed-with-the-public-key tokens therefore never
//! verify. Neither kind of secret is ever printed (`Debug` redacts it).

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A static bearer token and its name (the principal).
#[derive(Clone)]
pub struct StaticToken {
    /// The principal's name.
    pub name: String,
    /// The secret.
    pub token: String,
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticToken({}, <redacted>)", self.name)
    }
}

/// Why a key was not taken as a JWT verification key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM text is none of the public key types we verify with.
    #[error("not a PEM RSA, EC or Ed25519 public key")]
    NotPublicPem,
    /// The JWK is marked for encryption, not signatures.
    #[error("an encryption key (use=enc)")]
    Encryption,
    /// An EC key on a curve with no JWS algorithm we admit.
    #[error("unsupported curve {0:?}")]
    Curve(EllipticCurve),
    /// An HMAC key: a JWKS is public, so taking it would let anyone mint tokens.
    #[error("a symmetric (oct) key; HMAC keys are never taken from a JWKS")]
    Symmetric,
    /// A key type we do not verify with.
    #[error("an unsupported key type")]
    KeyType,
    /// The key's `alg` names an algorithm of another key family.
    #[error("algorithm {0:?} does not fit the key type")]
    Algorithm(KeyAlgorithm),
    /// The key's parameters did not decode.
    #[error("{0}")]
    Decode(#[from] jsonwebtoken::errors::Error),
}

/// A JWT key and the algorithms it admits.
#[derive(Clone)]
pub struct JwtKey {
    pub(super) key: DecodingKey,
    pub(crate) algorithms: Vec<Algorithm>,
    /// The JWKS `kid`; `None` for keys configured directly.
    pub(super) kid: Option<String>,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JwtKey({:?}, {:?}, <redacted>)",
            self.kid, self.algorithms
        )
    }
}

impl JwtKey {
    /// An HMAC secret: HS256, HS384, HS512.
    pub fn secret(secret: &[u8]) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            algorithms: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            kid: None,
        }
    }

    /// A PEM public key; its type decides the algorithms.
    pub fn public_pem(pem: &[u8]) -> Result<Self, KeyError> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self {
                key,
                algorithms: RSA_ALGORITHMS.to_vec(),
                kid: None,
            });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Self {
                key,
                algorithms: vec![Algorithm::ES256, Algorithm::ES384],
                kid: None,
            });
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(Self {
                key,
                algorithms: vec![Algorithm::EdDSA],
                kid: None,
            });
        }
        Err(KeyError::NotPublicPem)
    }

    /// A signing key from a JWKS. Only asymmetric signature keys are taken: a JWKS is
    /// public, so an `oct` (HMAC) key from it would let anyone mint tokens.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            return Err(KeyError::Encryption);
        }
        let family: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match &ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                other => return Err(KeyError::Curve(other.clone())),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(KeyError::Symmetric);
            }
            _ => return Err(KeyError::KeyType),
        };
        // A key that names its algorithm admits that one only, and it must fit the key type.
        let algorithms = match jwk.common.key_algorithm {
            None => family,
            Some(named) => match Algorithm::try_from(named) {
                Ok(alg) if family.contains(&alg) => vec![alg],
                _ => return Err(KeyError::Algorithm(named)),
            },
        };
        let key = DecodingKey::from_jwk(jwk)?;
        Ok(Self {
            key,
            algorithms,
            kid: jwk.common.key_id.clone(),
        })
    }
}

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Parse `name:token` entries (comma- or newline-separated; `#` starts a comment line).
pub fn parse_tokens(text: &str) -> Vec<StaticToken> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.starts_with('#'))
        .enumerate()
        .map(|(i, entry)| match entry.split_once(':') {
            Some((name, token)) if !name.is_empty() && !token.is_empty() => StaticToken {
                name: name.to_owned(),
                token: token.to_owned(),
            },
            _ => StaticToken {
                name: format!("token-{}", i + 1),
                token: entry.to_owned(),
            },
        })
        .collect()
}
