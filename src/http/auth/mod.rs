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
//! HS-signed-with-the-public-key tokens therefore never verify. A JWT that verified is
//! remembered by its hash until it expires ([`cache`]): one signature check per token.

mod cache;
mod jwks;
mod keys;
mod verify;

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower::{Layer, Service};

pub use self::cache::{Verdict, Verdicts};
pub use self::jwks::{Jwks, JwksError, validate_url};
pub use self::keys::{JwtKey, StaticToken, parse_tokens};
pub use self::verify::{AuthConfig, AuthError, Authenticator, bearer};
use crate::http::client_addr::{AddressKey, ClientAddr};
use crate::http::rescue;
use crate::metrics::{AuthFailure, metrics};
use crate::run::Principal;
use crate::runs::Observer;

/// Whether a verified JWT is one its issuer still stands behind (the built-in
/// authorization server: a live grant, a lifetime it would have issued). Asked after the
/// signature and claims verified, for every JWT when set: with the built-in server its key
/// is the only JWT key, and a token signed with it but not minted by it (the key read from
/// the state directory) must not pass; a revoked grant's tokens stop at their next use.
/// It may also hold keys of its own, changing while the server runs (the built-in
/// server's key set, rotated through the state store), tried like a JWKS's.
pub trait GrantCheck: Send + Sync + std::fmt::Debug {
    /// `true` when the token whose payload is `claims` may be honoured.
    fn live(&self, claims: serde_json::Value) -> BoxFuture<'static, bool>;

    /// The issuer's own verification keys now, with their generation.
    fn keys(&self) -> (u64, Arc<Vec<JwtKey>>) {
        (0, Arc::default())
    }

    /// A token named a `kid` not among [`Self::keys`] of generation `seen`: look again
    /// (throttled); `true` when the keys changed since.
    fn reread_keys(&self, _seen: u64) -> BoxFuture<'static, bool> {
        Box::pin(async { false })
    }
}

/// The auth layer of the MCP endpoint; `config: None` is no-auth mode.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    config: Option<Arc<AuthConfig>>,
    jwks: Option<Arc<Jwks>>,
    grants: Option<Arc<dyn GrantCheck>>,
    verdicts: Verdicts,
    observer: Observer,
}

impl AuthLayer {
    /// No-auth mode: every caller is [`Principal::Anonymous`].
    pub fn disabled() -> Self {
        Self {
            config: None,
            jwks: None,
            grants: None,
            verdicts: Verdicts::default(),
            observer: Observer::default(),
        }
    }

    /// Require a valid bearer token; `jwks` supplies fetched keys when configured.
    pub fn new(config: AuthConfig, jwks: Option<Arc<Jwks>>) -> Self {
        Self {
            config: Some(Arc::new(config)),
            jwks,
            grants: None,
            verdicts: Verdicts::default(),
            observer: Observer::default(),
        }
    }

    /// Refuse JWTs that `grants` says are not live.
    pub fn with_grant_check(mut self, grants: Option<Arc<dyn GrantCheck>>) -> Self {
        self.grants = grants;
        self
    }

