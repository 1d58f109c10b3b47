//! Each principal's share of open connections: requests in flight (SSE streams included),
//! and the quota key every per-principal limit counts against.
//!
//! A TCP connection is accepted before anyone is authenticated, and one HTTP/1.1
//! connection may carry requests of different principals one after another, so "open
//! connections per principal" cannot be counted at accept time. What *is* attributable
//! is a request once auth has run: this layer counts each principal's requests in flight
//! until their response body ends (a long call's SSE stream holds its place for as long
//! as it is open) and refuses one beyond `TWOBOT_MAX_INFLIGHT_PER_PRINCIPAL` with `429`
//! and `Connection: close`, so the refused caller's extra socket is given back at once.
//! Sockets that never get as far as a request are bounded for everyone together by
//! `TWOBOT_MAX_CONNECTIONS` and the header deadline (`server.rs`).
//!
//! The quota key is the principal's owner key; in no-auth mode, where every HTTP caller
//! is the one principal "anonymous", it is `anonymous@<client address>` (the address as
//! the rate limiter sees it: the peer, or with `TWOBOT_TRUST_PROXY_HEADERS=true` the
//! proxy's `X-Forwarded-For`), so anonymous clients on different machines get separate
//! shares. It goes into the request's extensions for the session guard and the job stack.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body::Frame;
use tower::{Layer, Service};

use super::rate_limit::client_ip;
use super::rescue::{self, Rejection};
use crate::job::{Principal, QuotaKey};

/// Counts requests in flight per quota key.
#[derive(Clone, Debug)]
pub struct InflightLayer {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    counts: Mutex<HashMap<QuotaKey, usize>>,
    max: usize,
    trust_proxy_headers: bool,
}

impl State {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<QuotaKey, usize>> {
        // Each change is one map operation; a poisoned lock still holds a consistent map.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl InflightLayer {
    /// At most `max` requests in flight per quota key.
    pub fn new(max: usize, trust_proxy_headers: bool) -> Self {
        Self {
            state: Arc::new(State {
                counts: Mutex::default(),
                max,
                trust_proxy_headers,
            }),
        }
    }
}

impl<S> Layer<S> for InflightLayer {
    type Service = Inflight<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Inflight {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service built by [`InflightLayer`].
#[derive(Clone, Debug)]
pub struct Inflight<S> {
    inner: S,
    state: Arc<State>,
}

/// The quota key of a request: see the module docs.
pub fn quota_key(
    principal: Option<&Principal>,
    peer: Option<SocketAddr>,
    headers: &http::HeaderMap,
    trust_proxy_headers: bool,
) -> QuotaKey {
    match principal {
        Some(p) if *p != Principal::Anonymous => QuotaKey::of(p),
        _ => match client_ip(peer.map(|p| p.ip()), headers, trust_proxy_headers) {
            Some(ip) => QuotaKey(format!("anonymous@{ip}")),
            None => QuotaKey::of(&Principal::Anonymous),
        },
    }
}

/// One place in flight; given back when dropped.
struct Place {
    state: Arc<State>,
    key: QuotaKey,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.state.counts();
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// A response body that holds its request's place until it ends or is dropped.
struct Held {
    body: Body,
    _place: Place,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl<S, B> Service<Request<B>> for Inflight<S>
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let key = quota_key(
            request.extensions().get::<Principal>(),
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            request.headers(),
            state.trust_proxy_headers,
        );
        let admitted = {
            let mut counts = state.counts();
            let n = counts.entry(key.clone()).or_default();
            if *n >= state.max {
                false
            } else {
                *n += 1;
                true
            }
        };
        if !admitted {
            tracing::warn!(quota_key = %key, max = state.max, "per-principal in-flight quota reached");
            let max = state.max;
            return Box::pin(
                async move { Ok(rescue::render(&Rejection::TooManyInFlight { max })) },
            );
        }
        let place = Place {
            state,
            key: key.clone(),
        };
        request.extensions_mut().insert(key);
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(response.map(|body| {
                Body::new(Held {
                    body,
                    _place: place,
                })
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn quotas_key_on_the_principal_and_without_auth_on_the_client_address() {
        let peer: SocketAddr = "10.0.0.7:5555".parse().unwrap_or_else(|_| unreachable!());
        let mut proxied = http::HeaderMap::new();
        proxied.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        let token = Principal::Token {
            name: "alice".into(),
        };
        let jwt = Principal::Authenticated {
            issuer: Some("https://idp".into()),
            subject: "alice".into(),
            scopes: vec![],
        };
        let anon = Principal::Anonymous;
        let empty = http::HeaderMap::new();
        type Case<'a> = (
            Option<&'a Principal>,
            Option<SocketAddr>,
            &'a http::HeaderMap,
            bool,
            &'a str,
        );
        let cases: [Case<'_>; 7] = [
            (Some(&token), Some(peer), &empty, false, "token:alice"),
            (
                Some(&jwt),
                Some(peer),
                &proxied,
                true,
                r#"jwt-iss-sub:["https://idp","alice"]"#,
            ),
            (Some(&anon), Some(peer), &empty, false, "anonymous@10.0.0.7"),
            (
                Some(&anon),
                Some(peer),
                &proxied,
                false,
                "anonymous@10.0.0.7",
            ),
            (
                Some(&anon),
                Some(peer),
                &proxied,
                true,
                "anonymous@203.0.113.9",
            ),
            (None, Some(peer), &empty, false, "anonymous@10.0.0.7"),
            (Some(&anon), None, &empty, false, "anonymous"),
        ];
        for (principal, peer, headers, trust, want) in cases {
            assert_eq!(
                quota_key(principal, peer, headers, trust).as_str(),
                want,
                "{principal:?} {peer:?} trust={trust}"
            );
        }
    }
}
