//! Bearer authentication for the MCP endpoint, as a tower layer: static tokens and JWTs.
//!
//! Off in the default no-auth mode; turned on by environment alone
//! (`TWOBOT_ENABLE_NO_AUTH=false` plus a credential). The decision is `crate::auth`'s
//! ([`Authenticator::verify`], pure); [`AuthLayer`] asks it, puts the [`Principal`] into
//! the request's extensions and strips `Authorization` before anything inner sees it,
//! refreshing the JWKS (throttled) when a token names a key it does not know yet, and
//! answers a refusal as [`reject`] says. A token is never logged and never reaches Codex.

mod reject;

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower::{Layer, Service};

use self::reject::reject;
use crate::auth::client_addr::{AddressKey, ClientAddr};
use crate::auth::{
    AuthConfig, AuthError, Authenticator, GrantCheck, Jwks, Verdict, Verdicts, bearer,
};
use crate::http::rescue;
use crate::metrics::{AuthFailure, metrics};
use crate::run::Principal;
use crate::runs::Observer;

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
        let Some(config) = self.layer.config.clone() else {
            request.extensions_mut().insert(Principal::Anonymous);
            return Box::pin(self.inner.call(request));
        };
        // Static tokens alone (no JWT key, no JWKS, no built-in issuer): a token that
        // passes is decided here, with nothing to await, so the ready inner service
        // serves it now. A refusal goes the long way, where its audit record is written.
        let static_only =
            self.layer.jwks.is_none() && self.layer.grants.is_none() && config.jwt_keys.is_empty();
        if static_only
            && !repeated(request.headers())
            && let Ok(principal) =
                Authenticator::verify(&config, &[], request.headers().get(AUTHORIZATION))
        {
            admit(&mut request, principal);
            return Box::pin(self.inner.call(request));
        }
        let mut inner = crate::http::ready::take(&mut self.inner);
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
            let repeated = repeated(request.headers());
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
                    admit(&mut request, principal);
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
                    Ok(rescue::render(&reject(&config, &error, header.is_some())))
                }
            }
        })
    }
}

/// More than one `Authorization` header: which one would count is anybody's guess
/// (proxies differ), so neither does.
fn repeated(headers: &http::HeaderMap) -> bool {
    headers.get_all(AUTHORIZATION).iter().nth(1).is_some()
}

/// An authenticated request goes on with its principal, and without its credential:
/// inner services never see it.
fn admit<B>(request: &mut Request<B>, principal: Principal) {
    tracing::Span::current().record("principal", principal.label());
    tracing::debug!(principal = %principal.label(), "authenticated");
    request.extensions_mut().insert(principal);
    request.headers_mut().remove(AUTHORIZATION);
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
        .get(&crate::http::names::X_REQUEST_ID)
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