    /// Write a refused `tools/call` to `observer`'s audit log.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
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
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
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
        let grants = self.layer.grants.clone();
        let verdicts = self.layer.verdicts.clone();
        let observer = self.layer.observer.clone();
        Box::pin(async move {
            let header = request.headers().get(AUTHORIZATION).cloned();
            let token = bearer(header.as_ref());
            // The built-in server is the only issuer when it is on: never both.
            let (mut seen, fetched) = match (&jwks, &grants) {
                (Some(jwks), _) => jwks.snapshot(),
                (None, Some(grants)) => grants.keys(),
                (None, None) => Default::default(),
            };
            let jwts = !config.jwt_keys.is_empty() || !fetched.is_empty();
            let repeated = request
                .headers()
                .get_all(AUTHORIZATION)
                .iter()
                .nth(1)
                .is_some();
            let remembered = match token {
                Some(token) if jwts && !repeated => verdicts.get(token, seen),
                _ => None,
            };
            let mut result = if repeated {
                // Which one would count is anybody's guess (proxies differ): neither.
                Err(AuthError::Repeated)
            } else if let Some(verdict) = &remembered {
                Ok(verdict.principal.clone())
            } else {
                Authenticator::verify(&config, &fetched, header.as_ref())
            };
            if let Err(AuthError::UnknownKid(kid)) = &result {
                tracing::debug!(kid = %kid, "unknown kid; refreshing the keys");
                let refreshed = if let Some(jwks) = &jwks {
                    jwks.refresh_throttled(seen).await.then(|| jwks.snapshot())
                } else if let Some(grants) = &grants
                    && grants.reread_keys(seen).await
                {
                    Some(grants.keys())
                } else {
                    None
                };
                if let Some((now_seen, keys)) = refreshed {
                    seen = now_seen;
                    result = Authenticator::verify(&config, &keys, header.as_ref());
                }
            }
            // The claims of a JWT that verified: remembered, or read now and remembered.
            let claims = match (&result, remembered, token) {
                (Ok(Principal::Authenticated { .. }), Some(verdict), _) => {
                    Some(Arc::clone(&verdict.claims))
                }
                (Ok(principal @ Principal::Authenticated { .. }), None, Some(token)) => {
                    payload_of(token).map(|claims| {
                        let claims = Arc::new(claims);
                        if let Some(expires_at) = claims["exp"].as_u64() {
                            verdicts.insert(
                                token,
                                Verdict {
                                    principal: principal.clone(),
                                    claims: Arc::clone(&claims),
                                    expires_at,
                                    keys: seen,
                                },
                            );
                        }
                        claims
                    })
                }
                _ => None,
            };
            if let (Ok(Principal::Authenticated { .. }), Some(grants)) = (&result, &grants) {
                let live = match claims {
                    Some(claims) => grants.live((*claims).clone()).await,
                    None => false,
                };
                if !live {
                    result = Err(AuthError::Invalid(
                        "not a live token of the built-in authorization server (no such grant, revoked, or a lifetime it never issues)".into(),
                    ));
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
                    // Debug, not info: a caller without a token chooses how many lines
                    // this would be; the audit log and the metrics count them instead.
                    tracing::debug!(reason = %error, "request not authenticated");
                    let failure = match &error {
                        AuthError::Missing => AuthFailure::missing,
                        AuthError::InsufficientScope(_) => AuthFailure::insufficient_scope,
                        AuthError::Repeated => AuthFailure::malformed,
                        AuthError::Invalid(_)
                        | AuthError::Unacceptable(_)
                        | AuthError::UnknownKid(_) => AuthFailure::invalid,
                    };
                    metrics().auth_failed(failure);
                    if let Some(log) = observer.audit() {
                        // Counted per address; only an address's first refusal of the
                        // interval may get a record of its own.
                        let client = request.extensions().get::<ClientAddr>().map_or_else(
                            || "unknown".to_owned(),
                            |c| AddressKey::of(c.0).to_string(),
                        );
                        if log.unauthenticated(&client, failure.as_str()) {
                            audit_denied_tool_call(&observer, request, &error).await;
                        }
                    }
                    Ok(rescue::render(&Authenticator::reject(
                        &config,
                        &error,
                        header.is_some(),
                    )))
                }
            }
        })
    }
}

/// The payload of a JWT that already verified (`None` if it cannot be read, which
/// refuses the token).
fn payload_of(token: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A refused request that was a `tools/call` is a refused run: it gets its audit record
/// (the body is read only on this path, and the outer layers bound its size and time).
async fn audit_denied_tool_call<B>(observer: &Observer, request: Request<B>, error: &AuthError)
where
    B: http_body::Body<Data = bytes::Bytes>,
{
    use http_body_util::BodyExt;
    if request.method() != http::Method::POST {
        return;
    }
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = request.into_body().collect().await else {
        return;
    };
    let Ok(message) = serde_json::from_slice::<serde_json::Value>(&body.to_bytes()) else {
        return;
    };
    if message["method"] == "tools/call" {
        observer.auth_denied(
            request_id,
            &error.to_string(),
            &message["params"]["arguments"],
        );
    }
}

#[cfg(test)]
mod tests;
