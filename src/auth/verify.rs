//! The authentication decision, pure: a request's `Authorization` header and the
//! configured credentials in, a [`Principal`] or an [`AuthError`] out (how a refusal is
//! answered over HTTP is `http::auth`'s to say).

use http::HeaderValue;
use jsonwebtoken::Validation;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::keys::{JwtKey, StaticToken};
use crate::run::Principal;

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
    /// Scopes named in the 401 challenge (`scope="…"`): what a client should ask its
    /// authorization server for. MCP's scope selection reads the challenge first, then
    /// `scopes_supported`; both list the required scopes, then the policy's.
    pub challenge_scopes: Vec<String>,
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

/// The auth decisions (pure) and the rejections they lead to.
#[derive(Clone, Copy, Debug)]
pub struct Authenticator;

impl Authenticator {
    /// The decision: who presents `authorization`, or why nobody. `fetched` are the
    /// keys of the JWKS (if one is configured) or the built-in server's current set,
    /// tried alongside the configured keys.
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
        if config.jwt_keys.is_empty() && config.jwks_url.is_none() && fetched.is_empty() {
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
                // Keys that change (a JWKS, the built-in server's set) may gain it.
                Some(kid) if config.jwks_url.is_some() || !fetched.is_empty() => {
                    AuthError::UnknownKid(kid)
                }
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
