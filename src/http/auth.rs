//! Bearer authentication for the MCP endpoint: static tokens and JWTs.
//!
//! Off in the default no-auth mode; turned on by environment alone
//! (`TWOBOT_ENABLE_NO_AUTH=false` plus a credential). [`Authenticator::verify`] is
//! the pure decision; [`AuthLayer`] puts the [`Principal`] into the request's
//! extensions and strips `Authorization` before anything inner sees it, refreshing
//! the JWKS (throttled) when a token names a key it does not know yet. A token is never logged and never reaches Codex.
//!
//! JWT algorithms are pinned to the key type: an HMAC secret admits HS256/384/512 only,
//! an RSA key RS*/PS* only, an EC key ES256/384, an Ed25519 key EdDSA. `alg: none` and
//! HS-signed-with-the-public-key tokens therefore never verify.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use axum::body::Body;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use super::jwks::Jwks;
use crate::job::Principal;

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

/// A JWT key and the algorithms it admits.
#[derive(Clone)]
pub struct JwtKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
    /// The JWKS `kid`; `None` for keys configured directly.
    kid: Option<String>,
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
    pub fn public_pem(pem: &[u8]) -> Result<Self, String> {
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
        Err("not a PEM RSA, EC or Ed25519 public key".to_owned())
    }

    /// A signing key from a JWKS. Only asymmetric signature keys are taken: a JWKS is
    /// public, so an `oct` (HMAC) key from it would let anyone mint tokens.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            return Err("an encryption key (use=enc)".to_owned());
        }
        let family: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match &ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                other => return Err(format!("unsupported curve {other:?}")),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(
                    "a symmetric (oct) key; HMAC keys are never taken from a JWKS".to_owned(),
                );
            }
            _ => return Err("an unsupported key type".to_owned()),
        };
        // A key that names its algorithm admits that one only, and it must fit the key type.
        let algorithms = match jwk.common.key_algorithm {
            None => family,
            Some(named) => match Algorithm::try_from(named) {
                Ok(alg) if family.contains(&alg) => vec![alg],
                _ => return Err(format!("algorithm {named:?} does not fit the key type")),
            },
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
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

/// How bearer tokens are checked.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Static tokens.
    pub tokens: Vec<StaticToken>,
    /// JWT keys (a secret and/or a public key).
    pub jwt_keys: Vec<JwtKey>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: String,
    /// Clock leeway, seconds.
    pub leeway_sec: u64,
    /// The JWKS URL, validated (its keys are passed to `verify`).
    pub jwks_url: Option<String>,
    /// Least time between two JWKS fetches triggered by unknown kids.
    pub jwks_min_refresh: std::time::Duration,
    /// Scopes every JWT must carry.
    pub required_scopes: Vec<String>,
    /// The protected-resource metadata URL, for `WWW-Authenticate`.
    pub resource_metadata_url: String,
}

/// Why a request was not authenticated. Details are logged, never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer token.
    #[error("no bearer token")]
    Missing,
    /// A token that does not verify.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A token whose signature verifies but whose claims or header 2Bot must not accept
    /// (no `iss` while an issuer is required, no `sub`, an unknown `crit` extension). The
    /// reason is sent to the caller: it names what the token lacks, nothing secret.
    #[error("invalid token: {0}")]
    Unacceptable(&'static str),
    /// A JWT whose `kid` matches no key we hold (a JWKS refresh may find it).
    #[error("no key with kid {0:?}")]
    UnknownKid(String),
    /// A valid token without a required scope.
    #[error("missing scope {0}")]
    InsufficientScope(String),
    /// More than one `Authorization` header: ambiguous, so refused (RFC 6750 §3.1).
    #[error("more than one Authorization header")]
    Repeated,
}

/// Longest `kid` considered; longer ones are refused before any lookup or refresh.
const MAX_KID_LEN: usize = 256;

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<serde_json::Value>,
}

/// The auth decisions (pure) and the rejection responses.
#[derive(Clone, Copy, Debug)]
pub struct Authenticator;

impl Authenticator {
    /// The decision: who presents `authorization`, or why nobody. `fetched` are the
    /// keys of the JWKS (if one is configured), tried alongside the configured keys.
    pub fn verify(
        config: &AuthConfig,
        fetched: &[JwtKey],
        authorization: Option<&HeaderValue>,
    ) -> Result<Principal, AuthError> {
        let token = bearer(authorization).ok_or(AuthError::Missing)?;
        for t in &config.tokens {
            if bool::from(t.token.as_bytes().ct_eq(token.as_bytes())) {
                return Ok(Principal::Token {
                    name: t.name.clone(),
                });
            }
        }
        if config.jwt_keys.is_empty() && config.jwks_url.is_none() {
            return Err(AuthError::Invalid("unknown static token".into()));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_LEN) {
            return Err(AuthError::Invalid("kid is too long".into()));
        }
        // RFC 7515 §4.1.11: a recipient that does not understand a header parameter listed
        // in `crit` must reject the token. 2Bot understands no extension at all.
        if header.crit.is_some() {
            return Err(AuthError::Unacceptable(
                "the token's header lists critical extensions (crit) that 2Bot does not understand",
            ));
        }
        // A key is a candidate when it admits the algorithm and, if both name a kid, the
        // kids match. The algorithm is never taken from the token alone.
        let candidates: Vec<&JwtKey> = config
            .jwt_keys
            .iter()
            .chain(fetched)
            .filter(|k| k.algorithms.contains(&header.alg))
            .filter(|k| match (&k.kid, &header.kid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(match header.kid {
                Some(kid) if config.jwks_url.is_some() => AuthError::UnknownKid(kid),
                _ => AuthError::Invalid(format!("algorithm {:?} is not accepted", header.alg)),
            });
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = config.leeway_sec;
        validation.validate_nbf = true;
        // `sub` and (with an issuer configured) `iss` are checked below, with reasons.
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.set_audience(&[&config.audience]);
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        let mut last = AuthError::Invalid("no key verified the token".into());
        for key in candidates {
            validation.algorithms = key.algorithms.clone();
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    // jsonwebtoken checks `iss` only when the token has one.
                    if config.issuer.is_some() && data.claims.iss.is_none() {
                        return Err(AuthError::Unacceptable(
                            "the token has no iss claim; this server requires its issuer (TWOBOT_JWT_ISSUER)",
                        ));
                    }
                    // Without a subject every such token would be one shared principal.
                    let Some(subject) = data.claims.sub.clone().filter(|s| !s.is_empty()) else {
                        return Err(AuthError::Unacceptable(
                            "the token has no sub claim; 2Bot keys threads and runs by issuer and subject",
                        ));
                    };
                    let scopes = scopes_of(&data.claims);
                    if let Some(missing) =
                        config.required_scopes.iter().find(|s| !scopes.contains(s))
                    {
                        return Err(AuthError::InsufficientScope(missing.clone()));
                    }
                    return Ok(Principal::Authenticated {
                        issuer: data.claims.iss,
                        subject,
                        scopes,
                    });
                }
                Err(e) => last = AuthError::Invalid(e.to_string()),
            }
        }
        Err(last)
    }

