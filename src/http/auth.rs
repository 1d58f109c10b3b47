//! Bearer authentication for the MCP endpoint: static tokens and JWTs.
//!
//! Off in the default no-auth mode; turned on by environment alone
//! (`TWOBOT_ENABLE_NO_AUTH=false` plus a credential). [`Authenticator::verify`] is
//! the pure decision; [`Authenticator`] is also a `ValidateRequest`, so the layer
//! puts the [`Principal`] into the request's extensions and strips `Authorization`
//! before anything inner sees it. A token is never logged and never reaches Codex.
//!
//! JWT algorithms are pinned to the key type: an HMAC secret admits HS256/384/512 only,
//! an RSA key RS*/PS* only, an EC key ES256/384, an Ed25519 key EdDSA. `alg: none` and
//! HS-signed-with-the-public-key tokens therefore never verify.

use std::fmt;

use axum::body::Body;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_http::validate_request::ValidateRequest;

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
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwtKey({:?}, <redacted>)", self.algorithms)
    }
}

impl JwtKey {
    /// An HMAC secret: HS256, HS384, HS512.
    pub fn secret(secret: &[u8]) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            algorithms: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
        }
    }

    /// A PEM public key; its type decides the algorithms.
    pub fn public_pem(pem: &[u8]) -> Result<Self, String> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self {
                key,
                algorithms: vec![
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ],
            });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Self {
                key,
                algorithms: vec![Algorithm::ES256, Algorithm::ES384],
            });
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(Self {
                key,
                algorithms: vec![Algorithm::EdDSA],
            });
        }
        Err("not a PEM RSA, EC or Ed25519 public key".to_owned())
    }
}

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
    /// A valid token without a required scope.
    #[error("missing scope {0}")]
    InsufficientScope(String),
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<serde_json::Value>,
}

/// The `ValidateRequest` for the MCP endpoint (`None` inside means no-auth mode).
#[derive(Clone, Debug)]
pub struct Authenticator {
    config: Option<std::sync::Arc<AuthConfig>>,
}

impl Authenticator {
    /// No-auth mode: every caller is [`Principal::Anonymous`].
    pub fn disabled() -> Self {
        Self { config: None }
    }

    /// Require a valid bearer token.
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config: Some(std::sync::Arc::new(config)),
        }
    }

    /// The decision: who presents `authorization`, or why nobody.
    pub fn verify(
        config: &AuthConfig,
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
        if config.jwt_keys.is_empty() {
            return Err(AuthError::Invalid("unknown static token".into()));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = config
            .jwt_keys
            .iter()
            .find(|k| k.algorithms.contains(&header.alg))
            .ok_or_else(|| {
                AuthError::Invalid(format!("algorithm {:?} is not accepted", header.alg))
            })?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = key.algorithms.clone();
        validation.leeway = config.leeway_sec;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.set_audience(&[&config.audience]);
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let scopes = scopes_of(&data.claims);
        if let Some(missing) = config.required_scopes.iter().find(|s| !scopes.contains(s)) {
            return Err(AuthError::InsufficientScope(missing.clone()));
        }
        Ok(Principal::Authenticated {
            subject: data.claims.sub.unwrap_or_else(|| "jwt".to_owned()),
            scopes,
        })
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
            _ if sent_token => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer error=\"invalid_token\", resource_metadata=\"{metadata}\""),
            ),
            _ => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer resource_metadata=\"{metadata}\""),
            ),
        };
        let body = if status == StatusCode::FORBIDDEN {
            r#"{"error":"insufficient_scope"}"#
        } else {
            r#"{"error":"unauthorized"}"#
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

impl<B> ValidateRequest<B> for Authenticator {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Body>> {
        let Some(config) = &self.config else {
            request.extensions_mut().insert(Principal::Anonymous);
            return Ok(());
        };
        let header = request.headers().get(AUTHORIZATION);
        let sent = header.is_some();
        match Self::verify(config, header) {
            Ok(principal) => {
                tracing::Span::current().record("principal", principal.label());
                tracing::debug!(principal = %principal.label(), "authenticated");
                request.extensions_mut().insert(principal);
                // Inner services never see the credential.
                request.headers_mut().remove(AUTHORIZATION);
                Ok(())
            }
            Err(error) => {
                tracing::info!(reason = %error, "request not authenticated");
                Err(Self::reject(config, &error, sent))
            }
        }
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