    fn reject(config: &AuthConfig, error: &AuthError, sent_token: bool) -> Response<Body> {
        let metadata = &config.resource_metadata_url;
        let (status, challenge) = match error {
            AuthError::InsufficientScope(_) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{metadata}\"",
                    config.required_scopes.join(" ")
                ),
            ),
            AuthError::Repeated => (
                StatusCode::BAD_REQUEST,
                format!(
                    "Bearer error=\"invalid_request\", error_description=\"more than one Authorization header\", resource_metadata=\"{metadata}\""
                ),
            ),
            AuthError::Unacceptable(reason) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{reason}\", resource_metadata=\"{metadata}\""
                ),
            ),
            _ if sent_token => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer error=\"invalid_token\", resource_metadata=\"{metadata}\""),
            ),
            _ => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer resource_metadata=\"{metadata}\""),
            ),
        };
        let body = match (status, error) {
            (StatusCode::FORBIDDEN, _) => r#"{"error":"insufficient_scope"}"#.to_owned(),
            (StatusCode::BAD_REQUEST, _) => {
                r#"{"error":"invalid_request","reason":"more than one Authorization header"}"#
                    .to_owned()
            }
            (_, AuthError::Unacceptable(reason)) => {
                serde_json::json!({"error": "invalid_token", "reason": reason}).to_string()
            }
            _ => r#"{"error":"unauthorized"}"#.to_owned(),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// The auth layer of the MCP endpoint; `config: None` is no-auth mode.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    config: Option<Arc<AuthConfig>>,
    jwks: Option<Arc<Jwks>>,
}

impl AuthLayer {
    /// No-auth mode: every caller is [`Principal::Anonymous`].
    pub fn disabled() -> Self {
        Self {
            config: None,
            jwks: None,
        }
    }

    /// Require a valid bearer token; `jwks` supplies fetched keys when configured.
    pub fn new(config: AuthConfig, jwks: Option<Arc<Jwks>>) -> Self {
        Self {
            config: Some(Arc::new(config)),
            jwks,
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct Authenticate<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> Service<Request<B>> for Authenticate<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone is not ready; the one that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(config) = self.layer.config.clone() else {
            request.extensions_mut().insert(Principal::Anonymous);
            return Box::pin(inner.call(request));
        };
        let jwks = self.layer.jwks.clone();
        Box::pin(async move {
            let header = request.headers().get(AUTHORIZATION).cloned();
            let (seen, fetched) = jwks.as_ref().map(|j| j.snapshot()).unwrap_or_default();
            let mut result = if request
                .headers()
                .get_all(AUTHORIZATION)
                .iter()
                .nth(1)
                .is_some()
            {
                // Which one would count is anybody's guess (proxies differ): neither.
                Err(AuthError::Repeated)
            } else {
                Authenticator::verify(&config, &fetched, header.as_ref())
            };
            if let (Err(AuthError::UnknownKid(kid)), Some(jwks)) = (&result, &jwks) {
                tracing::debug!(kid = %kid, "unknown kid; refreshing the JWKS");
                if jwks.refresh_throttled(seen).await {
                    result = Authenticator::verify(&config, &jwks.keys(), header.as_ref());
                }
            }
            match result {
                Ok(principal) => {
                    tracing::Span::current().record("principal", principal.label());
                    tracing::debug!(principal = %principal.label(), "authenticated");
                    request.extensions_mut().insert(principal);
                    // Inner services never see the credential.
                    request.headers_mut().remove(AUTHORIZATION);
                    inner.call(request).await
                }
                Err(error) => {
                    tracing::info!(reason = %error, "request not authenticated");
                    Ok(Authenticator::reject(&config, &error, header.is_some()))
                }
            }
        })
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer(value: Option<&HeaderValue>) -> Option<&str> {
    let value = value?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn scopes_of(claims: &Claims) -> Vec<String> {
    let mut scopes: Vec<String> = claims
        .scope
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    match &claims.scp {
        Some(serde_json::Value::String(s)) => {
            scopes.extend(s.split_whitespace().map(str::to_owned))
        }
        Some(serde_json::Value::Array(items)) => {
            scopes.extend(items.iter().filter_map(|v| v.as_str()).map(str::to_owned));
        }
        _ => {}
    }
    scopes
}

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

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
